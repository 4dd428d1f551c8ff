"""div_round reproduces EZKL's ``((x as f64) / d).round()`` (ties away from zero) exactly, on
ties of both signs, near-ties, power-of-two and odd divisors, up to the |x| < 2^52 guard."""

from __future__ import annotations

import math

import pytest
import torch

from vcompute.kernels._checks import BlockConfig
from vcompute.kernels.rescale import div_round
from vcompute.kernels.testing import assert_same


def rust_round_div(x: int, d: int) -> int:
    """What EZKL computes: the f64 quotient, then Rust's round (halves away from zero)."""
    q = float(x) / float(d)
    f = math.floor(q)
    frac = q - f  # exact for |q| < 2^52
    if frac > 0.5 or (frac == 0.5 and q > 0):
        return f + 1
    return f


def exact_round_div(x: int, d: int) -> int:
    q, r = divmod(abs(x), d)
    q += 2 * r >= d
    return q if x >= 0 else -q


def _check(x: torch.Tensor, d: int, cfg: BlockConfig | None = None) -> None:
    got = div_round(x, d, cfg)
    vals = x.flatten().tolist()
    expect = torch.tensor([rust_round_div(v, d) for v in vals], dtype=torch.int64).view(x.shape)
    assert_same(got, expect, f"div_round by {d}")
    assert expect.flatten().tolist() == [exact_round_div(v, d) for v in vals], "f64 and exact rule disagree"


@pytest.mark.parametrize("d", [2, 3, 7, 8, 100, 2**13, 2**13 + 1, 2**26, 10**15 + 7])
def test_ties_and_near_ties(d):
    ks = list(range(-5, 6)) + [2**20, -(2**20) - 3]
    vals = []
    for k in ks:
        t2 = (2 * k + 1) * d  # twice a tie
        if t2 % 2 == 0:  # the tie itself is an integer
            vals += [t2 // 2, -(t2 // 2)]
        vals += [t2 // 2 - 1, t2 // 2 + 1, -(t2 // 2) - 1, -(t2 // 2) + 1, k * d, -k * d]
    x = torch.tensor([v for v in vals if abs(v) < 2**52], dtype=torch.int64)
    _check(x, d)


@pytest.mark.parametrize("n", [1, 3, 17, 1025])
def test_random_odd_sizes(n):
    g = torch.Generator().manual_seed(n)
    x = torch.randint(-(2**40), 2**40, (n,), generator=g, dtype=torch.int64)
    for d in (3, 2**13, 12345):
        _check(x, d, BlockConfig(16, 1) if n < 100 else None)


def test_shapes_and_configs_give_same_bits():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-(2**30), 2**30, (3, 5, 7), generator=g, dtype=torch.int64)
    ref = div_round(x, 2**13)
    assert ref.shape == x.shape
    for cfg in (BlockConfig(16, 1), BlockConfig(64, 2), BlockConfig(2048, 8)):
        assert_same(div_round(x, 2**13, cfg), ref, f"config {cfg}")
    assert_same(div_round(x.transpose(0, 2), 2**13), ref.transpose(0, 2).contiguous(), "non-contiguous input")


def test_limits():
    big = 2**52 - 1
    x = torch.tensor([big, -big, big - 1], dtype=torch.int64)
    for d in (2, 3, 2**13, 2**52 - 1):
        _check(x, d)
    with pytest.raises(OverflowError, match="2\\^52"):
        div_round(torch.tensor([2**52], dtype=torch.int64), 3)
    with pytest.raises(OverflowError):
        div_round(torch.tensor([-(2**52)], dtype=torch.int64), 3)
    assert_same(div_round(x, 1), x)
    for bad in (0, -3, 2**53, 2.0, True):
        with pytest.raises(ValueError, match="divisor"):
            div_round(x, bad)
    with pytest.raises(TypeError, match="int64"):
        div_round(x.to(torch.int32), 2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_exact_rule():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-(2**51), 2**51, (100_003,), generator=g, dtype=torch.int64)
    x[:4] = torch.tensor([3, -3, 2**51 - 1, -(2**51) + 1])  # ties for d = 2 ... and the extremes
    for d in (2, 3, 2**13, 10**9 + 7):
        got = div_round(x.cuda(), d)
        assert got.device.type == "cuda"
        q = x.abs() // d
        q += (2 * (x.abs() - q * d) >= d).long()
        assert_same(got, torch.where(x < 0, -q, q), f"GPU div_round by {d}")
    assert div_round(x[:5], 3).device.type == "cpu", "a CPU input comes back on the CPU"
