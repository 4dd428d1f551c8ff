"""MaxPool, AveragePool -> EZKL's MAXPOOL, SUMPOOL (normalized).

EZKL pads both with zeros (``layouts.rs::max_pool``, ``sumpool``), not -inf, and an average
always divides by the full kernel size, whatever ``count_include_pad`` says. The engine pads
itself and calls the kernels with padding 0. Batched, the samples' images pool in one launch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..ir import UnsupportedOpError
from ._batch import images
from .registry import OnnxNode, ezkl_op, keep_scale, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step


@lowers("MaxPool", "AveragePool")
def lower_pool(lw: Lowerer, n: OnnxNode) -> None:
    op, a, x = n.op, n.attrs, n.x
    if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1])):
        raise UnsupportedOpError(op, "ceil_mode or dilations")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedOpError(op, "auto_pad")
    k = list(a["kernel_shape"])
    if len(k) != 2:
        raise UnsupportedOpError(op, "only 2-D pooling")
    if "strides" not in a:  # EZKL's extract_strides: ONNX's default of 1 is not applied
        raise UnsupportedOpError(op, "no strides attribute (EZKL requires it)")
    s = list(a["strides"])
    p = list(a.get("pads", [0, 0, 0, 0]))
    pads = ((p[0], p[2]), (p[1], p[3]))
    n_, c_, h, w_ = lw.shapes[x]
    oh = (h + p[0] + p[2] - k[0]) // s[0] + 1
    ow = (w_ + p[1] + p[3] - k[1]) // s[1] + 1
    kind = "maxpool" if op == "MaxPool" else "sumpool"
    lw.new(kind, [x], (n_, c_, oh, ow), op, name=n.out, kernel=tuple(k), stride=tuple(s),
           pads=pads, normalized=True)


def _pad2d(x: torch.Tensor, pads) -> torch.Tensor:
    """Zero padding of the last two axes, as EZKL pads."""
    (t, b), (l, r) = pads
    if t or b or l or r:
        x = torch.nn.functional.pad(x, (l, r, t, b))
    return x


@ezkl_op("maxpool", "sumpool", scale=keep_scale)
def run_pool(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    node = step.node
    x = images(_pad2d(args[0], node.attrs["pads"]))
    if node.op == "maxpool":
        y = be.max_pool2d(x, node.attrs["kernel"], node.attrs["stride"], (0, 0))
    else:
        y = be.sum_pool2d(x, node.attrs["kernel"], node.attrs["stride"], (0, 0))
        if node.attrs["normalized"]:
            y = be.div_round(y, int(np.prod(node.attrs["kernel"])))
    return y.reshape(args[0].shape[0], *node.shape)
