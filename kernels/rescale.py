"""Division by a positive integer rounding to nearest, ties away from zero: ``div_round``.

This is EZKL's rescale/division rule: it computes ``((x as f64) / d).round()`` in Rust, and
Rust's ``round`` sends halves away from zero. For ``|x| < 2**52`` and ``1 <= d < 2**53`` that
equals the exact integer rule used here (``q = |x| // d``, ``q += 1`` if ``2 * (|x| % d) >= d``,
sign of x), because the f64 quotient can then neither create nor miss a tie; larger ``|x|`` is
refused (OverflowError) since f64 rounding would differ. (EZKL's ``layouts::div`` computes its
witness with ``nonlinearities::const_div``, exactly that f64 expression. A version of its
``loop_div`` seen in the source splits an even divisor above 2^(S-4) = 2^24 as d' * 2^j and
divides in two rounded steps; where EZKL does that, call ``div_round`` twice.) Triton's ``//`` truncates toward zero,
so the kernel works on ``|x|`` and restores the sign; a power-of-two divisor uses shifts.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import DEFAULT_BLOCK_CONFIG, BlockConfig, check_int64, max_abs, to_compute, on_input_device

#: inputs must satisfy |x| < 2**52 for the f64 computation EZKL does to be exact
DIV_ROUND_LIMIT = 2**52


@triton.jit
def round_shift(x, s):
    """round_div(x, 2**s) for a shift s >= 1, constexpr or a runtime value (a layer table's):
    ``(x + 2^(s-1) - [x < 0]) >> s`` with a flooring shift (see :func:`round_div`)."""
    return (x + ((1 << (s - 1)) - (x < 0).to(tl.int64))) >> s


@triton.jit
def round_div(x, d, SHIFT: tl.constexpr):
    """sign(x) * floor(|x| / d + 1/2): EZKL's division, ties away from zero (the one formula every
    fused epilogue reuses). ``d`` > 0; SHIFT >= 0 means d == 2**SHIFT. Needs |x| < 2**62 (callers
    check |x| < 2**52, EZKL's exactness limit, beforehand).

    For d = 2^s (s >= 1) it is ``(x + 2^(s-1) - [x < 0]) >> s`` with a flooring shift: for x >= 0
    that is floor(x/d + 1/2); for x < 0 it is floor((x + d/2 - 1)/d) = ceil((x - d/2)/d) =
    -floor(|x|/d + 1/2). Three integer ops instead of a division, the cheap case of every rebase.
    """
    if SHIFT == 0:
        return x
    elif SHIFT > 0:
        return round_shift(x, SHIFT)
    else:
        ax = tl.where(x < 0, -x, x)
        q = ax // d
        q += (2 * (ax - q * d) >= d).to(tl.int64)
        return tl.where(x < 0, -q, q)


@triton.jit
def _div_round_kernel(x_ptr, out_ptr, n, d, SHIFT: tl.constexpr, BLOCK: tl.constexpr):
    """out = round_div(x, d): ties away from zero; SHIFT >= 0 when d == 2**SHIFT."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0)
    tl.store(out_ptr + offs, round_div(x, d, SHIFT), mask=mask)


@on_input_device
def div_round(x: torch.Tensor, divisor: int, config: BlockConfig | None = None) -> torch.Tensor:
    """``round(x / divisor)`` with ties away from zero, exactly as EZKL's f64 ``round`` (int64 in, int64 out).

    ``divisor`` is an int in [1, 2**53); OverflowError if any ``|x| >= 2**52``.
    """
    check_int64("x", x)
    if isinstance(divisor, bool) or not isinstance(divisor, int) or not 1 <= divisor < 2**53:
        raise ValueError(f"div_round: divisor must be an int in [1, 2^53), got {divisor!r}")
    out_device = x.device
    x = to_compute(x)
    biggest = max_abs(x)
    if biggest >= DIV_ROUND_LIMIT:
        raise OverflowError(f"div_round: |x| reaches {biggest} >= 2^52, where EZKL's f64 division is no longer exact")
    if divisor == 1 or x.numel() == 0:
        return x.clone().to(out_device)
    cfg = config or DEFAULT_BLOCK_CONFIG
    cfg.check()
    out = torch.empty_like(x)
    shift = divisor.bit_length() - 1 if divisor & (divisor - 1) == 0 else -1
    _div_round_kernel[(triton.cdiv(x.numel(), cfg.block),)](x, out, x.numel(), divisor, SHIFT=shift,
                                                            BLOCK=cfg.block, num_warps=cfg.num_warps)
    return out.to(out_device)


__all__ = ["div_round", "round_div", "round_shift", "DIV_ROUND_LIMIT"]
