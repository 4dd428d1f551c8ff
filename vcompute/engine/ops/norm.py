"""BatchNormalization, LayerNormalization, InstanceNormalization: no EZKL op of their own, tract
expands them.

* BatchNormalization: ``x * slope + inter`` in f32 (``onnx/src/ops/nn/batch_norm.rs``), folded
  into a preceding conv when tract's absorption rule applies (``Lowerer.fold_into_conv``).
* LayerNormalization (``onnx/src/ops/nn/layer_norm.rs``, after decluttering): mean,
  ``d = x - mean``, MeanOfSquares(d), + eps, Rsqrt, ``d * rsqrt``, * scale (dropped if all ones),
  + bias (dropped if all zeros).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ir import UnsupportedOpError
from .registry import OnnxNode, lowers

if TYPE_CHECKING:
    from ..graph import Lowerer


@lowers("BatchNormalization")
def lower_batchnorm(lw: Lowerer, n: OnnxNode) -> None:
    a, ins, x, out = n.attrs, n.ins, n.x, n.out
    if not all(i in lw.consts for i in ins[1:5]):
        raise UnsupportedOpError("BatchNormalization", "non-constant parameters")
    eps = np.float32(a.get("epsilon", 1e-5))
    scale, beta, mean, var = (lw.consts[i].astype(np.float32) for i in ins[1:5])
    den = np.sqrt(var + eps)
    slope = scale / den
    inter = beta - (mean * scale) / den
    shp = lw.shapes[x]
    cshape = [1] * len(shp)
    cshape[1] = shp[1]
    tmp = f"__bn_mul_{lw.counter}"
    # tract wires Mul(slope) then Add(inter); a preceding Conv absorbs both.
    if lw.fold_into_conv(x, "Mul", slope.reshape(cshape), tmp):
        lw.onnx_uses[x] = 1  # the Add below
        lw.fold_into_conv(x, "Add", inter.reshape(cshape), out)
        return
    lw.new("mult", [x, lw.const(slope.reshape(cshape), "bn_slope")], shp, "BatchNormalization",
           name=tmp)
    lw.new("add", [tmp, lw.const(inter.reshape(cshape), "bn_inter")], shp, "BatchNormalization",
           name=out)


@lowers("LayerNormalization")
def lower_layernorm(lw: Lowerer, n: OnnxNode) -> None:
    a, ins, x = n.attrs, n.ins, n.x
    if not all(i in lw.consts for i in ins[1:] if i):
        raise UnsupportedOpError("LayerNormalization", "non-constant scale/bias")
    shp = lw.shapes[x]
    axis = a.get("axis", -1) % len(shp)
    gamma = lw.consts[ins[1]].astype(np.float32)
    beta = lw.consts[ins[2]].astype(np.float32) if len(ins) > 2 and ins[2] else None
    _normalize(lw, x, tuple(range(axis, len(shp))), gamma, beta, a.get("epsilon", 1e-5), n.out,
               "LayerNormalization")


@lowers("InstanceNormalization")
def lower_instancenorm(lw: Lowerer, n: OnnxNode) -> None:
    """tract's expansion (``onnx/src/ops/nn/instance_norm.rs``): the statistics run over every
    axis but 1 -- **the N axis included**, so with N > 1 the samples' statistics mix (ONNX keeps
    them apart); then the same ops as LayerNormalization, scale and bias per channel."""
    a, ins, x = n.attrs, n.ins, n.x
    if not all(i in lw.consts for i in ins[1:3]):
        raise UnsupportedOpError("InstanceNormalization", "non-constant scale/bias")
    shp = lw.shapes[x]
    cshape = (shp[1], *([1] * (len(shp) - 2)))
    gamma = lw.consts[ins[1]].astype(np.float32).reshape(cshape)
    beta = lw.consts[ins[2]].astype(np.float32).reshape(cshape)
    axes = tuple(i for i in range(len(shp)) if i != 1)
    _normalize(lw, x, axes, gamma, beta, a.get("epsilon", 1e-5), n.out, "InstanceNormalization")


def _normalize(lw, x: str, axes: tuple[int, ...], gamma: np.ndarray, beta: np.ndarray | None,
               eps: float, out: str, op: str) -> None:
    """tract's normalization chain: mean (Sum, Mul(1/n)), ``d = x - mean``, MeanOfSquares(d),
    + eps, Rsqrt, ``d * rsqrt``, * gamma (dropped if all ones), + beta (dropped if all zeros)."""
    shp = lw.shapes[x]
    kshape = tuple(1 if i in axes else d for i, d in enumerate(shp))
    cnt = int(np.prod([shp[i] for i in axes]))
    ssum = lw.new("sum", [x], kshape, op, axes=axes)
    mean = f"__norm_mean_{lw.counter}"
    lw.mul_const(ssum, np.float32(1.0) / np.float32(cnt), mean, op)
    d = lw.new("sub", [x, mean], shp, op)
    var = lw.new("meanofsquares", [d], kshape, op, axes=axes)
    eps_c = lw.const(np.array(np.float32(eps)), "norm_eps")
    ve = lw.new("add", [var, eps_c], kshape, op)
    inv = lw.new("rsqrt", [ve], kshape, op)
    cur = lw.new("mult", [d, inv], shp, op)
    if not np.all(gamma == 1.0):
        tmp = f"__norm_scaled_{lw.counter}"
        lw.mul_const(cur, gamma, tmp, op)
        cur = tmp
    if beta is not None and not np.all(beta == 0.0):
        cur = lw.new("add", [cur, lw.const(beta, "norm_beta")], shp, op)
    lw.alias[out] = cur
