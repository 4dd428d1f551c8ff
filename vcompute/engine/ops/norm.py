"""BatchNormalization and LayerNormalization: no EZKL op of their own, tract expands them.

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
    axes = tuple(range(axis, len(shp)))
    kshape = tuple(1 if i in axes else d for i, d in enumerate(shp))
    cnt = int(np.prod([shp[i] for i in axes]))
    op = "LayerNormalization"
    ssum = lw.new("sum", [x], kshape, op, axes=axes)
    mean = f"__ln_mean_{lw.counter}"
    lw.mul_const(ssum, np.float32(1.0) / np.float32(cnt), mean, op)
    d = lw.new("sub", [x, mean], shp, op)
    var = lw.new("meanofsquares", [d], kshape, op, axes=axes)
    eps = lw.const(np.array(np.float32(a.get("epsilon", 1e-5))), "ln_eps")
    ve = lw.new("add", [var, eps], kshape, op)
    inv = lw.new("rsqrt", [ve], kshape, op)
    cur = lw.new("mult", [d, inv], shp, op)
    gamma = lw.consts[ins[1]].astype(np.float32)
    if not np.all(gamma == 1.0):
        tmp = f"__ln_scaled_{lw.counter}"
        lw.mul_const(cur, gamma, tmp, op)
        cur = tmp
    if len(ins) > 2 and ins[2]:
        beta = lw.consts[ins[2]].astype(np.float32)
        if not np.all(beta == 0.0):
            cur = lw.new("add", [cur, lw.const(beta, "ln_beta")], shp, op)
    lw.alias[n.out] = cur
