"""ArgMax, ArgMin, TopK -> EZKL's REDUCEARGMAX, REDUCEARGMIN, TOPK (``hybrid.rs``).

* ArgMax/ArgMin: the **first** index on ties, output at scale 0, the axis kept (``keepdims=0``
  adds a reshape). ``select_last_index=1`` has no EZKL op (tract's ``ArgMax(true)`` is unknown).
* TopK: the sorted values only, at the input's scale (largest first unless ``largest=0``;
  ``sorted`` is ignored); ``k`` must be a constant. A model that uses TopK's indices output is
  refused by EZKL (its TopK has one output).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..ir import UnsupportedOpError
from .registry import OnnxNode, ScaleCtx, ezkl_op, keep_scale, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step


@lowers("ArgMax", "ArgMin")
def lower_arg(lw: Lowerer, n: OnnxNode) -> None:
    if n.attrs.get("select_last_index", 0):
        raise UnsupportedOpError(n.op, "select_last_index=1 (no EZKL op)")
    shp = lw.shapes[n.x]
    ax = n.attrs.get("axis", 0) % len(shp)
    kshape = tuple(1 if i == ax else d for i, d in enumerate(shp))
    op = n.op.lower()
    if n.attrs.get("keepdims", 1):
        lw.new(op, [n.x], kshape, n.op, name=n.out, axis=ax)
    else:
        cur = lw.new(op, [n.x], kshape, n.op, axis=ax)
        lw.new("reshape", [cur], tuple(d for i, d in enumerate(shp) if i != ax), n.op,
               name=n.out)


@lowers("TopK")
def lower_topk(lw: Lowerer, n: OnnxNode) -> None:
    if len(n.proto.output) > 1 and n.proto.output[1] and lw.onnx_uses.get(n.proto.output[1]):
        raise UnsupportedOpError("TopK", "the indices output is used (EZKL's TopK has only "
                                         "the values)")
    if n.ins[1] not in lw.consts:
        raise UnsupportedOpError("TopK", "non-constant k")
    k = int(lw.consts[n.ins[1]].reshape(-1)[0])
    shp = lw.shapes[n.x]
    ax = n.attrs.get("axis", -1) % len(shp)
    oshape = tuple(k if i == ax else d for i, d in enumerate(shp))
    lw.new("topk", [n.x], oshape, "TopK", name=n.out, axis=ax, k=k,
           largest=bool(n.attrs.get("largest", 1)))


def _zero_scale(c: ScaleCtx) -> int:
    return 0


@ezkl_op("argmax", "argmin", scale=_zero_scale)
def run_arg(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    ax = step.node.attrs["axis"] + 1
    f = torch.argmax if step.node.op == "argmax" else torch.argmin
    # torch returns the first index among equal extremes, as EZKL does
    return f(args[0], dim=ax, keepdim=True).to(torch.int64)


@ezkl_op("topk", scale=keep_scale)
def run_topk(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    a = step.node.attrs
    v = torch.sort(args[0], dim=a["axis"] + 1, descending=a["largest"]).values
    return v.narrow(a["axis"] + 1, 0, a["k"]).contiguous()
