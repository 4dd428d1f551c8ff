"""The compiled path's direct conv (``fast_kernels.direct_conv``) against the plain int64
reference, over odd shapes, strides, asymmetric padding, groups, channel counts past one
program's block, each accumulator (float64 FMAs, float64 dots on the tensor cores with K steps of
16 and 32, narrow and wide int64), the unrolled and the looped
reduction, a following pool, the quantize folded into its loads, and several pixel blocks and
warp counts: the bits must be identical whatever the tiling."""

from __future__ import annotations

import pytest
import torch

from vcompute.engine import fast_kernels
from vcompute.engine.fast_kernels import direct_conv, pack_dot_weight
from vcompute.kernels.epilogue import Epilogue
from vcompute.kernels.flags import FLAG_INPUT_RANGE, new_flag
from vcompute.kernels.reference import div_round, int_conv2d, max_pool2d, sum_pool2d
from vcompute.kernels.runtime import device
from vcompute.kernels.testing import assert_same, rand_int64, ref_epilogue

CASES = [  # n, c, h, w, o, kh, kw, stride, (top, left, bottom, right), groups
    (1, 1, 7, 9, 3, 5, 5, (1, 1), (2, 2, 2, 2), 1),
    (2, 3, 6, 11, 5, 3, 2, (2, 1), (0, 1, 2, 0), 1),
    (3, 4, 5, 5, 6, 3, 3, (1, 2), (1, 0, 0, 1), 2),
    (2, 4, 6, 6, 4, 3, 3, (1, 1), (1, 1, 1, 1), 4),  # depthwise
    (1, 2, 4, 3, 70, 1, 3, (1, 1), (0, 1, 0, 1), 1),  # two channel blocks of 64
    (2, 3, 9, 8, 5, 3, 3, (2, 2), (0, 0, 0, 0), 1),  # no padding: no bounds checked per value; a stride leaves a row
]

ACCUMULATORS = {  # name: (weight dtype, narrow, max|x|, max|w|); "dot": float64 on the tensor cores
    "f64": (torch.float64, False, 2**13, 2**9),
    "dot": ("dot", False, 2**13, 2**9),
    "dot32": ("dot32", False, 2**13, 2**9),
    "narrow": (torch.int32, True, 2**13, 2**13),
    "wide": (torch.int64, False, 2**40, 2**8),
}


def _conv(case, acc: str, seed: int):
    n, c, h, w, o, kh, kw, stride, pads, groups = case
    dtype, narrow, x_max, w_max = ACCUMULATORS[acc]
    x = rand_int64((n, c, h, w), x_max, seed)
    wt = rand_int64((o, c // groups, kh, kw), w_max, seed + 1)
    bias = rand_int64((o,), 2**20, seed + 2)
    return x, wt, bias, dtype, narrow


def _reference(x, wt, bias, case, shift, lo, hi):
    *_, stride, pads, groups = case
    t, l, b, r = pads
    y = int_conv2d(x, wt, None, stride, (t, l, b, r), 1, groups)
    return ref_epilogue(y, bias[None, :, None, None], 2**shift, False, lo, hi)


def _run(x, wt, bias, dtype, narrow, case, shift, lo, hi, **kw):
    *_, stride, pads, groups = case
    dev = device()
    flag = new_flag()
    if isinstance(dtype, str):  # the tensor-core variant, K steps by the rule (dot: 16) or of 32 (dot32)
        w = pack_dot_weight(wt.to(dev), groups, 32 if dtype == "dot32" else None)
    else:
        w = wt.to(dev, dtype)
    y = direct_conv(x.to(dev), w, bias.to(dev), stride, pads, groups,
                    Epilogue.make("conv", shift, False, None, (lo, hi)), flag, narrow, **kw)
    return y, int(flag.item())


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:7])) + f"-g{c[-1]}")
@pytest.mark.parametrize("acc", sorted(ACCUMULATORS))
@pytest.mark.parametrize("block_p,num_warps,unroll", [(None, 4, True), (32, 1, False), (64, 2, True)])
def test_direct_conv_matches_reference(case, acc, block_p, num_warps, unroll, monkeypatch):
    if not unroll:  # the reduction as a loop over input channels, not unrolled
        monkeypatch.setattr(fast_kernels, "UNROLL_TAPS", 0)
    x, wt, bias, dtype, narrow = _conv(case, acc, 5)
    ref = _reference(x, wt, bias, case, 7, -(2**20), 2**21)
    y, flag = _run(x, wt, bias, dtype, narrow, case, 7, -(2**20), 2**21, block_p=block_p, num_warps=num_warps)
    assert flag == 0, f"flag {flag} raised on in-plan values"
    assert_same(y, ref, f"direct conv {case} {acc} block_p={block_p} warps={num_warps} unrolled={unroll}")


@pytest.mark.parametrize("acc", ["f64", "dot"])
@pytest.mark.parametrize("is_max", [False, True], ids=["sum", "max"])
@pytest.mark.parametrize("block_p", [None, 4, 32])
def test_direct_conv_then_pool(is_max, block_p, acc):
    """The pool folded into the conv's epilogue: 2x2 windows (a last odd row and column dropped),
    the average's round_div by 4 and a clamp, as the reference's pool, div_round and clip."""
    case = (2, 3, 9, 11, 5, 3, 3, (1, 1), (1, 1, 1, 1), 1)
    x, wt, bias, dtype, narrow = _conv(case, acc, 11)
    conv = _reference(x, wt, bias, case, 7, None, None)
    pool = max_pool2d if is_max else sum_pool2d
    ref = pool(conv, 2, 2)
    if not is_max:
        ref = div_round(ref, 4)
    ref = ref.clamp(-5000, 9000)
    y, flag = _run(x, wt, bias, dtype, narrow, case, 7, None, None, pool=(2, 2), pool_max=is_max,
                   pool_div=1 if is_max else 4, pool_clip=(-5000, 9000), block_p=block_p)
    assert flag == 0
    assert_same(y, ref, f"direct conv ({acc}) + {'max' if is_max else 'sum'}pool block_p={block_p}")


@pytest.mark.parametrize("acc", ["f64", "dot"])
def test_direct_conv_quantizes_its_float_input(acc):
    """x_quant: the float32 input quantized as it is loaded equals the quantized input's conv; a
    value beyond the bound raises FLAG_INPUT_RANGE in the input flag, not the conv's."""
    case = (2, 1, 8, 8, 6, 5, 5, (1, 1), (2, 2, 2, 2), 1)
    g = torch.Generator().manual_seed(3)
    xf = (torch.rand((2, 1, 8, 8), generator=g) * 2 - 1).to(torch.float32)
    xf[0, 0, 0, 0] = 0.5 / 2**8  # ties: round away from zero, as EZKL does
    xf[1, 0, 3, 3] = -1.5 / 2**8
    v = xf.to(torch.float64) * 2**8
    xq = (torch.sign(v) * torch.floor(v.abs() + 0.5)).to(torch.int64)
    _, wt, bias, dtype, narrow = _conv(case, acc, 13)
    ref = _reference(xq, wt, bias, case, 7, None, None)
    in_flag = new_flag()
    y, flag = _run(xf, wt, bias, dtype, narrow, case, 7, None, None, x_quant=(8, 2**8, in_flag))
    assert flag == 0 and int(in_flag.item()) == 0
    assert_same(y, ref, f"direct conv ({acc}) quantizing its input")
    xf[1, 0, 5, 2] = 3.0  # 768 > 256
    in_flag = new_flag()
    _run(xf, wt, bias, dtype, narrow, case, 7, None, None, x_quant=(8, 2**8, in_flag))
    assert int(in_flag.item()) & FLAG_INPUT_RANGE, "an input beyond its bound did not raise FLAG_INPUT_RANGE"
