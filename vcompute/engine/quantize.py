"""EZKL's quantization and scale bookkeeping, on the lowered graph.

This mirrors ``Node::new`` in EZKL's ``src/graph/node.rs`` step by step, for every node in
topological order:

1. constants are quantized at ``param_scale`` (integers dtypes at 0) with Rust's ``round``
   (halves away from zero) of ``f64(f32 value) * 2^scale`` (``utilities.rs::quantize_float``);
2. an op may re-quantize a constant input first (the Conv bias, at ``input_scale +
   kernel_scale``: ``replace_const``; the op's ``prepare`` hook in :mod:`.ops`);
3. for ops that need equal input scales (Add, Sub, Concat, Max, Min), a constant input used
   exactly once is re-quantized from its float value at the largest input scale
   (``rescale_const_with_single_use``); any remaining difference is bridged by multiplying the
   lower-scale inputs by ``2^diff`` (``homogenize_input_scales`` -> ``Rescaled``);
4. the op's output scale follows its own rule, registered with the op in :mod:`.ops` (einsum,
   conv and mult add scales, pow multiplies...);
5. if that scale exceeds ``rebase_scale * scale_rebase_multiplier`` the op is wrapped in
   ``RebaseScale``: its output is divided by ``2^(excess)``, rounding halves away from zero.
   Inputs, constants and ``Identity`` ops are never rebased.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .fixedpoint import quantize, quantize_input, round_half_away  # noqa: F401  (re-exported)
from .ir import Graph, Node
from .ops import registry
from .ops._ezkl import decomp_limit
from .ops.registry import ScaleCtx


@dataclass
class Step:
    """What to compute for one node: its inputs' shifts, its scales and its rebase."""

    node: Node
    in_scales: list[int]
    in_shifts: list[int]  # multiply input i by 2^shift before the op (EZKL "RESCALED INPUT")
    inner_scale: int  # scale of the op's own result
    out_scale: int  # after the rebase
    rebase_div: int | None  # divide by this power of two (EZKL "REBASED")
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    steps: dict[str, Step]
    consts: dict[str, np.ndarray]  # quantized constants by node name
    const_scales: dict[str, int]
    output_scales: list[int]
    input_scales: list[int]

    @cached_property
    def op_names(self) -> tuple[str, ...]:
        """The ONNX ops the plan runs, consecutive repeats collapsed: every batch's result lists
        them, so they are worked out once per plan (a plan is complete when made)."""
        names: list[str] = []
        for step in self.steps.values():
            o = step.node.onnx_op or step.node.op
            if not names or names[-1] != o:
                names.append(o)
        return tuple(names)


def make_plan(graph: Graph, run_args: dict) -> Plan:
    input_scale = int(run_args["input_scale"])
    param_scale = int(run_args["param_scale"])
    mult = int(run_args.get("scale_rebase_multiplier", 1))
    rebase_scale = run_args.get("rebase_scale")
    global_scale = int(rebase_scale) if rebase_scale is not None else max(input_scale, param_scale)
    target = global_scale * mult
    frac_zero = bool(run_args.get("rebase_frac_zero_constants", False))

    uses: dict[str, int] = {}
    for n in graph.nodes.values():
        for i in n.inputs:
            uses[i] = uses.get(i, 0) + 1

    scales: dict[str, int] = {}
    consts: dict[str, np.ndarray] = {}
    steps: dict[str, Step] = {}
    input_scales: list[int] = []

    def requant(name: str, scale: int) -> None:
        consts[name] = quantize(graph.nodes[name].attrs["value"], scale)
        scales[name] = scale

    # constants first: a lowering may add one (a folded conv bias) after its consumer
    order = [n for n in graph.nodes.values() if n.op == "const"]
    order += [n for n in graph.nodes.values() if n.op != "const"]
    for node in order:
        name = node.name
        if node.op == "input":
            s = input_scale if node.attrs["float"] else 0
            scales[name] = s
            input_scales.append(s)
            continue
        if node.op == "const":
            v = np.asarray(node.attrs["value"])
            if np.issubdtype(v.dtype, np.floating):
                s = param_scale
                if frac_zero and np.all(np.mod(v, 1) == 0):
                    s = 0
            else:
                s = 0
            requant(name, s)
            continue

        spec = registry.ezkl(node)
        ins = node.inputs
        in_scales = [scales[i] for i in ins]
        is_const = [graph.nodes[i].op == "const" for i in ins]

        if spec.prepare is not None:
            spec.prepare(node, in_scales, is_const, requant)

        # the inputs whose scales must agree (all of them, or the op's listed indices)
        homog = ([] if not spec.homogenous else range(len(ins)) if spec.homogenous is True
                 else [k for k in spec.homogenous if k < len(ins)])
        if homog:
            top = max(in_scales[k] for k in homog)
            for k in homog:
                i = ins[k]
                if is_const[k] and uses.get(i, 0) == 1 and top > scales[i]:
                    requant(i, top)
                    in_scales[k] = scales[i]

        shifts = [0] * len(ins)
        if homog and len({in_scales[k] for k in homog}) > 1:
            top = max(in_scales[k] for k in homog)
            for k in homog:
                shifts[k] = top - in_scales[k]
        eff = [s + d for s, d in zip(in_scales, shifts)]

        ctx = ScaleCtx(node, eff, input_scale, param_scale, run_args)
        inner = spec.scale(ctx)

        rebase_div = None
        out = inner
        if spec.rebased and inner > target:
            rebase_div = 2 ** (inner - target)
            out = target
            ctx.extra.setdefault("decomp_limit", decomp_limit(run_args))
        scales[name] = out
        steps[name] = Step(node, in_scales, shifts, inner, out, rebase_div, ctx.extra)

    return Plan(
        steps=steps,
        consts=consts,
        const_scales={k: v for k, v in scales.items() if k in consts},
        output_scales=[scales[o] for o in graph.outputs],
        input_scales=input_scales,
    )
