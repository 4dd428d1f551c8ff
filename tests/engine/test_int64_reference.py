"""kernels/reference.py holds the kernels' contract in plain int64 torch: the kernel tests'
reference and the engine's CPU backend. It must give the kernels' bits, and refuse (never wrap)
exactly where the kernels refuse."""

from __future__ import annotations

import pytest
import torch

import vcompute.kernels as kernels
from vcompute.kernels import reference as ref
from vcompute.kernels.testing import assert_same, rand_int64


@pytest.mark.parametrize("mag", [100, 2**13, 2**30])
def test_elementwise_and_rescale_match_kernels(mag):
    a, b = rand_int64((3, 1, 5), mag, 1), rand_int64((4, 5), mag, 2)
    for fn in ("int_add", "int_sub", "int_mul"):
        for sa, sb in ((0, 0), (3, 0), (0, 7)):
            if fn == "int_mul" and mag == 2**30 and (sa or sb):
                continue  # would overflow: covered below
            assert_same(getattr(ref, fn)(a, b, sa, sb), getattr(kernels, fn)(a, b, sa, sb),
                        f"{fn} shifts {sa},{sb}")
    assert_same(ref.int_add(a, 5), kernels.int_add(a, 5), "python int operand")
    for d in (1, 2, 3, 7, 2**10, 2**20 + 1):
        assert_same(ref.div_round(a, d), kernels.div_round(a, d), f"div_round by {d}")
    ties = torch.tensor([-5, -3, -1, 1, 3, 5, 0], dtype=torch.int64)
    assert ref.div_round(ties, 2).tolist() == [-3, -2, -1, 1, 2, 3, 0]  # halves away from zero


@pytest.mark.parametrize("d", [1, 2, 3, 7, 2**13, 2**13 + 1, 2**26, 10**15 + 7])
def test_div_round_is_ezkls_rounding_at_ties_and_near_the_limit(d):
    """The reference's shift (power-of-two divisors) and its floor division (the rest) round as
    EZKL's f64 quotient does: halves away from zero, at ties, next to them and up to |x| < 2^52."""
    from tests.kernels.test_rescale import rust_round_div

    vals = [0, 1, -1, 2**52 - 1, -(2**52 - 1), 2**52 - d, -(2**52 - d)]
    for k in (0, 1, 2, 5, 2**20, (2**52 // d) // 2 - 1):
        t2 = (2 * k + 1) * d  # twice a tie
        for v in (t2 // 2 - 1, t2 // 2, t2 // 2 + 1, (t2 + 1) // 2, k * d):
            vals += [v, -v]
    vals = [v for v in vals if abs(v) < 2**52]
    got = ref.div_round(torch.tensor(vals, dtype=torch.int64), d).tolist()
    expect = [rust_round_div(v, d) for v in vals]
    bad = [(v, g, e) for v, g, e in zip(vals, got, expect) if g != e]
    assert not bad, f"div_round by {d}: (x, got, EZKL's) {bad[:5]}"

def test_activations_and_lookup_match_kernels():
    x = rand_int64((2, 3, 7), 1000, 3)
    assert_same(ref.relu(x), kernels.relu(x), "relu")
    assert_same(ref.clip(x, -10, 20), kernels.clip(x, -10, 20), "clip")
    assert_same(ref.max_scalar(x, 5), kernels.max_scalar(x, 5), "max_scalar")
    assert_same(ref.min_scalar(x, -5), kernels.min_scalar(x, -5), "min_scalar")
    table = rand_int64((2001,), 2**40, 4)
    assert_same(ref.table_lookup(x, table, -1000), kernels.table_lookup(x, table, -1000), "lookup")
    for impl in (ref, kernels):
        with pytest.raises(ValueError, match="table covers"):
            impl.table_lookup(x, table[:10], -1000)


@pytest.mark.parametrize("kernel,stride,padding", [((2, 2), None, 0), ((3, 3), (2, 1), (1, 1)),
                                                   ((3, 2), (1, 2), (2, 0, 1, 1))])
def test_pools_match_kernels(kernel, stride, padding):
    x = rand_int64((2, 3, 7, 6), 2**20, 5) - 2**21  # mostly negative: padding must never win a max
    assert_same(ref.max_pool2d(x, kernel, stride, padding),
                kernels.max_pool2d(x, kernel, stride, padding), "max_pool2d")
    assert_same(ref.sum_pool2d(x, kernel, stride, padding),
                kernels.sum_pool2d(x, kernel, stride, padding), "sum_pool2d")


def test_gemm_and_conv_match_kernels():
    a, b, bias = rand_int64((9, 33), 2**20, 6), rand_int64((33, 5), 2**20, 7), rand_int64((5,), 2**40, 8)
    assert_same(ref.int_matmul(a, b, bias), kernels.int_matmul(a, b, bias), "int_matmul")
    x, w = rand_int64((2, 4, 7, 8), 2**13, 9), rand_int64((6, 2, 3, 3), 2**13, 10)
    cb = rand_int64((6,), 2**26, 11)
    args = ((2, 1), (1, 0, 2, 1), (2, 1), 2)
    assert_same(ref.int_conv2d(x, w, cb, *args), kernels.int_conv2d(x, w, cb, *args), "conv2d")
    x1, w1 = rand_int64((2, 4, 13), 2**13, 12), rand_int64((6, 2, 3), 2**13, 13)
    assert_same(ref.int_conv1d(x1, w1, cb, 2, (1, 2), 2, 2),
                kernels.int_conv1d(x1, w1, cb, stride=2, padding=(1, 2), dilation=2, groups=2),
                "conv1d")


@pytest.mark.parametrize("mag", [2**13, 2**20, 2**26])
def test_f64_products_give_the_int64_bits(mag):
    """The CPU backend's float64 GEMM and conv (``f64=True``) equal the int64 products at odd
    shapes, groups, strides, dilations and asymmetric padding, on both sides of the 2^53 rule
    (at 2^26 the bound is crossed and the int64 product runs)."""
    a, b, bias = rand_int64((9, 33), mag, 12), rand_int64((33, 5), mag, 13), rand_int64((5,), 2**40, 14)
    assert_same(ref.int_matmul(a, b, bias, f64=True), ref.int_matmul(a, b, bias), f"int_matmul f64, |v| < {mag}")
    x, w = rand_int64((3, 4, 9, 7), mag, 15), rand_int64((6, 2, 3, 2), mag, 16)
    cb = rand_int64((6,), 2**26, 17)
    for args in (((2, 1), (1, 0, 2, 1), (2, 1), 2), ((1, 1), 0, (1, 1), 1)):
        ws = w if args[3] == 2 else rand_int64((6, 4, 3, 2), mag, 18)
        assert_same(ref.int_conv2d(x, ws, cb, *args, f64=True), ref.int_conv2d(x, ws, cb, *args),
                    f"int_conv2d f64 {args}, |v| < {mag}")


def test_f64_products_stop_at_2_pow_53():
    """A product float64 cannot hold (2^54 - 1 needs 54 bits) is computed in int64; one just
    under the bound in float64, exactly; as the backend the engine runs on the CPU does."""
    from vcompute.engine.backends import TorchBackend

    be = TorchBackend()
    for x, y in ((2**27 + 1, 2**27 - 1), (2**26 + 1, 2**26 - 1), (-(2**27) - 1, 2**27 - 1)):
        a, b = torch.tensor([[x]], dtype=torch.int64), torch.tensor([[y]], dtype=torch.int64)
        assert be.int_matmul(a, b).item() == x * y, f"{x} * {y}"
        img, ker = a.reshape(1, 1, 1, 1), b.reshape(1, 1, 1, 1)
        assert be.int_conv2d(img, ker, None, (1, 1), (0, 0, 0, 0)).item() == x * y, f"conv {x} * {y}"
    wide = torch.full((1, 4), 2**25, dtype=torch.int64)  # partial sums 2^51 .. 2^53: the last one crosses
    ones = torch.full((4, 1), 2**26 + 1, dtype=torch.int64)
    assert be.int_matmul(wide, ones).item() == 4 * 2**25 * (2**26 + 1)


def test_overflow_is_refused_not_wrapped():
    """Where int64 could wrap, the reference raises OverflowError as the kernels do."""
    big = torch.full((2, 4), 2**31, dtype=torch.int64)
    with pytest.raises(OverflowError, match="int_matmul"):
        ref.int_matmul(big, big.t().contiguous())  # 4 * 2^62 = 2^64
    ok = torch.full((2, 1), 2**31, dtype=torch.int64)
    assert ref.int_matmul(ok, ok.t().contiguous()).tolist() == [[2**62] * 2] * 2
    with pytest.raises(OverflowError, match="int_mul"):
        ref.int_mul(big, 2 * big)  # 2^63
    with pytest.raises(OverflowError, match="int_add"):
        ref.int_add(big, big, 32, 0)
    with pytest.raises(OverflowError, match="int_conv2d"):
        ref.int_conv2d(torch.full((1, 2, 3, 3), 2**31, dtype=torch.int64),
                       torch.full((1, 2, 2, 2), 2**31, dtype=torch.int64))
    with pytest.raises(OverflowError, match="sum_pool2d"):
        ref.sum_pool2d(torch.full((1, 1, 2, 2), 2**62, dtype=torch.int64), 2)
    with pytest.raises(OverflowError, match="2\\^52"):
        ref.div_round(torch.tensor([2**52]), 3)
    for impl in (ref, kernels):  # the same bound on both sides of the limit
        impl.int_matmul(torch.tensor([[2**62]]), torch.tensor([[1]]))
        with pytest.raises(OverflowError):
            impl.int_matmul(torch.tensor([[2**62, 2**62]]), torch.tensor([[1], [1]]))


def test_rejects_what_the_kernels_reject():
    x = torch.ones((1, 1, 4, 4), dtype=torch.int64)
    for impl in (ref, kernels):
        with pytest.raises(TypeError):
            impl.int_matmul(torch.ones((2, 2)), torch.ones((2, 2)))
        with pytest.raises(ValueError, match="inner dims"):
            impl.int_matmul(torch.ones((2, 3), dtype=torch.int64), torch.ones((2, 3), dtype=torch.int64))
        with pytest.raises(ValueError, match="padding"):
            impl.max_pool2d(x, 2, 2, 2)
        with pytest.raises(ValueError, match="divisor"):
            impl.div_round(x, 0)
        with pytest.raises(ValueError, match="shift"):
            impl.int_add(x, x, 63, 0)
