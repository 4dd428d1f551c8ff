"""The op registry: how each ONNX op is lowered, and how each EZKL op is scaled and run.

Two tables, filled by the family modules of this package (``linear.py``, ``conv.py``, ...),
each of which registers, next to each other, the ONNX op types it lowers and the EZKL ops those
lowerings emit:

* :data:`LOWERINGS`, ONNX op type -> :class:`Lowering`: what ``new_op_from_onnx`` (after tract's
  declutter) makes of one ONNX node, emitted into the graph being built (:mod:`..graph`);
* :data:`EZKL_OPS`, EZKL op name -> :class:`EzklOp`: its output-scale rule (``out_scale`` in
  EZKL's ``poly.rs``/``hybrid.rs``/``lookup.rs``), whether it needs equal input scales, whether
  ``RebaseScale`` may wrap it, and its batched execution on an integer backend.

The generic machinery (constant folding, tract's absorption rules, the topological walk, scale
alignment and RebaseScale) stays in :mod:`..graph` and :mod:`..quantize`; they look ops up here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import onnx
import torch

from ..ir import Node, UnsupportedOpError

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step


@dataclass(frozen=True)
class OnnxNode:
    """One ONNX node as a lowering sees it."""

    proto: onnx.NodeProto
    op: str
    attrs: dict[str, Any]
    ins: list[str]
    out: str
    #: the first input's graph node (aliases resolved), None when it is a constant or absent
    x: str | None


@dataclass
class ScaleCtx:
    """What an output-scale rule sees; the rule may record parameters for execution in ``extra``."""

    node: Node
    #: input scales after alignment (``homogenize_input_scales``)
    scales: list[int]
    input_scale: int
    param_scale: int
    run_args: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


LowerFn = Callable[["Lowerer", OnnxNode], None]
ScaleRule = Callable[[ScaleCtx], int]
#: ``(backend, step, args) -> result``; every arg and the result carry a leading batch axis
#: (size B, or 1 for constants shared by all samples)
ExecFn = Callable[["Backend", "Step", list[torch.Tensor]], torch.Tensor]
#: ``(node, in_scales, is_const, requant)``: adjust input scales before the rule (conv bias)
PrepareFn = Callable[[Node, list[int], list[bool], Callable[[str, int], None]], None]


@dataclass(frozen=True)
class Lowering:
    fn: LowerFn
    #: False for pure aliases (Identity, Cast...) that run before the inputs are checked
    check_inputs: bool = True


@dataclass(frozen=True)
class EzklOp:
    name: str
    run: ExecFn
    scale: ScaleRule
    #: EZKL's ``requires_homogenous_input_scales``: True for all inputs (Add, Sub, Concat, Max,
    #: Min, comparisons), or the indices of the inputs concerned (Iff: (1, 2), Scatter: (0, 2))
    homogenous: bool | tuple[int, ...] = False
    #: False for ops RebaseScale never wraps (IDENTITY, and layout views tract absorbed)
    rebased: bool = True
    prepare: PrepareFn | None = None


LOWERINGS: dict[str, Lowering] = {}
EZKL_OPS: dict[str, EzklOp] = {}


def lowers(*op_types: str, check_inputs: bool = True) -> Callable[[LowerFn], LowerFn]:
    """Decorator: ``fn(lowerer, node)`` lowers the ONNX op types given."""

    def register(fn: LowerFn) -> LowerFn:
        for t in op_types:
            if t in LOWERINGS:
                raise ValueError(f"ONNX op {t} registered twice")
            LOWERINGS[t] = Lowering(fn, check_inputs)
        return fn

    return register


def ezkl_op(*names: str, scale: ScaleRule, homogenous: bool | tuple[int, ...] = False,
            rebased: bool = True,
            prepare: PrepareFn | None = None) -> Callable[[ExecFn], ExecFn]:
    """Decorator: ``fn(backend, step, args)`` executes the EZKL ops given, batched."""

    def register(fn: ExecFn) -> ExecFn:
        for n in names:
            if n in EZKL_OPS:
                raise ValueError(f"EZKL op {n} registered twice")
            EZKL_OPS[n] = EzklOp(n, fn, scale, homogenous, rebased, prepare)
        return fn

    return register


def lowering(op_type: str) -> Lowering | None:
    return LOWERINGS.get(op_type)


def ezkl(node: Node) -> EzklOp:
    """The registered EZKL op of a lowered node; UnsupportedOpError naming its ONNX op if none."""
    spec = EZKL_OPS.get(node.op)
    if spec is None:
        raise UnsupportedOpError(node.onnx_op or node.op)
    return spec


# -- output-scale rules shared by several families ------------------------------------------


def keep_scale(c: ScaleCtx) -> int:
    """Layout ops, pools, sums, ReLU, Max/Min, Add/Sub: the (aligned) input scale."""
    return c.scales[0]


def sum_scales(c: ScaleCtx) -> int:
    """Products (einsum, MULT): the input scales add up."""
    return sum(c.scales)
