"""ReduceMax, ReduceSum, ReduceMean, GlobalAveragePool, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
ReduceSumSquare, ReduceLogSumExp, ReduceLogSum -> EZKL's REDUCEMAX, REDUCEMIN, SUM, PROD,
MEANOFSQUARES and the element-wise ops tract expands the others into.

tract reduces with a Sum then multiplies by ``1f32/n`` for a mean (an IDENTITY scale bump when
``n`` is a power of two, else MULT: ``Lowerer.mul_const``), and turns Square -> Sum -> Mul(1/n)
into ``Reduce<MeanOfSquares>``. Batched, the reduction runs over the sample's own axes only.

tract's expansions (``onnx/src/ops/nn/reduce.rs``), each op with its own scale rule and rebase:
ReduceL1 = ABS, SUM; ReduceL2 = Square (POW 2, rebased: every square is rounded before the sum),
SUM, SQRT; ReduceSumSquare = POW 2, SUM; ReduceLogSumExp = EXP, SUM, LN -- **without** ONNX's
max subtraction; ReduceLogSum = SUM, LN. ReduceProd is ``PolyOp::Prod`` at scale ``s * n``
(``n`` reduced elements), then one rebase by ``2^(s (n - 1))``: EZKL refuses it when that divisor
passes the decomposition limit and some remainder is 0 (``_ezkl.check_rebase``).
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


# ONNX reduction -> the chain of EZKL ops (op, attrs) tract expands it into, before the reduction
# proper ("sum", "reducemin" or "prod") and after it
_EXPANDED = {
    "ReduceMin": ([], "reducemin", []),
    "ReduceProd": ([], "prod", []),
    "ReduceL1": ([("abs", {})], "sum", []),
    "ReduceL2": ([("pow", {"n": 2})], "sum", [("sqrt", {})]),
    "ReduceSumSquare": ([("pow", {"n": 2})], "sum", []),
    "ReduceLogSumExp": ([("lookup", {"fn": "exp"})], "sum", [("lookup", {"fn": "ln"})]),
    "ReduceLogSum": ([], "sum", [("lookup", {"fn": "ln"})]),
}


@lowers(*_EXPANDED)
def lower_reduce_expanded(lw: Lowerer, n: OnnxNode) -> None:
    x, op, a = n.x, n.op, n.attrs
    shp = lw.shapes[x]
    axes = lw.reduce_axes(a, n.ins, len(shp))
    kshape = tuple(1 if i in axes else d for i, d in enumerate(shp))
    before, red, after = _EXPANDED[op]
    cur = x
    for e, attrs in before:
        cur = lw.new(e, [cur], shp, op, **attrs)
    cur = lw.new(red, [cur], kshape, op, axes=tuple(axes),
                 n=int(np.prod([shp[i] for i in axes])))
    for e, attrs in after:
        cur = lw.new(e, [cur], kshape, op, **attrs)
    if a.get("keepdims", 1):
        lw.alias[n.out] = cur
    else:
        lw.new("reshape", [cur], tuple(d for i, d in enumerate(shp) if i not in axes), op,
               name=n.out)


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


@ezkl_op("reducemin", scale=keep_scale)
def run_reducemin(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    axes = batched_axes(step.node.attrs["axes"])
    return -reduce_max(be, -args[0], axes, _out_shape(step, args))


def _prod_scale(c: ScaleCtx) -> int:
    """``PolyOp::Prod``: the product of ``n`` values at scale s has scale ``s * n``."""
    return c.scales[0] * c.node.attrs["n"]


@ezkl_op("prod", scale=_prod_scale)
def run_prod(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    x = args[0]
    axes = batched_axes(step.node.attrs["axes"])
    keep = [i for i in range(x.dim()) if i not in axes]
    xt = x.permute(*keep, *axes).reshape(*[x.shape[i] for i in keep], -1)
    y = xt[..., 0]
    for j in range(1, xt.shape[-1]):
        y = be.int_mul(y, xt[..., j].contiguous())  # exact, or OverflowError
    return y.reshape(_out_shape(step, args))
