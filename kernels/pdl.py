"""Programmatic dependent launch (PDL): the next kernel of a pass starts while this one ends.

Between two kernels of a captured pass the GPU idles while the next one launches. On the H100
this overlap saves about 0.5 µs a boundary (BENCHMARKS.md §2f: ten dependent tiny kernels in one
graph, 18.5 µs plain, 16.7 with "wait", 13.2 with "early"); on LeNet-5's ten-kernel pass, 0.5-4.5%. On
Hopper and later, a kernel launched with ``launch_pdl=True`` may be scheduled before the kernel
ahead of it in the stream has finished; it must then wait (``gdc_wait``) until that kernel has
completed and its memory is visible before it touches any memory. So every kernel that takes
part calls :func:`wait_previous` first, before any load or store: the order of memory effects,
and so every bit, is exactly the stream order, and a kernel that does not take part (a torch op,
a copy) keeps the plain stream order. Only the launch latency overlaps.

:func:`dependent_launches` turns it on for the launches made inside it (the compiled plan's
forward, under its tile policy); :func:`launch_options` gives a wrapper the extra arguments of
its launch: ``GDC`` for the kernel and ``launch_pdl`` for Triton, off on the CPU interpreter and
on GPUs before Hopper.
"""

from __future__ import annotations

from vcompute.kernels import runtime  # noqa: F401,I001  (first: sets TRITON_INTERPRET before triton loads)

import contextlib
import contextvars
import functools
from typing import Iterator

import torch
import triton
import triton.language as tl

#: the modes: "off"; "wait" (each kernel waits for the one before it, which signals when it
#: exits); "early" (each kernel also lets the next one launch as soon as its own wait is over)
PDL_MODES = ("off", "wait", "early")

_MODE: contextvars.ContextVar[str] = contextvars.ContextVar("vcompute_pdl", default="off")


@contextlib.contextmanager
def dependent_launches(mode: str) -> Iterator[None]:
    """Launches made inside use PDL ``mode`` (one of :data:`PDL_MODES`) where the device has it."""
    if mode not in PDL_MODES:
        raise ValueError(f"pdl mode must be one of {', '.join(PDL_MODES)}, got {mode!r}")
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


@functools.lru_cache(maxsize=None)
def _has_pdl(index: int) -> bool:
    return torch.cuda.get_device_capability(index)[0] >= 9


def launch_options(dev: torch.device) -> dict:
    """The extra launch arguments of a participating kernel on ``dev``: ``GDC`` (0 off, 1 wait,
    2 wait and release the next launch early) and, when on, Triton's ``launch_pdl``."""
    mode = _MODE.get()
    if mode == "off" or dev.type != "cuda" or runtime.interpreting() or not _has_pdl(dev.index or 0):
        return {"GDC": 0}
    return {"GDC": PDL_MODES.index(mode), "launch_pdl": True}


@triton.jit
def wait_previous(GDC: tl.constexpr):
    """The first statement of a participating kernel: with ``GDC``, wait until the kernel ahead
    in the stream has completed and its writes are visible; with ``GDC == 2``, then let the next
    kernel launch (it will wait in turn)."""
    if GDC > 0:
        tl.extra.cuda.gdc_wait()
        if GDC > 1:
            tl.extra.cuda.gdc_launch_dependents()


__all__ = ["PDL_MODES", "dependent_launches", "launch_options", "wait_previous"]
