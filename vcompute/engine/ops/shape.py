"""Layout ops: Identity, Dropout (aliases), Flatten, Reshape, Squeeze, Unsqueeze,
Transpose, Concat, Slice, Split -> EZKL's RESHAPE, MOVEAXIS, CONCAT, SLICE (no arithmetic; Concat
aligns its inputs' scales first).

A reshape that only adds or drops unit axes in front of a matmul becomes a ``view``: tract
absorbs it into the einsum, so EZKL has no node there and never rebases it
(``graph._absorb_unit_reshapes``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..ir import UnsupportedOpError
from ._batch import batch_of
from .registry import OnnxNode, ezkl_op, keep_scale, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step


@lowers("Identity", "Dropout", check_inputs=False)
def lower_identity(lw: Lowerer, n: OnnxNode) -> None:
    lw.alias[n.out] = lw.ref(n.ins[0])


def _reshape_target(lw: Lowerer, n: OnnxNode, shp: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape of Flatten/Reshape/Squeeze/Unsqueeze for an input of shape ``shp``."""
    op, a, ins = n.op, n.attrs, n.ins
    if op == "Flatten":
        ax = a.get("axis", 1) % (len(shp) or 1)
        return (int(np.prod(shp[:ax])), int(np.prod(shp[ax:])))
    if op == "Reshape":
        tgt = [int(v) for v in lw.consts[ins[1]].reshape(-1)]
        tgt = [shp[i] if v == 0 and not a.get("allowzero", 0) else v for i, v in enumerate(tgt)]
        if -1 in tgt:
            known = int(np.prod([v for v in tgt if v != -1]))
            tgt[tgt.index(-1)] = int(np.prod(shp)) // known
        return tuple(tgt)
    if op == "Squeeze":
        axes = a.get("axes")
        if axes is None and len(ins) > 1 and ins[1]:
            axes = [int(v) for v in lw.consts[ins[1]].reshape(-1)]
        if axes is None:
            axes = [i for i, d in enumerate(shp) if d == 1]
        axes = [int(v) % len(shp) for v in axes]
        return tuple(d for i, d in enumerate(shp) if i not in axes)
    axes = a.get("axes")  # Unsqueeze
    if axes is None:
        axes = [int(v) for v in lw.consts[ins[1]].reshape(-1)]
    r = len(shp) + len(axes)
    axes = sorted(int(v) % r for v in axes)
    it = iter(shp)
    return tuple(1 if i in axes else next(it) for i in range(r))


@lowers("Flatten", "Reshape", "Squeeze", "Unsqueeze")
def lower_reshape(lw: Lowerer, n: OnnxNode) -> None:
    shp = lw.shapes[n.x]
    oshape = _reshape_target(lw, n, shp)
    if oshape == tuple(shp):
        lw.alias[n.out] = n.x
    else:
        lw.new("reshape", [n.x], oshape, n.op, name=n.out)


@lowers("Transpose")
def lower_transpose(lw: Lowerer, n: OnnxNode) -> None:
    shp = lw.shapes[n.x]
    perm = tuple(n.attrs.get("perm", list(range(len(shp)))[::-1]))
    lw.new("transpose", [n.x], tuple(shp[p] for p in perm), n.op, name=n.out, perm=perm)


@lowers("Concat")
def lower_concat(lw: Lowerer, n: OnnxNode) -> None:
    parts = [lw.input_ref(i, "concat") for i in n.ins]
    ax = n.attrs["axis"] % len(lw.shapes[parts[0]])
    shp = list(lw.shapes[parts[0]])
    shp[ax] = sum(lw.shapes[p][ax] for p in parts)
    lw.new("concat", parts, shp, n.op, name=n.out, axis=ax)


@lowers("Slice")
def lower_slice(lw: Lowerer, n: OnnxNode) -> None:
    ins, x = n.ins, n.x
    if not all(i in lw.consts for i in ins[1:] if i):
        raise UnsupportedOpError("Slice", "non-constant starts/ends")
    shp = list(lw.shapes[x])
    starts = [int(v) for v in lw.consts[ins[1]].reshape(-1)]
    ends = [int(v) for v in lw.consts[ins[2]].reshape(-1)]
    axes = ([int(v) for v in lw.consts[ins[3]].reshape(-1)]
            if len(ins) > 3 and ins[3] else list(range(len(starts))))
    steps = ([int(v) for v in lw.consts[ins[4]].reshape(-1)]
             if len(ins) > 4 and ins[4] else [1] * len(starts))
    if any(st != 1 for st in steps):
        raise UnsupportedOpError("Slice", "steps != 1")
    cur = x
    for st, en, ax in zip(starts, ends, axes):
        ax %= len(shp)
        d = shp[ax]
        st = max(0, min(d, st + d if st < 0 else st))
        en = max(0, min(d, en + d if en < 0 else en))
        if st == 0 and en == d:
            continue
        shp[ax] = en - st
        cur = lw.new("slice", [cur], tuple(shp), "Slice", axis=ax, start=st, end=en)
    lw.alias[n.out] = cur


@ezkl_op("reshape", scale=keep_scale)
def run_reshape(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    return args[0].reshape(args[0].shape[0], *step.node.shape)


@ezkl_op("view", scale=keep_scale, rebased=False)
def run_view(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    return args[0].reshape(args[0].shape[0], *step.node.shape)


@ezkl_op("transpose", scale=keep_scale)
def run_transpose(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    return args[0].permute(0, *(p + 1 for p in step.node.attrs["perm"])).contiguous()


@ezkl_op("slice", scale=keep_scale)
def run_slice(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    a = step.node.attrs
    return args[0].narrow(a["axis"] + 1, a["start"], a["end"] - a["start"]).contiguous()


@ezkl_op("concat", scale=keep_scale, homogenous=True)
def run_concat(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    """Concatenation after aligning scales (a left shift of the lower-scale parts)."""
    nb = batch_of(args)
    parts = [a if s == 0 else be.int_mul(a, torch.ones(1, dtype=torch.int64, device=a.device), s, 0)
             for a, s in zip(args, step.in_shifts)]
    parts = [p.expand(nb, *p.shape[1:]) for p in parts]
    return torch.cat(parts, dim=step.node.attrs["axis"] + 1)


@lowers("Split")
def lower_split(lw: Lowerer, n: OnnxNode) -> None:
    """tract splits into one slice per output (no arithmetic)."""
    x, a, ins = n.x, n.attrs, n.ins
    shp = list(lw.shapes[x])
    ax = a.get("axis", 0) % len(shp)
    outs = list(n.proto.output)
    if len(ins) > 1 and ins[1]:
        if ins[1] not in lw.consts:
            raise UnsupportedOpError("Split", "non-constant split sizes")
        sizes = [int(v) for v in lw.consts[ins[1]].reshape(-1)]
    elif "split" in a:
        sizes = [int(v) for v in a["split"]]
    else:
        k = -(-shp[ax] // len(outs))
        sizes = [min(k, shp[ax] - i * k) for i in range(len(outs))]
    start = 0
    for o, sz in zip(outs, sizes):
        if o:
            if sz == shp[ax]:
                lw.alias[o] = x
            else:
                oshape = tuple(sz if i == ax else d for i, d in enumerate(shp))
                lw.new("slice", [x], oshape, "Split", name=o, axis=ax, start=start,
                       end=start + sz)
        start += sz
