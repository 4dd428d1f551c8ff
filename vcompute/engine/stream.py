"""``Engine.infer_stream``: many batches in flight at once on the CUDA-graph path (#9).

A batch from the host through :meth:`Engine.infer` is a chain: its float32 input is copied in,
the pass runs, the result is copied out, the host waits and reads the flags. Each step leaves the
others' hardware idle (the copy engines during the pass, the SMs during the copies and the host's
work), and a small model's pass leaves most SMs idle besides: LeNet-5 at 256 samples is 76 µs of
kernels but 109 µs a batch with its copies (BENCHMARKS.md §2g). Here each batch goes to one of
``depth`` *slots* of its (shapes, tier, batch size): a slot is a graph of the pass captured with
buffers, flags and hand-over ticket of its own (nothing is shared but the weights, which are only
read), replayed on the slot's own stream. The host stages batch i+1 into its slot's pinned buffer
and launches it while the batches before it are still on the device, and waits for a batch only
when its slot comes round again or the stream ends.

Bits: a slot replays the pass that ``infer``'s graph replays, on its own buffers, so each batch's
integers are the ones ``infer`` gives it. A batch that cannot go to a slot (the first batches of a
size, which compile the plan and capture ``infer``'s graph; integer inputs, which get their exact
tier every time; torch tensors) runs through ``infer`` in its turn; so does one whose pass raised
a device flag, which ``infer`` then re-runs at its own tier or on the op path, as for any batch.
No flagged output is ever yielded. An engine serves one stream at a time (a second open stream
would share the slots); a stream closed early leaves nothing in flight.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vcompute.errors import UsageError

from . import cudart
from .compiled import CompiledPlan
from .engine import _batch_inputs, _GraphRunner, _is_torch, graph_key
from .run import BatchResult

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("vcompute.engine")


@dataclass
class _Job:
    """A batch bound for a slot: what the caller passed (a flagged batch re-runs through
    ``infer``), its plan and compiled pass, its slot key and its float inputs in the pass's shapes
    (as given: :func:`_launch` converts them to float32 as it stages them)."""

    samples: Any
    plan: Any
    cp: CompiledPlan
    key: tuple
    specs: list[tuple]
    inputs: list[np.ndarray]
    nb: int
    t0: float


@dataclass
class _Slot:
    """One graph of the pass with its own buffers, the stream it replays on and the event that
    marks its batch done; ``job`` is the batch in flight (None: free). ``direct`` holds the
    handles (graph exec, stream) for a direct ``cudaGraphLaunch`` (:mod:`.cudart`), None where
    the replay goes through torch."""

    runner: _GraphRunner
    stream: torch.cuda.Stream
    done: torch.cuda.Event
    job: _Job | None = None
    direct: tuple[int, int] | None = None


@dataclass(frozen=True)
class _Kind:
    """What a batch's per-sample input shapes fix for a whole stream (looked up once per stream
    and kind, not per batch: on the GPU hosts each look-up is several µs of Python). ``routes``:
    per batch size, the tier's compiled pass and slot key last found for it (see :func:`_route`)."""

    shapes: tuple
    plan: Any
    specs: list[tuple]
    float_inputs: bool
    routes: dict[int, tuple] = field(default_factory=dict, compare=False)


def _kind(eng: Engine, xs: list, check_scales: bool | None, known: dict[tuple, _Kind] | None) -> _Kind:
    sig = tuple(tuple(x.shape[1:]) for x in xs)
    kind = known.get(sig) if known is not None else None
    if kind is None:
        shapes = eng._circuit_shapes(xs)
        graph, plan = eng._prepare_checked(shapes, check_scales)
        kind = _Kind(tuple(shapes), plan, eng._input_specs(graph),
                     all(graph.nodes[n].attrs["float"] for n in graph.inputs))
        if known is not None:
            known[sig] = kind
    return kind


def _job(eng: Engine, samples: Any, check_scales: bool | None,
         known: dict[tuple, _Kind] | None = None) -> _Job | None:
    """The batch as a slot's job, or None where it must run through ``infer``. ``known``: the
    stream's kinds of batch so far (see :class:`_Kind`)."""
    t0 = time.perf_counter()
    xs = _batch_inputs(samples)
    nb = int(xs[0].shape[0])
    if nb == 0 or any(_is_torch(x) for x in xs):
        return None
    kind = _kind(eng, xs, check_scales, known)
    if not kind.float_inputs:
        return None  # no device check of integer inputs: infer scans each batch for its tier
    route = _route(eng, kind, nb)
    if route is None:
        return None
    inputs = [np.asarray(x).reshape(x.shape[0], *shape) for x, (shape, _) in zip(xs, kind.specs)]
    return _Job(samples, kind.plan, route[0], route[1], kind.specs, inputs, nb, t0)


def _route(eng: Engine, kind: _Kind, nb: int) -> tuple[CompiledPlan, tuple] | None:
    """The compiled pass of the tier ``infer`` last ran clean for this kind and its slot key at
    ``nb`` samples, or None while there is none (no clean batch yet, a pass that cannot be
    compiled, or no graph captured yet: ``infer`` captures a size's graph on its second batch).
    Kept per kind and size while ``infer`` keeps the same tier (the same bits list) and the same
    compiled pass for it; graphs, once captured, stay for the engine's life."""
    bits = eng._last_bits.get(kind.shapes)
    if bits is None:
        return None
    hit = kind.routes.get(nb)
    if hit is not None and hit[0] is bits and eng._compiled.get(hit[1]) is hit[2]:
        return hit[2], hit[3]
    ckey = (kind.shapes, tuple(bits))
    cp = eng._compiled.get(ckey)
    if not isinstance(cp, CompiledPlan):
        return None
    key = graph_key(kind.specs, bits, nb)
    if key not in eng._graphs:
        return None
    kind.routes[nb] = (bits, ckey, cp, key)
    return cp, key


def _ring(job: _Job, depth: int, dev: torch.device) -> list[_Slot]:
    """``depth`` slots for the job's key, each with a graph captured on buffers of its own."""
    slots = [_Slot(_GraphRunner(job.cp, job.nb, job.specs, dev), torch.cuda.Stream(dev), torch.cuda.Event())
             for _ in range(depth)]
    direct = cudart.graph_launcher() is not None
    for slot in slots:
        exec_handle = slot.runner.io_exec() if direct else None
        if exec_handle is not None:
            slot.direct = (exec_handle, slot.stream.cuda_stream)
        slot.stream.wait_stream(torch.cuda.current_stream(dev))  # the buffers the capture zeroed
    return slots


def _launch(slot: _Slot, job: _Job) -> None:
    """Stage the batch into the slot's pinned input (float32, converted on the way: one pass
    over the data) and replay the slot's graph (copy in, pass, copy out) on its stream; no wait.
    The replay is a direct ``cudaGraphLaunch`` where the slot has the handles and its device is
    the current one (what torch's replay would set), else torch's replay on the slot's stream."""
    runner = slot.runner
    runner.stage(job.inputs)
    if not _launch_direct(slot):
        with torch.cuda.stream(slot.stream):
            runner.replay_io()
    slot.done.record(slot.stream)
    slot.job = job


def _launch_direct(slot: _Slot) -> bool:
    """Launch the slot's graph by ``cudaGraphLaunch`` where it can; False where torch's replay
    must do it (no handles, another current device, or a launch the runtime refused: then the
    slot keeps to torch's replay, which raises if the device itself is at fault)."""
    launch = cudart.graph_launcher()
    if slot.direct is None or launch is None or torch.cuda.current_device() != slot.stream.device_index:
        return False
    try:
        launch(*slot.direct)
    except RuntimeError as e:
        log.warning("engine: %s; replaying through torch from now on", e)
        slot.direct = None
        return False
    return True


def _finish(eng: Engine, item: BatchResult | _Slot, check_scales: bool | None) -> BatchResult:
    """The batch's result: as it ran, or its slot's once the device is done with it."""
    if isinstance(item, BatchResult):
        return item
    job = item.job
    assert job is not None
    item.done.synchronize()
    outs = job.cp.clean_outputs(item.runner.host_out_np, job.nb)
    item.job = None
    if outs is None:  # beyond the tier, or a range: infer decides, as for any batch
        return eng.infer(job.samples, check_scales=check_scales)
    return eng._result(job.plan, outs, job.nb, job.t0, "graph")


def serve(eng: Engine, batches: Iterable[Any], depth: int, check_scales: bool | None) -> Iterator[BatchResult]:
    """``Engine.infer_stream`` (see the module doc)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise UsageError(f"depth must be a whole number of at least 1, not {depth!r}")
    return _serve(eng, batches, depth, check_scales)


def _serve(eng: Engine, batches: Iterable[Any], depth: int, check_scales: bool | None) -> Iterator[BatchResult]:
    """One stream at a time per engine: two would share the slots (and their pinned buffers)."""
    if eng._streaming:
        raise UsageError("this engine is already serving an infer_stream: finish or close that one first "
                         "(or load the model again for a second stream)")
    eng._streaming = True
    try:
        yield from _serve_one(eng, batches, depth, check_scales)
    finally:
        eng._streaming = False


def _serve_one(eng: Engine, batches: Iterable[Any], depth: int, check_scales: bool | None) -> Iterator[BatchResult]:
    if eng.path != "graph":
        for samples in batches:
            yield eng.infer(samples, check_scales=check_scales)
        return
    dev = torch.device(eng.device)
    rings: dict[tuple, list[_Slot]] = eng._rings  # per (slot key, depth), kept for the next stream
    turns: dict[tuple, int] = {}
    pending: deque[BatchResult | _Slot] = deque()  # in batch order
    known: dict[tuple, _Kind] = {}
    try:
        for samples in batches:
            try:
                job = _job(eng, samples, check_scales, known)
                ran = eng.infer(samples, check_scales=check_scales) if job is None else None
            except Exception:  # the batches before this one still get their results
                while pending:
                    yield _finish(eng, pending.popleft(), check_scales)
                raise
            if job is None:
                pending.append(ran)
            else:
                rkey = (job.key, depth)
                if rkey not in rings:
                    rings[rkey] = _ring(job, depth, dev)
                ring = rings[rkey]
                slot = ring[turns.get(rkey, 0) % depth]
                turns[rkey] = turns.get(rkey, 0) + 1
                while slot.job is not None:  # the slot's last batch is done and yielded first
                    yield _finish(eng, pending.popleft(), check_scales)
                _launch(slot, job)
                pending.append(slot)
            while pending and isinstance(pending[0], BatchResult):
                yield pending.popleft()
        while pending:
            yield _finish(eng, pending.popleft(), check_scales)
    finally:  # a stream closed early: nothing of it may still run on buffers a later one reuses
        for ring in rings.values():
            for slot in ring:
                if slot.job is not None:
                    slot.done.synchronize()
                    slot.job = None
