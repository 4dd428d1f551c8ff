"""Piecewise-linear activations on int64 fixed-point integers: ``relu``, ``clip``, ``max_scalar``, ``min_scalar``.

They commute with the fixed-point scale (a bound is given at the tensor's scale), so they are
exact integer max/min: one kernel, ``out = min(max(x, lo), hi)`` with either bound optional.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import DEFAULT_BLOCK_CONFIG, INT64_MAX, INT64_MIN, BlockConfig, check_int64, to_compute, on_input_device


@triton.jit
def _clip_kernel(x_ptr, out_ptr, n, lo, hi, HAS_LO: tl.constexpr, HAS_HI: tl.constexpr, BLOCK: tl.constexpr):
    """out = min(max(x, lo), hi), each bound only if present."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0)
    if HAS_LO:
        x = tl.where(x < lo, lo, x)
    if HAS_HI:
        x = tl.where(x > hi, hi, x)
    tl.store(out_ptr + offs, x.to(tl.int64), mask=mask)


def _check_bound(name: str, v: int | None) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int) or not INT64_MIN <= v <= INT64_MAX:
        raise ValueError(f"{name} must be an int64 value or None, got {v!r}")


@on_input_device
def clip(x: torch.Tensor, lo: int | None = None, hi: int | None = None, config: BlockConfig | None = None) -> torch.Tensor:
    """``min(max(x, lo), hi)`` elementwise (int64, exact); a None bound is not applied.

    ValueError if both are given and ``lo > hi``.
    """
    check_int64("x", x)
    _check_bound("lo", lo)
    _check_bound("hi", hi)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"clip: lo={lo} > hi={hi}")
    out_device = x.device
    x = to_compute(x)
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out.to(out_device)
    cfg = config or DEFAULT_BLOCK_CONFIG
    cfg.check()
    _clip_kernel[(triton.cdiv(x.numel(), cfg.block),)](
        x, out, x.numel(), 0 if lo is None else lo, 0 if hi is None else hi,
        HAS_LO=lo is not None, HAS_HI=hi is not None, BLOCK=cfg.block, num_warps=cfg.num_warps)
    return out.to(out_device)


def relu(x: torch.Tensor, config: BlockConfig | None = None) -> torch.Tensor:
    """``max(x, 0)`` elementwise (int64, exact)."""
    return clip(x, 0, None, config)


def max_scalar(x: torch.Tensor, v: int, config: BlockConfig | None = None) -> torch.Tensor:
    """``max(x, v)`` elementwise for an integer ``v`` at x's scale."""
    return clip(x, v, None, config)


def min_scalar(x: torch.Tensor, v: int, config: BlockConfig | None = None) -> torch.Tensor:
    """``min(x, v)`` elementwise for an integer ``v`` at x's scale."""
    return clip(x, None, v, config)


__all__ = ["clip", "relu", "max_scalar", "min_scalar"]
