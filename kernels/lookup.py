"""Table lookup ``table[x - offset]`` on int64 fixed-point integers: ``table_lookup``.

EZKL evaluates nonlinearities (sigmoid, exp, GELU, ...) through lookup tables over a calibrated
input range; the engine builds each table on the host from EZKL's f64 formula and this gathers
from it. An input outside the table is an error (the proof could not be made either), reported
with the range seen and the range covered.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import DEFAULT_BLOCK_CONFIG, BlockConfig, check_int64, same_device, to_compute, value_range, on_input_device


@triton.jit
def _lookup_kernel(x_ptr, table_ptr, out_ptr, n, offset, BLOCK: tl.constexpr):
    """out = table[x - offset] (indices already checked on the host)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=offset)
    tl.store(out_ptr + offs, tl.load(table_ptr + (x - offset), mask=mask, other=0), mask=mask)


@on_input_device
def table_lookup(x: torch.Tensor, table: torch.Tensor, offset: int, config: BlockConfig | None = None) -> torch.Tensor:
    """``table[x - offset]`` elementwise: int64 x of any shape, 1-D int64 table -> int64 like x.

    ValueError naming the ranges if any ``x`` lies outside ``[offset, offset + len(table) - 1]``.
    """
    check_int64("x", x)
    check_int64("table", table, 1)
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise TypeError(f"table_lookup: offset must be an int, got {offset!r}")
    out_device = same_device(x=x, table=table)
    x, table = to_compute(x), to_compute(table)
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out.to(out_device)
    lo, hi = value_range(x)
    first, last = offset, offset + table.numel() - 1
    if lo < first or hi > last:
        outside = int(((x < first) | (x > last)).sum())
        raise ValueError(f"table_lookup: inputs span [{lo}, {hi}] but the table covers [{first}, {last}] "
                         f"({table.numel()} entries); {outside} of {x.numel()} inputs fall outside")
    cfg = config or DEFAULT_BLOCK_CONFIG
    cfg.check()
    _lookup_kernel[(triton.cdiv(x.numel(), cfg.block),)](x, table, out, x.numel(), offset,
                                                         BLOCK=cfg.block, num_warps=cfg.num_warps)
    return out.to(out_device)


__all__ = ["table_lookup"]
