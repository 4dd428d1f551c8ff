"""int_conv2d / int_conv1d are exact: equal to an int64 reference over odd shapes, strides,
asymmetric padding, dilation and groups; identical bits across tile configs and batch sizes;
the overflow guards allow their limits and refuse one step beyond."""

from __future__ import annotations

import pytest
import torch

from vcompute.kernels.conv import ConvConfig, int_conv1d, int_conv2d
from vcompute.kernels.reference import int_conv2d as ref_conv2d
from vcompute.kernels.testing import assert_same, rand_int64

CONFIGS = [ConvConfig(16, 16, 32, 1, 1, 1), ConvConfig(32, 64, 32, 4, 2, 4), ConvConfig(64, 32, 64, 4, 1, 8)]


CASES = [  # n, c, h, w, o, kh, kw, stride, padding, dilation, groups
    (1, 1, 1, 1, 1, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (1, 3, 7, 9, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (2, 4, 11, 5, 6, 3, 2, (2, 1), (0, 1, 2, 0), (1, 2), 2),
    (3, 6, 9, 9, 3, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 3),
    (1, 17, 5, 6, 33, 2, 3, (3, 2), (2, 2, 2, 2), (2, 1), 1),
    (2, 4, 6, 6, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4),  # depthwise
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:7])) + f"-g{c[-1]}")
@pytest.mark.parametrize("mag", [127, 2**13, 2**21])
def test_matches_reference(case, mag):
    n, c, h, w, o, kh, kw, stride, pad, dil, groups = case
    x = rand_int64((n, c, h, w), mag, 1)
    wt = rand_int64((o, c // groups, kh, kw), mag, 2)
    bias = rand_int64((o,), mag * mag, 3)
    cfg = CONFIGS[hash(case) % 3]
    assert_same(int_conv2d(x, wt, bias, stride, pad, dil, groups, cfg),
                ref_conv2d(x, wt, bias, stride, pad, dil, groups), f"{case} mag {mag}")


def test_identical_bits_across_configs_and_batches():
    x = rand_int64((5, 6, 7, 9), 2**14, 4)
    wt = rand_int64((10, 3, 3, 3), 2**14, 5)
    bias = rand_int64((10,), 2**28, 6)
    args = ((2, 1), (1, 2, 0, 1), (1, 1), 2)
    ref = ref_conv2d(x, wt, bias, *args)
    for cfg in CONFIGS + [ConvConfig()]:
        assert_same(int_conv2d(x, wt, bias, *args, config=cfg), ref, f"config {cfg}")
    for i in range(x.shape[0]):
        assert_same(int_conv2d(x[i : i + 1], wt, bias, *args, config=CONFIGS[1]), ref[i : i + 1], f"image {i} alone")


def test_padding_forms_and_int_args():
    x = rand_int64((1, 2, 5, 5), 300, 7)
    wt = rand_int64((3, 2, 3, 3), 300, 8)
    ref = ref_conv2d(x, wt, None, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert_same(int_conv2d(x, wt, padding=1), ref)
    assert_same(int_conv2d(x, wt, padding=(1, 1)), ref)


def test_conv1d():
    x = rand_int64((2, 4, 13), 2**13, 9)
    wt = rand_int64((6, 2, 3), 2**13, 10)
    bias = rand_int64((6,), 2**20, 11)
    got = int_conv1d(x, wt, bias, stride=2, padding=(1, 2), dilation=2, groups=2)
    ref = ref_conv2d(x.unsqueeze(2), wt.unsqueeze(2), bias, (1, 2), (0, 1, 0, 2), (1, 2), 2).squeeze(2)
    assert_same(got, ref, "conv1d")


def test_largest_k_and_one_beyond():
    """K = C*kh*kw = 131071 with all limbs -128 fits int32; 131072 is refused."""
    lo = -128 * 257  # both 8-bit limbs are -128
    c = 131071  # 1x1 kernel: K = C
    x = torch.full((1, c, 1, 1), lo, dtype=torch.int64)
    wt = torch.full((1, c, 1, 1), lo, dtype=torch.int64)
    got = int_conv2d(x, wt, config=ConvConfig(16, 16, 256, 4, 1, 1))
    assert int(got.item()) == c * lo * lo
    with pytest.raises(OverflowError, match="int32"):
        int_conv2d(torch.full((1, c + 1, 1, 1), lo, dtype=torch.int64), torch.full((1, c + 1, 1, 1), lo, dtype=torch.int64))


def test_int64_bound():
    x = torch.tensor([[[[-(2**31)]]]], dtype=torch.int64)
    wt = torch.tensor([[[[2**32 - 1]]]], dtype=torch.int64)
    bias = torch.tensor([-(2**31 - 1)], dtype=torch.int64)
    assert int(int_conv2d(x, wt, bias).item()) == -(2**63) + 1
    with pytest.raises(OverflowError, match="int64"):
        int_conv2d(x, wt, torch.tensor([2**31], dtype=torch.int64))


def test_rejects_bad_arguments():
    x = torch.zeros((1, 4, 5, 5), dtype=torch.int64)
    with pytest.raises(ValueError, match="groups"):
        int_conv2d(x, torch.zeros((3, 2, 3, 3), dtype=torch.int64), groups=2)
    with pytest.raises(ValueError, match="output would be"):
        int_conv2d(x, torch.zeros((2, 4, 7, 7), dtype=torch.int64))
    with pytest.raises(TypeError, match="int64"):
        int_conv2d(x.float(), torch.zeros((2, 4, 3, 3), dtype=torch.int64))
    with pytest.raises(ValueError, match="padding"):
        int_conv2d(x, torch.zeros((2, 4, 3, 3), dtype=torch.int64), padding=(1, 2, 3))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mag", [100, 2**13, 2**20])
def test_gpu_matches_reference(mag):
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randint(-mag, mag, (4, 32, 17, 19), device="cuda", dtype=torch.int64, generator=g)
    wt = torch.randint(-mag, mag, (48, 16, 3, 3), device="cuda", dtype=torch.int64, generator=g)
    bias = torch.randint(-(2**26), 2**26, (48,), device="cuda", dtype=torch.int64, generator=g)
    args = ((2, 1), (1, 1, 0, 2), (1, 1), 2)
    ref = ref_conv2d(x, wt, bias, *args)
    for cfg in [None] + CONFIGS:
        got = int_conv2d(x, wt, bias, *args, config=cfg)
        assert got.device.type == "cuda"
        assert_same(got, ref, f"conv on GPU, config {cfg}")
