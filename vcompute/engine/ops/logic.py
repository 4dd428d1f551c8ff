"""Cast, comparisons, Where, And/Or/Not/Xor -> EZKL's FLOOR (Cast to an integer type), GREATER,
GREATER_EQUAL, LESS, LESS_EQUAL, EQUALS, IFF, AND, OR, NOT, XOR.

* ``Cast`` to a float type is no op; to an integer type or bool it is ``HybridOp::Floor`` at the
  input's scale: ``floor(x / 2^s) * 2^s`` -- floor, not ONNX's truncation, and the result stays
  at scale ``s`` (so ``Cast(x -> bool)`` is not 0/1). At scale 0 it is no op.
* Comparisons need equal input scales, output 0/1 at scale 0 -- except ``Equal``, whose output
  scale is its input scale (``Equals`` is missing from the 0-scale list of
  ``HybridOp::out_scale``): the 0/1 integers are *labelled* scale s.
* ``Where(m, a, b)``: ``a`` and ``b`` at a common scale, output at that scale; ``m`` must be 0/1.
* Logic ops: operands must be 0/1, output at scale 0.

EZKL decomposes the difference of every ordering comparison: ``|a - b|`` beyond
``decomp_base^legs - 1`` makes its witness generation fail (refused here too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
import torch

from ..ir import UnsupportedOpError
from ._batch import aligned, batch_of
from ._ezkl import check_bool, check_range, decomp_limit
from .registry import OnnxNode, ScaleCtx, ezkl_op, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step

_FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
           onnx.TensorProto.BFLOAT16)

# ONNX comparison -> EZKL op (tract's Comp::{GT, LT, GTE, LTE, Eq})
COMPARISONS = {"Greater": "greater", "Less": "less", "GreaterOrEqual": "greater_equal",
               "LessOrEqual": "less_equal", "Equal": "equals"}


@lowers("Cast", check_inputs=False)
def lower_cast(lw: Lowerer, n: OnnxNode) -> None:
    if n.ins[0] not in lw.consts and lw.ref(n.ins[0]) not in lw.nodes:
        raise UnsupportedOpError("Cast", "input not produced by a supported op")
    x = lw.ref(n.ins[0])
    if n.attrs.get("to") in _FLOATS:
        lw.alias[n.out] = x
        return
    # to an integer type or bool: HybridOp::Floor at the input's scale (identity at scale 0)
    lw.new("floor", [x], lw.shapes[x], "Cast", name=n.out)


@lowers(*COMPARISONS)
def lower_compare(lw: Lowerer, n: OnnxNode) -> None:
    if all(i in lw.consts for i in n.ins):
        raise UnsupportedOpError(n.op, "both inputs constant")
    a = lw.input_ref(n.ins[0], "cmp")
    b = lw.input_ref(n.ins[1], "cmp")
    lw.new(COMPARISONS[n.op], [a, b], np.broadcast_shapes(lw.shapes[a], lw.shapes[b]), n.op,
           name=n.out)


@lowers("Where")
def lower_where(lw: Lowerer, n: OnnxNode) -> None:
    if n.ins[0] in lw.consts:
        raise UnsupportedOpError("Where", "constant mask")
    ins = [lw.input_ref(i, "where") for i in n.ins]
    shape = np.broadcast_shapes(*(lw.shapes[i] for i in ins))
    lw.new("iff", ins, shape, "Where", name=n.out)


@lowers("And", "Or", "Xor", "Not")
def lower_logic(lw: Lowerer, n: OnnxNode) -> None:
    ins = [lw.input_ref(i, "logic") for i in n.ins]
    shape = np.broadcast_shapes(*(lw.shapes[i] for i in ins))
    lw.new(n.op.lower(), ins, shape, n.op, name=n.out)


def _zero_scale(c: ScaleCtx) -> int:
    if c.node.op not in ("equals", "and", "or", "xor", "not"):
        c.extra["limit"] = decomp_limit(c.run_args)
    return 0


def _equals_scale(c: ScaleCtx) -> int:
    return c.scales[0]


def _shifted(be, step, args):
    """The operands at their common scale, aligned to the node's rank."""
    return [t if s == 0 else be.int_mul(t, torch.ones(1, dtype=torch.int64, device=t.device), s, 0)
            for t, s in zip(aligned(args, step.node.shape), step.in_shifts)]


@ezkl_op("greater", "less", "greater_equal", "less_equal", scale=_zero_scale, homogenous=True)
def run_compare(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    """``greater(a, b) = sign(a - b) == 1``; ``greater_equal(a, b) = greater(a + 1, b)``;
    ``less(a, b) = greater(b, a)``; ``less_equal(a, b) = greater_equal(b, a)``
    (``layouts.rs::greater`` ...): the difference is decomposed, hence range-checked."""
    a, b = _shifted(be, step, args)
    op = step.node.op
    if op.startswith("less"):
        a, b = b, a
    d = be.int_sub(a, b)
    if op.endswith("_equal"):
        d = d + 1
    check_range(d, step.extra["limit"], step.node.onnx_op, "the difference of a comparison")
    return (d > 0).to(torch.int64)


@ezkl_op("equals", scale=_equals_scale, homogenous=True)
def run_equals(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    a, b = _shifted(be, step, args)
    return (a == b).to(torch.int64)


def _iff_scale(c: ScaleCtx) -> int:
    """``PolyOp::Iff``: the scale of the (homogenized) first branch."""
    return c.scales[1]


@ezkl_op("iff", scale=_iff_scale, homogenous=(1, 2))
def run_iff(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    """``layouts.rs::iff``: ``a * mask + b * (1 - mask)`` with a 0/1 mask."""
    m, a, b = _shifted(be, step, args)
    check_bool(m, step.node.onnx_op, "the mask of Where")
    shape = (batch_of(args), *step.node.shape)
    return torch.where(m == 1, a, b).expand(shape).contiguous()


@ezkl_op("and", "or", "xor", "not", scale=_zero_scale)
def run_logic(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    """``and = a b``, ``or = iff(a, a, b)``, ``not = iff(a, 0, 1)``,
    ``xor = and(a, not b) + and(b, not a)`` on range-checked 0/1 operands."""
    xs = aligned(args, step.node.shape)
    for t in xs:
        check_bool(t, step.node.onnx_op, "an operand of a logic op")
    op = step.node.op
    if op == "not":
        y = 1 - xs[0]
    elif op == "and":
        y = xs[0] * xs[1]
    elif op == "or":
        y = torch.where(xs[0] == 1, xs[0], xs[1])
    else:
        y = xs[0] * (1 - xs[1]) + xs[1] * (1 - xs[0])
    return y.expand(batch_of(args), *step.node.shape).contiguous()
