"""The fused epilogue of the GEMM and conv kernels: ``+ bias``, rescale, clip, with device checks.

EZKL follows a matmul or conv with a bias add, a rebase (``div_round`` by ``2^s``, halves away
from zero) and often a ReLU/clip. Each of those as its own launch re-reads and re-writes the int64
output; folded into the GEMM's epilogue they cost a few integer ops on a tile already in registers.
The order is EZKL's: a conv's bias is added at the product's scale, before the rescale; an ONNX
Gemm's bias after it (EINSUM is rebased, then ADD), hence ``bias_after_rescale``.

The rescale is :func:`kernels.rescale.round_div`, the same formula as ``div_round``. With
``CHECK``, overflow conditions that the host could not rule out in advance are ORed into an int32
flag on the device (codes in :mod:`kernels.flags`) instead of syncing: a wrapped int64 bias add,
and ``|x| >= 2^52`` before a rescale (``div_round`` refuses that too: EZKL's f64 division is not
exact there). Host side: :class:`Epilogue` validates the options and turns them into kernel args.
"""

from __future__ import annotations

from dataclasses import dataclass

import triton
import triton.language as tl

from vcompute.kernels._checks import INT64_MAX, INT64_MIN
from vcompute.kernels.flags import FLAG_ADD_OVERFLOW, FLAG_RESCALE_LIMIT
from vcompute.kernels.rescale import DIV_ROUND_LIMIT, round_div

_ADD_CODE: tl.constexpr = tl.constexpr(FLAG_ADD_OVERFLOW)
_LIMIT_CODE: tl.constexpr = tl.constexpr(FLAG_RESCALE_LIMIT)
_LIMIT: tl.constexpr = tl.constexpr(DIV_ROUND_LIMIT)

#: DIV constexpr meaning "no rescale" (else -1: runtime divisor, >= 0: shift by DIV)
NO_DIV = -2


@triton.jit
def bit_or(a, b):
    """Combine function for tl.reduce: bitwise or."""
    return a | b


@triton.jit
def checked_add(x, y, err, CHECK: tl.constexpr):
    """x + y in int64 (wraps); with CHECK, sets the add-overflow code in ``err`` where it wrapped."""
    s = x + y
    if CHECK:
        err |= tl.where(((x ^ s) & (y ^ s)) < 0, _ADD_CODE, 0)
    return s, err


@triton.jit
def checked_rescale(x, err, d, DIV: tl.constexpr, CHECK: tl.constexpr):
    """round_div(x, d) unless DIV == NO_DIV (-2); with CHECK, flags |x| >= 2^52 first."""
    if DIV != -2:
        if CHECK:
            err |= tl.where((x >= _LIMIT) | (x <= -_LIMIT), _LIMIT_CODE, 0)
        x = round_div(x, d, DIV)
    return x, err


@triton.jit
def clamp(x, lo, hi, HAS_LO: tl.constexpr, HAS_HI: tl.constexpr):
    """min(max(x, lo), hi), each bound only if present (relu is lo = 0)."""
    if HAS_LO:
        x = tl.where(x < lo, lo, x)
    if HAS_HI:
        x = tl.where(x > hi, hi, x)
    return x


@triton.jit
def tile_code(err, mask):
    """The codes of the 2-D tile's valid cells (``mask``), ORed into one int32 scalar."""
    return tl.reduce(tl.reduce(tl.where(mask, err, 0), 1, bit_or), 0, bit_or)


@triton.jit
def report(err, mask, flag_ptr):
    """OR the codes of the 2-D tile's valid cells into flag_ptr[0] (one atomic, only if any is set)."""
    e = tile_code(err, mask)
    if e != 0:
        tl.atomic_or(flag_ptr, e)


@triton.jit
def any_cell(cond, mask):
    """1 if ``cond`` holds at any real cell (``mask``) of a 2-D tile, else 0 (an int32 scalar)."""
    return tl.max(tl.max((cond & mask).to(tl.int32), axis=1), axis=0)


@triton.jit
def apply_epilogue(res, bias, mask, flag_ptr, d, lo, hi,
                   HAS_BIAS: tl.constexpr, BIAS_AFTER: tl.constexpr, DIV: tl.constexpr,
                   HAS_LO: tl.constexpr, HAS_HI: tl.constexpr, CHECK: tl.constexpr):
    """The int64 output tile after ``+ bias`` (before or after the rescale), rescale and clamp.

    ``bias`` broadcasts against ``res`` (a [1, N] row); ``mask`` marks the tile's real cells.
    Each check is reduced to a scalar right away (no per-cell error tile stays live: the GEMM's
    epilogue is register-bound), and one atomic reports the tile's codes.
    """
    code = 0
    if HAS_BIAS:
        if not BIAS_AFTER:
            s = res + bias
            if CHECK:
                code |= any_cell(((res ^ s) & (bias ^ s)) < 0, mask) * _ADD_CODE
            res = s
    if DIV != -2:
        if CHECK:
            code |= any_cell((res >= _LIMIT) | (res <= -_LIMIT), mask) * _LIMIT_CODE
        res = round_div(res, d, DIV)
    if HAS_BIAS:
        if BIAS_AFTER:
            s = res + bias
            if CHECK:
                code |= any_cell(((res ^ s) & (bias ^ s)) < 0, mask) * _ADD_CODE
            res = s
    res = clamp(res, lo, hi, HAS_LO, HAS_HI)
    if CHECK:
        if code != 0:
            tl.atomic_or(flag_ptr, code)
    return res


def _check_int64_value(name: str, v: int | None) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int) or not INT64_MIN <= v <= INT64_MAX:
        raise ValueError(f"{name} must be an int64 value or None, got {v!r}")


@dataclass(frozen=True)
class Epilogue:
    """What follows the product in one launch: ``clamp(div_round(x + bias, divisor) [+ bias], lo, hi)``.

    ``divisor`` 1 means no rescale; ``lo``/``hi`` None mean no bound (relu is ``lo = 0``).
    """

    divisor: int = 1
    bias_after_rescale: bool = False
    lo: int | None = None
    hi: int | None = None

    @classmethod
    def make(cls, what: str, rescale_shift: int = 0, bias_after_rescale: bool = False,
             activation: str | None = None, clip: tuple[int | None, int | None] | None = None,
             divisor: int | None = None) -> "Epilogue":
        """Validate the public keyword arguments (ValueError naming ``what``) into an Epilogue."""
        if isinstance(rescale_shift, bool) or not isinstance(rescale_shift, int) or not 0 <= rescale_shift <= 52:
            raise ValueError(f"{what}: rescale_shift must be an int in [0, 52], got {rescale_shift!r}")
        d = 1 << rescale_shift
        if divisor is not None:
            if isinstance(divisor, bool) or not isinstance(divisor, int) or not 1 <= divisor < 2**53:
                raise ValueError(f"{what}: divisor must be an int in [1, 2^53), got {divisor!r}")
            if rescale_shift:
                raise ValueError(f"{what}: give rescale_shift or divisor, not both")
            d = divisor
        if activation not in (None, "relu"):
            raise ValueError(f"{what}: activation must be None or 'relu' (use clip=(lo, hi) for clip), got {activation!r}")
        lo, hi = (None, None) if clip is None else tuple(clip)
        _check_int64_value(f"{what}: clip lo", lo)
        _check_int64_value(f"{what}: clip hi", hi)
        if activation == "relu":
            lo = 0 if lo is None else max(lo, 0)
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"{what}: clip lo={lo} > hi={hi}")
        return cls(d, bool(bias_after_rescale), lo, hi)

    @property
    def rescales(self) -> bool:
        return self.divisor > 1

    @property
    def active(self) -> bool:
        """Whether the epilogue does anything besides a bias added before the (absent) rescale."""
        return self.rescales or self.lo is not None or self.hi is not None

    def div_mode(self) -> int:
        """The kernels' DIV constexpr: NO_DIV, a shift (power-of-two divisor) or -1 (runtime divisor)."""
        if not self.rescales:
            return NO_DIV
        d = self.divisor
        return d.bit_length() - 1 if d & (d - 1) == 0 else -1

    def kernel_args(self) -> tuple[tuple[int, int, int], dict]:
        """((d, lo, hi) runtime args, constexprs) for apply_epilogue."""
        return (self.divisor, 0 if self.lo is None else self.lo, 0 if self.hi is None else self.hi), dict(
            BIAS_AFTER=self.bias_after_rescale, DIV=self.div_mode(), HAS_LO=self.lo is not None, HAS_HI=self.hi is not None)


NO_EPILOGUE = Epilogue()

__all__ = ["Epilogue", "NO_EPILOGUE", "apply_epilogue", "any_cell", "checked_add", "checked_rescale", "clamp", "report", "bit_or", "tile_code"]
