"""Conv (1-D and 2-D, grouped), ConvTranspose -> EZKL's CONV, DECONV (constant kernel and bias).

A BatchNormalization or per-channel Mul/Add/Sub right after a group-1 conv is folded into it by
tract's absorption rule, which lives with the other generic rules in :mod:`..graph`
(``Lowerer.fold_into_conv``). Batched, the samples' images run as one conv.

EZKL refuses a Conv/ConvTranspose without a ``strides`` attribute (``extract_strides`` needs
tract's optional strides: ONNX's default of 1 is not applied) and dilations != 1.

ConvTranspose (``layouts.rs::deconv``): the input with ``stride - 1`` zeros inserted between
elements, zero-padded by ``k - 1`` on both sides, sliced ``[pad_begin : len - pad_end +
output_padding]``, convolved (stride 1) with the spatially flipped kernel whose in/out channels
are swapped per group, plus the bias at the product scale -- then rebased like a conv. EZKL's
zero insertion is wrong for strides >= 3 and its kernel reshaping for ``group > 1`` with as many
output as input channels: both refused. ``output_shape`` crops the full result to its first rows
and columns (tract's adjustments). All verified against EZKL witnesses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..ir import UnsupportedOpError
from ._batch import images
from .registry import OnnxNode, ScaleCtx, ezkl_op, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step


def _strides(op: str, a: dict, nsp: int) -> list[int]:
    if "strides" not in a:
        raise UnsupportedOpError(op, "no strides attribute (EZKL requires it: 'missing "
                                     "required params: stride')")
    s = list(a["strides"])
    if len(s) != nsp:
        raise UnsupportedOpError(op, "strides of the wrong length")
    return s


def _common(op: str, lw: Lowerer, n: OnnxNode) -> tuple[np.ndarray, int]:
    """The constant kernel and the number of spatial dims (1 or 2), checking what EZKL checks."""
    a, ins = n.attrs, n.ins
    if ins[1] not in lw.consts:
        raise UnsupportedOpError(op, "kernel must be a constant")
    if len(ins) > 2 and ins[2] and ins[2] not in lw.consts:
        raise UnsupportedOpError(op, "bias must be a constant")
    w = lw.consts[ins[1]]
    if w.ndim not in (3, 4):
        raise UnsupportedOpError(op, "only 1-D and 2-D convolution")
    if any(d != 1 for d in a.get("dilations", [1])):
        raise UnsupportedOpError(op, "non-unit dilations (EZKL rejects them)")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedOpError(op, "auto_pad")
    return w, w.ndim - 2


@lowers("Conv")
def lower_conv(lw: Lowerer, n: OnnxNode) -> None:
    a, ins, x = n.attrs, n.ins, n.x
    w, nsp = _common("Conv", lw, n)
    s = _strides("Conv", a, nsp)
    p = list(a.get("pads", [0] * (2 * nsp)))
    g = a.get("group", 1)
    shp = lw.shapes[x]
    osp = [(shp[2 + i] + p[i] + p[i + nsp] - w.shape[2 + i]) // s[i] + 1 for i in range(nsp)]
    inputs = [x, lw.const(w, "conv_w")]
    if len(ins) > 2 and ins[2]:
        inputs.append(lw.const(lw.consts[ins[2]], "conv_b"))
    if nsp == 1:  # a 1-D conv is a 2-D one over a unit height
        s, pads = [1, s[0]], ((0, 0), (p[0], p[1]))
    else:
        pads = ((p[0], p[2]), (p[1], p[3]))
    lw.new("conv", inputs, (shp[0], w.shape[0], *osp), "Conv", name=n.out,
           stride=tuple(s), pads=pads, group=g)


@lowers("ConvTranspose")
def lower_conv_transpose(lw: Lowerer, n: OnnxNode) -> None:
    a, ins, x = n.attrs, n.ins, n.x
    op = "ConvTranspose"
    w, nsp = _common(op, lw, n)
    if nsp != 2:
        raise UnsupportedOpError(op, "only 2-D (1-D not verified against EZKL)")
    s = _strides(op, a, nsp)
    if any(v >= 3 for v in s):
        raise UnsupportedOpError(op, "stride >= 3 (EZKL inserts one zero too many)")
    g = int(a.get("group", 1))
    cin, cout_g, kh, kw = w.shape
    cout = cout_g * g
    if g > 1 and cout == cin:
        raise UnsupportedOpError(op, "group > 1 with as many output as input channels (EZKL "
                                     "reshapes the kernel instead of transposing it)")
    shp = lw.shapes[x]
    k = (kh, kw)
    full = [(shp[2 + i] - 1) * s[i] + k[i] for i in range(2)]
    op_ = list(a.get("output_padding", [0, 0]))
    if "output_shape" in a:
        want = list(a["output_shape"])[-2:]
        if any(o > f for o, f in zip(want, full)) or any(op_):
            raise UnsupportedOpError(op, "output_shape beyond the full result")
        pads = [(0, f - o) for f, o in zip(full, want)]  # tract: crop to the first rows/cols
        op_ = [0, 0]
    else:
        p = list(a.get("pads", [0, 0, 0, 0]))
        pads = [(p[0], p[2]), (p[1], p[3])]
    if any(o > e for o, (_, e) in zip(op_, pads)):
        raise UnsupportedOpError(op, "output_padding beyond pad_end (not verified against EZKL)")
    # the conv EZKL runs: in/out channels swapped per group, kernel flipped spatially
    wf = np.asarray(w, dtype=np.float32).reshape(g, cin // g, cout_g, kh, kw)
    wf = wf.transpose(0, 2, 1, 3, 4).reshape(cout, cin // g, kh, kw)[:, :, ::-1, ::-1].copy()
    inputs = [x, lw.const(wf, "deconv_w")]
    if len(ins) > 2 and ins[2]:
        inputs.append(lw.const(lw.consts[ins[2]], "deconv_b"))
    osp = [full[i] - pads[i][0] - pads[i][1] + op_[i] for i in range(2)]
    lw.new("deconv", inputs, (shp[0], cout, *osp), op, name=n.out, stride=tuple(s),
           pads=tuple(pads), output_padding=tuple(op_), kernel=k, group=g)


def _bias_at_product_scale(node, in_scales, is_const, requant) -> None:
    """``replace_const`` in the Conv/Deconv arms: the bias is re-quantized at input + kernel
    scale."""
    if len(node.inputs) != 3:
        return
    if not is_const[2]:
        raise UnsupportedOpError(node.onnx_op or "Conv", "non-constant bias")
    want = in_scales[0] + in_scales[1]
    if in_scales[2] != want:
        requant(node.inputs[2], want)
        in_scales[2] = want


def _conv_scale(c: ScaleCtx) -> int:
    return c.scales[0] + c.scales[1]


def _kernel4(w: torch.Tensor) -> torch.Tensor:
    return w if w.dim() == 4 else w.unsqueeze(2)  # 1-D kernel (O, I, k) -> (O, I, 1, k)


@ezkl_op("conv", scale=_conv_scale, prepare=_bias_at_product_scale)
def run_conv(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    node = step.node
    x = args[0]
    (t, b), (l, r) = node.attrs["pads"]
    bias = args[2][0] if len(args) > 2 else None
    xi = images(x)
    if xi.dim() == 3:  # 1-D: (B*N, C, L) -> (B*N, C, 1, L)
        xi = xi.unsqueeze(2)
    y = be.int_conv2d(xi, _kernel4(args[1][0]), bias, node.attrs["stride"], (t, l, b, r), (1, 1),
                      node.attrs["group"])
    return y.reshape(x.shape[0], *node.shape)


@ezkl_op("deconv", scale=_conv_scale, prepare=_bias_at_product_scale)
def run_deconv(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    a = step.node.attrs
    x = images(args[0])
    nb, c, h, w = x.shape
    (sh, sw), (kh, kw) = a["stride"], a["kernel"]
    z = torch.zeros(nb, c, (h - 1) * sh + 1, (w - 1) * sw + 1, dtype=x.dtype, device=x.device)
    z[:, :, ::sh, ::sw] = x
    z = torch.nn.functional.pad(z, (kw - 1, kw - 1, kh - 1, kh - 1))
    (pt, pb), (pl, pr) = a["pads"]
    oh, ow = a["output_padding"]
    z = z[:, :, pt: z.shape[2] - pb + oh, pl: z.shape[3] - pr + ow].contiguous()
    bias = args[2][0] if len(args) > 2 else None
    y = be.int_conv2d(z, args[1][0], bias, (1, 1), (0, 0, 0, 0), (1, 1), a["group"])
    return y.reshape(args[0].shape[0], *step.node.shape)
