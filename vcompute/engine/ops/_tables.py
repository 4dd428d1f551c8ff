"""Lookup tables: EZKL's nonlinearities as integer functions, built on the host in f64.

Same formulas as EZKL's ``src/tensor/ops.rs::nonlinearities`` (``round(scale * f(x / scale))``,
Python's ``math`` functions), applied through the backend's ``table_lookup``. A table entry
depends only on the input integer, so results do not depend on the batch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..fixedpoint import round_half_away
from ..ir import UnsupportedOpError

if TYPE_CHECKING:
    from ..backends import Backend

MAX_TABLE = 1 << 20  # dense-table entries; wider inputs use a table of their distinct values
#: table values are clipped here (Rust saturates at i128 bounds): a result this large is refused
SATURATED = 2 ** 62

_ERF_COF = [
    -1.3026537197817094, 6.419697923564902e-1, 1.9476473204185836e-2, -9.56151478680863e-3,
    -9.46595344482036e-4, 3.66839497852761e-4, 4.2523324806907e-5, -2.0278578112534e-5,
    -1.624290004647e-6, 1.303655835580e-6, 1.5626441722e-8, -8.5238095915e-8, 6.529054439e-9,
    5.059343495e-9, -9.91364156e-10, -2.27365122e-10, 9.6467911e-11, 2.394038e-12,
    -6.886027e-12, 8.94487e-13, 3.13092e-13, -1.12708e-13, 3.81e-16, 7.106e-15, -1.523e-15,
    -9.4e-17, 1.21e-16, -2.8e-17,
]


def _erfccheb(z: float) -> float:
    d = dd = 0.0
    t = 2.0 / (2.0 + z)
    ty = 4.0 * t - 2.0
    for j in range(len(_ERF_COF) - 2, 0, -1):
        d, dd = ty * d - dd + _ERF_COF[j], d
    return t * math.exp(-(z ** 2) + 0.5 * (_ERF_COF[0] + ty * d) - dd)


def _erf(x: float) -> float:
    return 1.0 - _erfccheb(x) if x >= 0 else _erfccheb(-x) - 1.0


def _safe(f):
    def g(x):
        try:
            return f(x)
        except (ValueError, OverflowError):
            return math.nan if not isinstance(x, float) or x == x else math.nan
    return g


def _hardswish(k: float) -> float:
    if k <= -3.0:
        return 0.0
    if k >= 3.0:
        return k
    return k * (k + 3.0) / 6.0


def lookup_values(fn: str, xs: np.ndarray, mult: float, a: float | None = None) -> np.ndarray:
    """EZKL's integer result of lookup ``fn`` at scale multiplier ``mult`` for integers ``xs``."""
    inner = {
        "tanh": math.tanh, "sin": math.sin, "cos": math.cos, "tan": math.tan,
        "asin": _safe(math.asin), "acos": _safe(math.acos), "atan": math.atan,
        "sinh": _safe(math.sinh), "cosh": _safe(math.cosh), "asinh": math.asinh,
        "acosh": _safe(math.acosh), "atanh": _safe(math.atanh), "erf": _erf,
        "ln": _safe(lambda k: math.log(k) if k > 0 else (-math.inf if k == 0 else math.nan)),
        "hardswish": _hardswish,
    }
    out = np.empty(len(xs), dtype=np.float64)
    for i, xi in enumerate(xs.tolist()):
        k = float(xi) / mult
        if fn == "sigmoid":
            try:
                v = mult / (1.0 + math.exp(-k))
            except OverflowError:
                v = 0.0
        elif fn == "exp":  # base e: base.powf(k) with base = f32(e) widened to f64
            try:
                v = mult * math.pow(float(np.float32(math.e)), k)
            except OverflowError:
                v = math.inf
        elif fn == "exp_base":  # Pow(c, x): LookupOp::Exp with base f32(c) widened to f64
            try:
                v = mult * math.pow(a, k)
            except OverflowError:
                v = math.inf
        elif fn == "sqrt":  # NaN for negatives -> 0 (then EZKL's abs keeps it 0)
            v = mult * math.sqrt(k) if k >= 0 else math.nan
        elif fn == "pow":
            if k == 0.0 and a < 0:  # Rust: 0.powf(negative) = +inf
                v = math.inf
            else:
                try:
                    v = mult * math.pow(k, a)
                except ValueError:  # negative base, fractional exponent: NaN
                    v = math.nan
        else:
            v = mult * inner[fn](k)
        out[i] = v
    # Rust's `as i128` saturates; NaN -> 0
    r = round_half_away(out)
    r = np.clip(np.nan_to_num(r, nan=0.0, posinf=2.0 ** 62, neginf=-(2.0 ** 62)),
                -(2.0 ** 62), 2.0 ** 62)
    return r.astype(np.int64)


def recip_values(xs: np.ndarray, in_mult: float, out_mult: float, eps: float) -> np.ndarray:
    """``nonlinearities::recip``: ``round(out * 1/(x/in))``, ``1/(0+eps)`` at zero."""
    out = []
    for xi in xs.tolist():
        r = float(xi) / in_mult
        v = out_mult * ((1.0 / (r + eps)) if r == 0.0 else (1.0 / r))
        out.append(v)
    r = round_half_away(np.array(out, dtype=np.float64))
    if np.any(np.abs(r) >= 2.0 ** 62):
        raise OverflowError("reciprocal of 0 (or a tiny value) does not fit in int64")
    return r.astype(np.int64)


def _table_values(fn: str, xs: np.ndarray, extra: dict, a: float | None) -> np.ndarray:
    if fn == "recip":
        return recip_values(xs, extra["in_mult"], extra["out_mult"], extra["eps"])
    if fn == "rsqrt":  # layouts.rs::rsqrt: sqrt at the input scale, then recip
        s = lookup_values("sqrt", xs, extra["in_mult"])
        return recip_values(s, extra["in_mult"], extra["out_mult"], extra["eps"])
    return lookup_values(fn, xs, extra["mult"], a)


# (fn, params) -> (first input value, table values): tables grow to cover every range seen
_TABLES: dict[tuple, tuple[int, np.ndarray]] = {}


def _dense_table(fn: str, lo: int, hi: int, extra: dict, a: float | None) -> np.ndarray:
    """Table of ``fn`` over [lo, hi], built once per (fn, scales) and extended as needed."""
    key = (fn, a, tuple(sorted(extra.items())))
    hit = _TABLES.get(key)
    if hit is None:
        vals = _table_values(fn, np.arange(lo, hi + 1), extra, a)
        _TABLES[key] = (lo, vals)
        return vals
    clo, vals = hit
    chi = clo + len(vals) - 1
    if lo < clo or hi > chi:
        nlo, nhi = min(lo, clo), max(hi, chi)
        if nhi - nlo + 1 > MAX_TABLE:
            return _table_values(fn, np.arange(lo, hi + 1), extra, a)
        parts = []
        if nlo < clo:
            parts.append(_table_values(fn, np.arange(nlo, clo), extra, a))
        parts.append(vals)
        if nhi > chi:
            parts.append(_table_values(fn, np.arange(chi + 1, nhi + 1), extra, a))
        vals, clo = np.concatenate(parts), nlo
        _TABLES[key] = (clo, vals)
    return vals[lo - clo: hi - clo + 1]


def apply_table(be: Backend, x: torch.Tensor, fn: str, extra: dict, a: float | None = None) -> torch.Tensor:
    """Apply EZKL's integer function ``fn`` through a host-built table and the lookup kernel.

    Dense table over [min, max] when that range is small; otherwise a table over the distinct
    input values, indexed by each element's rank among them.
    """
    if x.numel() == 0:
        return x.clone()
    lo, hi = int(x.min().item()), int(x.max().item())
    if hi - lo + 1 <= MAX_TABLE:
        vals = _dense_table(fn, lo, hi, extra, a)
        y = be.table_lookup(x, torch.from_numpy(vals).to(x.device), lo)
    else:
        uniq, inv = torch.unique(x, return_inverse=True)
        vals = _table_values(fn, uniq.cpu().numpy(), extra, a)
        y = be.table_lookup(inv.reshape(x.shape).contiguous(),
                            torch.from_numpy(vals).to(x.device), 0)
    if int(y.abs().max()) >= SATURATED:
        # EZKL's `as i128` saturates (ln(0) = -inf -> i128::MIN, exp overflow -> i128::MAX) and
        # such values do reach its witness: no int64 engine can reproduce them
        raise UnsupportedOpError(fn, "a lookup value saturates (e.g. ln(0) or an overflowing "
                                     "exp): EZKL's witness holds i128::MIN/MAX there")
    return y
