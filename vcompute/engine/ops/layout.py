"""Pad, Expand, Trilu, Resize, EyeLike -> EZKL's PAD, MULTIBROADCASTTO, TRILU, RESIZE, CONST.

No arithmetic (the scale is kept), but EZKL's layouts differ from ONNX in places:

* Pad: only ``mode="constant"`` with the value 0 (``utilities.rs`` "Pad").
* Expand (``Tensor::expand``) aligns axes on the **left**: output coordinate ``c`` reads input
  coordinate ``(0 if in_shape[i] == 1 else c[i] for i < in_rank)``; output axes past the input's
  rank are ignored. Same as numpy when the ranks agree; not when the rank grows.
* Trilu (``tensor/ops.rs::trilu``) loops ``i < dims[1]``, ``j < dims[2]`` for every index of
  ``dims[:-2]``: right for rank 3 only. Rank 2: the input unchanged. ``k`` must be constant.
* Resize, nearest, integer scales given as the ``scales`` input: ``out[..., i, j] =
  in[..., i // f_h, j // f_w]`` whatever ``coordinate_transformation_mode``/``nearest_mode``
  say. Linear/cubic modes, non-integer scales and ``sizes`` are refused by EZKL.
* EyeLike (and Range, ConstantOfShape: constant-folded by the graph walk) is a constant; tract
  folds it even when its input is a runtime tensor (only the shape matters).
* Tile, Upsample, Mish, Mod: EZKL has no op for them (tract's ``Tile``/``Rem`` map to
  ``Unknown``; ``Mish``/``Upsample`` are not in tract-onnx) -- refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..ir import UnsupportedOpError
from .registry import OnnxNode, ezkl_op, keep_scale, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step

_NO_EZKL_OP = {
    "Tile": "tract's Tile maps to no EZKL op",
    "Upsample": "not in tract-onnx",
    "Mish": "not in tract-onnx",
    "Mod": "tract's Rem maps to no EZKL op",
}


@lowers(*_NO_EZKL_OP, check_inputs=False)
def lower_refused(lw: Lowerer, n: OnnxNode) -> None:
    raise UnsupportedOpError(n.op, _NO_EZKL_OP[n.op] + " (EZKL refuses the model)")


@lowers("Pad")
def lower_pad(lw: Lowerer, n: OnnxNode) -> None:
    a, ins = n.attrs, n.ins
    mode = a.get("mode", b"constant")
    if mode not in (b"constant", "constant"):
        raise UnsupportedOpError("Pad", f"mode {mode!r} (EZKL pads with zeros only)")
    if len(ins) > 2 and ins[2]:
        v = lw.consts.get(ins[2])
        if v is None or np.any(np.asarray(v) != 0):
            raise UnsupportedOpError("Pad", "a non-zero pad value (EZKL pads with zeros only)")
    if len(ins) > 3 and ins[3]:
        raise UnsupportedOpError("Pad", "the axes input")
    if ins[1] not in lw.consts:
        raise UnsupportedOpError("Pad", "non-constant pads")
    shp = lw.shapes[n.x]
    p = [int(v) for v in lw.consts[ins[1]].reshape(-1)]
    r = len(shp)
    if any(v < 0 for v in p):
        raise UnsupportedOpError("Pad", "negative pads")
    pads = tuple((p[i], p[i + r]) for i in range(r))
    oshape = tuple(d + b + e for d, (b, e) in zip(shp, pads))
    lw.new("pad", [n.x], oshape, "Pad", name=n.out, pads=pads)


@lowers("Expand")
def lower_expand(lw: Lowerer, n: OnnxNode) -> None:
    if n.ins[1] not in lw.consts:
        raise UnsupportedOpError("Expand", "non-constant shape")
    shp = lw.shapes[n.x]
    oshape = np.broadcast_shapes(shp, tuple(int(v) for v in lw.consts[n.ins[1]].reshape(-1)))
    for i, d in enumerate(shp):
        if d != 1 and oshape[i] > d:
            raise UnsupportedOpError("Expand", "EZKL's left-aligned expand reads past the input")
    if tuple(oshape) == tuple(shp):
        lw.alias[n.out] = n.x
        return
    lw.new("expand", [n.x], oshape, "Expand", name=n.out)


@lowers("Trilu")
def lower_trilu(lw: Lowerer, n: OnnxNode) -> None:
    k = 0
    if len(n.ins) > 1 and n.ins[1]:
        if n.ins[1] not in lw.consts:
            raise UnsupportedOpError("Trilu", "non-constant k")
        k = int(lw.consts[n.ins[1]].reshape(-1)[0])
    shp = lw.shapes[n.x]
    if len(shp) > 3 and (shp[1] > shp[-2] or shp[2] > shp[-1]):
        raise UnsupportedOpError("Trilu", "EZKL's trilu indexes past the matrix at this shape")
    lw.new("trilu", [n.x], shp, "Trilu", name=n.out, k=k, upper=bool(n.attrs.get("upper", 1)))


@lowers("EyeLike", check_inputs=False)
def lower_eyelike(lw: Lowerer, n: OnnxNode) -> None:
    src = n.ins[0]
    shp = lw.consts[src].shape if src in lw.consts else lw.shapes.get(lw.ref(src))
    if shp is None or len(shp) != 2:
        raise UnsupportedOpError("EyeLike", "input of unknown shape")
    # tract folds it to a constant; EyeLike's default output type is the input's (float here)
    lw.consts[n.out] = np.eye(shp[0], shp[1], int(n.attrs.get("k", 0)), dtype=np.float32)


@lowers("Resize")
def lower_resize(lw: Lowerer, n: OnnxNode) -> None:
    a, ins = n.attrs, n.ins
    if a.get("mode", b"nearest") not in (b"nearest", "nearest"):
        raise UnsupportedOpError("Resize", "only nearest (EZKL refuses linear/cubic)")
    if len(ins) > 3 and ins[3]:
        raise UnsupportedOpError("Resize", "sizes (EZKL panics)")
    if len(ins) < 3 or ins[2] not in lw.consts:
        raise UnsupportedOpError("Resize", "scales must be a constant input")
    sc = np.asarray(lw.consts[ins[2]], dtype=np.float32).reshape(-1)
    if np.any(sc != np.floor(sc)) or np.any(sc < 1):
        raise UnsupportedOpError("Resize", "non-integer scales (EZKL refuses them)")
    f = tuple(int(v) for v in sc)
    shp = lw.shapes[n.x]
    # coordinate_transformation_mode and nearest_mode are ignored, as EZKL ignores them
    lw.new("resize", [n.x], tuple(d * k for d, k in zip(shp, f)), "Resize", name=n.out,
           factors=f)


@ezkl_op("pad", scale=keep_scale)
def run_pad(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    flat = []
    for b, e in reversed(step.node.attrs["pads"]):
        flat += [b, e]
    return torch.nn.functional.pad(args[0], flat)


@ezkl_op("expand", scale=keep_scale)
def run_expand(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    """EZKL's left-aligned expand: keep the first ``out[i]`` entries of each input axis (or
    broadcast a unit one), then let any extra output axes repeat the whole."""
    x = args[0]
    out = step.node.shape
    for i in range(x.dim() - 1):
        if x.shape[i + 1] != 1:
            x = x.narrow(i + 1, 0, out[i])
    x = x.reshape(*x.shape, *([1] * (len(out) - (x.dim() - 1))))
    return x.expand(x.shape[0], *out).contiguous()


@ezkl_op("trilu", scale=keep_scale)
def run_trilu(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    x = args[0]
    shp = step.node.shape
    if len(shp) < 3:  # no batch coordinates: EZKL's loops never run
        return x
    a = step.node.attrs
    i = torch.arange(shp[1], device=x.device).reshape(-1, 1)
    j = torch.arange(shp[2], device=x.device).reshape(1, -1)
    zero = (j < i + a["k"]) if a["upper"] else (j > i + a["k"])
    mask = torch.zeros(shp[-2], shp[-1], dtype=torch.bool, device=x.device)
    mask[: shp[1], : shp[2]] = zero
    return torch.where(mask, torch.zeros_like(x), x)


@ezkl_op("resize", scale=keep_scale)
def run_resize(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    x = args[0]
    for i, f in enumerate(step.node.attrs["factors"]):
        if f != 1:
            x = x.repeat_interleave(f, dim=i + 1)
    return x.contiguous()
