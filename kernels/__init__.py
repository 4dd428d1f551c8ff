"""Triton kernels for EZKL's fixed-point arithmetic.

Each module holds its ``@triton.jit`` kernel(s) and a thin host wrapper (checks and launch).
Without a GPU, :mod:`kernels.runtime` turns on Triton's CPU interpreter before triton is imported.
All public wrappers take and return int64 torch tensors of fixed-point integers, on the input's
device, and are exact: the same bits as the integer reference for every tile configuration, or
an OverflowError before anything runs when a bound could be exceeded.

    int_matmul (gemm)       int_conv2d, int_conv1d (conv)     div_round (rescale)
    int_add, int_sub, int_mul (elementwise)                   relu, clip, max_scalar, min_scalar (activation)
    table_lookup (lookup)   max_pool2d, sum_pool2d (pool)
    f64_matmul (gemm_f64: exact in float64 below 2^53, for short reductions)
    a64_matmul (gemm_a64: the planned limb GEMM splitting its int64 activations itself: one launch)
    dense_chain (dense_chain: a small MLP in one launch)    quantize_input (quantize: EZKL's input rounding)
    small_net (small_net: a small CNN in one launch: convs, pools and dense layers as gathered taps)

Fast paths for a planned engine (docs/kernel-fused.md): ``int_matmul``/``int_conv2d`` take
``limbs=`` (limb counts fixed at plan time: no host sync; out-of-plan values set a device flag,
:class:`ErrorFlags`), pre-split weights (``pack_weight``, ``pack_conv_weight``) and a fused
epilogue (``rescale_shift``, ``bias_after_rescale``, ``activation``, ``clip``);
``fused_elementwise`` runs add/sub/mul -> div_round -> relu/clip in one launch.
"""

from vcompute.kernels import runtime  # noqa: F401  (first: sets TRITON_INTERPRET before triton loads)
from vcompute.kernels.runtime import device  # noqa: I001

from vcompute.kernels._checks import BlockConfig
from vcompute.kernels.activation import clip, max_scalar, min_scalar, relu
from vcompute.kernels.conv import ConvConfig, int_conv1d, int_conv2d, pack_conv_weight
from vcompute.kernels.elementwise import fused_elementwise, int_add, int_mul, int_sub
from vcompute.kernels.flags import ErrorFlags, check_flag, new_flag
from vcompute.kernels.gemm import GemmConfig, PackedOperand, int_matmul, pack_weight
from vcompute.kernels.gemm_a64 import a64_matmul
from vcompute.kernels.gemm_f64 import F64Config, f64_matmul, pack_weight_f64
from vcompute.kernels.lookup import table_lookup
from vcompute.kernels.pool import max_pool2d, sum_pool2d
from vcompute.kernels.rescale import div_round

__all__ = [
    "device", "BlockConfig", "GemmConfig", "ConvConfig",
    "int_matmul", "int_conv2d", "int_conv1d", "div_round", "int_add", "int_sub", "int_mul",
    "relu", "clip", "max_scalar", "min_scalar", "table_lookup", "max_pool2d", "sum_pool2d",
    "fused_elementwise", "pack_weight", "pack_conv_weight", "PackedOperand", "ErrorFlags", "new_flag", "check_flag",
    "F64Config", "f64_matmul", "pack_weight_f64", "a64_matmul",
]
