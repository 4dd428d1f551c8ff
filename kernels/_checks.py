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
#: float64 holds every integer below 2^53, and sums of them exactly while they stay below it
F64_EXACT = 2**53


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


def int64_operand(name: str, v: torch.Tensor | int, like: torch.Tensor | int) -> torch.Tensor:
    """An elementwise operand: an int64 tensor as it is, or a Python int as a 0-dim int64 tensor on
    the other operand's device."""
    if isinstance(v, torch.Tensor):
        check_int64(name, v)
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int64 tensor or an int, got {type(v).__name__}")
    dev = like.device if isinstance(like, torch.Tensor) else None
    return torch.tensor(v, dtype=torch.int64, device=dev)


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


def conv_out_size(size: int, k: int, stride: int, pad: int, dilation: int = 1) -> int:
    """Output length of a conv or pool window sliding over ``size`` cells plus ``pad`` in all (floor)."""
    return (size + pad - dilation * (k - 1) - 1) // stride + 1


@dataclass(frozen=True)
class Conv2dGeometry:
    """A checked 2-D conv: strides, dilations, (top, left, bottom, right) padding and output size."""

    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]
    out: tuple[int, int]


def conv2d_geometry(x_shape: tuple[int, ...], w_shape: tuple[int, ...], bias: torch.Tensor | None,
                    stride, padding, dilation, groups: int) -> Conv2dGeometry:
    """int_conv2d's shape checks (kernel and reference alike): x [N, C, H, W], w [O, C/groups, kh, kw]."""
    (_, c, h, wd), (o, cg, kh, kw) = tuple(x_shape), tuple(w_shape)
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    pt, pl, pb, pr = padding4(padding)
    if groups < 1 or c % groups or o % groups or cg != c // groups:
        raise ValueError(f"int_conv2d: x has {c} channels, w is {tuple(w_shape)}, groups={groups}: "
                         f"need C and O divisible by groups and w.shape[1] == C/groups")
    if min(sh, sw, dh, dw) < 1:
        raise ValueError(f"int_conv2d: stride {stride} and dilation {dilation} must be >= 1")
    if bias is not None and bias.shape[0] != o:
        raise ValueError(f"int_conv2d: bias has {bias.shape[0]} entries, expected O={o}")
    ho, wo = conv_out_size(h, kh, sh, pt + pb, dh), conv_out_size(wd, kw, sw, pl + pr, dw)
    if ho < 1 or wo < 1:
        raise ValueError(f"int_conv2d: output would be {ho}x{wo} for input {h}x{wd}, kernel {kh}x{kw}")
    return Conv2dGeometry((sh, sw), (dh, dw), (pt, pl, pb, pr), (ho, wo))


@dataclass(frozen=True)
class Pool2dGeometry:
    """A checked 2-D pool: window, strides, (top, left, bottom, right) padding and output size."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    out: tuple[int, int]


def pool2d_geometry(name: str, x_shape: tuple[int, ...], kernel, stride, padding) -> Pool2dGeometry:
    """max_pool2d's and sum_pool2d's shape checks (kernel and reference alike); ``stride`` None is the kernel."""
    kh, kw = pair(kernel, "kernel")
    sh, sw = pair(stride if stride is not None else (kh, kw), "stride")
    pt, pl, pb, pr = padding4(padding)
    if min(kh, kw, sh, sw) < 1:
        raise ValueError(f"{name}: kernel {kernel} and stride {stride} must be >= 1")
    if max(pt, pb) >= kh or max(pl, pr) >= kw:
        raise ValueError(f"{name}: padding {padding} must be smaller than the kernel {kh}x{kw}")
    h, w = x_shape[-2:]
    ho, wo = conv_out_size(h, kh, sh, pt + pb), conv_out_size(w, kw, sw, pl + pr)
    if ho < 1 or wo < 1:
        raise ValueError(f"{name}: output would be {ho}x{wo} for input {h}x{w}, kernel {kh}x{kw}")
    return Pool2dGeometry((kh, kw), (sh, sw), (pt, pl, pb, pr), (ho, wo))


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
