"""Exact int64 torch implementations of every kernel's contract: the one integer reference.

Each function here has the signature and semantics of the Triton wrapper of the same name in
``kernels/`` (int64 in, int64 out, exact), with the same argument checks and the same overflow
bounds: an OverflowError *before* computing when a result could leave int64, never a wrapped
value. Two users:

* the kernel tests, which compare every kernel with these (``tests/test_kernels_*.py``);
* the engine's CPU backend (``backend="torch"``, the default without a GPU).

Everything is computed on the CPU (CUDA has no int64 matmul; integer matmul and conv on the CPU
accumulate exactly in int64 within the bounds checked) and returned on the input's device. The
int8-limb limits of the Triton kernels (the int32 accumulator's ``K < 131072``) do not apply:
they are not part of the arithmetic contract. Nothing here touches floating point, except the
opt-in ``f64=True`` of the two products, which the engine's CPU backend passes: where every partial
sum is an integer below 2^53 (``K * max|a| * max|b| < 2^53``), float64 holds each one exactly in
any order, with or without FMA (the argument of ``kernels/gemm_f64.py``), so a BLAS product gives
the int64 product's bits several times faster. The kernel tests use the int64 default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vcompute.kernels._checks import (
    F64_EXACT,
    INT64_MAX,
    INT64_MIN,
    check_fits_int64,
    check_int64,
    conv2d_geometry,
    int64_operand,
    max_abs,
    pair,
    pool2d_geometry,
    same_device,
)

#: ``div_round`` inputs must satisfy |x| < 2**52 for the f64 computation EZKL does to be exact
DIV_ROUND_LIMIT = 2**52


def _cpu(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.cpu()


def _in_f64(f64: bool, k: int, a_max: int, b_max: int) -> bool:
    """Whether a product with reductions of length ``k`` runs in float64: asked for (``f64``) and
    exact there (every operand and every partial sum an integer below 2^53)."""
    return f64 and max(a_max, b_max) < F64_EXACT and k * a_max * b_max < F64_EXACT


# -- GEMM and convolution ---------------------------------------------------------------------


def _window_cells(xp: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                  dilation: tuple[int, int], out: tuple[int, int]) -> list[torch.Tensor]:
    """One strided [N, C, Ho, Wo] view of the padded ``xp`` per window cell, row-major: cell
    ``(r, s)`` holds ``xp[n, c, ho*sh + r*dh, wo*sw + s*dw]`` (the convs' im2col, the pools' fold)."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out
    return [xp[:, :, r * dh: r * dh + sh * (ho - 1) + 1: sh, s * dw: s * dw + sw * (wo - 1) + 1: sw]
            for r in range(kh) for s in range(kw)]


def int_matmul(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None, *,
               f64: bool = False) -> torch.Tensor:
    """Exact ``a @ b + bias``: [M, K] x [K, N] (+ [N]) -> int64 [M, N] (``f64``: the module doc).

    OverflowError when ``K * max|a| * max|b| + max|bias|`` could reach 2^63.
    """
    check_int64("a", a, 2)
    check_int64("b", b, 2)
    if bias is not None:
        check_int64("bias", bias, 1)
    out_device = same_device(a=a, b=b, bias=bias)
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2:
        raise ValueError(f"int_matmul: inner dims differ: a is {tuple(a.shape)}, b is {tuple(b.shape)}")
    if bias is not None and bias.shape[0] != n:
        raise ValueError(f"int_matmul: bias has {bias.shape[0]} entries, expected N={n}")
    a, b, bias = _cpu(a), _cpu(b), _cpu(bias)
    a_max, b_max, bias_max = max_abs(a), max_abs(b), max_abs(bias)
    check_fits_int64(f"int_matmul K={k}, max|a|={a_max}, max|b|={b_max}, max|bias|={bias_max}",
                     k * a_max * b_max + bias_max)
    if not k:
        out = torch.zeros((m, n), dtype=torch.int64)
    elif _in_f64(f64, k, a_max, b_max):
        out = (a.double() @ b.double()).to(torch.int64)
    else:
        out = a @ b
    if bias is not None:
        out = out + bias
    return out.to(out_device)


def int_conv2d(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None,
               stride: int | tuple[int, int] = 1, padding: int | tuple[int, ...] = 0,
               dilation: int | tuple[int, int] = 1, groups: int = 1, *, f64: bool = False) -> torch.Tensor:
    """Exact 2-D convolution: x [N, C, H, W], w [O, C/groups, kh, kw] (+ bias [O]) -> int64
    [N, O, Ho, Wo], zero padding (an int, (h, w) or (top, left, bottom, right)); ``f64``: the
    module doc.

    OverflowError when ``K * max|x| * max|w| + max|bias|`` (K = C/groups*kh*kw) could reach 2^63.
    Runs as an im2col GEMM per group.
    """
    check_int64("x", x, 4)
    check_int64("w", w, 4)
    if bias is not None:
        check_int64("bias", bias, 1)
    out_device = same_device(x=x, w=w, bias=bias)
    nb, (o, cg, kh, kw) = x.shape[0], w.shape
    geo = conv2d_geometry(x.shape, w.shape, bias, stride, padding, dilation, groups)
    (sh, sw), (dh, dw), (pt, pl, pb, pr), (ho, wo) = geo.stride, geo.dilation, geo.padding, geo.out
    x, w, bias = _cpu(x), _cpu(w), _cpu(bias)
    k = cg * kh * kw
    x_max, w_max, bias_max = max_abs(x), max_abs(w), max_abs(bias)
    check_fits_int64(f"int_conv2d K={k}, max|x|={x_max}, max|w|={w_max}, max|bias|={bias_max}",
                     k * x_max * w_max + bias_max)
    dt = torch.float64 if _in_f64(f64, k, x_max, w_max) else torch.int64  # im2col built in that type
    xp = F.pad(x.to(dt), (pl, pr, pt, pb))
    # im2col: cols[n, c, r*kw + s, p] = xp[n, c, ho*sh + r*dh, wo*sw + s*dw] (p = ho*Wo + wo)
    cols = torch.stack(_window_cells(xp, (kh, kw), (sh, sw), (dh, dw), (ho, wo)), dim=2).reshape(nb, groups, k, ho * wo)
    out = torch.matmul(w.reshape(groups, o // groups, k).to(dt), cols)  # [N, G, O/G, Ho*Wo]
    out = out.to(torch.int64).reshape(nb, o, ho, wo)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out.to(out_device)


def int_conv1d(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None,
               stride: int = 1, padding: int | tuple[int, int] = 0, dilation: int = 1,
               groups: int = 1) -> torch.Tensor:
    """Exact 1-D conv: x [N, C, L], w [O, C/groups, k] -> int64 [N, O, Lo]: :func:`int_conv2d`
    with a height of 1; padding is (left, right) or an int."""
    check_int64("x", x, 3)
    check_int64("w", w, 3)
    p_lo, p_hi = pair(padding, "padding")
    if isinstance(stride, (tuple, list)) or isinstance(dilation, (tuple, list)):
        raise ValueError("int_conv1d: stride and dilation are single ints")
    out = int_conv2d(x.unsqueeze(2), w.unsqueeze(2), bias, stride=(1, stride),
                     padding=(0, p_lo, 0, p_hi), dilation=(1, dilation), groups=groups)
    return out.squeeze(2)


# -- rescaling ----------------------------------------------------------------------------------


def div_round(x: torch.Tensor, divisor: int) -> torch.Tensor:
    """``round(x / divisor)``, ties away from zero (EZKL's f64 ``round`` of the quotient).

    ``divisor`` is an int in [1, 2**53); OverflowError if any ``|x| >= 2**52``.
    """
    check_int64("x", x)
    if isinstance(divisor, bool) or not isinstance(divisor, int) or not 1 <= divisor < 2**53:
        raise ValueError(f"div_round: divisor must be an int in [1, 2^53), got {divisor!r}")
    out_device = x.device
    x = x.cpu()
    biggest = max_abs(x)
    if biggest >= DIV_ROUND_LIMIT:
        raise OverflowError(f"div_round: |x| reaches {biggest} >= 2^52, where EZKL's f64 division is no longer exact")
    q = round_quotient(x, divisor)
    return (q.clone() if q is x else q).to(out_device)  # a new tensor, as every reference op gives


def round_quotient(x: torch.Tensor, divisor: int) -> torch.Tensor:
    """:func:`div_round` without its checks, on ``x``'s device (the caller keeps ``|x| < 2^52``).

    ``|x| = q * d + r`` rounds away from zero when ``2r >= d``, which is ``floor((|x| + d // 2) / d)``
    for odd and even ``d`` alike; a power-of-two divisor (every EZKL rebase) is a shift, far cheaper
    than int64 division on the CPU."""
    if divisor == 1:
        return x
    ax = x.abs()
    if divisor & (divisor - 1) == 0:
        q = (ax + (divisor >> 1)) >> (divisor.bit_length() - 1)
    else:
        q = torch.div(ax + divisor // 2, divisor, rounding_mode="floor")
    return torch.where(x < 0, -q, q)


# -- element-wise -------------------------------------------------------------------------------


def _binary(op: str, a: torch.Tensor | int, b: torch.Tensor | int, a_shift: int,
            b_shift: int) -> torch.Tensor:
    name = f"int_{op}"
    a, b = int64_operand("a", a, b), int64_operand("b", b, a)
    for sname, s in (("a_shift", a_shift), ("b_shift", b_shift)):
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= 62:
            raise ValueError(f"{name}: {sname} must be an int in [0, 62], got {s!r}")
    out_device = same_device(a=a, b=b)
    try:
        a, b = torch.broadcast_tensors(a.cpu(), b.cpu())
    except RuntimeError as e:
        raise ValueError(f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from e
    ma, mb = max_abs(a) << a_shift, max_abs(b) << b_shift
    bound = ma * mb if op == "mul" else ma + mb
    check_fits_int64(f"{name} max|a|*2^{a_shift}={ma}, max|b|*2^{b_shift}={mb}", bound)
    if a_shift:
        a = a << a_shift
    if b_shift:
        b = b << b_shift
    out = a + b if op == "add" else a - b if op == "sub" else a * b
    return out.contiguous().to(out_device)


def int_add(a: torch.Tensor | int, b: torch.Tensor | int, a_shift: int = 0, b_shift: int = 0) -> torch.Tensor:
    """``(a << a_shift) + (b << b_shift)`` with broadcasting (OverflowError if it could wrap)."""
    return _binary("add", a, b, a_shift, b_shift)


def int_sub(a: torch.Tensor | int, b: torch.Tensor | int, a_shift: int = 0, b_shift: int = 0) -> torch.Tensor:
    """``(a << a_shift) - (b << b_shift)`` with broadcasting (OverflowError if it could wrap)."""
    return _binary("sub", a, b, a_shift, b_shift)


def int_mul(a: torch.Tensor | int, b: torch.Tensor | int, a_shift: int = 0, b_shift: int = 0) -> torch.Tensor:
    """``(a << a_shift) * (b << b_shift)`` with broadcasting (OverflowError if it could wrap)."""
    return _binary("mul", a, b, a_shift, b_shift)


# -- activations and lookups --------------------------------------------------------------------


def _check_bound(name: str, v: int | None) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int) or not INT64_MIN <= v <= INT64_MAX:
        raise ValueError(f"{name} must be an int64 value or None, got {v!r}")


def clip(x: torch.Tensor, lo: int | None = None, hi: int | None = None) -> torch.Tensor:
    """``min(max(x, lo), hi)`` elementwise; a None bound is not applied (ValueError if lo > hi)."""
    check_int64("x", x)
    _check_bound("lo", lo)
    _check_bound("hi", hi)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"clip: lo={lo} > hi={hi}")
    return torch.clamp(x, min=lo, max=hi)


def relu(x: torch.Tensor) -> torch.Tensor:
    """``max(x, 0)`` elementwise."""
    return clip(x, 0, None)


def max_scalar(x: torch.Tensor, v: int) -> torch.Tensor:
    """``max(x, v)`` elementwise."""
    return clip(x, v, None)


def min_scalar(x: torch.Tensor, v: int) -> torch.Tensor:
    """``min(x, v)`` elementwise."""
    return clip(x, None, v)


def table_lookup(x: torch.Tensor, table: torch.Tensor, offset: int) -> torch.Tensor:
    """``table[x - offset]`` elementwise: ``offset`` is the input value of ``table[0]``.

    ValueError naming the ranges if any ``x`` lies outside ``[offset, offset + len(table) - 1]``.
    """
    check_int64("x", x)
    check_int64("table", table, 1)
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise TypeError(f"table_lookup: offset must be an int, got {offset!r}")
    out_device = same_device(x=x, table=table)
    x, table = x.cpu(), table.cpu()
    if x.numel() == 0:
        return torch.empty_like(x).to(out_device)
    lo, hi = int(x.min()), int(x.max())
    first, last = offset, offset + table.numel() - 1
    if lo < first or hi > last:
        outside = int(((x < first) | (x > last)).sum())
        raise ValueError(f"table_lookup: inputs span [{lo}, {hi}] but the table covers [{first}, {last}] "
                         f"({table.numel()} entries); {outside} of {x.numel()} inputs fall outside")
    return table[x - offset].to(out_device)


# -- pooling ------------------------------------------------------------------------------------


def _pool(x: torch.Tensor, kernel, stride, padding, is_max: bool) -> torch.Tensor:
    name = "max_pool2d" if is_max else "sum_pool2d"
    check_int64("x", x, 4)
    geo = pool2d_geometry(name, x.shape, kernel, stride, padding)
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (ho, wo) = geo.kernel, geo.stride, geo.padding, geo.out
    out_device = x.device
    x = x.cpu()
    if not is_max:
        check_fits_int64(f"{name} window {kh}x{kw}, max|x|={max_abs(x)}", kh * kw * max_abs(x))
    xp = F.pad(x, (pl, pr, pt, pb), value=INT64_MIN if is_max else 0)
    # one strided [N, C, Ho, Wo] view per window cell, folded in window order: a handful of
    # whole-tensor adds or maxima (several times faster on the CPU than reducing unfolded windows)
    cells = _window_cells(xp, (kh, kw), (sh, sw), (1, 1), (ho, wo))
    out = cells[0].clone()
    for cell in cells[1:]:
        if is_max:
            torch.maximum(out, cell, out=out)
        else:
            out.add_(cell)
    return out.to(out_device)


def max_pool2d(x: torch.Tensor, kernel: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
               padding: int | tuple[int, ...] = 0) -> torch.Tensor:
    """Max over each window of x [N, C, H, W] -> [N, C, Ho, Wo]; padded cells hold the int64
    minimum, so they never win."""
    return _pool(x, kernel, stride, padding, True)


def sum_pool2d(x: torch.Tensor, kernel: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
               padding: int | tuple[int, ...] = 0) -> torch.Tensor:
    """Exact sum over each window of x [N, C, H, W] -> [N, C, Ho, Wo]; padded cells are 0.

    OverflowError if ``kh * kw * max|x|`` could reach 2^63.
    """
    return _pool(x, kernel, stride, padding, False)


__all__ = [
    "int_matmul", "int_conv2d", "int_conv1d", "div_round", "int_add", "int_sub", "int_mul",
    "relu", "clip", "max_scalar", "min_scalar", "table_lookup", "max_pool2d", "sum_pool2d",
]
