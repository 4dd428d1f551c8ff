"""Public entry points: run an ONNX model in EZKL's fixed-point arithmetic.

``run_fixed_batch`` quantizes each sample's inputs as EZKL does, lowers the model to the op list
EZKL computes (:mod:`.graph`), assigns scales (:mod:`.quantize`) and runs every op on an integer
backend (:mod:`.ops`, :mod:`.backends`) for all samples at once: the plan is batch 1, as EZKL's
circuit is, and execution puts the samples on a leading batch axis (one GEMM over every
sample's rows, one conv over every sample's images). Each sample's ``outputs_fixed`` are the
integers EZKL's witness holds for that sample alone: integer arithmetic is exact, so batching
cannot change a bit. ``run_fixed`` is the one-sample case.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
import torch

from vcompute.errors import UsageError

from .backends import Backend
from .graph import Graph, ModelLike, load_graph, model_input_shapes
from .ops import run_step
from .quantize import Plan, make_plan, quantize_input


class ScaleMismatchError(UsageError):
    """The engine's scale bookkeeping disagrees with EZKL's settings (a lowering gap)."""


@dataclass
class EngineResult:
    """One sample's outputs: ``outputs_fixed[k]`` are output k's integers, flat."""

    outputs_fixed: list[list[int]]
    outputs: list[list[float]]
    output_scales: list[int]
    device: str
    time_ms: float
    ops: list[str] = field(default_factory=list)
    path: str = "ops"


@dataclass
class BatchResult:
    """Outputs of a batch. ``fixed[k]`` is output k of every sample as an int64 array [B, n]: the
    way to read a large batch, with no Python object per value. ``outputs_fixed[i][k]`` and
    ``outputs[i][k]`` are sample i's output k as flat Python ints and floats, built from ``fixed``
    on first access (for 1,024 samples that costs about a millisecond, far more than the pass)."""

    fixed: list[np.ndarray]
    output_scales: list[int]
    device: str
    time_ms: float  # the whole batch, without building the Python lists
    ops: list[str] = field(default_factory=list)
    #: how the batch ran: "graph", "fused", "ops", or "ops (fallback: why)" (engine.Engine)
    path: str = "ops"

    @property
    def batch_size(self) -> int:
        return int(self.fixed[0].shape[0])

    def floats(self) -> list[np.ndarray]:
        """``fixed[k] / 2^scale_k`` as float64 arrays (int64 -> float64 rounds to nearest, as
        Python's int -> float does; the division by a power of two is exact)."""
        return [a.astype(np.float64) / 2.0 ** s for a, s in zip(self.fixed, self.output_scales)]

    @cached_property
    def outputs_fixed(self) -> list[list[list[int]]]:
        return _per_sample([a.tolist() for a in self.fixed], self.batch_size)

    @cached_property
    def outputs(self) -> list[list[list[float]]]:
        return _per_sample([a.tolist() for a in self.floats()], self.batch_size)

    def sample(self, i: int) -> EngineResult:
        """Sample ``i`` as a one-sample result (``time_ms`` is the batch's)."""
        scales = self.output_scales
        return EngineResult([a[i].tolist() for a in self.fixed], [(a[i].astype(np.float64) / 2.0 ** s).tolist()
                                                                   for a, s in zip(self.fixed, scales)],
                            scales, self.device, self.time_ms, self.ops, self.path)


def _per_sample(per_output: list[list], nb: int) -> list[list]:
    """[output][sample] lists -> [sample][output] (one conversion per output, not per sample)."""
    return [[lst[i] for lst in per_output] for i in range(nb)]


# -- the model and its cached plan ------------------------------------------------------------


class _Source:
    """A model handed over as a path or a ModelProto: its cache key, parsed at most once."""

    def __init__(self, model: ModelLike, key: str | None = None) -> None:
        self._proto = model if isinstance(model, onnx.ModelProto) else None
        self._path = None if self._proto is not None else Path(model)
        if key is not None:
            self.key: tuple = ("key", key)
        elif self._proto is not None:
            self.key = ("sha256", hashlib.sha256(self._proto.SerializeToString()).hexdigest())
        else:
            st = self._path.stat()
            self.key = ("path", str(self._path.resolve()), st.st_mtime_ns, st.st_size)

    def proto(self) -> onnx.ModelProto:
        if self._proto is None:
            self._proto = onnx.load(str(self._path))
        return self._proto


_DECLARED: dict[tuple, list[tuple[int | None, ...]]] = {}
_PREPARED: dict[tuple, tuple[Graph, Plan]] = {}
_CONSTS: dict[tuple, dict[str, torch.Tensor]] = {}
_MAX_CACHED = 32


def _declared_shapes(src: _Source) -> list[tuple[int | None, ...]]:
    if src.key not in _DECLARED:
        if len(_DECLARED) > _MAX_CACHED:
            _DECLARED.clear()
        _DECLARED[src.key] = model_input_shapes(src.proto())
    return _DECLARED[src.key]


def _prepared(src: _Source, shapes, run_args: dict) -> tuple[Graph, Plan]:
    """Lowered graph and plan, cached per (model key, input shapes, run_args)."""
    key = (src.key, tuple(shapes), json.dumps(run_args, sort_keys=True, default=str))
    if key not in _PREPARED:
        if len(_PREPARED) > _MAX_CACHED:
            _PREPARED.clear()
            _CONSTS.clear()
        graph = load_graph(src.proto(), shapes)
        _PREPARED[key] = (graph, make_plan(graph, run_args))
    return _PREPARED[key]


def _device_consts(plan: Plan, dev: str) -> dict[str, torch.Tensor]:
    """The plan's quantized constants on ``dev``, with a batch axis of 1 (shared by samples)."""
    key = (id(plan), dev)
    if key not in _CONSTS:
        _CONSTS[key] = {name: torch.from_numpy(np.ascontiguousarray(q)).to(dev).unsqueeze(0)
                        for name, q in plan.consts.items()}
    return _CONSTS[key]


def _pick_device(device: str | None) -> str:
    if device:
        return device
    return "cuda:0" if torch.cuda.is_available() else "cpu"


# -- the samples ------------------------------------------------------------------------------

Samples = Any  # list of per-sample input lists, or stacked arrays (see run_fixed_batch)


def _is_array(v: Any) -> bool:
    return isinstance(v, (np.ndarray, torch.Tensor))


def _stack_inputs(samples: Samples) -> list[np.ndarray]:
    """Per model input, the samples' values stacked on a leading batch axis."""
    if _is_array(samples):  # a single-input model's samples, stacked
        return [np.asarray(samples)]
    if not isinstance(samples, (list, tuple)) or not samples:
        raise UsageError("samples must be a non-empty list of per-sample input lists, "
                         "or stacked arrays with a leading batch axis")
    if all(_is_array(s) for s in samples):  # one stacked array per model input
        per_input = [np.asarray(s) for s in samples]
        if len({a.shape[0] if a.ndim else -1 for a in per_input}) != 1 or per_input[0].ndim == 0:
            raise UsageError("stacked inputs need the same leading batch size, got shapes "
                             f"{[a.shape for a in per_input]}")
        return per_input
    if not all(isinstance(s, (list, tuple)) for s in samples):
        raise UsageError("samples must be a list of per-sample input lists (lists or tuples), "
                         "or a list of stacked arrays (one per model input)")
    n = len(samples[0])
    if any(len(s) != n for s in samples):
        raise UsageError(f"samples hold different numbers of inputs: {[len(s) for s in samples]}")
    per_input = []
    for k in range(n):
        vals = [np.asarray(s[k]) for s in samples]
        if len({v.shape for v in vals}) != 1:
            raise UsageError(f"input {k} has different shapes across samples: "
                             f"{sorted({v.shape for v in vals})}")
        per_input.append(np.stack(vals))
    return per_input


def _shapes_for(declared: list[tuple[int | None, ...]], sample: list[np.ndarray]
                ) -> list[tuple[int, ...]]:
    """Each input's concrete (batch-1 circuit) shape, from one sample's arrays."""
    if len(declared) != len(sample):
        raise UsageError(f"model has {len(declared)} inputs, got {len(sample)}")
    shapes = []
    for d, x in zip(declared, sample):
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


# -- execution --------------------------------------------------------------------------------


def _execute(graph: Graph, plan: Plan, be: Backend, dev: str, per_input: list[np.ndarray]
             ) -> list[torch.Tensor]:
    """Run every step for a batch; returns each output as a CPU (B, values) int64 tensor."""
    nb = per_input[0].shape[0]
    values: dict[str, torch.Tensor] = {}
    for name in graph.inputs:
        node = graph.nodes[name]
        k = node.attrs["index"]
        x = np.asarray(per_input[k]).reshape(nb, *node.shape)
        q = quantize_input(x, plan.input_scales[k], node.attrs["float"])
        values[name] = torch.from_numpy(q).to(dev)
    values.update(_device_consts(plan, dev))
    for name, step in plan.steps.items():
        values[name] = run_step(be, step, [values[i] for i in step.node.inputs])
    return [values[o].reshape(nb, -1).cpu() for o in graph.outputs]


def _execute_exact(graph: Graph, plan: Plan, be: Backend, dev: str, per_input: list[np.ndarray]
                   ) -> list[torch.Tensor]:
    """:func:`_execute`, one sample at a time when the batch trips an overflow guard.

    The guards bound a result by the largest operands in the batch, which can come from
    different samples; one sample alone is refused only if it could overflow itself.
    """
    nb = per_input[0].shape[0]
    try:
        return _execute(graph, plan, be, dev, per_input)
    except OverflowError:
        if nb == 1:
            raise
    parts = [_execute(graph, plan, be, dev, [x[i:i + 1] for x in per_input]) for i in range(nb)]
    return [torch.cat([p[k] for p in parts]) for k in range(len(graph.outputs))]


_ENGINES: dict[tuple, Any] = {}


def engine_for(model: ModelLike, settings: dict, device: str | None = None, *,
               backend: str | Backend | None = None, path: str = "auto", tiles: Any = "auto",
               model_key: str | None = None):
    """The cached :class:`.engine.Engine` for these arguments (its compiled plans and CUDA graphs
    live as long as it does)."""
    from .engine import Engine

    src = _Source(model, model_key)
    be_key = backend if backend is None or isinstance(backend, str) else ("object", id(backend))
    key = (src.key, json.dumps(settings.get("run_args", {}), sort_keys=True, default=str),
           json.dumps(settings.get("model_output_scales"), default=str), device, be_key, path,
           tiles if isinstance(tiles, str) or tiles is None else ("policy", id(tiles)))
    eng = _ENGINES.get(key)
    if eng is None:
        if len(_ENGINES) > _MAX_CACHED:
            _ENGINES.clear()
        eng = _ENGINES[key] = Engine(model, settings, device, backend=backend, path=path, tiles=tiles,
                                     model_key=model_key)
    return eng


def run_fixed_batch(
    model: ModelLike,
    samples: Samples,
    settings: dict,
    device: str | None = None,
    *,
    backend: str | Backend | None = None,
    check_scales: bool = True,
    model_key: str | None = None,
    path: str = "auto",
    tiles: Any = "auto",
) -> BatchResult:
    """Run ``model`` on a batch of samples, each exactly as EZKL computes its witness.

    ``model`` is a path to an .onnx file or a loaded ``onnx.ModelProto`` (parsed once; the plan
    is cached per model, keyed by the file's path and mtime, or by the proto's serialized bytes'
    hash unless ``model_key`` names it). ``samples`` is a list of per-sample input lists (floats,
    one array-like per model input), or stacked arrays with a leading batch axis: a list of one
    array per model input, or a single array for a single-input model (torch tensors on any
    device too). ``settings`` is EZKL's settings.json (its ``run_args`` give the scales).
    ``backend``: ``"triton"`` (the kernels), ``"torch"`` (exact int64 on the CPU; ``"reference"``
    is its former name), or ``None`` for Triton on a CUDA device and torch elsewhere. With
    ``check_scales`` the output scales must equal the settings' ``model_output_scales`` (a
    mismatch means the lowering differs from EZKL's). ``path``: ``"auto"`` (a CUDA graph of the
    compiled, fused plan on a GPU; op by op elsewhere), ``"graph"``, ``"fused"`` or ``"ops"``
    (:mod:`.engine`); ``tiles``: the tile policy of the fused path (bits never depend on it).
    Calls with the same arguments share one cached :class:`.engine.Engine`.
    """
    eng = engine_for(model, settings, device, backend=backend, path=path, tiles=tiles,
                     model_key=model_key)
    return eng.infer(samples, check_scales=check_scales)


def run_fixed(
    model_path: ModelLike,
    inputs: Sequence[Any],
    settings: dict,
    device: str | None = None,
    *,
    backend: str | Backend | None = None,
    check_scales: bool = True,
    model_key: str | None = None,
    path: str = "auto",
    tiles: Any = "auto",
) -> EngineResult:
    """Run ``model_path`` (a path or a loaded ModelProto) on one sample's ``inputs`` (floats, one
    array per model input) the way EZKL computes its witness: :func:`run_fixed_batch` with a
    batch of one (same arguments)."""
    return run_fixed_batch(model_path, [list(inputs)], settings, device, backend=backend,
                           check_scales=check_scales, model_key=model_key, path=path,
                           tiles=tiles).sample(0)
