"""fused_elementwise (op -> div_round -> relu/clip in one launch) equals the unfused kernels and the
plain int64 reference over broadcast shapes, shifts, divisors, rounding ties of both signs and
configs; every int64 wrap and the 2^52 rescale limit set the device flag."""

from __future__ import annotations

import pytest
import torch

from vcompute.kernels._checks import BlockConfig
from vcompute.kernels.activation import clip
from vcompute.kernels.elementwise import fused_elementwise, int_add, int_mul, int_sub
from vcompute.kernels.flags import FLAG_ADD_OVERFLOW, FLAG_MUL_OVERFLOW, FLAG_RESCALE_LIMIT, new_flag
from vcompute.kernels.rescale import div_round
from vcompute.kernels.testing import activation_bounds, assert_same, rand_int64, ref_epilogue

UNFUSED = {"add": int_add, "sub": int_sub, "mul": int_mul}
TORCH = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}
# b shapes against a of shape (3, 4, 5, 7): same, per-channel, bias row, scalar, 0-dim, a middle block, a copy case
B_SHAPES = [(3, 4, 5, 7), (4, 1, 1), (7,), (1,), (), (5, 1), (4, 5, 1), (3, 1, 1, 7)]


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
@pytest.mark.parametrize("b_shape", B_SHAPES, ids=str)
def test_broadcast_chain_matches_unfused_and_reference(op, b_shape):
    mag = 2**20 if op == "mul" else 2**40
    a, b = rand_int64((3, 4, 5, 7), mag, 1), rand_int64(b_shape, mag, 2)
    sa, sb = (0, 2) if op == "mul" else (3, 0)
    for d, act, cl in [(2**13, "relu", None), (7, None, (-1000, 5000)), (1, "relu", None)]:
        ref = ref_epilogue(TORCH[op](a * 2**sa, b * 2**sb), None, d, False, *activation_bounds(act, cl))
        got = fused_elementwise(a, b, op, a_shift=sa, b_shift=sb, divisor=d, activation=act, clip=cl,
                                config=BlockConfig(64, 2))
        assert_same(got, ref, f"{op} b{b_shape} d={d}")
        x = UNFUSED[op](a, b, a_shift=sa, b_shift=sb)
        lo, hi = activation_bounds(act, cl)
        assert_same(clip(div_round(x, d), lo, hi), ref, f"unfused {op} b{b_shape} d={d}")
    swapped = fused_elementwise(b, a, op, b_shift=1, rescale_shift=5, flag=new_flag())
    assert_same(swapped, ref_epilogue(TORCH[op](b, a * 2), None, 32), f"{op} with a broadcast first operand")


@pytest.mark.parametrize("d", [2, 3, 8, 2**13, 2**13 + 1])
def test_ties_both_signs_mult_then_rebase(d):
    """Mult then RebaseScale: products on and next to ties of d, positive and negative."""
    vals = []
    for k in range(-4, 4):
        t2 = (2 * k + 1) * d
        vals += [t2 // 2 - 1, t2 // 2, t2 // 2 + 1, -(t2 // 2), k * d]
    x = torch.tensor(vals, dtype=torch.int64)
    for cfg in (BlockConfig(16, 1), BlockConfig(1024, 4)):
        got = fused_elementwise(x, 1, "mul", divisor=d, config=cfg)
        assert_same(got, ref_epilogue(x, None, d), f"ties of {d} {cfg}")
        assert_same(got, div_round(x, d), "against div_round")
        got = fused_elementwise(x, None, None, divisor=d, activation="relu", config=cfg)
        assert_same(got, ref_epilogue(x, None, d, False, 0), f"unary rescale+relu {d}")


def test_configs_and_sizes_give_same_bits():
    a, b = rand_int64((1025,), 2**30, 3), rand_int64((1025,), 2**30, 4)
    ref = fused_elementwise(a, b, "add", rescale_shift=9, activation="relu")
    for cfg in (BlockConfig(16, 1), BlockConfig(128, 4), BlockConfig(4096, 8)):
        assert_same(fused_elementwise(a, b, "add", rescale_shift=9, activation="relu", config=cfg), ref, f"config {cfg}")
    for n in (1, 3, 17):
        assert_same(fused_elementwise(a[:n], b[:n], "add", rescale_shift=9, activation="relu"), ref[:n], f"size {n}")


def test_flags():
    f = new_flag()

    def code(*args, **kw):
        f.zero_()
        fused_elementwise(*args, flag=f, **kw)
        return int(f.item())

    t = lambda v: torch.tensor([v], dtype=torch.int64)  # noqa: E731
    assert code(t(2**62), t(2**62 - 1), "add") == 0
    assert code(t(2**62), t(2**62), "add") == FLAG_ADD_OVERFLOW
    assert code(t(-(2**62)), t(2**62), "sub") == 0, "-2^63 fits"
    assert code(t(-(2**62)), t(2**62 + 1), "sub") == FLAG_ADD_OVERFLOW
    assert code(t(2**61), None, None, a_shift=1) == 0
    assert code(t(2**61), None, None, a_shift=2) == FLAG_MUL_OVERFLOW
    assert code(t(-(2**61)), None, None, a_shift=1) == 0
    assert code(t(3), t(2**61), "mul", b_shift=1) == FLAG_MUL_OVERFLOW
    assert code(t(2**31), t(2**30), "mul") == 0
    assert code(t(2**32), t(2**31), "mul") == FLAG_MUL_OVERFLOW
    assert code(t(-(2**40)), t(2**23), "mul") == FLAG_MUL_OVERFLOW
    assert code(t(2**26 - 1), t(2**26 + 1), "mul", rescale_shift=3) == 0, "2^52 - 1"
    assert code(t(2**26), t(2**26), "mul", rescale_shift=3) == FLAG_RESCALE_LIMIT
    assert code(t(-(2**26)), t(2**26), "mul", rescale_shift=3) == FLAG_RESCALE_LIMIT
    with pytest.raises(OverflowError, match="wrap|overflow"):  # no flag: checked here
        fused_elementwise(t(2**62), t(2**62), "add")


def test_rejects_bad_arguments():
    a = torch.zeros((2, 3), dtype=torch.int64)
    for kw, match in [
        (dict(b=a, op="pow"), "op must be"), (dict(b=None, op="add"), "second operand"), (dict(b=a, op=None), "second operand"),
        (dict(b=a, a_shift=63), "a_shift"), (dict(b=a, divisor=0), "divisor"), (dict(b=a, divisor=3, rescale_shift=2), "not both"),
        (dict(b=torch.zeros(4, dtype=torch.int64)), "broadcast"), (dict(b=a, flag=torch.zeros(1)), "int32"),
    ]:
        with pytest.raises(ValueError, match=match):
            fused_elementwise(a, **kw)
    assert fused_elementwise(torch.zeros((0, 3), dtype=torch.int64), a[:1], "add").shape == (0, 3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_reference_no_sync():
    a, b = rand_int64((64, 32, 9, 9), 2**20, 11), rand_int64((32, 1, 1), 2**20, 12)
    ref = ref_epilogue(a * b, None, 2**13, False, 0, None)
    ac, bc = a.cuda(), b.cuda()
    f = new_flag("cuda")
    fused_elementwise(ac, bc, "mul", rescale_shift=13, activation="relu", flag=f)  # compile
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = fused_elementwise(ac, bc, "mul", rescale_shift=13, activation="relu", flag=f)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert int(f.item()) == 0
    assert_same(got, ref, "GPU mul -> rebase -> relu")
