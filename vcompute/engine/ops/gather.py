"""Gather, GatherElements, GatherND, ScatterElements, ScatterND, OneHot -> EZKL's GATHER,
GATHERELEMENTS, GATHERND, SCATTERELEMENTS, SCATTERND, ONEHOT (``utilities.rs`` arms of those
names; ``tensor/ops.rs::{gather, gather_elements, gather_nd, scatter, scatter_nd}``).

No arithmetic: the output keeps the data's scale. What EZKL does differently from ONNX:

* constant indices are converted with Rust's ``x as usize``: **every negative index becomes 0**,
  except exactly ``-1`` in ``Gather``, which means the last element (GatherElements has no such
  exception);
* runtime indices are used as they are (the index input is re-typed as a scale-0 integer): one
  out of range makes EZKL panic -- refused here (e.g. an index computed by ``Cast(float->int)``,
  whose integers are ``floor(x) * 2^s``);
* ScatterElements/ScatterND ignore ``reduction`` (tract never reads it): plain replacement, the
  last write in C order of the updates wins; data and updates are brought to a common scale.
  Constant updates with constant indices make EZKL panic (refused);
* OneHot outputs 0/1 at scale 0 and ignores the ``values`` input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..ir import UnsupportedOpError
from ._ezkl import per_sample
from .registry import OnnxNode, ScaleCtx, ezkl_op, keep_scale, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step


def _const_index(lw, name: str, n: int | None) -> np.ndarray:
    """A constant index tensor as EZKL converts it (``as usize``: negatives to 0; ``n`` given:
    Gather's ``-1 -> n - 1``)."""
    idx = np.asarray(lw.consts[name]).astype(np.int64)
    if n is not None:
        idx = np.where(idx == -1, n - 1, idx)
    return np.where(idx < 0, 0, idx)


@lowers("Gather")
def lower_gather(lw: Lowerer, n: OnnxNode) -> None:
    x = lw.input_ref(n.ins[0], "gather_data")
    shp = lw.shapes[x]
    ax = n.attrs.get("axis", 0) % len(shp)
    if n.ins[1] in lw.consts:
        raw = np.asarray(lw.consts[n.ins[1]])
        if raw.shape == (1,) and int(raw[0]) < -1:
            # tract turns a one-element index into a Slice: negative starts are not verified
            raise UnsupportedOpError("Gather", "a single negative constant index (not verified)")
        idx = _const_index(lw, n.ins[1], shp[ax])
        if np.any(idx >= shp[ax]):
            raise UnsupportedOpError("Gather", "constant index out of range (EZKL panics)")
        oshape = (*shp[:ax], *idx.shape, *shp[ax + 1:])
        lw.new("gather", [x], oshape, "Gather", name=n.out, axis=ax, idx=idx)
        return
    i = lw.ref(n.ins[1])
    oshape = (*shp[:ax], *lw.shapes[i], *shp[ax + 1:])
    lw.new("gather", [x, i], oshape, "Gather", name=n.out, axis=ax, idx=None)


@lowers("GatherElements")
def lower_gather_elements(lw: Lowerer, n: OnnxNode) -> None:
    x = lw.input_ref(n.ins[0], "gather_data")
    shp = lw.shapes[x]
    ax = n.attrs.get("axis", 0) % len(shp)
    if n.ins[1] in lw.consts:
        idx = _const_index(lw, n.ins[1], None)
        if np.any(idx >= shp[ax]):
            raise UnsupportedOpError("GatherElements", "constant index out of range")
        lw.new("gather_elements", [x], idx.shape, n.op, name=n.out, axis=ax, idx=idx)
        return
    i = lw.ref(n.ins[1])
    lw.new("gather_elements", [x, i], lw.shapes[i], n.op, name=n.out, axis=ax, idx=None)


@lowers("GatherND")
def lower_gather_nd(lw: Lowerer, n: OnnxNode) -> None:
    if n.attrs.get("batch_dims", 0) != 0:
        raise UnsupportedOpError("GatherND", "batch_dims != 0 (not verified against EZKL)")
    x = lw.input_ref(n.ins[0], "gather_data")
    shp = lw.shapes[x]
    if n.ins[1] in lw.consts:
        idx = _const_index(lw, n.ins[1], None)
        ishape, ins, attrs = idx.shape, [x], {"idx": idx}
    else:
        i = lw.ref(n.ins[1])
        ishape, ins, attrs = lw.shapes[i], [x, i], {"idx": None}
    k = ishape[-1]
    lw.new("gather_nd", ins, (*ishape[:-1], *shp[k:]), n.op, name=n.out, **attrs)


@lowers("ScatterElements", "ScatterND")
def lower_scatter(lw: Lowerer, n: OnnxNode) -> None:
    x = lw.input_ref(n.ins[0], "scatter_data")
    shp = lw.shapes[x]
    u_const = n.ins[2] in lw.consts
    if n.ins[1] in lw.consts:
        if u_const:
            raise UnsupportedOpError(n.op, "constant indices and constant updates (EZKL panics "
                                           "after deleting the constant index input)")
        idx = _const_index(lw, n.ins[1], None)
        ins, attrs = [x, lw.ref(n.ins[2])], {"idx": idx}
    else:
        ins, attrs = [x, lw.ref(n.ins[1]), lw.input_ref(n.ins[2], "scatter_upd")], {"idx": None}
    op = "scatter_elements" if n.op == "ScatterElements" else "scatter_nd"
    if op == "scatter_elements":
        attrs["axis"] = n.attrs.get("axis", 0) % len(shp)
    # the ``reduction`` attribute is ignored, as tract ignores it
    lw.new(op, ins, shp, n.op, name=n.out, **attrs)


@lowers("OneHot")
def lower_onehot(lw: Lowerer, n: OnnxNode) -> None:
    if n.x is None or n.ins[1] not in lw.consts:
        raise UnsupportedOpError("OneHot", "constant indices or non-constant depth")
    depth = int(np.asarray(lw.consts[n.ins[1]]).reshape(-1)[0])
    shp = lw.shapes[n.x]
    ax = n.attrs.get("axis", -1) % (len(shp) + 1)
    oshape = (*shp[:ax], depth, *shp[ax:])
    lw.new("onehot", [n.x], oshape, "OneHot", name=n.out, axis=ax, depth=depth)


def _index(t: torch.Tensor, n: int, op: str) -> torch.Tensor:
    """A runtime index tensor, refused where EZKL would index out of bounds (it panics)."""
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
        raise UnsupportedOpError(op, f"runtime index outside [0, {n}) (EZKL panics)")
    return t


def _idx_args(step, args):
    """``(data, index, rest)``: a constant index joins the args with batch 1."""
    a = step.node.attrs
    if a["idx"] is not None:
        idx = torch.from_numpy(np.ascontiguousarray(a["idx"])).to(args[0].device).unsqueeze(0)
        return args[0], idx, args[1:]
    return args[0], args[1], args[2:]


@ezkl_op("gather", scale=keep_scale)
def run_gather(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    ax = step.node.attrs["axis"]
    x, idx, _ = _idx_args(step, args)
    _index(idx, x.shape[ax + 1], "Gather")

    def one(xs, ii):
        return xs.index_select(ax, ii.reshape(-1)).reshape(step.node.shape)

    if idx.shape[0] == 1:  # one index tensor for every sample
        return x.index_select(ax + 1, idx.reshape(-1)).reshape(x.shape[0], *step.node.shape)
    return per_sample([x, idx], one)


@ezkl_op("gather_elements", scale=keep_scale)
def run_gather_elements(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    ax = step.node.attrs["axis"]
    x, idx, _ = _idx_args(step, args)
    _index(idx, x.shape[ax + 1], "GatherElements")
    return per_sample([x, idx], lambda xs, ii: torch.gather(xs, ax, ii))


@ezkl_op("gather_nd", scale=keep_scale)
def run_gather_nd(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    x, idx, _ = _idx_args(step, args)
    k = idx.shape[-1]
    for j in range(k):
        _index(idx[..., j], x.shape[j + 1], "GatherND")
    return per_sample([x, idx], lambda xs, ii: xs[tuple(ii.unbind(-1))].reshape(step.node.shape))


def _scatter_scale(c: ScaleCtx) -> int:
    """Data and updates at their common scale (``homogenous`` [0, 2])."""
    return c.scales[0]


def _put_last_wins(out: torch.Tensor, pos: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
    """``out.flat[pos[k]] = vals[k]`` in order, the last write to a position winning."""
    flat = out.reshape(-1).clone()
    pos, vals = pos.reshape(-1), vals.reshape(-1)
    order = torch.arange(pos.numel(), device=pos.device)
    last = torch.full_like(flat, -1).scatter_reduce(0, pos, order, reduce="amax")
    keep = last[pos] == order
    flat[pos[keep]] = vals[keep]
    return flat.reshape(out.shape)


def _shift(be, t: torch.Tensor, s: int) -> torch.Tensor:
    return t if s == 0 else be.int_mul(t, torch.ones(1, dtype=torch.int64, device=t.device), s, 0)


@ezkl_op("scatter_elements", "scatter_nd", scale=_scatter_scale, homogenous=(0, 2))
def run_scatter(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    node = step.node
    x, idx, rest = _idx_args(step, args)
    upd = rest[0]
    const_idx = node.attrs["idx"] is not None
    # the shifts are the plan's, by input position: data 0, updates 2 (constant index: 1)
    x = _shift(be, x, step.in_shifts[0])
    upd = _shift(be, upd, step.in_shifts[1 if const_idx else 2])
    shp = node.shape
    strides = torch.tensor([int(np.prod(shp[j + 1:])) for j in range(len(shp))],
                           dtype=torch.int64, device=x.device)

    if node.op == "scatter_elements":
        ax = node.attrs["axis"]
        _index(idx, shp[ax], node.onnx_op)

        def one(xs, ii, us):
            grids = torch.meshgrid(*[torch.arange(d, device=xs.device) for d in ii.shape],
                                   indexing="ij")
            coords = [ii if j == ax else grids[j] for j in range(len(shp))]
            pos = sum(c * strides[j] for j, c in enumerate(coords))
            return _put_last_wins(xs, pos, us.expand(ii.shape))
    else:
        k = idx.shape[-1]
        for j in range(k):
            _index(idx[..., j], shp[j], node.onnx_op)
        inner = int(np.prod(shp[k:]))

        def one(xs, ii, us):
            base = (ii * strides[:k]).sum(-1).reshape(-1, 1)
            pos = base + torch.arange(inner, device=xs.device).reshape(1, -1)
            return _put_last_wins(xs, pos, us.reshape(-1, inner))

    return per_sample([x, idx, upd], one)


def _zero_scale(c: ScaleCtx) -> int:
    return 0


@ezkl_op("onehot", scale=_zero_scale)
def run_onehot(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    a = step.node.attrs
    idx = _index(args[0], a["depth"], "OneHot")
    y = torch.nn.functional.one_hot(idx, a["depth"]).to(torch.int64)  # new last axis
    return y.movedim(-1, a["axis"] + 1).contiguous()
