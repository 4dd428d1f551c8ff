"""Exact int64 ``int_add``, ``int_sub``, ``int_mul`` with numpy broadcasting and scale-aligning shifts.

Fixed-point operands at different scales are aligned by a left shift (multiply by 2^shift) before
the op; the kernel applies ``a << a_shift`` and ``b << b_shift`` itself. Broadcasting is done on
the host (``torch.broadcast_tensors`` then a contiguous copy), so the kernel is a flat 1-D loop.
The worst case ``max|a|*2^sa (+|*) max|b|*2^sb`` must fit in int64, else OverflowError.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import DEFAULT_BLOCK_CONFIG, BlockConfig, check_fits_int64, check_int64, max_abs, same_device, to_compute, on_input_device

_ADD, _SUB, _MUL = 0, 1, 2
_NAMES = {_ADD: "int_add", _SUB: "int_sub", _MUL: "int_mul"}


@triton.jit
def _binary_kernel(a_ptr, b_ptr, out_ptr, n, OP: tl.constexpr, A_SHIFT: tl.constexpr, B_SHIFT: tl.constexpr,
                   BLOCK: tl.constexpr):
    """out = (a << A_SHIFT) OP (b << B_SHIFT) for OP in add (0), sub (1), mul (2)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(a_ptr + offs, mask=mask, other=0)
    b = tl.load(b_ptr + offs, mask=mask, other=0)
    if A_SHIFT > 0:
        a = a << A_SHIFT
    if B_SHIFT > 0:
        b = b << B_SHIFT
    if OP == 0:
        out = a + b
    elif OP == 1:
        out = a - b
    else:
        out = a * b
    tl.store(out_ptr + offs, out, mask=mask)


def _as_tensor(name: str, v: torch.Tensor | int, like: torch.Tensor | int) -> torch.Tensor:
    """A Python int becomes a 0-dim int64 tensor on the other operand's device."""
    if isinstance(v, torch.Tensor):
        check_int64(name, v)
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int64 tensor or an int, got {type(v).__name__}")
    dev = like.device if isinstance(like, torch.Tensor) else None
    return torch.tensor(v, dtype=torch.int64, device=dev)


@on_input_device
def _binary(op: int, a: torch.Tensor | int, b: torch.Tensor | int, a_shift: int, b_shift: int,
            config: BlockConfig | None) -> torch.Tensor:
    name = _NAMES[op]
    a, b = _as_tensor("a", a, b), _as_tensor("b", b, a)
    for sname, s in (("a_shift", a_shift), ("b_shift", b_shift)):
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= 62:
            raise ValueError(f"{name}: {sname} must be an int in [0, 62], got {s!r}")
    out_device = same_device(a=a, b=b)
    try:
        a, b = torch.broadcast_tensors(a, b)
    except RuntimeError as e:
        raise ValueError(f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from e
    a, b = to_compute(a), to_compute(b)
    ma, mb = max_abs(a) << a_shift, max_abs(b) << b_shift
    bound = ma * mb if op == _MUL else ma + mb
    check_fits_int64(f"{name} max|a|*2^{a_shift}={ma}, max|b|*2^{b_shift}={mb}", bound)
    out = torch.empty_like(a)
    if out.numel() == 0:
        return out.to(out_device)
    cfg = config or DEFAULT_BLOCK_CONFIG
    cfg.check()
    _binary_kernel[(triton.cdiv(out.numel(), cfg.block),)](a, b, out, out.numel(), OP=op, A_SHIFT=a_shift,
                                                           B_SHIFT=b_shift, BLOCK=cfg.block, num_warps=cfg.num_warps)
    return out.to(out_device)


def int_add(a: torch.Tensor | int, b: torch.Tensor | int, a_shift: int = 0, b_shift: int = 0,
            config: BlockConfig | None = None) -> torch.Tensor:
    """``(a << a_shift) + (b << b_shift)`` with broadcasting, int64, exact (OverflowError if it could wrap)."""
    return _binary(_ADD, a, b, a_shift, b_shift, config)


def int_sub(a: torch.Tensor | int, b: torch.Tensor | int, a_shift: int = 0, b_shift: int = 0,
            config: BlockConfig | None = None) -> torch.Tensor:
    """``(a << a_shift) - (b << b_shift)`` with broadcasting, int64, exact (OverflowError if it could wrap)."""
    return _binary(_SUB, a, b, a_shift, b_shift, config)


def int_mul(a: torch.Tensor | int, b: torch.Tensor | int, a_shift: int = 0, b_shift: int = 0,
            config: BlockConfig | None = None) -> torch.Tensor:
    """``(a << a_shift) * (b << b_shift)`` with broadcasting, int64, exact (OverflowError if it could wrap).

    The product of two scale-s values is at scale 2s: rescale it with :func:`kernels.rescale.div_round`.
    """
    return _binary(_MUL, a, b, a_shift, b_shift, config)


__all__ = ["int_add", "int_sub", "int_mul"]
