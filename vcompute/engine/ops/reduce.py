"""ReduceMax, ReduceSum, ReduceMean, GlobalAveragePool -> EZKL's REDUCEMAX, SUM, MEANOFSQUARES.

tract reduces with a Sum then multiplies by ``1f32/n`` for a mean (an IDENTITY scale bump when
``n`` is a power of two, else MULT: ``Lowerer.mul_const``), and turns Square -> Sum -> Mul(1/n)
into ``Reduce<MeanOfSquares>``. Batched, the reduction runs over the sample's own axes only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ._batch import batch_of, batched_axes, reduce_max, reduce_sum
from .registry import OnnxNode, ScaleCtx, ezkl_op, keep_scale, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step


@lowers("ReduceMax")
def lower_reducemax(lw: Lowerer, n: OnnxNode) -> None:
    x, op, a = n.x, n.op, n.attrs
    shp = lw.shapes[x]
    axes = lw.reduce_axes(a, n.ins, len(shp))
    kshape = tuple(1 if i in axes else d for i, d in enumerate(shp))
    if a.get("keepdims", 1):
        lw.new("reducemax", [x], kshape, op, name=n.out, axes=tuple(axes))
    else:
        cur = lw.new("reducemax", [x], kshape, op, axes=tuple(axes))
        lw.new("reshape", [cur], tuple(d for i, d in enumerate(shp) if i not in axes), op,
               name=n.out)


@lowers("GlobalAveragePool", "ReduceMean", "ReduceSum")
def lower_sum_mean(lw: Lowerer, n: OnnxNode) -> None:
    x, op, a = n.x, n.op, n.attrs
    shp = lw.shapes[x]
    if op == "GlobalAveragePool":
        axes, keep = list(range(2, len(shp))), 1
    else:
        axes = lw.reduce_axes(a, n.ins, len(shp))
        keep = a.get("keepdims", 1)
    kshape = tuple(1 if i in axes else d for i, d in enumerate(shp))
    src = lw.nodes.get(x)
    if (op == "ReduceMean" and src is not None and src.op == "pow"
            and src.attrs["n"] == 2 and lw.onnx_uses.get(x, 0) == 1):
        # tract: Square -> Sum -> Mul(1/n) is Reduce<MeanOfSquares>
        cur = lw.new("meanofsquares", [src.inputs[0]], kshape, op, axes=tuple(axes))
        src.op = "dead"
    else:
        cur = lw.new("sum", [x], kshape, op, axes=tuple(axes))
    if op != "ReduceSum" and lw.nodes[cur].op == "sum":
        cnt = int(np.prod([shp[i] for i in axes]))
        tmp = f"__mean_{lw.counter}"
        recip = np.float32(1.0) / np.float32(cnt)
        lw.mul_const(cur, np.array(recip, dtype=np.float32), tmp, op)
        cur = tmp
    if keep:
        lw.alias[n.out] = cur
    else:
        oshape = tuple(d for i, d in enumerate(shp) if i not in axes)
        lw.new("reshape", [cur], oshape, op, name=n.out)


def _out_shape(step, args) -> tuple[int, ...]:
    return (batch_of(args), *step.node.shape)


@ezkl_op("reducemax", scale=keep_scale)
def run_reducemax(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    return reduce_max(be, args[0], batched_axes(step.node.attrs["axes"]), _out_shape(step, args))


@ezkl_op("sum", scale=keep_scale)
def run_sum(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    return reduce_sum(be, args[0], batched_axes(step.node.attrs["axes"]), _out_shape(step, args))


def _meanofsquares_scale(c: ScaleCtx) -> int:
    return 2 * c.scales[0]


@ezkl_op("meanofsquares", scale=_meanofsquares_scale)
def run_meanofsquares(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    """``layouts.rs::mean_of_squares_axes``: ``sum(x^2) / n``, rounded."""
    x = args[0]
    axes = batched_axes(step.node.attrs["axes"])
    y = reduce_sum(be, be.int_mul(x, x), axes, _out_shape(step, args))
    return be.div_round(y, int(np.prod([x.shape[i] for i in axes])))
