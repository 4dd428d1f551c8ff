"""Softmax -> EZKL's SOFTMAX (``layouts.rs::softmax``): ``exp(x - max) * recip(sum)``, all in
integers, output at scale ``s + max(s, input_scale, param_scale)`` before the rebase.

Batched, every (sample, row) pair is one row of the same max / exp lookup / sum / product.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..fixedpoint import round_half_away
from ._batch import reduce_sum
from ._tables import apply_table
from .registry import OnnxNode, ScaleCtx, ezkl_op, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step


@lowers("Softmax")
def lower_softmax(lw: Lowerer, n: OnnxNode) -> None:
    shp = lw.shapes[n.x]
    ax = n.attrs.get("axis", -1) % len(shp)
    lw.new("softmax", [n.x], shp, n.op, name=n.out, axis=ax)


def _softmax_scale(c: ScaleCtx) -> int:
    s = c.scales[0]
    out_s = max(max(c.input_scale, c.param_scale), s)
    c.extra["in_mult"] = 2.0 ** s
    c.extra["out_mult"] = 2.0 ** out_s
    c.extra["eps"] = float(c.run_args.get("epsilon") or 2.220446049250313e-16)
    return s + out_s


@ezkl_op("softmax", scale=_softmax_scale)
def run_softmax(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    return softmax(be, args[0], step.node.attrs["axis"] + 1, step.extra)


def softmax(be: Backend, x: torch.Tensor, axis: int, extra: dict) -> torch.Tensor:
    """EZKL's softmax of ``x`` along its axis ``axis``; every other axis indexes a row."""
    perm = [i for i in range(x.dim()) if i != axis] + [axis]
    xt = x.permute(*perm).contiguous()
    k = xt.shape[-1]
    x2 = xt.reshape(-1, k)
    m = x2.shape[0]
    mx = be.max_pool2d(x2.reshape(1, 1, m, k), (1, k), (1, k), (0, 0)).reshape(m, 1)
    ex = apply_table(be, be.int_sub(x2, mx), "exp", {"mult": extra["in_mult"]})
    denom = reduce_sum(be, ex, [1], (m, 1))
    d = denom.cpu().numpy().astype(np.float64) / extra["in_mult"]
    with np.errstate(divide="ignore"):
        inv_f = np.where(d == 0, 1.0 / (d + extra["eps"]), 1.0 / np.where(d == 0, 1.0, d))
    inv = torch.from_numpy(round_half_away(extra["out_mult"] * inv_f).astype(np.int64))
    y = be.int_mul(ex, inv.to(x.device))
    inv_perm = np.argsort(perm).tolist()
    return y.reshape(xt.shape).permute(*inv_perm).contiguous()
