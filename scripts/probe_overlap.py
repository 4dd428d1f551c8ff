#!/usr/bin/env python3
"""Where a batch's time goes once caches are warm, and how much overlapping batches saves (#9).

    python scripts/probe_overlap.py CASES          # CASES as for scripts/bench_engine.py

For LeNet-5 (``CASES/lenet``) at 1, 256 and 1024 samples, under ``auto`` and
``auto:split_in_gemm=true``: the captured graph's replay with the L2 flushed before each call
(``cold``, the bench's headline), back to back (``warm``), back to back with the input copy in and
the result copy out (``io serial``) and, for ``auto``, the graphs with the copies replayed on two
and three alternating streams, each graph with buffers of its own (the device-side bound of
``Engine.infer_stream``); onnxruntime on the host's CPU for scale; a per-kernel profile of the
warm replays at 256 samples and a host profile of ``Engine.infer`` there. One line per batch size
(BENCHMARKS.md §2g; raw output: ``docs/bench/engine-h100-overlap.txt``, run B).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import _pool, policy_from_spec  # noqa: E402

from vcompute.bench.run import bench_onnxruntime, time_device, time_stream  # noqa: E402
from vcompute.engine.engine import Engine, _GraphRunner  # noqa: E402


def alternating(runners: list[_GraphRunner], n: int = 200) -> float:
    """Milliseconds per batch of ``n`` replays of the runners' graphs with the host copies, each
    runner on a stream of its own, in turn (median of 5 rounds)."""
    streams = [torch.cuda.Stream(runners[0].dev) for _ in runners]

    def go(count: int) -> None:
        for b in range(count):
            with torch.cuda.stream(streams[b % len(runners)]):
                runners[b % len(runners)].io_graph.replay()

    for s in streams:
        s.wait_stream(torch.cuda.current_stream())
    go(20)
    torch.cuda.synchronize()
    rounds = []
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for s in streams:
            s.wait_stream(torch.cuda.current_stream())
        go(n)
        for s in streams:
            torch.cuda.current_stream().wait_stream(s)
        end.record()
        end.synchronize()
        rounds.append(start.elapsed_time(end) / n)
    return sorted(rounds)[2]


def twin(r: _GraphRunner) -> _GraphRunner:
    """Another graph of the same pass and batch size, on buffers of its own, holding r's batch."""
    t = _GraphRunner(r.cp, r.nb, [(tuple(x.shape[1:]), x.dtype) for x in r.static_in], r.dev)
    for mine, theirs in zip(t.host_in, r.host_in):
        mine.copy_(theirs)
    t.replay_io()
    torch.cuda.synchronize()
    return t


def main() -> int:
    case = Path(sys.argv[1] if len(sys.argv) > 1 else "CASES") / "lenet"
    samples, _, settings = _pool(case, 1024)
    for spec in ("auto", "auto:split_in_gemm=true"):
        eng = Engine(case / "model.onnx", settings, "cuda", tiles=policy_from_spec(spec))
        for nb in (1, 256, 1024):
            xs = [np.stack([np.asarray(s[0], dtype=np.float32) for s in samples[:nb]])]
            r = eng.graph_runner(xs)
            eng.infer(xs)
            cold, warm, serial = time_device(r.replay)[0], time_stream(r.replay)[0], time_stream(r.replay_io)[0]
            line = f"{spec:24s} {nb:5d}: cold {cold * 1e3:6.1f} us | warm {warm * 1e3:6.1f} | io serial {serial * 1e3:6.1f}"
            if spec == "auto":
                r2, r3 = twin(r), twin(r)
                line += f" | io on 2 alternating streams {alternating([r, r2]) * 1e3:6.1f}"
                line += f" | 3 streams {alternating([r, r2, r3]) * 1e3:6.1f}"
                torch.cuda.synchronize()
                same = all(np.array_equal(r.host_out.numpy(), t.host_out.numpy()) for t in (r2, r3))
                line += f" same {same}"
            ort = bench_onnxruntime(case / "model.onnx", samples[:nb], 20)["median_ms"]
            print(line + f" | ort {ort * 1e3:7.1f}", flush=True)
            if nb == 256 and spec != "auto":
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    for _ in range(50):
                        r.replay()
                    torch.cuda.synchronize()
                print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=8), flush=True)
            if nb == 256 and spec == "auto":
                host_profile(eng, xs)
    return 0


def host_profile(eng: Engine, xs: list[np.ndarray]) -> None:
    """``Engine.infer``'s wall time a call, then its host profile (top 18 by own time)."""
    for _ in range(20):
        eng.infer(xs)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(200):
        eng.infer(xs)
    print(f"Engine.infer e2e {(time.perf_counter() - t) / 200 * 1e6:.1f} us/call", flush=True)
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(200):
        eng.infer(xs)
    pr.disable()
    out = io.StringIO()
    pstats.Stats(pr, stream=out).sort_stats("tottime").print_stats(18)
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip()), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
