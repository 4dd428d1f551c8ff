"""Activations tract expands into basic ops before EZKL sees them (``hir/src/ops/activations.rs``,
``onnx/src/ops/nn/mod.rs``, ``hir/src/ops/nn/layer_max.rs``): PRelu, Elu, Selu, Celu, Softplus,
Softsign, HardSigmoid, ThresholdedRelu, Shrink, LogSoftmax.

Each lowers to the EZKL ops of tract's expansion (comparisons, IFF, lookups, MULT/IDENTITY for a
constant factor, ADD/SUB, MIN, ReLU), so the scales and roundings follow from those ops' own rules
(docs/ezkl-semantics.md). Where the expansion differs from ONNX it is reproduced:

* PRelu: ``iff(0 > x, x * slope, x)``; Elu: ``iff(0 < x, x, alpha * (exp(x) - 1))`` (no Mul
  when alpha = 1); Selu: ``gamma * iff(0 < x, x, exp(x) * alpha - alpha)``;
* Celu: ``relu(x) + min(0, exp(x / alpha) - 1)`` -- **tract drops ONNX's final ``* alpha``**;
* Softplus: ``ln(exp(x) + 1)``; Softsign: ``x * recip(|x| + 1)``;
* HardSigmoid: ``max(0, min(1, alpha * x + beta))``; ThresholdedRelu: ``iff(alpha < x, x, 0)``;
  Shrink: ``iff(-lambd > x, x + bias, iff(lambd < x, x - bias, 0))`` (one bias constant used
  twice, so it is not re-quantized);
* LogSoftmax: ``ln(softmax(x))`` (a zero softmax entry gives ln(0) = i128::MIN in EZKL's
  witness: refused).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ir import UnsupportedOpError
from .registry import OnnxNode, lowers

if TYPE_CHECKING:
    from ..graph import Lowerer


def _c(lw, v, hint: str) -> str:
    """A scalar f32 constant node."""
    return lw.const(np.array(np.float32(v)), hint)


def _fresh(lw, hint: str) -> str:
    return f"__{hint}_{lw.counter}_{len(lw.nodes)}"


def _mul(lw, x: str, c, op: str, out: str | None = None) -> str:
    """``x * c`` for a constant ``c`` as EZKL maps it (IDENTITY scale bump or MULT)."""
    out = out or _fresh(lw, "mul")
    lw.mul_const(x, np.asarray(c, dtype=np.float32), out, op)
    return out


@lowers("PRelu")
def lower_prelu(lw: Lowerer, n: OnnxNode) -> None:
    x, shp = n.x, lw.shapes[n.x]
    slope = lw.consts.get(n.ins[1])
    if slope is None:
        raise UnsupportedOpError("PRelu", "non-constant slope")
    m = lw.new("greater", [_c(lw, 0.0, "zero"), x], shp, "PRelu")
    xs = _mul(lw, x, slope, "PRelu")
    lw.new("iff", [m, xs, x], np.broadcast_shapes(shp, lw.shapes[xs]), "PRelu", name=n.out)


def _exp_minus_one(lw, x: str, op: str) -> str:
    e = lw.new("lookup", [x], lw.shapes[x], op, fn="exp")
    return lw.new("sub", [e, _c(lw, 1.0, "one")], lw.shapes[x], op)


@lowers("Elu")
def lower_elu(lw: Lowerer, n: OnnxNode) -> None:
    x, shp = n.x, lw.shapes[n.x]
    alpha = np.float32(n.attrs.get("alpha", 1.0))
    m = lw.new("less", [_c(lw, 0.0, "zero"), x], shp, "Elu")
    t = _exp_minus_one(lw, x, "Elu")
    if alpha != 1.0:
        t = _mul(lw, t, alpha, "Elu")
    lw.new("iff", [m, x, t], shp, "Elu", name=n.out)


@lowers("Selu")
def lower_selu(lw: Lowerer, n: OnnxNode) -> None:
    x, shp = n.x, lw.shapes[n.x]
    alpha = np.float32(n.attrs.get("alpha", 1.67326319217681884765625))
    gamma = np.float32(n.attrs.get("gamma", 1.05070102214813232421875))
    m = lw.new("less", [_c(lw, 0.0, "zero"), x], shp, "Selu")
    e = lw.new("lookup", [x], shp, "Selu", fn="exp")
    ea = _mul(lw, e, alpha, "Selu")
    t = lw.new("sub", [ea, _c(lw, alpha, "alpha")], shp, "Selu")
    y = lw.new("iff", [m, x, t], shp, "Selu")
    _mul(lw, y, gamma, "Selu", out=n.out)


@lowers("Celu")
def lower_celu(lw: Lowerer, n: OnnxNode) -> None:
    x, shp = n.x, lw.shapes[n.x]
    alpha = np.float32(n.attrs.get("alpha", 1.0))
    xa = x if alpha == 1.0 else _mul(lw, x, np.float32(1.0) / alpha, "Celu")
    t = _exp_minus_one(lw, xa, "Celu")
    neg = lw.new("min", [t, _c(lw, 0.0, "zero")], shp, "Celu")
    pos = lw.new("relu", [x], shp, "Celu")
    lw.new("add", [pos, neg], shp, "Celu", name=n.out)


@lowers("Softplus")
def lower_softplus(lw: Lowerer, n: OnnxNode) -> None:
    x, shp = n.x, lw.shapes[n.x]
    e = lw.new("lookup", [x], shp, "Softplus", fn="exp")
    e1 = lw.new("add", [e, _c(lw, 1.0, "one")], shp, "Softplus")
    lw.new("lookup", [e1], shp, "Softplus", name=n.out, fn="ln")


@lowers("Softsign")
def lower_softsign(lw: Lowerer, n: OnnxNode) -> None:
    x, shp = n.x, lw.shapes[n.x]
    a = lw.new("abs", [x], shp, "Softsign")
    a1 = lw.new("add", [a, _c(lw, 1.0, "one")], shp, "Softsign")
    r = lw.new("recip", [a1], shp, "Softsign")
    lw.new("mult", [x, r], shp, "Softsign", name=n.out)


@lowers("HardSigmoid")
def lower_hardsigmoid(lw: Lowerer, n: OnnxNode) -> None:
    x, shp = n.x, lw.shapes[n.x]
    alpha = np.float32(n.attrs.get("alpha", 0.2))
    beta = np.float32(n.attrs.get("beta", 0.5))
    ax = _mul(lw, x, alpha, "HardSigmoid")
    t = lw.new("add", [ax, _c(lw, beta, "beta")], shp, "HardSigmoid")
    t = lw.new("min", [t, _c(lw, 1.0, "one")], shp, "HardSigmoid")
    lw.new("relu", [t], shp, "HardSigmoid", name=n.out)


@lowers("ThresholdedRelu")
def lower_thresholded_relu(lw: Lowerer, n: OnnxNode) -> None:
    x, shp = n.x, lw.shapes[n.x]
    alpha = np.float32(n.attrs.get("alpha", 1.0))
    m = lw.new("less", [_c(lw, alpha, "alpha"), x], shp, "ThresholdedRelu")
    lw.new("iff", [m, x, _c(lw, 0.0, "zero")], shp, "ThresholdedRelu", name=n.out)


@lowers("Shrink")
def lower_shrink(lw: Lowerer, n: OnnxNode) -> None:
    x, shp = n.x, lw.shapes[n.x]
    lam = np.float32(n.attrs.get("lambd", 0.5))
    bias = _c(lw, n.attrs.get("bias", 0.0), "bias")  # one constant, used twice
    op = "Shrink"
    lo = lw.new("greater", [_c(lw, -lam, "neg_lambd"), x], shp, op)
    hi = lw.new("less", [_c(lw, lam, "lambd"), x], shp, op)
    xp = lw.new("add", [x, bias], shp, op)
    xm = lw.new("sub", [x, bias], shp, op)
    inner = lw.new("iff", [hi, xm, _c(lw, 0.0, "zero")], shp, op)
    lw.new("iff", [lo, xp, inner], shp, op, name=n.out)


@lowers("LogSoftmax")
def lower_logsoftmax(lw: Lowerer, n: OnnxNode) -> None:
    x, shp = n.x, lw.shapes[n.x]
    ax = n.attrs.get("axis", -1) % len(shp)
    sm = lw.new("softmax", [x], shp, "LogSoftmax", axis=ax)
    lw.new("lookup", [sm], shp, "LogSoftmax", name=n.out, fn="ln")
