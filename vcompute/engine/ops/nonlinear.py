"""Element-wise nonlinearities EZKL evaluates as lookup tables (``src/circuit/ops/lookup.rs``):
Sigmoid, Tanh, Exp, Log, Erf, ... -> LOOKUP; Sqrt -> SQRT; Reciprocal -> RECIP, or RSQRT when
it takes a single-use Sqrt (tract's ``declutter_recip``).

The output keeps the input scale (RECIP/RSQRT: ``max(s, input_scale, param_scale)``); the
integers come from host-built f64 tables (:mod:`._tables`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ._tables import apply_table
from .registry import OnnxNode, ScaleCtx, ezkl_op, keep_scale, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step

# ONNX element-wise ops that EZKL evaluates as a lookup table, and EZKL's name for the function
LOOKUP_OPS = {
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Exp": "exp",
    "Log": "ln",
    "Sin": "sin",
    "Cos": "cos",
    "Tan": "tan",
    "Asin": "asin",
    "Acos": "acos",
    "Atan": "atan",
    "Sinh": "sinh",
    "Cosh": "cosh",
    "Asinh": "asinh",
    "Acosh": "acosh",
    "Atanh": "atanh",
    "Erf": "erf",
    "HardSwish": "hardswish",
}


@lowers(*LOOKUP_OPS)
def lower_lookup(lw: Lowerer, n: OnnxNode) -> None:
    lw.new("lookup", [n.x], lw.shapes[n.x], n.op, name=n.out, fn=LOOKUP_OPS[n.op])


@lowers("Sqrt")
def lower_sqrt(lw: Lowerer, n: OnnxNode) -> None:
    lw.new("sqrt", [n.x], lw.shapes[n.x], n.op, name=n.out)


@lowers("Reciprocal")
def lower_reciprocal(lw: Lowerer, n: OnnxNode) -> None:
    lower_recip(lw, n.x, n.out)


def lower_recip(lw: Lowerer, x: str, out: str) -> None:
    """``1/x``: EZKL's ``RECIP``, or ``RSQRT`` when ``x`` is a single-use ``Sqrt``
    (tract's ``declutter_recip``). Also used by ``Div(x, y)``."""
    src = lw.nodes.get(x)
    if src is not None and src.op == "sqrt" and lw.onnx_uses.get(x, 0) == 1:
        src.op = "dead"
        lw.new("rsqrt", [src.inputs[0]], lw.shapes[x], "Reciprocal", name=out)
    else:
        lw.new("recip", [x], lw.shapes[x], "Reciprocal", name=out)


def _table_scale(c: ScaleCtx) -> int:
    """LOOKUP, SQRT: the input scale; the table evaluates ``f`` at multiplier ``2^s``."""
    c.extra["mult"] = 2.0 ** c.scales[0]
    return keep_scale(c)


def _recip_scale(c: ScaleCtx) -> int:
    """RECIP/RSQRT (``layouts.rs::recip``): output at ``max(s, input_scale, param_scale)``."""
    s = c.scales[0]
    out_s = max(max(c.input_scale, c.param_scale), s)
    c.extra["in_mult"] = float(np.float32(2.0 ** s))
    c.extra["out_mult"] = float(np.float32(2.0 ** out_s))
    c.extra["eps"] = float(c.run_args.get("epsilon") or 2.220446049250313e-16)
    return out_s


@ezkl_op("lookup", "sqrt", scale=_table_scale)
def run_lookup(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    node = step.node
    fn = node.attrs["fn"] if node.op == "lookup" else node.op
    return apply_table(be, args[0], fn, step.extra, node.attrs.get("a"))


@ezkl_op("recip", "rsqrt", scale=_recip_scale)
def run_recip(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    return apply_table(be, args[0], step.node.op, step.extra)
