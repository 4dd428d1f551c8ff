"""Argument checks and bounds shared by the host wrappers (no kernels here).

Every wrapper takes int64 tensors of fixed-point integers; these helpers make the checks and the
overflow bounds read the same everywhere, and move CPU tensors to the GPU when one is in use.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch

from vcompute.kernels.runtime import device

F = TypeVar("F", bound=Callable)

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def on_input_device(fn: F) -> F:
    """Run a wrapper with the first tensor argument's CUDA device current (Triton launches on the
    current device, so inputs on cuda:1 must not be launched from cuda:0)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if t is not None and t.device.type == "cuda":
            with torch.cuda.device(t.device):
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_int64(name: str, t: torch.Tensor, ndim: int | None = None) -> None:
    """Raise TypeError/ValueError unless ``t`` is an int64 tensor (of ``ndim`` dims if given)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != torch.int64:
        raise TypeError(f"{name} must be int64 fixed-point integers, got {t.dtype}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dims, got shape {tuple(t.shape)}")


def same_device(**tensors: torch.Tensor | None) -> torch.device:
    """The one device all given tensors are on; ValueError naming them if they disagree."""
    devs = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(devs.values())) > 1:
        raise ValueError(f"tensors are on different devices: {devs}")
    return next(iter(devs.values()))


def to_compute(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t`` contiguous on the device the kernels run on (a CPU tensor goes to the GPU if used)."""
    if t is None:
        return None
    dev = device()
    if t.device.type != dev.type:
        t = t.to(dev)
    return t.contiguous()


def max_abs(t: torch.Tensor | None) -> int:
    """max |t| as a Python int (exact, also for the int64 minimum); 0 for None or empty."""
    if t is None or t.numel() == 0:
        return 0
    lo, hi = value_range(t)
    return max(-lo, hi)


def value_range(t: torch.Tensor) -> tuple[int, int]:
    """(min, max) of a tensor as Python ints ((0, 0) when empty), from one pass and one sync."""
    if t.numel() == 0:
        return 0, 0
    lo_hi = torch.stack(torch.aminmax(t)).tolist()
    return int(lo_hi[0]), int(lo_hi[1])


def value_ranges(*ts: torch.Tensor | None) -> list[tuple[int, int]]:
    """(min, max) of each tensor ((0, 0) for None or empty) with a single device-to-host sync."""
    parts = [torch.stack(torch.aminmax(t)) for t in ts if t is not None and t.numel() > 0]
    vals = torch.stack(parts).tolist() if parts else []
    out, it = [], iter(vals)
    for t in ts:
        out.append((0, 0) if t is None or t.numel() == 0 else tuple(int(v) for v in next(it)))
    return out


def check_fits_int64(what: str, bound: int) -> None:
    """OverflowError unless the worst-case magnitude ``bound`` fits in int64 (< 2**63)."""
    if bound > INT64_MAX:
        raise OverflowError(
            f"{what}: worst-case magnitude {bound} (about 2^{bound.bit_length()}) does not fit in int64 "
            f"(limit 2^63 - 1); the result could wrap, so it is refused"
        )


def pair(v: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair, ValueError otherwise."""
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {v}")
    return v  # type: ignore[return-value]


def padding4(p: int | tuple[int, ...] | list[int]) -> tuple[int, int, int, int]:
    """Padding as (top, left, bottom, right) from an int, a pair (h, w) or a 4-tuple."""
    if isinstance(p, int):
        p = (p, p)
    p = tuple(int(x) for x in p)
    if len(p) == 2:
        p = (p[0], p[1], p[0], p[1])
    if len(p) != 4 or min(p) < 0:
        raise ValueError(f"padding must be an int, (h, w) or (top, left, bottom, right) >= 0, got {p}")
    return p  # type: ignore[return-value]


@dataclass(frozen=True)
class BlockConfig:
    """Launch configuration of the one-dimensional (elementwise, gather, pooling) kernels.

    ``block`` elements per program (a power of two), ``num_warps`` warps. Results are the same
    bits for every config; the default suits large tensors on Hopper.
    """

    block: int = 1024
    num_warps: int = 4

    def check(self) -> None:
        if self.block < 16 or self.block & (self.block - 1) or self.num_warps < 1:
            raise ValueError(f"BlockConfig.block must be a power of two >= 16 and num_warps >= 1: {self}")


DEFAULT_BLOCK_CONFIG = BlockConfig()
