"""Public entry point: run an ONNX model in EZKL's fixed-point arithmetic.

``run_fixed`` quantizes the inputs as EZKL does, lowers the model to the op list EZKL computes
(:mod:`.graph`), assigns scales (:mod:`.quantize`) and runs every op on the Triton kernels
(:mod:`.ops`, :mod:`.backends`). Its ``outputs_fixed`` are the integers EZKL's witness holds for the outputs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vcompute.errors import UsageError

from .graph import Graph, load_graph, model_input_shapes
from . import backends
from .ops import run_step
from .quantize import make_plan, quantize_input


class ScaleMismatchError(UsageError):
    """The engine's scale bookkeeping disagrees with EZKL's settings (a lowering gap)."""


@dataclass
class EngineResult:
    outputs_fixed: list[list[int]]
    outputs: list[list[float]]
    output_scales: list[int]
    device: str
    time_ms: float
    ops: list[str] = field(default_factory=list)


_PREPARED: dict[tuple, tuple[Graph, object]] = {}
_CONSTS: dict[tuple, dict[str, torch.Tensor]] = {}


def _prepared(model_path: Path, shapes, run_args: dict):
    """Lowered graph and plan, cached per (model file, mtime, input shapes, run_args)."""
    st = model_path.stat()
    key = (str(model_path.resolve()), st.st_mtime_ns, st.st_size, tuple(shapes),
           json.dumps(run_args, sort_keys=True, default=str))
    if key not in _PREPARED:
        if len(_PREPARED) > 32:
            _PREPARED.clear()
            _CONSTS.clear()
        graph = load_graph(model_path, shapes)
        _PREPARED[key] = (graph, make_plan(graph, run_args))
    return _PREPARED[key]


def _device_consts(plan, dev: str) -> dict[str, torch.Tensor]:
    key = (id(plan), dev)
    if key not in _CONSTS:
        # a batch axis of 1: ops execute with a leading batch axis
        _CONSTS[key] = {name: torch.from_numpy(np.ascontiguousarray(q)).to(dev).unsqueeze(0)
                        for name, q in plan.consts.items()}
    return _CONSTS[key]


def _pick_device(device: str | None) -> str:
    if device:
        return device
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _shapes_for(model_path: Path, inputs: list[np.ndarray]) -> list[tuple[int, ...]]:
    declared = model_input_shapes(model_path)
    if len(declared) != len(inputs):
        raise UsageError(f"model has {len(declared)} inputs, got {len(inputs)}")
    shapes = []
    for d, x in zip(declared, inputs):
        x = np.asarray(x)
        if x.ndim == len(d) and all(a is None or a == b for a, b in zip(d, x.shape)):
            shapes.append(tuple(x.shape))
            continue
        # flat input_data: fill symbolic dims with 1 (EZKL's batch_size=1)
        concrete = tuple(1 if a is None else a for a in d)
        if int(np.prod(concrete)) != x.size:
            raise UsageError(f"input of {x.size} values does not fit shape {d}")
        shapes.append(concrete)
    return shapes


def run_fixed(
    model_path: Path,
    inputs: list[np.ndarray],
    settings: dict,
    device: str | None = None,
    *,
    backend: str | object = "triton",
    check_scales: bool = True,
) -> EngineResult:
    """Run ``model_path`` on ``inputs`` (floats) the way EZKL computes its witness.

    ``settings`` is the content of EZKL's settings.json (its ``run_args`` give the scales).
    ``backend="torch"`` (or its former name ``"reference"``) runs the exact int64 torch backend
    on the CPU instead of the kernels. With ``check_scales`` the output scales must equal the settings'
    ``model_output_scales`` (a mismatch means the lowering differs from EZKL's).
    """
    model_path = Path(model_path)
    run_args = settings["run_args"]
    shapes = _shapes_for(model_path, inputs)
    graph, plan = _prepared(model_path, shapes, run_args)
    expected = settings.get("model_output_scales")
    if check_scales and expected is not None and list(expected) != plan.output_scales:
        raise ScaleMismatchError(
            f"engine output scales {plan.output_scales} != EZKL's {list(expected)}; "
            f"ops: {[s.node.onnx_op for s in plan.steps.values()]}"
        )

    be, dev = backends.resolve(backend, _pick_device(device))
    t0 = time.perf_counter()
    values: dict[str, torch.Tensor] = {}
    for name in graph.inputs:
        node = graph.nodes[name]
        x = np.asarray(inputs[node.attrs["index"]]).reshape(1, *node.shape)
        q = quantize_input(x, plan.input_scales[node.attrs["index"]], node.attrs["float"])
        values[name] = torch.from_numpy(q).to(dev)
    values.update(_device_consts(plan, dev))
    ops: list[str] = []
    for name, step in plan.steps.items():
        args = [values[i] for i in step.node.inputs]
        values[name] = run_step(be, step, args)
        ops.append(step.node.onnx_op or step.node.op)
    outs = [values[o].reshape(-1).cpu() for o in graph.outputs]
    if dev.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = (time.perf_counter() - t0) * 1000.0

    fixed = [[int(v) for v in o.tolist()] for o in outs]
    floats = [[v / 2.0 ** s for v in o] for o, s in zip(fixed, plan.output_scales)]
    dedup: list[str] = []
    for o in ops:
        if not dedup or dedup[-1] != o:
            dedup.append(o)
    return EngineResult(fixed, floats, plan.output_scales, be.describe(), elapsed, dedup)
