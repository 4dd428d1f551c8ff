"""Triton kernels for EZKL's fixed-point arithmetic.

Each module holds one ``@triton.jit`` kernel and its thin host wrapper (shape checks and launch).
Without a GPU, :mod:`kernels.runtime` turns on Triton's CPU interpreter before triton is imported.
All public wrappers take and return int64 torch tensors of fixed-point integers, on the input's
device, and are exact: the same bits as the integer reference for every tile configuration.
"""

from kernels import runtime  # noqa: F401  (first: sets TRITON_INTERPRET before triton loads)
from kernels.runtime import device

__all__ = ["device"]
