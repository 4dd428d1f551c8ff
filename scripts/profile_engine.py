#!/usr/bin/env python3
"""Where a batch's device time goes: each kernel of the engine's captured graph (issue #9).

    python -m vcompute.engine.selfcheck export CASES circuits/lenet circuits/cnn circuits/mlp --samples 32
    python scripts/profile_engine.py CASES --batches 256 1024 [--tiles auto f64]

For each case, batch size and tile policy: the plan's launch groups (``Engine.describe``), then
the CUDA kernels of one graph replay in launch order with their median device time over
``--replays`` replays (torch.profiler / CUPTI), and the replay's median wall time as
``triton.testing.do_bench`` measures it. Needs a CUDA device; prints text only.
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


def _policy(spec: str):
    """``name`` or ``name:field=int,...``: a named tile policy with some fields replaced."""
    from dataclasses import replace

    from vcompute.engine.compiled import tile_policy

    name, _, rest = spec.partition(":")
    pol = tile_policy(name)
    fields = {}
    for kv in filter(None, rest.split(",")):
        key, _, val = kv.partition("=")
        if key == "net_blocks":  # block_m x block_n x num_warps
            from vcompute.kernels.small_net import NetConfig

            fields[key] = NetConfig(*(int(v) for v in val.split("x")))
            continue
        fields[key] = (int(val) if val.lstrip("-").isdigit() else val == "true" if val in ("true", "false")
                       else val)
    return replace(pol, name=spec, **fields) if fields else pol


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", type=Path)
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--batches", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--tiles", nargs="+", default=["auto"],
                    help="tile policies to compare: a name, or name:field=value,... (e.g. auto:direct_block=128, auto:chain=false, auto:net_blocks=4x64x4)")
    ap.add_argument("--replays", type=int, default=20)
    a = ap.parse_args(argv)

    import triton.testing

    from vcompute.bench.run import _stack_f32
    from vcompute.engine.engine import Engine

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_engine import _pool

    names = a.models or sorted(p.name for p in a.cases.iterdir() if (p / "batch.json").exists())
    for name in names:
        case = a.cases / name
        samples, _, settings = _pool(case, max(a.batches))
        for bs in a.batches:
            batch = _stack_f32(samples[:bs])
            for tiles in a.tiles:
                eng = Engine(case / "model.onnx", settings, "cuda", tiles=_policy(tiles))
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
