"""EZKL's quantization and scale bookkeeping, on the lowered graph.

This mirrors ``Node::new`` in EZKL's ``src/graph/node.rs`` step by step, for every node in
topological order:

1. constants are quantized at ``param_scale`` (integers dtypes at 0) with Rust's ``round``
   (halves away from zero) of ``f64(f32 value) * 2^scale`` (``utilities.rs::quantize_float``);
2. a Conv bias is re-quantized at ``input_scale + kernel_scale`` (``replace_const``);
3. for ops that need equal input scales (Add, Sub, Concat), a constant input used exactly once
   is re-quantized from its float value at the largest input scale
   (``rescale_const_with_single_use``); any remaining difference is bridged by multiplying the
   lower-scale inputs by ``2^diff`` (``homogenize_input_scales`` -> ``Rescaled``);
4. the op's output scale follows its own rule (einsum/conv/mult add scales, pow multiplies...);
5. if that scale exceeds ``rebase_scale * scale_rebase_multiplier`` the op is wrapped in
   ``RebaseScale``: its output is divided by ``2^(excess)``, rounding halves away from zero.
   Inputs, constants and ``Identity`` ops are never rebased.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .graph import Graph, Node, UnsupportedOpError


def round_half_away(v: np.ndarray) -> np.ndarray:
    """Rust's ``f64::round``: nearest integer, halves away from zero, NaN -> 0."""
    v = np.asarray(v, dtype=np.float64)
    t = np.trunc(v)
    frac = np.abs(v - t)  # exact for finite floats
    r = np.where(frac >= 0.5, t + np.sign(v), t)
    r = np.nan_to_num(r, nan=0.0)
    return r


def quantize(values: np.ndarray, scale: int) -> np.ndarray:
    """``round(f64(value) * 2^scale)`` as int64 (``quantize_float`` with shift 0)."""
    v = np.asarray(values, dtype=np.float64) * (2.0 ** scale)
    r = round_half_away(v)
    if np.any(np.abs(r) >= 2.0 ** 62):
        raise OverflowError("quantized value does not fit in int64")
    return r.astype(np.int64)


def quantize_input(values: np.ndarray, scale: int, is_float: bool = True) -> np.ndarray:
    """Model inputs: EZKL round-trips floats through f32 (``InputType::roundtrip``)."""
    if not is_float:
        return np.asarray(values).astype(np.float64).astype(np.int64)
    return quantize(np.asarray(values, dtype=np.float64).astype(np.float32), scale)


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


_HOMOGENOUS = {"add", "sub", "concat", "max", "min"}
_PASS = {"reshape", "view", "transpose", "maxpool", "sumpool", "sum", "relu", "lookup", "abs",
         "neg", "sqrt", "reducemax", "slice"}


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

        ins = node.inputs
        in_scales = [scales[i] for i in ins]
        is_const = [graph.nodes[i].op == "const" for i in ins]

        if node.op == "conv" and len(ins) == 3:
            if not is_const[2]:
                raise UnsupportedOpError("Conv", "non-constant bias")
            want = in_scales[0] + in_scales[1]
            if in_scales[2] != want:
                requant(ins[2], want)
                in_scales[2] = want

        if node.op in _HOMOGENOUS:
            for k, i in enumerate(ins):
                if is_const[k] and uses.get(i, 0) == 1 and max(in_scales) > scales[i]:
                    requant(i, max(in_scales))
                    in_scales[k] = scales[i]

        shifts = [0] * len(ins)
        if node.op in _HOMOGENOUS and len(set(in_scales)) > 1:
            top = max(in_scales)
            shifts = [top - s for s in in_scales]
        eff = [s + d for s, d in zip(in_scales, shifts)]

        extra: dict[str, Any] = {}
        op = node.op
        if op in ("einsum", "mult"):
            inner = sum(eff)
        elif op == "conv":
            inner = eff[0] + eff[1]
        elif op in _HOMOGENOUS or op in _PASS:
            inner = eff[0]
        elif op in ("recip", "rsqrt"):
            out_s = max(max(input_scale, param_scale), eff[0])
            extra["in_mult"] = float(np.float32(2.0 ** eff[0]))
            extra["out_mult"] = float(np.float32(2.0 ** out_s))
            extra["eps"] = float(run_args.get("epsilon") or 2.220446049250313e-16)
            inner = out_s
        elif op == "meanofsquares":
            inner = 2 * eff[0]
        elif op == "pow":
            inner = eff[0] * node.attrs["n"]
        elif op == "identity":
            inner = eff[0] + node.attrs["log2"]
        elif op == "leaky":
            inner = eff[0] + param_scale
            extra["alpha_q"] = int(quantize(np.array([node.attrs["alpha"]]), param_scale)[0])
            extra["shift"] = param_scale
        elif op == "softmax":
            out_s = max(max(input_scale, param_scale), eff[0])
            extra["in_mult"] = 2.0 ** eff[0]
            extra["out_mult"] = 2.0 ** out_s
            extra["eps"] = float(run_args.get("epsilon") or 2.220446049250313e-16)
            inner = eff[0] + out_s
        else:
            raise UnsupportedOpError(node.onnx_op or op)
        if op in ("lookup", "sqrt"):
            extra["mult"] = 2.0 ** eff[0]

        rebase_div = None
        out = inner
        if op not in ("identity", "view") and inner > target:
            rebase_div = 2 ** (inner - target)
            out = target
        scales[name] = out
        steps[name] = Step(node, in_scales, shifts, inner, out, rebase_div, extra)

    return Plan(
        steps=steps,
        consts=consts,
        const_scales={k: v for k, v in scales.items() if k in consts},
        output_scales=[scales[o] for o in graph.outputs],
        input_scales=input_scales,
    )
