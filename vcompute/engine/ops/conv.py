"""Conv -> EZKL's CONV (2-D, constant kernel and bias; EZKL rejects dilations).

A BatchNormalization or per-channel Mul/Add/Sub right after a conv is folded into it by tract's
absorption rule, which lives with the other generic rules in :mod:`..graph`
(``Lowerer.fold_into_conv``). Batched, the samples' images run as one conv.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..ir import UnsupportedOpError
from ._batch import images
from .registry import OnnxNode, ScaleCtx, ezkl_op, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step


@lowers("Conv")
def lower_conv(lw: Lowerer, n: OnnxNode) -> None:
    a, ins, x = n.attrs, n.ins, n.x
    if ins[1] not in lw.consts:
        raise UnsupportedOpError("Conv", "kernel must be a constant")
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise UnsupportedOpError("Conv", "non-unit dilations (EZKL rejects them)")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedOpError("Conv", "auto_pad")
    w = lw.consts[ins[1]]
    if w.ndim != 4:
        raise UnsupportedOpError("Conv", "only 2-D convolution")
    if len(ins) > 2 and ins[2] and ins[2] not in lw.consts:
        raise UnsupportedOpError("Conv", "bias must be a constant")
    s = list(a.get("strides", [1, 1]))
    p = list(a.get("pads", [0, 0, 0, 0]))
    g = a.get("group", 1)
    n_, c_, h, w_ = lw.shapes[x]
    oh = (h + p[0] + p[2] - w.shape[2]) // s[0] + 1
    ow = (w_ + p[1] + p[3] - w.shape[3]) // s[1] + 1
    inputs = [x, lw.const(w, "conv_w")]
    if len(ins) > 2 and ins[2]:
        inputs.append(lw.const(lw.consts[ins[2]], "conv_b"))
    lw.new("conv", inputs, (n_, w.shape[0], oh, ow), "Conv", name=n.out,
           stride=tuple(s), pads=((p[0], p[2]), (p[1], p[3])), group=g)


def _bias_at_product_scale(node, in_scales, is_const, requant) -> None:
    """``replace_const`` in the Conv arm: the bias is re-quantized at input + kernel scale."""
    if len(node.inputs) != 3:
        return
    if not is_const[2]:
        raise UnsupportedOpError("Conv", "non-constant bias")
    want = in_scales[0] + in_scales[1]
    if in_scales[2] != want:
        requant(node.inputs[2], want)
        in_scales[2] = want


def _conv_scale(c: ScaleCtx) -> int:
    return c.scales[0] + c.scales[1]


@ezkl_op("conv", scale=_conv_scale, prepare=_bias_at_product_scale)
def run_conv(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    node = step.node
    x = args[0]
    (t, b), (l, r) = node.attrs["pads"]
    bias = args[2][0] if len(args) > 2 else None
    y = be.int_conv2d(images(x), args[1][0], bias, node.attrs["stride"], (t, l, b, r), (1, 1),
                      node.attrs["group"])
    return y.reshape(x.shape[0], *node.shape)
