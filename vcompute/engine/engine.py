"""``Engine``: a model loaded once, serving many batches on the fastest exact path (#9).

    eng = Engine("model.onnx", settings)            # parse + lower + scale-plan once
    res = eng.infer(batch)                          # BatchResult: every sample's integers
    for res in eng.infer_stream(batches): ...       # many batches, several in flight (.stream)

Paths (``path=``), all bit-identical to EZKL's witness:

* ``"graph"``: the compiled plan (:mod:`.compiled`: static bounds, planned limbs, fused
  epilogues) captured in a CUDA graph per (input shapes, input tier, batch size) and replayed.
  The first batch of a given size runs the compiled plan directly (it compiles the kernels and
  is a one-shot call's whole cost); the second captures the graph; later ones only replay it.
  A batch from the host is one replay of a graph that also holds the copy of the float32 batch
  in and of the flags and outputs out, then the only sync.
* ``"fused"``: the compiled plan without a graph (also on the CPU, in Triton's interpreter).
* ``"ops"``: the op-by-op path (:func:`.run._execute_exact`), with a host check per op.

A compiled plan is made for an input *tier* (the bits of the largest quantized input). The first
batch of given shapes from the host gets its own tier from one scan of its values; later batches
of a model whose inputs are all float, and device tensors (which the host never reads), run on the
last tier that ran clean, checked on the device as the inputs are quantized: a batch beyond it
raises ``FLAG_INPUT_RANGE`` and re-runs at its own tier. Any tier that covers the inputs gives the
same bits. A batch with an integer input gets its exact tier every time (a scan; one sync for
tensors): nothing checks integer inputs on the device.

``"auto"`` is ``graph`` for the Triton backend on a CUDA device, ``ops`` otherwise. A model the
fast path does not cover (:class:`.compiled.NotCompilable`) runs ``ops``; so does a batch that
raised a device flag, which then gives the same bits or the error EZKL's rules call for: no
flagged output is ever returned. ``BatchResult.path`` says which path ran.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from vcompute.errors import UsageError, first_line

from . import backends
from .compiled import CompiledPlan, NotCompilable, TilePolicy, tile_policy
from .fast_kernels import FLAG_INPUT_RANGE
from .fixedpoint import quantize_input
from .graph import ModelLike
from .run import (BatchResult, ScaleMismatchError, _declared_shapes, _execute_exact,
                  _pick_device, _prepared, _Source, _stack_inputs)

PATHS = ("auto", "graph", "fused", "ops")
log = logging.getLogger("vcompute.engine")


def _is_torch(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def as_float32(x: Any) -> np.ndarray:
    """A float input as the compiled pass quantizes it: float32, rounded once from its float64
    value (so a float16 or integer input gives the float32 its float64 value rounds to)."""
    a = np.asarray(x)
    return a if a.dtype == np.float32 else np.asarray(a, dtype=np.float64).astype(np.float32)


def stage_float32(dst: torch.Tensor, x: Any) -> None:
    """``as_float32(x)`` written into ``dst`` (a pinned float32 tensor). From float32 or float64
    it is one rounding either way and no intermediate array, by torch's copy: that runs on the
    intra-op threads, where one core's copy bandwidth bounds a large batch (a megabyte took 58 µs
    on the lent H100 hosts, BENCHMARKS.md §2h). Other dtypes, and arrays torch cannot wrap
    (read-only, byte-swapped, negative strides), go through ``as_float32``."""
    a = np.asarray(x)
    if a.dtype in (np.float32, np.float64) and a.dtype.isnative and a.flags.writeable and min(a.strides, default=0) >= 0:
        src = torch.from_numpy(a)
        dst.copy_(src if src.shape == dst.shape else src.reshape(dst.shape))
    else:
        dst.numpy()[...] = as_float32(a).reshape(tuple(dst.shape))


def graph_key(specs: list[tuple[tuple[int, ...], torch.dtype]], bits: list[int], nb: int) -> tuple:
    """The key of a captured graph (``Engine._graphs``): the inputs' per-sample shapes, the tier
    and the batch size. ``infer`` files graphs under it and the stream finds them by it."""
    return (tuple(shape for shape, _ in specs), tuple(bits), nb)


def _host_tensor(x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """A host array as a CPU tensor for a pass input of ``dtype``: a float input as the float32
    ``infer`` quantizes (``as_float32``), an integer one (already quantized) as it is."""
    return torch.from_numpy(np.ascontiguousarray(as_float32(x) if dtype == torch.float32 else x))


def _batch_inputs(samples: Any) -> list[np.ndarray | torch.Tensor]:
    """Per model input, the batch on a leading axis: torch tensors stay tensors (on their
    device), anything else goes through ``run._stack_inputs``."""
    # the served shapes first, as _stack_inputs would return them (a few µs a batch saved)
    if type(samples) is np.ndarray:
        return [samples]
    if type(samples) in (list, tuple) and len(samples) == 1 and type(samples[0]) is np.ndarray and samples[0].ndim:
        return [samples[0]]
    if _is_torch(samples):
        return [samples]
    if isinstance(samples, (list, tuple)) and samples and all(_is_torch(s) for s in samples):
        sizes = {int(s.shape[0]) if s.dim() else -1 for s in samples}
        if len(sizes) != 1 or -1 in sizes:
            raise UsageError(f"stacked inputs need the same leading batch size, got shapes "
                             f"{[tuple(s.shape) for s in samples]}")
        return list(samples)
    return _stack_inputs(samples)


def _concrete_shapes(declared: list[tuple[int | None, ...]], first: list[tuple[int, ...]],
                     sizes: list[int]) -> list[tuple[int, ...]]:
    """Each input's batch-1 circuit shape from one sample's shape (see ``run._shapes_for``)."""
    if len(declared) != len(first):
        raise UsageError(f"model has {len(declared)} inputs, got {len(first)}")
    shapes = []
    for d, shp, n in zip(declared, first, sizes):
        if len(shp) == len(d) and all(a is None or a == b for a, b in zip(d, shp)):
            shapes.append(tuple(shp))
            continue
        concrete = tuple(1 if a is None else a for a in d)
        if int(np.prod(concrete)) != n:
            raise UsageError(f"input of {n} values does not fit shape {d}")
        shapes.append(concrete)
    return shapes


def _float_bits(x32: np.ndarray, scale: int) -> int | None:
    """Bits of the largest quantized value of a float32 batch (``|q| < 2^bits``), None when
    some value is infinite (the op path then refuses it with its own message)."""
    if x32.size == 0:
        return 0
    a = np.abs(x32)
    m = float(a.max())
    if np.isnan(m):  # NaN quantizes to 0 (Rust's round(NaN) as i64): the rest decides
        m = float(np.nanmax(a)) if not np.all(np.isnan(a)) else 0.0
    if not np.isfinite(m):
        return None
    q = abs(int(quantize_input(np.array([m]), scale)[0])) if m * 2.0 ** scale < 2.0 ** 62 else None
    return None if q is None else q.bit_length()


class _GraphRunner:
    """A compiled plan at one batch size as CUDA graphs over static buffers.

    ``graph`` is the pass alone: what a batch already on the device replays, and what benchmarks
    time as the device work. ``io_graph`` (captured on the first batch from the host) also holds
    the copy of the pinned host inputs in and of the result out, so a host batch costs one replay
    call instead of three CUDA calls (each several µs of host time: the bound on a small model's
    steady state, BENCHMARKS.md §2c)."""

    def __init__(self, cp: CompiledPlan, nb: int, specs: list[tuple[tuple[int, ...], torch.dtype]],
                 dev: torch.device) -> None:
        self.cp, self.nb, self.dev = cp, nb, dev
        self.static_in = [torch.zeros((nb, *shape), dtype=dt, device=dev) for shape, dt in specs]
        self.host_in = [torch.zeros((nb, *shape), dtype=dt, pin_memory=True) for shape, dt in specs]
        self.host_in_np = [h.numpy() for h in self.host_in]  # views made once: a few µs a batch each
        self.flags = cp.new_flags()
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):  # warm-up off the capture (compiles kernels, fills the allocator)
            cp.forward(self.static_in, self.flags)
        torch.cuda.current_stream(dev).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = cp.forward(self.static_in, self.flags)
        self.host_out = torch.empty(self.static_out.shape, dtype=torch.int64, pin_memory=True)
        self.host_out_np = self.host_out.numpy()
        self.io_graph: torch.cuda.CUDAGraph | None = None
        self._io_tried = False

    def _capture_io(self) -> None:
        """Capture ``io_graph`` (its own memory pool and result buffer); on a torch that cannot
        capture the pinned-memory copies, the three calls stay (same bits, more host time)."""
        self._io_tried = True
        g = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(g):
                for host, dev in zip(self.host_in, self.static_in):
                    dev.copy_(host, non_blocking=True)
                out = self.cp.forward(self.static_in, self.flags)
                self.host_out.copy_(out, non_blocking=True)
        except RuntimeError as e:  # the plain graph still serves
            log.info("engine: no CUDA graph with the host copies (%s); copying around the replay", first_line(e))
            torch.cuda.synchronize(self.dev)
            return
        self.io_graph = g

    def replay(self) -> None:
        """The pass on ``static_in``, result in ``static_out`` (no copies, no sync)."""
        self.graph.replay()

    def replay_io(self) -> None:
        """``host_in`` in, the pass, the result out to ``host_out``: one call, no sync."""
        if not self._io_tried:
            self._capture_io()
        if self.io_graph is not None:
            self.io_graph.replay()
            return
        for host, dev in zip(self.host_in, self.static_in):
            dev.copy_(host, non_blocking=True)
        self.graph.replay()
        self.host_out.copy_(self.static_out, non_blocking=True)

    def io_exec(self) -> int | None:
        """The handle of ``io_graph``'s instantiated graph (captured here if not yet), for a
        direct launch on a stream of the caller's (:mod:`.cudart`); None without one."""
        if not self._io_tried:
            self._capture_io()
        if self.io_graph is None or not hasattr(self.io_graph, "raw_cuda_graph_exec"):
            return None
        return int(self.io_graph.raw_cuda_graph_exec())

    def stage(self, inputs: list[np.ndarray]) -> None:
        """Host arrays into the pinned inputs: a float input as ``infer``'s float32 (one pass
        from float64 or float32), an integer one (already quantized) as it is."""
        for host, host_np, x in zip(self.host_in, self.host_in_np, inputs):
            if host.dtype == torch.float32:
                stage_float32(host, x)
            else:
                host_np[...] = x

    def run(self, inputs: list[np.ndarray | torch.Tensor]) -> np.ndarray:
        """One batch: the result (flag words, outputs) in ``host_out``, after the one sync."""
        if any(_is_torch(x) for x in inputs):  # already on a device: no host copy in
            for k, x in enumerate(inputs):
                dst = self.static_in[k]
                dst.copy_(x if _is_torch(x) else _host_tensor(x, dst.dtype), non_blocking=not _is_torch(x))
            self.graph.replay()
            self.host_out.copy_(self.static_out, non_blocking=True)
        else:
            self.stage(inputs)
            self.replay_io()
        torch.cuda.current_stream(self.dev).synchronize()
        return self.host_out_np


class Engine:
    """A model and its settings, loaded once for many :meth:`infer` calls (see the module doc).

    ``model`` is a path or an ``onnx.ModelProto``; ``settings`` EZKL's settings (its
    ``run_args`` give the scales). ``backend``/``device`` as for ``run_fixed_batch``;
    ``path`` one of :data:`PATHS`; ``tiles`` a tile policy name or :class:`TilePolicy` (bits
    never depend on it).
    """

    def __init__(self, model: ModelLike, settings: dict, device: str | None = None, *,
                 backend: str | Any | None = None, path: str = "auto",
                 tiles: str | TilePolicy | None = "auto", check_scales: bool = True,
                 model_key: str | None = None) -> None:
        if path not in PATHS:
            raise UsageError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
        if not isinstance(settings, dict) or "run_args" not in settings:
            raise UsageError("settings must be EZKL's settings (a dict with run_args)")
        self._src = _Source(model, model_key)
        self.settings = settings
        self.run_args = settings["run_args"]
        self.check_scales = check_scales
        self.backend, self.device = backends.resolve(backend, _pick_device(device))
        triton_be = isinstance(self.backend, backends.TritonBackend)
        cuda = torch.device(self.device).type == "cuda"
        if path == "auto":
            path = "graph" if triton_be and cuda else "ops"
        if path in ("graph", "fused") and not triton_be:
            raise UsageError(f"path {path!r} runs the Triton kernels: use backend 'triton' (the "
                             f"{getattr(self.backend, 'name', 'given')} backend runs path 'ops')")
        if path == "graph" and not cuda:
            raise UsageError("path 'graph' needs a CUDA device (CUDA graphs); use 'fused' on the CPU")
        self.path = path
        self.tiles = tile_policy(tiles)
        self._compiled: dict[tuple, CompiledPlan | NotCompilable] = {}
        #: per sample shapes, the batch-1 circuit shapes; per those, the lowered graph and plan
        #: (a served batch of a seen shape then costs dict look-ups, not a re-keyed plan cache)
        self._shapes: dict[tuple, list[tuple[int, ...]]] = {}
        self._plans: dict[tuple, tuple] = {}
        self._graphs: dict[tuple, _GraphRunner] = {}
        #: infer_stream's slots per ((input specs, tier, batch size), depth): graphs with buffers of their own
        self._rings: dict[tuple, list] = {}
        self._streaming = False  # an infer_stream is open (one at a time: they would share the slots)
        self._seen: set[tuple] = set()
        self._last_bits: dict[tuple, list[int]] = {}
        #: how each batch ran: counts by path, and the last fallback's reason
        self.stats: dict[str, Any] = {"graph": 0, "fused": 0, "ops": 0, "fallbacks": 0, "last_fallback": None}

    # -- planning ---------------------------------------------------------------------------
    def prepare(self, shapes: list[tuple[int, ...]]):
        """The lowered graph and scale plan for these (batch-1) input shapes, checked."""
        key = tuple(shapes)
        if key not in self._plans:
            self._plans[key] = _prepared(self._src, shapes, self.run_args)
        graph, plan = self._plans[key]
        expected = self.settings.get("model_output_scales")
        if self.check_scales and expected is not None and list(expected) != plan.output_scales:
            raise ScaleMismatchError(
                f"engine output scales {plan.output_scales} != EZKL's {list(expected)}; "
                f"ops: {[s.node.onnx_op for s in plan.steps.values()]}")
        return graph, plan

    def compiled(self, shapes: list[tuple[int, ...]], bits: list[int]) -> CompiledPlan | NotCompilable:
        """The compiled plan for an input tier (cached; a NotCompilable says why there is none)."""
        key = (tuple(shapes), tuple(bits))
        if key not in self._compiled:
            graph, plan = self.prepare(shapes)
            try:
                self._compiled[key] = CompiledPlan(graph, plan, bits, self.device, self.tiles)
            except NotCompilable as e:
                self._compiled[key] = e
        return self._compiled[key]

    def _floor_bits(self, plan) -> list[int]:
        """The smallest tier: inputs up to 2.0 (|q| < 2^(scale+1)), integers up to 2^8."""
        return [s + 1 if s else 8 for s in plan.input_scales]

    def _host_bits(self, graph, plan, xs: list[np.ndarray]) -> list[int] | None:
        bits = []
        for k, (name, x) in enumerate(zip(graph.inputs, xs)):
            if graph.nodes[name].attrs["float"]:  # the float32 the pass quantizes (x may be as given)
                b = _float_bits(as_float32(x), plan.input_scales[k])
            else:
                b = int(np.abs(x.astype(object)).max()).bit_length() if x.size else 0
            if b is None or b > 62:
                return None
            bits.append(max(b, self._floor_bits(plan)[k]))
        return bits

    def _exact_bits(self, graph, plan, xs: list, on_host: bool) -> list[int] | None:
        """The batch's own tier (None: an input is infinite or beyond 2^62): a scan of host arrays,
        or of tensors after one sync."""
        if not on_host:
            xs = [x.detach().float().cpu().numpy() if graph.nodes[n].attrs["float"] else x.detach().cpu().numpy()
                  for n, x in zip(graph.inputs, xs)]
        return self._host_bits(graph, plan, xs)

    # -- running ----------------------------------------------------------------------------
    def infer(self, samples: Any, *, check_scales: bool | None = None) -> BatchResult:
        """Run a batch: a list of per-sample input lists, stacked arrays (one per model input,
        leading batch axis) or torch tensors (on any device). Returns every sample's outputs."""
        t0 = time.perf_counter()
        xs = _batch_inputs(samples)
        nb = int(xs[0].shape[0])
        if nb == 0:
            raise UsageError("an empty batch")
        shapes = self._circuit_shapes(xs)
        graph, plan = self._prepare_checked(shapes, check_scales)
        outs, path = None, "ops"
        if self.path != "ops":
            outs, path = self._fast(graph, plan, shapes, xs)
        if outs is None:
            outs = self._ops(graph, plan, xs)
        return self._result(plan, outs, nb, t0, path)

    def _prepare_checked(self, shapes: list[tuple[int, ...]], check_scales: bool | None):
        """:meth:`prepare`, with this call's ``check_scales`` in place of the engine's."""
        saved = self.check_scales
        if check_scales is not None:
            self.check_scales = check_scales
        try:
            return self.prepare(shapes)
        finally:
            self.check_scales = saved

    def _result(self, plan, outs: list[np.ndarray], nb: int, t0: float, path: str) -> BatchResult:
        """A batch's :class:`BatchResult` (and its count in ``stats``)."""
        self.stats["fused" if path.startswith("graph (") else path.split(" ")[0]] += 1
        fixed = [np.asarray(o, dtype=np.int64).reshape(nb, -1) for o in outs]
        elapsed = (time.perf_counter() - t0) * 1000.0
        return BatchResult(fixed, list(plan.output_scales), self.backend.describe(), elapsed, list(plan.op_names),
                           path=path)

    def infer_stream(self, batches: Iterable[Any], *, depth: int = 3,
                     check_scales: bool | None = None) -> Iterator[BatchResult]:
        """Serve many batches: yields each batch's :class:`BatchResult`, in order, the same as
        :meth:`infer` gives for it. On the ``graph`` path up to ``depth`` batches are in flight,
        each on its own stream and its own copy of the graph, so one batch's copies and pass
        overlap the others' (:mod:`.stream`); elsewhere it is :meth:`infer` per batch. A batch
        that raises stops the stream after the results of the batches before it. One stream
        at a time per engine: a second, opened while one is still open, is refused."""
        from .stream import serve

        return serve(self, batches, depth, check_scales)

    def _circuit_shapes(self, xs: list[np.ndarray | torch.Tensor]) -> list[tuple[int, ...]]:
        """Each input's batch-1 circuit shape for a batch of these inputs (cached per shape)."""
        first = tuple(tuple(x.shape[1:]) for x in xs)
        if first not in self._shapes:
            self._shapes[first] = _concrete_shapes(_declared_shapes(self._src), list(first),
                                                   [int(np.prod(s)) for s in first])
        return self._shapes[first]

    def _ops(self, graph, plan, xs) -> list[np.ndarray]:
        per_input = [x.detach().cpu().numpy() if _is_torch(x) else np.asarray(x) for x in xs]
        outs = _execute_exact(graph, plan, self.backend, self.device, per_input)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return [o.numpy() for o in outs]

    def _fallback(self, why: str) -> tuple[None, str]:
        (log.warning if why.startswith(("the compiled plan failed", "device flags")) else log.info)(
            "engine: running op by op: %s", why)
        self.stats["fallbacks"] += 1
        self.stats["last_fallback"] = why
        return None, f"ops (fallback: {why})"

    @staticmethod
    def _device_inputs(graph, xs, dev: torch.device) -> tuple[list[tuple], list[np.ndarray | torch.Tensor]]:
        """Each input as the compiled pass takes it, with its (shape, dtype) spec: integer ones
        quantized to int64, tensors moved to ``dev`` (float ones as float32). A float host array
        stays in its own dtype, in the pass's shape: the graph's staging writes it into pinned
        float32 in one pass (``stage_float32``), where converting here first would read and write
        the batch twice; the tier scan and the fused path's upload convert it (``as_float32``)."""
        prepared = []
        for name, x in zip(graph.inputs, xs):
            is_float = graph.nodes[name].attrs["float"]
            if _is_torch(x):
                x = x.detach().to(dev, torch.float32 if is_float else torch.int64)
            elif is_float:
                x = np.asarray(x)
            else:
                x = quantize_input(np.asarray(x), 0, False)
            prepared.append(x.reshape(x.shape[0], *graph.nodes[name].shape))
        return Engine._input_specs(graph), prepared

    @staticmethod
    def _input_specs(graph) -> list[tuple[tuple[int, ...], torch.dtype]]:
        """Each input's per-sample (shape, dtype) as the compiled pass takes it."""
        return [(tuple(graph.nodes[n].shape), torch.float32 if graph.nodes[n].attrs["float"] else torch.int64)
                for n in graph.inputs]

    def _fast(self, graph, plan, shapes, xs) -> tuple[list[np.ndarray] | None, str]:
        """The compiled path; (None, 'ops (fallback: why)') when it cannot give the outputs."""
        dev = torch.device(self.device)
        specs, prepared = self._device_inputs(graph, xs, dev)
        on_host = not any(_is_torch(x) for x in xs)
        # The last tier that ran clean serves the next batch too (any tier that covers the inputs
        # gives the same bits): the device checks every float input against it as it quantizes, so
        # only a batch that raises the input flag pays for the exact tier (a scan on the host, one
        # sync for tensors). Integer inputs get no such check, so a batch holding one always gets
        # its exact tier.
        key_shapes = tuple(shapes)
        bits = self._last_bits.get(key_shapes)
        exact = (bits is None and on_host) or not all(graph.nodes[n].attrs["float"] for n in graph.inputs)
        if exact:
            bits = self._exact_bits(graph, plan, prepared, on_host)
            if bits is None:
                return self._fallback("an input is infinite or beyond 2^62")
        elif bits is None:
            bits = self._floor_bits(plan)
        for attempt in range(2):
            cp = self.compiled(shapes, bits)
            if isinstance(cp, NotCompilable):
                return self._fallback(str(cp))
            try:
                res = self._launch(cp, bits, specs, prepared, dev)
            except Exception as e:  # noqa: BLE001  (a kernel that fails to build or launch here)
                # the op path still answers (exactly, or with EZKL's error); the tier is not retried
                why = NotCompilable(f"the compiled plan failed: {type(e).__name__}: {first_line(e)}")
                self._compiled[(tuple(shapes), tuple(bits))] = why
                return self._fallback(str(why))
            nb = prepared[0].shape[0]
            outs = cp.clean_outputs(res, nb)
            if outs is not None:
                self._last_bits[key_shapes] = bits
                return outs, self._last_path
            flags = cp.read_flags(res, nb)
            # an input beyond the tier invalidates everything after it (later flags follow from it)
            input_flag = bool(int(flags[0]) & FLAG_INPUT_RANGE)
            if attempt == 0 and input_flag and not exact:  # the tier may be too small: the batch's own
                own = self._exact_bits(graph, plan, prepared, on_host)
                if own is None:
                    return self._fallback("an input is infinite or beyond 2^62")
                if any(o > b for o, b in zip(own, bits)):
                    bits = own
                    continue
            break
        names = [n for n, f in zip(cp.flag_names, flags) if f]
        return self._fallback(f"device flags raised by {', '.join(names)}")

    def _launch(self, cp: CompiledPlan, bits, specs, xs, dev) -> np.ndarray:
        nb = int(xs[0].shape[0])
        key = graph_key(specs, bits, nb)
        if self.path == "graph":
            runner = self._graphs.get(key)
            if runner is None and key in self._seen:
                runner = self._graphs[key] = _GraphRunner(cp, nb, specs, dev)
            if runner is not None:
                self._last_path = "graph"
                return runner.run(xs)
            self._seen.add(key)
        self._last_path = "fused" if self.path == "fused" else "graph (first call: fused)"
        inputs = [x.to(dev) if _is_torch(x) else _host_tensor(x, dt).to(dev) for x, (_, dt) in zip(xs, specs)]
        flags = cp.new_flags()
        return cp.forward(inputs, flags).cpu().numpy()

    # -- for benchmarks ---------------------------------------------------------------------
    def graph_runner(self, batch: Any) -> _GraphRunner:
        """The captured graph for this batch's shapes, tier and size (capturing it if needed), with
        the batch loaded: ``runner.replay()`` then times the device work alone."""
        xs = _batch_inputs(batch)
        shapes = self._circuit_shapes(xs)
        for _ in range(2):  # the first call of a size runs without a graph
            res = self.infer(batch)
            if res.path != "graph" and not res.path.startswith("graph"):
                raise UsageError(f"no graph for this batch: it ran {res.path}")
        graph, plan = self.prepare(shapes)
        nb = int(xs[0].shape[0])
        bits = self._last_bits[tuple(shapes)]
        return self._graphs[graph_key(self._input_specs(graph), bits, nb)]

    def describe(self, batch: Any | None = None) -> dict[str, Any]:
        """The path, the tile policy and, per compiled tier, its launch groups."""
        tiers = {}
        for (shapes, bits), cp in self._compiled.items():
            tiers[json.dumps({"shapes": [list(s) for s in shapes], "bits": list(bits)})] = (
                cp.describe() if isinstance(cp, CompiledPlan) else f"not compiled: {cp}")
        return {"path": self.path, "tiles": self.tiles.name, "device": self.device, "tiers": tiers,
                "stats": dict(self.stats)}


__all__ = ["Engine", "PATHS"]
