"""Exact int64 ``int_add``, ``int_sub``, ``int_mul`` with numpy broadcasting and scale-aligning
shifts, and ``fused_elementwise``: one launch for a chain ``op -> div_round -> relu/clip``.

Fixed-point operands at different scales are aligned by a left shift (multiply by 2^shift) before
the op; the kernel applies ``a << a_shift`` and ``b << b_shift`` itself. Broadcasting is done on
the host (``torch.broadcast_tensors`` then a contiguous copy), so the kernel is a flat 1-D loop.
The worst case ``max|a|*2^sa (+|*) max|b|*2^sb`` must fit in int64, else OverflowError.

``fused_elementwise`` covers EZKL's Add/Sub (with homogenizing shifts) or Mult followed by a
RebaseScale and a ReLU/clip: what three or four launches and int64 round trips did, in one, with
the epilogue's formulas (:mod:`kernels.epilogue`). It never syncs for its overflow guard: the
device checks each element and ORs a code into an int32 flag (``flag=``; without one, an
internal flag is read at the end). A ``b`` that is constant along the innermost axes and spans a
contiguous block of axes (a bias row, a per-channel ``[C, 1, 1]``, a scalar) is indexed in the
kernel, not copied.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import (
    DEFAULT_BLOCK_CONFIG, BlockConfig, check_fits_int64, check_int64, int64_operand, max_abs, on_input_device, same_device,
    to_compute,
)
from vcompute.kernels.epilogue import Epilogue, checked_add, checked_rescale, clamp, report
from vcompute.kernels.flags import FLAG_MUL_OVERFLOW, check_flag, new_flag
from vcompute.kernels.pdl import launch_options, wait_previous

_MUL_CODE: tl.constexpr = tl.constexpr(FLAG_MUL_OVERFLOW)
_ADD_CODE: tl.constexpr = tl.constexpr(4)  # kernels.flags.FLAG_ADD_OVERFLOW

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


@on_input_device
def _binary(op: int, a: torch.Tensor | int, b: torch.Tensor | int, a_shift: int, b_shift: int,
            config: BlockConfig | None) -> torch.Tensor:
    name = _NAMES[op]
    a, b = int64_operand("a", a, b), int64_operand("b", b, a)
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


_OPS = {"add": _ADD, "sub": _SUB, "mul": _MUL, None: 3}


@triton.jit
def _checked_shift(x, err, SHIFT: tl.constexpr, CHECK: tl.constexpr):
    """x << SHIFT; with CHECK, flags values whose shift leaves int64 (x >> (63 - SHIFT) not 0 or -1)."""
    if SHIFT > 0:
        if CHECK:
            top = x >> (63 - SHIFT)
            err |= tl.where((top != 0) & (top != -1), _MUL_CODE, 0)
        x = x << SHIFT
    return x, err


@triton.jit
def _fused_kernel(a_ptr, b_ptr, out_ptr, flag_ptr, n, b_inner, b_mid, d, lo, hi,
                  OP: tl.constexpr, A_SHIFT: tl.constexpr, B_SHIFT: tl.constexpr, B_BCAST: tl.constexpr,
                  DIV: tl.constexpr, HAS_LO: tl.constexpr, HAS_HI: tl.constexpr, CHECK: tl.constexpr,
                  BLOCK: tl.constexpr, GDC: tl.constexpr = 0):
    """out = clamp(round_div((a << A_SHIFT) OP (b << B_SHIFT), d), lo, hi); OP add 0, sub 1, mul 2, none 3.

    With B_BCAST, b[i] is b_ptr[(i // b_inner) % b_mid] (b repeated around a contiguous block of axes).
    Checks (CHECK): shifts and products that could leave int64 (a product is refused from about
    2^62 on, by a float64 estimate that cannot miss a wrap), wrapping adds/subs, |x| >= 2^52
    before the rescale.
    """
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    err = tl.zeros((BLOCK,), dtype=tl.int32)
    a = tl.load(a_ptr + offs, mask=mask, other=0)
    a, err = _checked_shift(a, err, A_SHIFT, CHECK)
    if OP == 3:
        x = a
    else:
        if B_BCAST:
            b = tl.load(b_ptr + (offs // b_inner) % b_mid, mask=mask, other=0)
        else:
            b = tl.load(b_ptr + offs, mask=mask, other=0)
        b, err = _checked_shift(b, err, B_SHIFT, CHECK)
        if OP == 0:
            x, err = checked_add(a, b, err, CHECK)
        elif OP == 1:
            x = a - b
            if CHECK:
                err |= tl.where(((a ^ b) & (a ^ x)) < 0, _ADD_CODE, 0)
        else:
            x = a * b
            if CHECK:
                est = tl.abs(a.to(tl.float64)) * tl.abs(b.to(tl.float64))
                err |= tl.where(est >= 4611686018427387904.0, _MUL_CODE, 0)  # 2^62
    x, err = checked_rescale(x, err, d, DIV, CHECK)
    x = clamp(x, lo, hi, HAS_LO, HAS_HI)
    tl.store(out_ptr + offs, x, mask=mask)
    if CHECK:
        report(err[None, :], mask[None, :], flag_ptr)


def _broadcast_pattern(b_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(inner, mid) with b[i] = b_flat[(i // inner) % mid] for a contiguous b broadcast to out_shape,
    or None when b's non-unit axes are not one contiguous block."""
    b_shape = (1,) * (len(out_shape) - len(b_shape)) + tuple(b_shape)
    big = [i for i, s in enumerate(b_shape) if s != 1]
    if not big:
        return 1, 1
    p, q = big[0], big[-1] + 1
    if any(b_shape[i] != out_shape[i] for i in range(p, q)):
        return None
    mid = 1
    for s in out_shape[p:q]:
        mid *= s
    inner = 1
    for s in out_shape[q:]:
        inner *= s
    return inner, mid


@on_input_device
def fused_elementwise(a: torch.Tensor, b: torch.Tensor | int | None = None, op: str | None = "add", *,
                      a_shift: int = 0, b_shift: int = 0, rescale_shift: int = 0, divisor: int | None = None,
                      activation: str | None = None, clip: tuple[int | None, int | None] | None = None,
                      flag: torch.Tensor | None = None, config: BlockConfig | None = None) -> torch.Tensor:
    """``clip(div_round((a << a_shift) op (b << b_shift), d))`` in one launch, bit-identical to the
    unfused kernels (``int_add``/``int_sub``/``int_mul``, ``div_round``, ``clip``).

    ``op`` is "add", "sub", "mul" or None (then ``b`` must be None: shift/rescale/clip of ``a``);
    ``d`` is ``2**rescale_shift`` or ``divisor`` (any int in [1, 2^53)); ``activation="relu"``
    is ``clip=(0, None)``. Broadcasting as numpy's. No host sync with ``flag`` (an int32 tensor,
    kernels.flags): values that would wrap int64 or reach 2^52 before the rescale set a code there
    and the output is invalid; without ``flag`` an internal one is checked here (one sync).
    """
    what = "fused_elementwise"
    if op not in _OPS:
        raise ValueError(f"{what}: op must be 'add', 'sub', 'mul' or None, got {op!r}")
    if (op is None) != (b is None):
        raise ValueError(f"{what}: op={op!r} needs {'no' if op is None else 'a'} second operand")
    epi = Epilogue.make(what, rescale_shift, False, activation, clip, divisor)
    for sname, sv in (("a_shift", a_shift), ("b_shift", b_shift)):
        if isinstance(sv, bool) or not isinstance(sv, int) or not 0 <= sv <= 62:
            raise ValueError(f"{what}: {sname} must be an int in [0, 62], got {sv!r}")
    check_int64("a", a)
    if b is not None:
        b = int64_operand("b", b, a)
    out_device = same_device(a=a, b=b)
    a_c = to_compute(a)
    if flag is not None and (not isinstance(flag, torch.Tensor) or flag.dtype != torch.int32
                             or flag.device.type != a_c.device.type):
        raise ValueError(f"{what}: flag must be an int32 tensor on {a_c.device} (kernels.flags.new_flag)")
    pattern = None
    if b is None:
        a2, b2 = a_c, a_c
    else:
        try:
            shape = torch.broadcast_shapes(a.shape, b.shape)
        except RuntimeError as e:
            raise ValueError(f"{what}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from e
        if tuple(a.shape) == tuple(shape) and b.numel() == a.numel():
            a2, b2 = a_c, to_compute(b.reshape(shape))  # same shape: flat, no index math
        elif tuple(a.shape) == tuple(shape) and (pattern := _broadcast_pattern(tuple(b.shape), tuple(shape))):
            a2, b2 = a_c, to_compute(b)  # b indexed in the kernel, not copied
        else:
            a2, b2 = (to_compute(t) for t in torch.broadcast_tensors(a, b))
    out = torch.empty_like(a2)
    if out.numel() == 0:
        return out.to(out_device)
    cfg = config or DEFAULT_BLOCK_CONFIG
    cfg.check()
    internal = flag is None
    if internal:
        flag = new_flag(a2.device)
    inner, mid = pattern or (1, 1)
    epi_rt, epi_cx = epi.kernel_args()
    epi_cx.pop("BIAS_AFTER")
    _fused_kernel[(triton.cdiv(out.numel(), cfg.block),)](
        a2, b2, out, flag, out.numel(), inner, mid, *epi_rt, OP=_OPS[op], A_SHIFT=a_shift, B_SHIFT=b_shift,
        B_BCAST=pattern is not None, CHECK=True, **epi_cx, BLOCK=cfg.block, num_warps=cfg.num_warps,
        **launch_options(out.device))
    if internal:
        check_flag(flag, what)
    return out.to(out_device)


__all__ = ["int_add", "int_sub", "int_mul", "fused_elementwise"]
