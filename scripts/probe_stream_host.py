#!/usr/bin/env python3
"""Where ``Engine.infer_stream``'s host time goes, batch by batch (#9).

    python scripts/probe_stream_host.py CASES [--model lenet] [--samples 256]

``CASES`` as for ``scripts/bench_engine.py``. A ring of three slots (``stream._ring``) is driven
by hand, the way ``stream._serve_one`` drives it, with each step timed apart: the batch's job
(inputs, plan look-up), the wait for the slot, reading the slot's last result, staging the new
batch into pinned memory and launching the slot's graph. Each row leaves steps out or swaps the
launch (torch's replay under ``torch.cuda.stream``, torch's replay after ``set_stream``, or a
direct ``cudaGraphLaunch`` on the slot's handles) or the staging (torch's copy, numpy's, torch's
on 8, 4 or 2 intra-op threads). Then ``infer_stream`` itself at depths 1-4, launching directly
and through torch, every batch checked against ``infer``'s bits, and a torch.profiler table of
40 streamed batches. (BENCHMARKS.md §2h, §2i; raw output ``docs/bench/engine-h100-stream-host.txt``,
``docs/bench/engine-h100-twelfth.txt``.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import _pool  # noqa: E402

from vcompute.engine import cudart  # noqa: E402
from vcompute.engine import stream as S  # noqa: E402
from vcompute.engine.engine import Engine  # noqa: E402

ns = time.perf_counter_ns
STEPS = ("job", "wait", "finish", "stage", "launch")


def _stage(slot, job, how: str | None) -> None:
    if how == "numpy":
        for host, x in zip(slot.runner.host_in_np, job.inputs):
            np.copyto(host, x, casting="same_kind")
    elif how == "torch":
        slot.runner.stage(job.inputs)


def _launch(slot, how: str) -> None:
    if how == "direct":
        cudart.graph_launcher()(*slot.direct)
    elif how == "set_stream":
        prev = torch.cuda.current_stream()
        torch.cuda.set_stream(slot.stream)
        slot.runner.io_graph.replay()
        torch.cuda.set_stream(prev)
    else:
        with torch.cuda.stream(slot.stream):
            slot.runner.io_graph.replay()
    slot.done.record(slot.stream)


def ring_loop(eng: Engine, batch, ring, n: int, *, stage: str | None = "torch", wait: bool = True,
              finish: bool = True, launch: str = "ctx") -> tuple[float, dict[str, float]]:
    """µs per batch over ``n`` batches, and each step's share."""
    acc = dict.fromkeys(STEPS, 0)
    known: dict = {}  # the stream's look-ups, kept per stream as _serve_one keeps them
    for slot in ring:
        slot.job = None
    torch.cuda.synchronize()
    t0 = ns()
    for b in range(n):
        t = ns(); job = S._job(eng, batch, None, known); acc["job"] += ns() - t  # noqa: E702
        slot = ring[b % len(ring)]
        if slot.job is not None:
            t = ns()
            if wait:
                slot.done.synchronize()
            acc["wait"] += ns() - t
            t = ns()
            if finish:
                outs = slot.job.cp.clean_outputs(slot.runner.host_out_np, slot.job.nb)
                eng._result(slot.job.plan, outs, slot.job.nb, slot.job.t0, "graph")
            acc["finish"] += ns() - t
        t = ns(); _stage(slot, job, stage); acc["stage"] += ns() - t  # noqa: E702
        t = ns(); _launch(slot, launch); acc["launch"] += ns() - t  # noqa: E702
        slot.job = job
    torch.cuda.synchronize()
    total = (ns() - t0) / n / 1e3
    for slot in ring:
        slot.job = None
    return total, {k: round(v / n / 1e3, 1) for k, v in acc.items()}


def stream_us(eng: Engine, batch, want, depth: int, n: int = 64, rounds: int = 5) -> tuple[float, bool]:
    """µs per batch of ``infer_stream`` over ``rounds`` streams of ``n`` batches; all exact?"""
    def serve() -> bool:
        return all(all(np.array_equal(a, b) for a, b in zip(r.fixed, want))
                   for r in eng.infer_stream((batch for _ in range(n)), depth=depth))
    serve()
    torch.cuda.synchronize()
    t = time.perf_counter()
    ok = all(serve() for _ in range(rounds))
    return (time.perf_counter() - t) / (n * rounds) * 1e6, ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", type=Path)
    ap.add_argument("--model", default="lenet")
    ap.add_argument("--samples", type=int, default=256)
    args = ap.parse_args()
    case = args.cases / args.model
    samples, _, settings = _pool(case, args.samples)
    eng = Engine(case / "model.onnx", settings, "cuda")
    batch = [np.stack([np.asarray(s[0], dtype=np.float32) for s in samples])]
    for _ in range(3):
        want = eng.infer(batch).fixed
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"direct launch: {cudart.graph_launcher() is not None}; {args.model}, {args.samples} samples", flush=True)

    job = S._job(eng, batch, None)
    ring = S._ring(job, 3, torch.device("cuda"))
    ring_loop(eng, batch, ring, 30)
    rows = [("all steps, torch launch", {}), ("no staging", dict(stage=None)), ("no finish", dict(finish=False)),
            ("no wait, no finish", dict(wait=False, finish=False)), ("all steps, set_stream", dict(launch="set_stream")),
            ("job and launch only", dict(stage=None, wait=False, finish=False))]
    if all(s.direct is not None for s in ring):
        rows += [("all steps, direct launch", dict(launch="direct")),
                 ("numpy staging, direct", dict(launch="direct", stage="numpy")),
                 ("no staging, direct", dict(launch="direct", stage=None))]
    for label, kw in rows:
        total, acc = ring_loop(eng, batch, ring, 300, **kw)
        print(f"  ring of 3  {label:26s} {total:7.1f} us/batch  {acc}", flush=True)
    if all(s.direct is not None for s in ring):  # torch's staging copy on fewer intra-op threads
        threads = torch.get_num_threads()
        for n in (8, 4, 2):
            torch.set_num_threads(n)
            total, acc = ring_loop(eng, batch, ring, 300, launch="direct")
            print(f"  ring of 3  {f'direct, {n} torch threads':26s} {total:7.1f} us/batch  {acc}", flush=True)
        torch.set_num_threads(threads)

    for label in ("direct", "torch replay"):
        for depth in (1, 2, 3, 4):
            us, ok = stream_us(eng, batch, want, depth)
            print(f"  infer_stream, {label:12s} depth {depth}: {us:7.1f} us/batch, exact {ok}", flush=True)
        slots = [s for r in eng._rings.values() for s in r]
        if label == "direct":
            print(f"  slots with the direct launch: {sum(s.direct is not None for s in slots)} of {len(slots)}")
        for s in slots:
            s.direct = None  # torch's replay from here on

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in eng.infer_stream((batch for _ in range(40)), depth=3):
            pass
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=16, max_name_column_width=40))
    print("median launch of an idle graph (torch replay):", end=" ")
    r = eng._graphs[next(iter(eng._graphs))]
    times = []
    for _ in range(200):
        torch.cuda.synchronize()
        t = ns(); r.io_graph.replay(); times.append(ns() - t)  # noqa: E702
    torch.cuda.synchronize()
    print(f"{statistics.median(times) / 1e3:.1f} us")


if __name__ == "__main__":
    main()
