"""EZKL's float -> fixed-point conversion (``src/graph/utilities.rs::quantize_float``,
``src/graph/input.rs``): the only place floats become integers, besides lookup tables."""

from __future__ import annotations

import numpy as np


def round_half_away(v: np.ndarray) -> np.ndarray:
    """Rust's ``f64::round``: nearest integer, halves away from zero, NaN -> 0."""
    v = np.asarray(v, dtype=np.float64)
    t = np.trunc(v)
    with np.errstate(invalid="ignore"):  # inf - inf is NaN: infinities stay t (the caller's range checks refuse them)
        frac = np.abs(v - t)  # exact for finite floats
    r = np.where(frac >= 0.5, t + np.sign(v), t)
    r = np.nan_to_num(r, nan=0.0)
    return r


def quantize(values: np.ndarray, scale: int) -> np.ndarray:
    """``round(f64(value) * 2^scale)`` as int64 (``quantize_float`` with shift 0)."""
    v = np.asarray(values, dtype=np.float64) * (2.0 ** scale)
    r = round_half_away(v)
    if np.any(np.abs(r) >= 2.0 ** 62):
        raise OverflowError("quantized value does not fit in int64")
    return r.astype(np.int64)


def quantize_input(values: np.ndarray, scale: int, is_float: bool = True) -> np.ndarray:
    """Model inputs: EZKL round-trips floats through f32 (``InputType::roundtrip``)."""
    if not is_float:
        return np.asarray(values).astype(np.float64).astype(np.int64)
    return quantize(np.asarray(values, dtype=np.float64).astype(np.float32), scale)
