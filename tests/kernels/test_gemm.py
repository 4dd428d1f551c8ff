"""int_matmul is exact: equal to the int64 reference for odd shapes, every limb count, the
largest K and magnitudes its overflow guards allow, and bit-identical across tile configs."""

from __future__ import annotations

import pytest
import torch

import vcompute.kernels as kernels
from vcompute.kernels.gemm import GemmConfig, int_matmul, limbs_needed, padded_limbs, split_limbs
from vcompute.kernels.reference import int_matmul as ref_matmul
from vcompute.kernels.testing import assert_same, int_mm_reference

CONFIGS = [
    GemmConfig(16, 16, 32, 1, 1, 1),
    GemmConfig(32, 64, 32, 4, 2, 4, tma=False),
    GemmConfig(64, 32, 64, 4, 1, 8, persistent=True),
]


def _rand(shape, lo, hi, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi + 1, shape, generator=g, dtype=torch.int64)


def _limb_edges(n: int) -> tuple[int, int]:
    r = (256**n - 1) // 255
    return -128 * r, 127 * r


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 17, 5), (17, 33, 65), (33, 65, 3), (65, 3, 17)])
@pytest.mark.parametrize("mag", [127, 2**13, 40000, 2**21])
def test_matches_reference(m, k, n, mag):
    a = _rand((m, k), -mag, mag, 1)
    b = _rand((k, n), -mag, mag, 2)
    bias = _rand((n,), -mag * mag, mag * mag, 3)
    assert_same(int_matmul(a, b, bias, CONFIGS[1]), ref_matmul(a, b, bias), f"{m}x{k}x{n} mag {mag}")
    assert_same(int_matmul(a, b, config=CONFIGS[(m + n) % 3]), ref_matmul(a, b), f"{m}x{k}x{n} mag {mag} no bias")


@pytest.mark.parametrize("la,lb", [(1, 2), (2, 1), (3, 2), (1, 5), (4, 3)])
def test_limb_count_edges(la, lb):
    """Operands at the exact ends of each limb count's range (and mixed counts per operand)."""
    lo_a, hi_a = _limb_edges(la)
    lo_b, hi_b = _limb_edges(lb)
    a = torch.tensor([[lo_a, hi_a, -1], [0, lo_a, hi_a]], dtype=torch.int64)
    b = torch.tensor([[hi_b, 1], [lo_b, -1], [1, hi_b]], dtype=torch.int64)
    assert_same(int_matmul(a, b, config=CONFIGS[0]), ref_matmul(a, b), f"limbs {la}x{lb}")


def test_eight_limbs():
    """The widest operands (8 limbs, near +-2^63) times +-1 with K = 1."""
    _, hi = _limb_edges(8)
    a = torch.tensor([[hi], [-(2**63) + 1], [-hi]], dtype=torch.int64)
    b = torch.tensor([[1, -1, 0]], dtype=torch.int64)
    assert_same(int_matmul(a, b, config=CONFIGS[2]), ref_matmul(a, b), "8 limbs")


def test_limbs_needed_boundaries():
    for n in range(1, 8):
        lo, hi = _limb_edges(n)
        assert limbs_needed(lo, hi) == n
        assert limbs_needed(lo - 1, 0) == n + 1
        assert limbs_needed(0, hi + 1) == n + 1
    assert padded_limbs(3) == 4 and padded_limbs(5) == 8 and padded_limbs(1) == 1
    with pytest.raises(OverflowError, match="limbs"):
        limbs_needed(0, 2**63 - 1)


def test_split_limbs_roundtrip():
    # split_limbs is the raw launcher: its tensor must already be on the kernels' device.
    x = torch.tensor([[-(2**40), 2**40 - 1, -128, 127, 128, -129, 0, 12345678]], dtype=torch.int64, device=kernels.device())
    limbs = split_limbs(x, 8)
    assert int(limbs.min()) >= -128 and int(limbs.max()) <= 127
    assert limbs.shape == (1, 8, 16) and not bool(limbs[:, :, 8:].any()), "K padding must be zero limbs"
    back = sum(limbs[:, i, :8].to(torch.int64) * 256**i for i in range(8))
    assert_same(back, x, "limb recombination")


@pytest.mark.parametrize("cfg", CONFIGS + [GemmConfig(), GemmConfig(tma=False), GemmConfig(16, 32, 32, 2, 2, 3, tma=False)],
                         ids=lambda c: f"{c.block_m}x{c.block_n}x{c.block_k}{'-tma' if c.tma else ''}{'-persistent' if c.persistent else ''}")
def test_identical_bits_across_configs(cfg):
    a = _rand((19, 45), -(2**14), 2**14, 4)
    b = _rand((45, 23), -(2**14), 2**14, 5)
    bias = _rand((23,), -(2**27), 2**27, 6)
    ref = int_matmul(a, b, bias, CONFIGS[0])
    assert_same(int_matmul(a, b, bias, cfg), ref, f"config {cfg}")
    assert_same(ref, ref_matmul(a, b, bias))


def test_batch_one_equals_batch_many():
    a = _rand((7, 29), -(2**15), 2**15, 7)
    b = _rand((29, 11), -(2**15), 2**15, 8)
    full = int_matmul(a, b, config=CONFIGS[1])
    for i in range(a.shape[0]):
        assert_same(int_matmul(a[i : i + 1], b, config=CONFIGS[2]), full[i : i + 1], f"row {i} alone")


def test_largest_k_for_int32_accumulator():
    """K = 131071 with every limb -128 reaches 131071 * 128 * 128 < 2^31; K + 1 is refused."""
    k = (2**31 - 1) // (128 * 128)
    assert k == 131071
    lo, _ = _limb_edges(2)  # -32896: both limbs are -128
    a = torch.full((1, k), lo, dtype=torch.int64)
    b = torch.full((k, 1), lo, dtype=torch.int64)
    cfg = GemmConfig(16, 16, 256, 4, 1, 1)
    assert_same(int_matmul(a, b, config=cfg), torch.tensor([[k * lo * lo]]), "largest K")
    assert_same(int_matmul(a, b, config=GemmConfig(16, 16, 256, tma=False)), torch.tensor([[k * lo * lo]]), "largest K, pointer loads")
    a1 = torch.full((1, k + 1), lo, dtype=torch.int64)
    b1 = torch.full((k + 1, 1), lo, dtype=torch.int64)
    with pytest.raises(OverflowError, match="int32"):
        int_matmul(a1, b1, config=cfg)


def test_largest_int64_result():
    """K*|a|*|b| + |bias| = 2^63 - 1 is allowed and exact; one more is refused."""
    a = torch.tensor([[-(2**31)]], dtype=torch.int64)
    b = torch.tensor([[2**32 - 1]], dtype=torch.int64)
    bias = torch.tensor([-(2**31 - 1)], dtype=torch.int64)
    out = int_matmul(a, b, bias, CONFIGS[0])
    assert int(out[0, 0]) == -(2**31) * (2**32 - 1) - (2**31 - 1) == -(2**63) + 1
    with pytest.raises(OverflowError, match="int64"):
        int_matmul(a, b, torch.tensor([2**31], dtype=torch.int64), CONFIGS[0])
    a3 = torch.tensor([[2**20, -(2**20), 2**20]], dtype=torch.int64)
    b3 = torch.tensor([[2**42], [2**42], [2**42]], dtype=torch.int64)  # 3 * 2^62 >= 2^63
    with pytest.raises(OverflowError):
        int_matmul(a3, b3)


def test_zero_sizes_and_zero_operands():
    a = torch.zeros((3, 0), dtype=torch.int64)
    b = torch.zeros((0, 4), dtype=torch.int64)
    bias = torch.arange(4, dtype=torch.int64)
    assert_same(int_matmul(a, b, bias), bias.expand(3, 4).contiguous())
    assert_same(int_matmul(torch.zeros((2, 5), dtype=torch.int64), _rand((5, 3), -9, 9, 1)),
                torch.zeros((2, 3), dtype=torch.int64))


def test_non_contiguous_inputs():
    a = _rand((9, 13), -(2**13), 2**13, 9).t()  # [13, 9], column-major
    b = _rand((11, 9), -(2**13), 2**13, 10).t()  # [9, 11]
    assert_same(int_matmul(a, b, config=CONFIGS[1]), ref_matmul(a, b))


def test_rejects_bad_arguments():
    a = torch.ones((2, 3), dtype=torch.int64)
    with pytest.raises(TypeError, match="int64"):
        int_matmul(a.to(torch.int32), torch.ones((3, 2), dtype=torch.int64))
    with pytest.raises(ValueError, match="inner dims"):
        int_matmul(a, torch.ones((4, 2), dtype=torch.int64))
    with pytest.raises(ValueError, match="bias"):
        int_matmul(a, torch.ones((3, 2), dtype=torch.int64), torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="power of two"):
        int_matmul(a, torch.ones((3, 2), dtype=torch.int64), config=GemmConfig(24, 16, 32))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("size", [1024, 4096])
def test_gpu_matches_cublas_int8(size):
    """On the GPU: equal to cuBLAS int8 (torch._int_mm) for 1 limb, and to cuBLAS int8 limb products
    combined in int64 for 2 and 4 limbs (an independent exact reference)."""
    g = torch.Generator(device="cuda").manual_seed(0)
    a8 = torch.randint(-128, 128, (size, size + 8), device="cuda", dtype=torch.int8, generator=g)
    b8 = torch.randint(-128, 128, (size + 8, size - 8), device="cuda", dtype=torch.int8, generator=g)
    assert_same(int_matmul(a8.long(), b8.long()), torch._int_mm(a8, b8).long(), "1 limb vs _int_mm")
    for mag, limbs in ((2**13, 2), (2**20, 4)):
        a = torch.randint(-mag, mag, (size, size + 8), device="cuda", dtype=torch.int64, generator=g)
        b = torch.randint(-mag, mag, (size + 8, size - 8), device="cuda", dtype=torch.int64, generator=g)
        got = int_matmul(a, b)
        assert got.device.type == "cuda"
        assert_same(got, int_mm_reference(a, b, limbs), f"mag {mag}")
    small = torch.randint(-(2**13), 2**13, (37, 53), device="cuda", dtype=torch.int64, generator=g)
    small_b = torch.randint(-(2**13), 2**13, (53, 29), device="cuda", dtype=torch.int64, generator=g)
    assert_same(int_matmul(small, small_b), ref_matmul(small, small_b), "odd shape on GPU")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_cpu_inputs_and_all_configs():
    """CPU inputs on a GPU machine run on the GPU and come back on the CPU; every test config
    (TMA, pointer loads, persistent) gives the same bits on the GPU as the int64 reference."""
    a = _rand((45, 77), -(2**20), 2**20, 21)
    b = _rand((77, 39), -(2**14), 2**14, 22)
    bias = _rand((39,), -(2**30), 2**30, 23)
    out = int_matmul(a, b, bias)
    assert out.device.type == "cpu"
    assert_same(out, ref_matmul(a, b, bias), "CPU in, CPU out")
    for cfg in CONFIGS + [GemmConfig(), GemmConfig(tma=False), GemmConfig(128, 128, 128, 8, 4, 8, persistent=True)]:
        assert_same(int_matmul(a.cuda(), b.cuda(), bias.cuda(), cfg), ref_matmul(a, b, bias), f"GPU config {cfg}")
