"""EZKL's input quantization on the device, with the planned input bound checked into a flag.

EZKL quantizes a float model input as ``round_half_away(f64(x) * 2^scale)`` (NaN -> 0;
``fixedpoint.quantize_input`` is the host reference). :func:`quantize_tile` is that formula for a
tile already in registers, so a layer that reads the model input can quantize while it loads
(``kernels/dense_chain.py``, ``kernels/gemm_f64.py``, the engine's direct conv) instead of a
launch of its own; :func:`quantize_input` is the stand-alone kernel for every other first layer.
A value beyond the plan's input bound (or an infinite one) sets ``FLAG_INPUT_RANGE``: the caller
re-plans for a larger tier rather than computing with wrong bits.
"""

from __future__ import annotations

from vcompute.kernels import runtime  # noqa: F401,I001  (first: sets TRITON_INTERPRET before triton loads)

import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import DEFAULT_BLOCK_CONFIG, BlockConfig
from vcompute.kernels.epilogue import report
from vcompute.kernels.flags import FLAG_INPUT_RANGE
from vcompute.kernels.pdl import launch_options, wait_previous

_INPUT_CODE: tl.constexpr = tl.constexpr(FLAG_INPUT_RANGE)


@triton.jit
def quantize_tile(x, mult, bound):
    """(q, bad): q = round_half_away(f64(x) * mult) as int64 (NaN -> 0); bad where |q| > bound
    or x is infinite (or beyond 2^62 after scaling)."""
    v = x.to(tl.float64) * mult
    nan = v != v
    av = tl.where(v < 0, -v, v)
    ok = av < 4611686018427387904.0  # 2^62: NaN compares false, so it is handled apart
    t = tl.where(ok, v, 0.0).to(tl.int64)  # truncation toward zero
    d = v - t.to(tl.float64)  # exact: |v| < 2^62 and t is v's integer part
    frac = tl.where(d < 0, -d, d)
    sign = tl.where(v < 0, -1, 1).to(tl.int64)
    q = t + tl.where(frac >= 0.5, sign, 0)
    q = tl.where(nan, 0, q)
    bad = (~ok & ~nan) | (q > bound) | (q < -bound)
    return q, bad


@triton.jit
def _quantize_kernel(x_ptr, out_ptr, flag_ptr, n, mult, bound, BLOCK: tl.constexpr, GDC: tl.constexpr = 0):
    """out = quantize_tile(x); FLAG_INPUT_RANGE where it is out of bound."""
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    q, bad = quantize_tile(tl.load(x_ptr + offs, mask=mask, other=0.0), mult, bound)
    tl.store(out_ptr + offs, q, mask=mask)
    report(tl.where(bad, _INPUT_CODE, 0)[None, :], mask[None, :], flag_ptr)


def quantize_input(x: torch.Tensor, scale: int, bound: int, flag: torch.Tensor,
                   config: BlockConfig | None = None) -> torch.Tensor:
    """int64 fixed-point values of the float32 tensor ``x`` at ``scale``, as EZKL quantizes model
    inputs; ``FLAG_INPUT_RANGE`` goes into ``flag`` where ``|q| > bound`` (no sync)."""
    if x.dtype != torch.float32:
        raise TypeError(f"quantize_input takes float32 (EZKL rounds inputs through f32), got {x.dtype}")
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.int64, device=x.device)
    n = x.numel()
    if n == 0:
        return out
    cfg = config or DEFAULT_BLOCK_CONFIG
    _quantize_kernel[(triton.cdiv(n, cfg.block),)](x, out, flag, n, float(2.0 ** scale), int(bound),
                                                   BLOCK=cfg.block, num_warps=cfg.num_warps,
                                                   **launch_options(out.device))
    return out


__all__ = ["FLAG_INPUT_RANGE", "quantize_input", "quantize_tile"]
