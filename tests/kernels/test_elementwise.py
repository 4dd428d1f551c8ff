"""int_add / int_sub / int_mul: exact int64 with numpy broadcasting, scale-aligning shifts, and
overflow guards that allow their limit and refuse one step beyond."""

from __future__ import annotations

import pytest
import torch

from vcompute.kernels._checks import BlockConfig
from vcompute.kernels.elementwise import int_add, int_mul, int_sub
from vcompute.kernels.testing import assert_same, rand_int64

OPS = {"add": (int_add, lambda a, b: a + b), "sub": (int_sub, lambda a, b: a - b), "mul": (int_mul, lambda a, b: a * b)}
SHAPES = [((1,), (1,)), ((3,), (1,)), ((17, 33), (33,)), ((2, 1, 65), (3, 1)), ((5, 1), (1, 7)), ((), (4, 3))]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_broadcast_matches_torch(op, shapes):
    fn, ref = OPS[op]
    a, b = rand_int64(shapes[0], 2**20, 1), rand_int64(shapes[1], 2**20, 2)
    assert_same(fn(a, b, config=BlockConfig(16, 1)), ref(a, b), f"{op} {shapes}")
    assert_same(fn(b, a), ref(b, a), f"{op} {shapes} swapped")


@pytest.mark.parametrize("op", OPS)
def test_shifts_align_scales(op):
    fn, ref = OPS[op]
    a, b = rand_int64((7, 9), 2**13, 3), rand_int64((9,), 2**13, 4)
    assert_same(fn(a, b, a_shift=5), ref(a * 32, b), f"{op} a_shift")
    assert_same(fn(a, b, b_shift=13), ref(a, b * 8192), f"{op} b_shift")
    assert_same(fn(a, b, 3, 2), ref(a * 8, b * 4), f"{op} both")


def test_python_int_operand_and_configs():
    a = rand_int64((11, 13), 2**30, 5)
    assert_same(int_mul(a, 3), a * 3)
    assert_same(int_sub(7, a), 7 - a)
    ref = int_add(a, a.t().contiguous()[:1].t(), b_shift=1)
    for cfg in (BlockConfig(16, 1), BlockConfig(64, 2), BlockConfig(8192, 8)):
        assert_same(int_add(a, a.t().contiguous()[:1].t(), b_shift=1, config=cfg), ref, f"config {cfg}")


def test_overflow_limits():
    big = torch.tensor([2**62], dtype=torch.int64)
    rest = torch.tensor([2**62 - 1], dtype=torch.int64)
    assert int(int_add(big, rest).item()) == 2**63 - 1
    assert int(int_sub(-big, rest).item()) == -(2**63) + 1
    with pytest.raises(OverflowError, match="int64"):
        int_add(big, big)
    with pytest.raises(OverflowError):
        int_add(rest, rest, a_shift=1)  # (2^62-1)*2 + 2^62-1 >= 2^63
    a = torch.tensor([-(2**31)], dtype=torch.int64)
    b = torch.tensor([2**32 - 1], dtype=torch.int64)
    assert int(int_mul(a, b).item()) == -(2**31) * (2**32 - 1)
    with pytest.raises(OverflowError, match="int_mul"):
        int_mul(a, b, b_shift=1)
    with pytest.raises(OverflowError):
        int_mul(torch.tensor([2**32]), torch.tensor([2**31]))


def test_rejects_bad_arguments():
    a = torch.zeros((2, 3), dtype=torch.int64)
    with pytest.raises(ValueError, match="broadcast"):
        int_add(a, torch.zeros((4,), dtype=torch.int64))
    with pytest.raises(TypeError, match="int64"):
        int_add(a, a.float())
    with pytest.raises(ValueError, match="a_shift"):
        int_mul(a, a, a_shift=63)
    with pytest.raises(ValueError, match="b_shift"):
        int_mul(a, a, b_shift=-1)
    assert int_add(torch.zeros((0, 3), dtype=torch.int64), a[:1]).shape == (0, 3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_torch():
    a, b = rand_int64((257, 129), 2**20, 11), rand_int64((129,), 2**20, 12)
    for op, (fn, ref) in OPS.items():
        got = fn(a.cuda(), b.cuda(), a_shift=3)
        assert got.device.type == "cuda"
        assert_same(got, ref(a * 8, b), f"GPU {op}")
