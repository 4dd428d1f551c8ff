#!/usr/bin/env python3
"""Where a batch's device time goes: each kernel of the engine's captured graph (issue #9).

    python -m vcompute.engine.selfcheck export CASES circuits/lenet circuits/cnn circuits/mlp --samples 32
    python scripts/profile_engine.py CASES --batches 256 1024 [--tiles auto f64]

For each case, batch size and tile policy: the plan's launch groups (``Engine.describe``), then
the CUDA kernels of one graph replay in launch order with their median device time over
``--replays`` replays (torch.profiler / CUPTI), and the replay's median wall time as
``triton.testing.do_bench`` measures it. With ``--floor``, first the floor under any one-replay
pass: a graph holding one kernel that does nothing but store a word, timed the same two ways as the
engine (``do_bench``, and back to back as ``time_stream``), alone and with a batch's input copy in
and result copy out. Needs a CUDA device; prints text only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path


def _kernels(runner, replays: int) -> list[tuple[str, float]]:
    """(kernel name, median µs) per launch position of one replay."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    runner.replay()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(replays):
            runner.replay()
        torch.cuda.synchronize()
    events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
              and not e.name.startswith(("Memcpy", "Memset"))]
    events.sort(key=lambda e: e.time_range.start)
    n = len(events) // replays if replays else 0
    rows = []
    for i in range(n):
        times = [events[r * n + i].time_range.elapsed_us() for r in range(replays)]
        rows.append((events[i].name, statistics.median(times)))
    return rows


def _floor(sizes: list[int]) -> None:
    """The time of one graph replay that does (almost) nothing, as the bench times the engine's:
    no pass that is one replay per batch can take less (BENCHMARKS.md §2e)."""
    import torch
    import triton
    import triton.language as tl

    from vcompute.bench.run import time_device, time_stream

    @triton.jit
    def _store_one(p):
        tl.store(p, 1)

    word = torch.zeros(1, dtype=torch.int64, device="cuda")
    _store_one[(1,)](word)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        _store_one[(1,)](word)
    dev = time_device(g.replay)
    stream = time_stream(g.replay)
    print(f"== floor: a graph of one one-word kernel: do_bench {dev[0] * 1e3:.2f} µs (min {dev[1] * 1e3:.2f}), "
          f"back to back {stream[0] * 1e3:.2f} µs per replay")
    for nbytes in sizes:  # a batch's copy in (pinned host -> device) and result copy out
        h_in = torch.ones(nbytes // 4, dtype=torch.float32, pin_memory=True)
        d_in = torch.empty_like(h_in, device="cuda")
        h_out = torch.empty(nbytes // 8, dtype=torch.int64, pin_memory=True)
        d_out = torch.zeros_like(h_out, device="cuda")
        gio = torch.cuda.CUDAGraph()
        with torch.cuda.graph(gio):
            d_in.copy_(h_in, non_blocking=True)
            _store_one[(1,)](d_out)
            h_out.copy_(d_out, non_blocking=True)
        dev = time_device(gio.replay)
        stream = time_stream(gio.replay)
        print(f"== floor: the same with {nbytes} bytes copied in and out: do_bench {dev[0] * 1e3:.2f} µs, "
              f"back to back {stream[0] * 1e3:.2f} µs per replay")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", type=Path)
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--batches", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--tiles", nargs="+", default=["auto"],
                    help="tile policies to compare: a name, or name:field=value,... (e.g. auto:direct_block=128, auto:chain=false, auto:net_blocks=4x64x4)")
    ap.add_argument("--replays", type=int, default=20)
    ap.add_argument("--floor", type=int, nargs="*", default=None, metavar="BYTES",
                    help="first time the one-replay floor, alone and with BYTES copied in and out")
    a = ap.parse_args(argv)
    if a.floor is not None:
        _floor(a.floor)

    import triton.testing

    from vcompute.bench.run import _stack_f32
    from vcompute.engine.engine import Engine

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_engine import _pool, policy_from_spec

    names = a.models or sorted(p.name for p in a.cases.iterdir() if (p / "batch.json").exists())
    for name in names:
        case = a.cases / name
        samples, _, settings = _pool(case, max(a.batches))
        for bs in a.batches:
            batch = _stack_f32(samples[:bs])
            for tiles in a.tiles:
                eng = Engine(case / "model.onnx", settings, "cuda", tiles=policy_from_spec(tiles))
                runner = eng.graph_runner(batch)
                wall = triton.testing.do_bench(runner.replay, warmup=25, rep=100, return_mode="median")
                rows = _kernels(runner, a.replays)
                print(f"\n== {name} batch {bs} tiles {tiles}: replay {wall * 1e3:.1f} µs (do_bench median), "
                      f"{len(rows)} kernels, sum {sum(t for _, t in rows):.1f} µs")
                for tier, groups in eng.describe()["tiers"].items():
                    for g in groups if isinstance(groups, list) else [groups]:
                        print(f"   plan: {g}")
                for k, (kname, us) in enumerate(rows):
                    print(f"   {k:>2} {us:8.1f} µs  {kname[:110]}")
                del runner, eng
    return 0


if __name__ == "__main__":
    sys.exit(main())
