"""f64_matmul: the float64 GEMM equals the plain int64 reference bit for bit, over odd shapes,
every test tile config, every epilogue and sums right up to 2^53; values beyond the planned
bound set the device flag; a bound that could reach 2^53 is refused before anything runs."""

from __future__ import annotations

import pytest
import torch

import vcompute.kernels as kernels
from vcompute.kernels.epilogue import Epilogue
from vcompute.kernels.flags import FLAG_A_RANGE, new_flag
from vcompute.kernels.gemm_f64 import F64_EXACT, F64Config, f64_config, f64_matmul, pack_weight_f64
from vcompute.kernels.reference import int_matmul as ref_matmul
from vcompute.kernels.testing import assert_same, rand_int64, ref_epilogue

DEV = kernels.device()
#: FMA tiles, the rule, and tensor-core (tl.dot) tiles with K steps of 16 and 32
CONFIGS = [F64Config(16, 8, 1), F64Config(32, 64, 4), None, F64Config(16, 16, 1, 16), F64Config(64, 32, 4, 32)]
SHAPES = [(1, 1, 1), (7, 25, 6), (33, 150, 16), (130, 40, 120), (257, 16, 10), (5, 3, 70)]


def _cfg_id(c: F64Config | None) -> str:
    return "rule" if c is None else f"{c.block_m}x{c.block_n}" + (f"-dot{c.block_k}" if c.block_k else "")


@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_matches_int64_reference(m, k, n, cfg):
    a, w = rand_int64((m, k), 2**21, m * k), rand_int64((k, n), 2**14, n)
    flag = new_flag(DEV)
    got = f64_matmul(a.to(DEV), pack_weight_f64(w.to(DEV)), 2**21, flag, config=cfg)
    assert_same(got.cpu(), ref_matmul(a, w), f"f64_matmul {m}x{k}x{n} config {cfg}")
    assert int(flag.item()) == 0


@pytest.mark.parametrize("shift,bias_after,clip", [(0, False, None), (13, True, (0, None)), (7, False, (-5000, 5000)),
                                                   (1, True, (None, 0))])
def test_epilogue_matches_unfused(shift, bias_after, clip):
    m, k, n = 45, 37, 19
    a, w, bias = rand_int64((m, k), 2**20, 1), rand_int64((k, n), 2**13, 2), rand_int64((n,), 2**24, 3)
    a[0, :] = 0
    a[0, 0], w[0, 0] = 3 << max(shift - 1, 0), 1  # exact ties of both signs at the rescale
    a[1, 0] = -(3 << max(shift - 1, 0))
    epi = Epilogue.make("test", shift, bias_after, None, clip)
    flag = new_flag(DEV)
    got = f64_matmul(a.to(DEV), pack_weight_f64(w.to(DEV)), 2**20, flag, bias.to(DEV), epi)
    lo, hi = clip or (None, None)
    want = ref_epilogue(ref_matmul(a, w), bias[None, :], 1 << shift, bias_after, lo, hi)
    assert_same(got.cpu(), want, f"epilogue shift {shift} bias_after {bias_after} clip {clip}")


@pytest.mark.parametrize("cfg", [None, F64Config(16, 16, 1, 16)], ids=_cfg_id)
def test_sums_just_below_2_53_stay_exact(cfg):
    """The largest sums the bound admits: every term odd and huge, the total 2^53 - 1 - small,
    on the CUDA cores' FMAs and on the tensor cores' dot."""
    k, n = 16, 3
    wb = 2**20 + 1
    ab = (F64_EXACT - 1) // (k * wb)
    w = torch.full((k, n), wb, dtype=torch.int64)
    w[:, 1] = -wb
    a = torch.full((4, k), ab, dtype=torch.int64)
    a[1] = -ab
    a[2, ::2] = ab - 1
    got = f64_matmul(a.to(DEV), pack_weight_f64(w.to(DEV)), ab, new_flag(DEV), config=cfg)
    want = ref_matmul(a, w)
    assert int(want.abs().max()) > F64_EXACT // 2
    assert_same(got.cpu(), want, f"sums near 2^53, config {cfg}")


@pytest.mark.parametrize("cfg", [None, F64Config(16, 16, 1, 16)], ids=_cfg_id)
def test_value_beyond_the_bound_sets_the_flag(cfg):
    a = rand_int64((20, 40), 100, 4)
    w = pack_weight_f64(torch.ones((40, 4), dtype=torch.int64, device=DEV))
    flag = new_flag(DEV)
    f64_matmul(a.to(DEV), w, 100, flag, config=cfg)
    assert int(flag.item()) == 0, "values within a_bound raised a flag"
    a[13, 37] = -101  # in the last, partial K step of the dot
    f64_matmul(a.to(DEV), w, 100, flag, config=cfg)
    assert int(flag.item()) & FLAG_A_RANGE, "a value beyond a_bound did not raise FLAG_A_RANGE"


def test_bound_reaching_2_53_is_refused():
    w = pack_weight_f64(torch.full((4, 2), 2**20, dtype=torch.int64, device=DEV))
    a = torch.zeros((2, 4), dtype=torch.int64, device=DEV)
    with pytest.raises(OverflowError, match="2\\^53"):
        f64_matmul(a, w, 2**31, new_flag(DEV))
    with pytest.raises(OverflowError, match="exact doubles"):
        pack_weight_f64(torch.tensor([[2**53]], dtype=torch.int64, device=DEV))


@pytest.mark.parametrize("bad,match", [("shape", "weight is"), ("dtype", "int64"), ("bias", "bias has")])
def test_host_checks(bad, match):
    w = pack_weight_f64(torch.ones((4, 3), dtype=torch.int64, device=DEV))
    a = torch.ones((2, 5 if bad == "shape" else 4), dtype=torch.int32 if bad == "dtype" else torch.int64, device=DEV)
    bias = torch.ones(2 if bad == "bias" else 3, dtype=torch.int64, device=DEV)
    with pytest.raises((ValueError, TypeError), match=match):
        f64_matmul(a, w, 10, new_flag(DEV), bias)


def test_config_rule_and_checks():
    assert f64_config(1, 6, 25) == F64Config(16, 8, 1)
    assert f64_config(2**16, 120, 400) == F64Config(128, 64, 4)
    assert f64_config(1024, 16, 8).block_m == 16  # many programs rather than wide tiles
    assert f64_config(1, 6, 25, dot=True) == F64Config(16, 16, 1, 32)  # a dot tile is 16 wide at least
    assert f64_config(256, 10, 8, dot=True).block_k == 16
    with pytest.raises(ValueError, match="power of two"):
        F64Config(24, 16).check()
    with pytest.raises(ValueError, match="tl.dot tile"):
        F64Config(16, 8, 1, 16).check()
    with pytest.raises(ValueError, match="block_k"):
        F64Config(16, 16, 1, 8).check()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_large_batch_every_config():
    g = torch.Generator(device="cuda").manual_seed(7)
    a = torch.randint(-(2**22), 2**22, (4099, 400), device="cuda", dtype=torch.int64, generator=g)
    w = torch.randint(-(2**13), 2**13, (400, 120), device="cuda", dtype=torch.int64, generator=g)
    want = ref_matmul(a.cpu(), w.cpu())
    for cfg in CONFIGS + [F64Config(128, 64, 8), F64Config(128, 64, 8, 32), F64Config(64, 128, 4, 16)]:
        flag = new_flag("cuda")
        got = f64_matmul(a, pack_weight_f64(w), 2**22, flag, config=cfg)
        assert_same(got.cpu(), want, f"GPU f64_matmul config {cfg}")
        assert int(flag.item()) == 0


@pytest.mark.parametrize("cfg", [None, F64Config(16, 16, 1, 16)], ids=_cfg_id)
@pytest.mark.parametrize("m", [1, 45, 130])
def test_float_input_quantized_in_the_kernel_and_flags_handed_over(m, cfg):
    """a_scale: the float32 input is quantized as EZKL does (ties away from zero) inside the GEMM;
    with a Handover the result holds the flags, which end zeroed with the ticket."""
    from vcompute.engine.fixedpoint import quantize_input as ref_quantize
    from vcompute.kernels.flags import FLAG_INPUT_RANGE, Handover

    g = torch.Generator().manual_seed(m)
    x = (torch.rand((m, 11), generator=g) * 6 - 3).to(torch.float32)
    x[0, 0] = 1.5 / 2**10  # a tie
    w, bias = rand_int64((11, 5), 2**12, m), rand_int64((5,), 2**16, m + 1)
    epi = Epilogue.make("test", 10, True, None, (0, None))
    want = ref_epilogue(ref_matmul(torch.from_numpy(ref_quantize(x.numpy(), 10)), w), bias[None, :], 1 << 10, True, 0)
    flags = torch.zeros(3, dtype=torch.int32, device=DEV)
    ticket = torch.zeros(1, dtype=torch.int32, device=DEV)
    res = torch.full((3 + m * 5,), -1, dtype=torch.int64, device=DEV)
    f64_matmul(x.to(DEV), pack_weight_f64(w.to(DEV)), 2**12, flags[2:3], bias.to(DEV), epi, a_scale=10,
               in_flag=flags[0:1], out=res[3:].view(m, 5), handover=Handover(ticket, flags, 3, res), config=cfg)
    assert res[:3].tolist() == [0, 0, 0] and int(ticket.item()) == 0
    assert_same(res[3:].view(m, 5).cpu(), want, f"f64_matmul with a float input, {m} rows")
    x[m - 1, 10] = 4.5  # 4.5 * 2^10 > 2^12
    flags[1] = 8  # an earlier launch's flag: handed over and zeroed too
    f64_matmul(x.to(DEV), pack_weight_f64(w.to(DEV)), 2**12, flags[2:3], bias.to(DEV), epi, a_scale=10,
               in_flag=flags[0:1], out=res[3:].view(m, 5), handover=Handover(ticket, flags, 3, res), config=cfg)
    assert int(res[0]) == FLAG_INPUT_RANGE and int(res[1]) == 8, f"flags handed over: {res[:3].tolist()}"
    assert flags.tolist() == [0, 0, 0] and int(ticket.item()) == 0
