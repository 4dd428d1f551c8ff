"""Triton kernels for EZKL's fixed-point arithmetic.

Each module holds its ``@triton.jit`` kernel(s) and a thin host wrapper (checks and launch).
Without a GPU, :mod:`kernels.runtime` turns on Triton's CPU interpreter before triton is imported.
All public wrappers take and return int64 torch tensors of fixed-point integers, on the input's
device, and are exact: the same bits as the integer reference for every tile configuration, or
an OverflowError before anything runs when a bound could be exceeded.

    int_matmul (gemm)       int_conv2d, int_conv1d (conv)     div_round (rescale)
    int_add, int_sub, int_mul (elementwise)                   relu, clip, max_scalar, min_scalar (activation)
    table_lookup (lookup)   max_pool2d, sum_pool2d (pool)
"""

from vcompute.kernels import runtime  # noqa: F401  (first: sets TRITON_INTERPRET before triton loads)
from vcompute.kernels.runtime import device  # noqa: I001

from vcompute.kernels._checks import BlockConfig
from vcompute.kernels.activation import clip, max_scalar, min_scalar, relu
from vcompute.kernels.conv import ConvConfig, int_conv1d, int_conv2d
from vcompute.kernels.elementwise import int_add, int_mul, int_sub
from vcompute.kernels.gemm import GemmConfig, int_matmul
from vcompute.kernels.lookup import table_lookup
from vcompute.kernels.pool import max_pool2d, sum_pool2d
from vcompute.kernels.rescale import div_round

__all__ = [
    "device", "BlockConfig", "GemmConfig", "ConvConfig",
    "int_matmul", "int_conv2d", "int_conv1d", "div_round", "int_add", "int_sub", "int_mul",
    "relu", "clip", "max_scalar", "min_scalar", "table_lookup", "max_pool2d", "sum_pool2d",
]
