"""Add, Sub, Mul, Div, Pow, Abs, Neg -> EZKL's ADD, SUB, MULT, POW, IDENTITY (scale bump), ABS, NEG.

tract's rewrites decide the EZKL ops: ``Div(x, c)`` is ``Mul(x, 1f32/c)``; ``Mul`` by a scalar
``c < 1`` with ``1/c`` a power of two is an IDENTITY that raises the scale
(``Lowerer.mul_const``); ``x * x`` is ``Square`` (POW 2); ``Div(x, y)`` is ``x * Recip(y)``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..ir import UnsupportedOpError
from ._batch import aligned
from .nonlinear import lower_recip
from .registry import OnnxNode, ScaleCtx, ezkl_op, keep_scale, lowers, sum_scales

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step


@lowers("Add", "Sub", "Mul", "Div")
def lower_arith(lw: Lowerer, n: OnnxNode) -> None:
    op, ins, out = n.op, n.ins, n.out
    c0, c1 = ins[0] in lw.consts, ins[1] in lw.consts
    if c0 and c1:
        raise UnsupportedOpError(op, "both inputs constant")
    if op == "Div":
        if c0:
            raise UnsupportedOpError("Div", "constant divided by a tensor")
        if not c1:
            # tract: x / y -> x * recip(y); recip(sqrt(z)) -> rsqrt(z)
            r = f"__recip_{lw.counter}"
            lower_recip(lw, lw.ref(ins[1]), r)
            a_ = lw.ref(ins[0])
            lw.new("mult", [a_, r], np.broadcast_shapes(lw.shapes[a_], lw.shapes[r]), "Div",
                   name=out)
            return
        recip = np.float32(1.0) / lw.consts[ins[1]].astype(np.float32)
        lw.mul_const(lw.ref(ins[0]), recip, out, "Div")
        return
    if (c0 or c1) and op in ("Add", "Sub", "Mul"):
        xv = lw.ref(ins[1] if c0 else ins[0])
        if lw.fold_into_conv(xv, op, lw.consts[ins[0] if c0 else ins[1]], out, conv_on_left=c1):
            return
    if op == "Mul":
        if c0 or c1:
            xv = lw.ref(ins[1] if c0 else ins[0])
            lw.mul_const(xv, lw.consts[ins[0] if c0 else ins[1]], out, "Mul")
            return
        a_, b_ = lw.ref(ins[0]), lw.ref(ins[1])
        shp = np.broadcast_shapes(lw.shapes[a_], lw.shapes[b_])
        if a_ == b_:
            lw.new("pow", [a_], shp, "Mul", name=out, n=2)
        else:
            lw.new("mult", [a_, b_], shp, "Mul", name=out)
        return
    a_ = lw.input_ref(ins[0], op.lower())
    b_ = lw.input_ref(ins[1], op.lower())
    shp = np.broadcast_shapes(lw.shapes[a_], lw.shapes[b_])
    lw.new(op.lower(), [a_, b_], shp, op, name=out)


@lowers("Pow")
def lower_pow(lw: Lowerer, n: OnnxNode) -> None:
    """EZKL's "Pow" arm, after tract's ``declutter_pow``: a constant base is an exp lookup with
    that base; a constant scalar exponent 0.5 is SQRT, 1 nothing, an integer ``e`` POW(e) --
    with ``e as u32``, so ``e <= 0`` is POW(0): **the input unchanged, at scale 0**; any other
    exponent a pow lookup. A tensor exponent is refused."""
    ins, out = n.ins, n.out
    if ins[0] in lw.consts and ins[1] not in lw.consts:
        base = lw.consts[ins[0]]
        if base.size != 1:
            raise UnsupportedOpError("Pow", "non-scalar constant base")
        b = float(np.float32(base.reshape(-1)[0]))
        x = lw.ref(ins[1])
        lw.new("lookup", [x], lw.shapes[x], "Pow", name=out, fn="exp_base", a=b)
        return
    if ins[1] not in lw.consts:
        raise UnsupportedOpError("Pow", "non-constant exponent (EZKL refuses it)")
    ev = np.asarray(lw.consts[ins[1]], dtype=np.float32)
    x = n.x
    if ev.size != 1 and (np.any(ev != ev.reshape(-1)[0])
                         or np.broadcast_shapes(lw.shapes[x], ev.shape) != lw.shapes[x]):
        # a uniform tensor is tract's scalar; anything else: "we only support scalar powers"
        raise UnsupportedOpError("Pow", "non-scalar exponent (EZKL supports scalar powers only)")
    e = float(ev.reshape(-1)[0])
    if e == 0.5:
        lw.new("sqrt", [x], lw.shapes[x], "Pow", name=out)
    elif e == 1.0:
        lw.alias[out] = x
    elif e == math.floor(e):
        lw.new("pow", [x], lw.shapes[x], "Pow", name=out, n=max(int(e), 0))
    else:
        lw.new("lookup", [x], lw.shapes[x], "Pow", name=out, fn="pow", a=e)


@lowers("Abs", "Neg")
def lower_abs_neg(lw: Lowerer, n: OnnxNode) -> None:
    lw.new(n.op.lower(), [n.x], lw.shapes[n.x], n.op, name=n.out)


@ezkl_op("add", "sub", scale=keep_scale, homogenous=True)
def run_add_sub(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    a, b = aligned(args, step.node.shape)
    f = be.int_add if step.node.op == "add" else be.int_sub
    return f(a, b, step.in_shifts[0], step.in_shifts[1])


@ezkl_op("mult", scale=sum_scales)
def run_mult(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    a, b = aligned(args, step.node.shape)
    return be.int_mul(a, b)


def _pow_scale(c: ScaleCtx) -> int:
    return c.scales[0] * c.node.attrs["n"]


@ezkl_op("pow", scale=_pow_scale)
def run_pow(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    x = args[0]
    y = x  # POW(0) (an exponent <= 0 cast to u32) lays out the input unchanged
    for _ in range(step.node.attrs["n"] - 1):
        y = be.int_mul(y, x)
    return y


def _identity_scale(c: ScaleCtx) -> int:
    return c.scales[0] + c.node.attrs["log2"]


@ezkl_op("identity", scale=_identity_scale, rebased=False)
def run_identity(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    """Multiplying by ``2^-k`` only raises the scale: the integers do not change."""
    return args[0]


@ezkl_op("abs", scale=keep_scale)
def run_abs(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    """``|x| = 2 relu(x) - x``."""
    r = be.relu(args[0])
    return be.int_sub(r, args[0], 1, 0)


@ezkl_op("neg", scale=keep_scale)
def run_neg(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    return be.int_sub(torch.zeros_like(args[0]), args[0])
