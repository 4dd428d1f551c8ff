"""Relu, LeakyRelu, Clip, Max, Min -> EZKL's LEAKYRELU (slope 0 is ReLU), MAX, MIN.

tract turns ``Relu`` and ``Max(x, 0)`` into a Max with 0, which EZKL maps to ReLU; ``Clip`` is
``Max(x, lo)`` then ``Min(., hi)`` (``utilities.rs``, "Max"/"Min").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..fixedpoint import quantize
from ..ir import UnsupportedOpError
from ._batch import aligned, batch_of, expand_to
from .registry import OnnxNode, ScaleCtx, ezkl_op, keep_scale, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step


@lowers("Relu")
def lower_relu(lw: Lowerer, n: OnnxNode) -> None:
    lw.new("relu", [n.x], lw.shapes[n.x], n.op, name=n.out)


@lowers("LeakyRelu")
def lower_leaky(lw: Lowerer, n: OnnxNode) -> None:
    lw.new("leaky", [n.x], lw.shapes[n.x], n.op, name=n.out,
           alpha=float(np.float32(n.attrs.get("alpha", 0.01))))


@lowers("Clip")
def lower_clip(lw: Lowerer, n: OnnxNode) -> None:
    ins, a, x, out = n.ins, n.attrs, n.x, n.out
    lo = ins[1] if len(ins) > 1 and ins[1] else None
    hi = ins[2] if len(ins) > 2 and ins[2] else None
    if "min" in a or "max" in a:  # opset < 11 attributes
        raise UnsupportedOpError("Clip", "attribute form (opset < 11)")
    if any(v is not None and v not in lw.consts for v in (lo, hi)):
        raise UnsupportedOpError("Clip", "non-constant bounds")
    cur = x
    if lo is not None:
        tmp = out if hi is None else f"__clip_lo_{lw.counter}"
        max_min_const(lw, "Max", cur, lw.consts[lo], tmp)
        cur = tmp
    if hi is not None:
        max_min_const(lw, "Min", cur, lw.consts[hi], out)
    if lo is None and hi is None:
        lw.alias[out] = x


@lowers("Max", "Min")
def lower_max_min(lw: Lowerer, n: OnnxNode) -> None:
    op, ins = n.op, n.ins
    if len(ins) != 2:
        raise UnsupportedOpError(op, "only two inputs")
    c0, c1 = ins[0] in lw.consts, ins[1] in lw.consts
    if c0 or c1:
        max_min_const(lw, op, lw.ref(ins[1] if c0 else ins[0]),
                      lw.consts[ins[0] if c0 else ins[1]], n.out)
    else:
        a_, b_ = lw.ref(ins[0]), lw.ref(ins[1])
        lw.new(op.lower(), [a_, b_], np.broadcast_shapes(lw.shapes[a_], lw.shapes[b_]), op,
               name=n.out)


def max_min_const(lw: Lowerer, op: str, x: str, c: np.ndarray, out: str) -> None:
    """``Max``/``Min`` of ``x`` and a constant (utilities.rs "Max": Max with a single 0 is a
    ReLU, i.e. ``LeakyReLU(slope=0)``)."""
    c32 = np.asarray(c, dtype=np.float32)
    if op == "Max" and c32.size == 1 and float(c32.reshape(-1)[0]) == 0.0:
        lw.new("relu", [x], lw.shapes[x], "Clip", name=out)
        return
    cn = lw.const(c32, op.lower())
    lw.new(op.lower(), [x, cn], np.broadcast_shapes(lw.shapes[x], c32.shape), op, name=out)


@ezkl_op("relu", scale=keep_scale)
def run_relu(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    return be.relu(args[0])


def _leaky_scale(c: ScaleCtx) -> int:
    """``x * 2^p`` if positive else ``x * round(alpha * 2^p)``: scale s + param_scale."""
    c.extra["alpha_q"] = int(quantize(np.array([c.node.attrs["alpha"]]), c.param_scale)[0])
    c.extra["shift"] = c.param_scale
    return c.scales[0] + c.param_scale


@ezkl_op("leaky", scale=_leaky_scale)
def run_leaky(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    x = args[0]
    pos = be.relu(x)
    neg = be.int_sub(x, pos)
    alpha = torch.tensor([step.extra["alpha_q"]], dtype=torch.int64, device=x.device)
    return be.int_add(pos, be.int_mul(neg, alpha), step.extra["shift"], 0)


@ezkl_op("max", "min", scale=keep_scale, homogenous=True)
def run_max_min(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    """``max(a, b) = b + relu(a - b)``, ``min(a, b) = a - relu(a - b)`` (at the common scale)."""
    sh = step.in_shifts
    a, b = aligned(args, step.node.shape)
    shape = (batch_of(args), *step.node.shape)
    d = be.relu(be.int_sub(a, b, sh[0], sh[1]))
    if step.node.op == "max":
        return be.int_add(expand_to(b, shape), d, sh[1], 0)
    return be.int_sub(expand_to(a, shape), d, sh[0], 0)
