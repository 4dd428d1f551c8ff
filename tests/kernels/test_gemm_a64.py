"""a64_matmul (the planned limb GEMM splitting its int64 activations in the kernel): bit-identical
to int_matmul's planned path and to the plain int64 reference, over odd shapes, limb counts from
one to eight (three padded to four), tile configs, epilogues and strided activations; a value
outside its planned range sets FLAG_A_RANGE, and the host refuses what the plan cannot hold."""

from __future__ import annotations

import pytest
import torch

from vcompute.kernels.epilogue import Epilogue
from vcompute.kernels.flags import FLAG_A_RANGE, new_flag
from vcompute.kernels.gemm import GemmConfig, int_matmul, limb_capacity, pack_weight
from vcompute.kernels.gemm_a64 import a64_matmul
from vcompute.kernels.reference import int_matmul as ref_matmul
from vcompute.kernels.runtime import device
from vcompute.kernels.testing import assert_same, rand_int64, ref_epilogue

CONFIGS = [None, GemmConfig(16, 16, 32, 1, 1, 1, tma=False), GemmConfig(64, 32, 64, 4, 2, 4, tma=False)]
SHAPES = [(1, 5, 3), (7, 33, 10), (40, 130, 17), (3, 16, 64)]  # m, k, n
EPILOGUES = [(0, False, None), (13, True, (0, None)), (7, False, (-300, 500))]  # shift, bias after, clip


def _operands(m, k, n, limbs, seed):
    cap_lo, cap_hi = limb_capacity(limbs)
    a_bound = min(-cap_lo, 2**62 // max(k * 128, 1))  # keep K * |a| * |b| far below 2^63
    a = rand_int64((m, k), min(a_bound, cap_hi), seed)
    a[0, 0] = -a_bound  # the ends of the planned range
    if a.numel() > 1:
        a.view(-1)[-1] = min(a_bound, cap_hi)
    b = rand_int64((k, n), 127, seed + 1)
    bias = rand_int64((n,), 2**20, seed + 2)
    return a.to(device()), b.to(device()), bias.to(device()), a_bound


def _epilogue(shift, after, clip):
    return Epilogue.make("test", shift, after, None, clip)


@pytest.mark.parametrize("m,k,n", SHAPES, ids=lambda s: str(s))
@pytest.mark.parametrize("limbs", [1, 2, 3, 8])
@pytest.mark.parametrize("cfg", CONFIGS, ids=["rule", "16x16x32", "64x32x64"])
def test_matches_int_matmul_and_reference(m, k, n, limbs, cfg):
    a, b, bias, a_bound = _operands(m, k, n, limbs, 3 * m + k)
    packed = pack_weight(b)
    for shift, after, clip in EPILOGUES:
        if shift:  # a rescaled sum must stay below 2^52 (FLAG_RESCALE_LIMIT): smaller values, same limbs
            a_bound = min(a_bound, 2**51 // (k * 127))
            a = a.clamp(-a_bound, a_bound)
        f = new_flag()
        got = a64_matmul(a, packed, bias, limbs, a_bound, f, _epilogue(shift, after, clip), cfg)
        assert int(f.item()) == 0, f"flag {int(f.item())} on in-plan values"
        lo, hi = clip if clip else (None, None)
        want = ref_epilogue(ref_matmul(a.cpu(), b.cpu()), bias.cpu()[None, :], 2**shift, after, lo, hi)
        assert_same(got, want, f"{m}x{k}x{n} limbs={limbs} epilogue s{shift} after={after} clip={clip} vs reference")
        planned = int_matmul(a, packed, bias, limbs=limbs, bounds=(a_bound, None), flag=new_flag(),
                             rescale_shift=shift, bias_after_rescale=after, clip=clip)
        assert_same(got, planned, f"{m}x{k}x{n} limbs={limbs} vs int_matmul's planned path")


def test_strided_activations():
    """A transposed (non-contiguous) activation reads the same values."""
    a, b, bias, a_bound = _operands(9, 24, 5, 2, 11)
    at = a.t().contiguous().t()
    assert not at.is_contiguous()
    packed = pack_weight(b)
    f = new_flag()
    got = a64_matmul(at, packed, bias, 2, a_bound, f, _epilogue(13, True, None))
    want = a64_matmul(a, packed, bias, 2, a_bound, new_flag(), _epilogue(13, True, None))
    assert int(f.item()) == 0
    assert_same(got, want, "strided a")


@pytest.mark.parametrize("where", [(0, 0), (5, 17), (8, 23)])
@pytest.mark.parametrize("sign", [1, -1])
def test_a_value_outside_the_plan_sets_the_flag(where, sign):
    a, b, bias, a_bound = _operands(9, 24, 5, 2, 7)
    a[where] = sign * (a_bound + 1)
    f = new_flag()
    a64_matmul(a, pack_weight(b), bias, 2, a_bound, f, _epilogue(13, True, None), GemmConfig(16, 16, 32, 1, 1, 1, tma=False))
    assert int(f.item()) & FLAG_A_RANGE, f"a[{where}] = {int(a[where])} beyond the planned {a_bound} did not raise FLAG_A_RANGE"


def test_host_refuses_what_the_plan_cannot_hold():
    a, b, bias, _ = _operands(2, 4, 3, 1, 5)
    packed = pack_weight(b)
    epi = _epilogue(0, False, None)
    with pytest.raises(ValueError, match="planned limbs for a must be an int in \\[1, 8\\]"):
        a64_matmul(a, packed, bias, 9, 1, new_flag(), epi)
    with pytest.raises(ValueError, match="what 1 limbs hold"):
        a64_matmul(a, packed, bias, 1, 10**6, new_flag(), epi)
    with pytest.raises(ValueError, match="give a flag"):
        a64_matmul(a, packed, bias, 1, 100, None, epi)
    with pytest.raises(ValueError, match="inner dims differ"):
        a64_matmul(a[:, :3], packed, bias, 1, 100, new_flag(), epi)
    with pytest.raises(OverflowError):
        a64_matmul(torch.zeros((2, 4), dtype=torch.int64, device=device()), packed, bias, 8, 2**62, new_flag(), epi)
