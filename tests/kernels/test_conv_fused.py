"""int_conv2d's fused epilogue and planned path: bit-identical to the unfused kernels (int_conv2d,
div_round, clip) and the plain int64 reference over odd shapes, strides, padding, dilation, groups,
tile configs and batch sizes, rounding ties of both signs; out-of-plan values set the flag."""

from __future__ import annotations

import pytest
import torch

from vcompute.kernels.activation import clip
from vcompute.kernels.conv import ConvConfig, int_conv1d, int_conv2d, pack_conv_weight
from vcompute.kernels.flags import FLAG_A_RANGE, FLAG_B_RANGE, FLAG_RESCALE_LIMIT, new_flag
from vcompute.kernels.gemm import limb_capacity
from vcompute.kernels.rescale import div_round
from vcompute.kernels.reference import int_conv2d as ref_conv2d
from vcompute.kernels.testing import activation_bounds, assert_same, rand_int64, ref_epilogue

CONFIGS = [ConvConfig(16, 16, 32, 1, 1, 1), ConvConfig(32, 64, 32, 4, 2, 4), ConvConfig(64, 32, 64, 4, 1, 8), ConvConfig()]

CASES = [  # n, c, h, w, o, kh, kw, stride, padding, dilation, groups
    (1, 3, 7, 9, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (2, 4, 11, 5, 6, 3, 2, (2, 1), (0, 1, 2, 0), (1, 2), 2),
    (3, 6, 9, 9, 3, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 3),
    (2, 4, 6, 6, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4),  # depthwise
]

# (rescale_shift, activation, clip)
EPILOGUES = [(13, None, None), (13, "relu", None), (9, None, (-1000, 3000)), (1, "relu", (None, 7))]


def _reference(x, w, bias, args, s, act, cl):
    return ref_epilogue(ref_conv2d(x, w, None, *args), None if bias is None else bias[None, :, None, None], 2**s, False, *activation_bounds(act, cl))


def _unfused(x, w, bias, args, s, act, cl, cfg):
    out = div_round(int_conv2d(x, w, bias, *args, config=cfg), 2**s)
    lo, hi = activation_bounds(act, cl)
    return clip(out, lo, hi)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:7])) + f"-g{c[-1]}")
@pytest.mark.parametrize("epi", EPILOGUES, ids=str)
def test_matches_unfused_and_reference(case, epi):
    n, c, h, w, o, kh, kw, stride, pad, dil, groups = case
    x = rand_int64((n, c, h, w), 2**13, 1)
    wt = rand_int64((o, c // groups, kh, kw), 2**13, 2)
    bias = rand_int64((o,), 2**24, 3)
    args = (stride, pad, dil, groups)
    s, act, cl = epi
    cfg = CONFIGS[hash(case) % len(CONFIGS)]
    ref = _reference(x, wt, bias, args, *epi)
    kw = dict(rescale_shift=s, activation=act, clip=cl)
    assert_same(int_conv2d(x, wt, bias, *args, cfg, **kw), ref, f"adaptive {case} {epi}")
    assert_same(_unfused(x, wt, bias, args, *epi, cfg), ref, f"unfused {case} {epi}")
    f = new_flag()
    out = int_conv2d(x, pack_conv_weight(wt), bias, *args, cfg, limbs=(2, None), flag=f, **kw)
    assert int(f.item()) == 0
    assert_same(out, ref, f"planned packed {case} {epi}")


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.block_m}x{c.block_n}x{c.block_k}")
@pytest.mark.parametrize("s", [1, 13])
def test_ties_every_config_and_batch(cfg, s):
    """A 1x1 conv with weights (1, 1): out = x0 + x1, chosen on and around ties of 2^s, both signs."""
    half = 1 << (s - 1)
    vals = [k * (1 << s) + half + e for k in (-3, -2, -1, 0, 1, 2) for e in (-1, 0, 1)]
    x = torch.zeros((3, 2, 1, len(vals)), dtype=torch.int64)
    x[:, 0] = torch.tensor(vals)
    x[:, 1] = torch.tensor([-(7 << s), 0, (2**16) << s]).view(3, 1, 1)  # multiples of 2^s keep the ties
    wt = torch.ones((1, 2, 1, 1), dtype=torch.int64)
    bias = torch.tensor([-(3 << s)], dtype=torch.int64)
    args = ((1, 1), (0, 0, 0, 0), (1, 1), 1)
    for act in (None, "relu"):
        ref = _reference(x, wt, bias, args, s, act, None)
        assert_same(int_conv2d(x, wt, bias, config=cfg, rescale_shift=s, activation=act), ref, f"ties s={s} {act}")
        got = int_conv2d(x, wt, bias, config=cfg, rescale_shift=s, activation=act, limbs=(4, 1), flag=new_flag())
        assert_same(got, ref, f"planned ties s={s} {act}")
        if act is None:
            for i in range(3):
                assert_same(int_conv2d(x[i : i + 1], wt, bias, config=cfg, rescale_shift=s, limbs=(4, 1),
                                       flag=new_flag()), ref[i : i + 1], f"image {i} alone")


def test_out_of_plan_values_set_the_flag():
    x = rand_int64((2, 4, 5, 5), 30000, 4)
    wt = rand_int64((3, 4, 3, 3), 100, 5)
    f = new_flag()
    int_conv2d(x, wt, padding=1, limbs=(2, 1), flag=f)
    assert int(f.item()) == 0
    x[1, 2, 3, 4] = limb_capacity(2)[1] + 1
    int_conv2d(x, wt, padding=1, limbs=(2, 1), flag=f)
    assert int(f.item()) == FLAG_A_RANGE
    f.zero_()
    wt[0, 0, 0, 0] = 128  # one limb holds [-128, 127]
    int_conv2d(x.clamp(-30000, 30000), wt, padding=1, limbs=(2, 1), flag=f)
    assert int(f.item()) == FLAG_B_RANGE
    f.zero_()
    big = torch.full((1, 1, 2, 2), 2**27, dtype=torch.int64)
    int_conv2d(big, torch.full((1, 1, 2, 2), 2**24, dtype=torch.int64), rescale_shift=4, limbs=(4, 4),
               bounds=(2**27, 2**24), flag=f)
    assert int(f.item()) == FLAG_RESCALE_LIMIT, "4 * 2^51 = 2^53 before the rescale"
    with pytest.raises(OverflowError, match="planned limb count"):
        int_conv2d(x, wt, padding=1, limbs=(1, 1))


def test_conv1d_fused():
    x = rand_int64((2, 4, 13), 2**13, 9)
    wt = rand_int64((6, 2, 3), 2**13, 10)
    bias = rand_int64((6,), 2**20, 11)
    got = int_conv1d(x, wt, bias, stride=2, padding=(1, 2), dilation=2, groups=2, rescale_shift=11, activation="relu",
                     limbs=(2, 2), flag=new_flag())
    ref = ref_conv2d(x.unsqueeze(2), wt.unsqueeze(2), None, (1, 2), (0, 1, 0, 2), (1, 2), 2).squeeze(2)
    assert_same(got, ref_epilogue(ref, bias[None, :, None], 2**11, False, 0, None), "conv1d fused")


def test_rejects_bad_arguments():
    x = torch.zeros((1, 4, 5, 5), dtype=torch.int64)
    wt = torch.zeros((2, 4, 3, 3), dtype=torch.int64)
    with pytest.raises(ValueError, match="rescale_shift"):
        int_conv2d(x, wt, rescale_shift=60)
    with pytest.raises(ValueError, match="planned-path"):
        int_conv2d(x, wt, bounds=(1, 1))
    with pytest.raises(ValueError, match="packed with 1"):
        int_conv2d(x, pack_conv_weight(wt), limbs=(1, 2))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_fused_and_planned_no_sync():
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randint(-(2**13), 2**13, (4, 32, 17, 19), device="cuda", dtype=torch.int64, generator=g)
    wt = torch.randint(-(2**13), 2**13, (48, 16, 3, 3), device="cuda", dtype=torch.int64, generator=g)
    bias = torch.randint(-(2**26), 2**26, (48,), device="cuda", dtype=torch.int64, generator=g)
    args = ((2, 1), (1, 1, 0, 2), (1, 1), 2)
    ref = _reference(x.cpu(), wt.cpu(), bias.cpu(), args, 13, "relu", None)
    pw = pack_conv_weight(wt)
    f = new_flag("cuda")
    kw = dict(rescale_shift=13, activation="relu")
    for cfg in [None] + CONFIGS:
        assert_same(int_conv2d(x, wt, bias, *args, cfg, **kw), ref, f"GPU adaptive {cfg}")
        assert_same(int_conv2d(x, pw, bias, *args, cfg, limbs=(2, None), flag=f, **kw), ref, f"GPU planned {cfg}")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        outs = [int_conv2d(x, pw, bias, *args, cfg, limbs=(2, None), flag=f, **kw) for cfg in [None] + CONFIGS]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert int(f.item()) == 0
    for out in outs:
        assert_same(out, ref, "GPU planned, no sync")
