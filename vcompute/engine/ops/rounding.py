"""Floor, Ceil, Round, Sign, BitShift -> EZKL's FLOOR, CEIL, ROUND_HALF_TO_EVEN, SIGN, IDENTITY.

* Floor/Ceil/Round (``HybridOp::{Floor, Ceil, RoundHalfToEven}``, ``layouts.rs::floor`` ...):
  the result stays at the input scale ``s``: ``floor(x / S) * S`` with ``S = 2^s``. tract maps
  ONNX ``Round`` to round-half-to-even. EZKL decomposes ``|x|`` in base ``S`` with
  ``decomp_legs`` digits, so ``|x| <= S^legs - 1`` (``|value| < 2^s`` with 2 legs), else its
  witness generation fails. ``Cast`` to an integer type is the same Floor (:mod:`.logic`).
* Sign (``PolyOp::Sign``): -1/0/1 at scale 0; the input is decomposed (range-checked).
* BitShift by a constant ``k`` (tract's ShiftLeft/ShiftRight): the integers do not change, only
  the scale: ``s - k`` to the left, ``s + k`` to the right (so ``x >> 1`` dequantizes to ``x / 2``
  exactly, with no flooring).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..ir import UnsupportedOpError
from ._ezkl import check_range, decomp_limit
from .registry import OnnxNode, ScaleCtx, ezkl_op, keep_scale, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step


@lowers("Floor", "Ceil", "Round")
def lower_floor(lw: Lowerer, n: OnnxNode) -> None:
    op = {"Floor": "floor", "Ceil": "ceil", "Round": "round_half_even"}[n.op]
    lw.new(op, [n.x], lw.shapes[n.x], n.op, name=n.out)


@lowers("Sign")
def lower_sign(lw: Lowerer, n: OnnxNode) -> None:
    lw.new("sign", [n.x], lw.shapes[n.x], n.op, name=n.out)


@lowers("BitShift")
def lower_bitshift(lw: Lowerer, n: OnnxNode) -> None:
    k = lw.consts.get(n.ins[1])
    if k is None or k.size != 1 or n.x is None:
        raise UnsupportedOpError("BitShift", "only a tensor shifted by a constant scalar")
    k = int(k.reshape(-1)[0])
    left = n.attrs.get("direction") in (b"LEFT", "LEFT")
    lw.new("identity", [n.x], lw.shapes[n.x], "BitShift", name=n.out, log2=-k if left else k)


def _floor_scale(c: ScaleCtx) -> int:
    """Same scale; the digits of ``|x|`` in base ``2^s`` must fit ``decomp_legs`` legs."""
    c.extra["limit"] = decomp_limit(c.run_args, base=2 ** c.scales[0])
    return keep_scale(c)


@ezkl_op("floor", "ceil", "round_half_even", scale=_floor_scale)
def run_floor(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    x = args[0]
    s = step.in_scales[0]
    if s == 0:  # integers already: EZKL's Cast at scale 0 is no op
        return x
    what = "the input of " + step.node.onnx_op
    check_range(x, step.extra["limit"], step.node.onnx_op, what)
    S = 2 ** s
    op = step.node.op
    if op == "floor":
        return torch.div(x, S, rounding_mode="floor") * S
    if op == "ceil":
        return -torch.div(-x, S, rounding_mode="floor") * S
    # round half to even on |x| = q S + r (layouts.rs::round_half_to_even), sign restored
    a = x.abs()
    q = torch.div(a, S, rounding_mode="floor")
    r = a - q * S
    mid = S // 2
    q = q + ((r > mid) | ((r == mid) & (q % 2 == 1))).to(torch.int64)
    return torch.sign(x) * q * S


def _sign_scale(c: ScaleCtx) -> int:
    c.extra["limit"] = decomp_limit(c.run_args)
    return 0


@ezkl_op("sign", scale=_sign_scale)
def run_sign(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    check_range(args[0], step.extra["limit"], step.node.onnx_op, "the input of Sign")
    return torch.sign(args[0])
