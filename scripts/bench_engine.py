#!/usr/bin/env python3
"""Exactness and speed of the batched engine on a GPU host without EZKL (issue #9).

    # here, with EZKL: models, calibrated settings, samples and their witnesses
    python -m vcompute.engine.selfcheck export CASES circuits/lenet circuits/cnn circuits/mlp --samples 32
    # on the GPU host
    python scripts/bench_engine.py CASES --batches 1 8 64 256 1024 --out OUT

For each case and batch size: the engine (``vcompute.Engine``: the fused plan as a CUDA graph)
on that many samples, every sample checked against the op-by-op int64 path on the CPU (the
path EZKL's witnesses vouch for, re-checked here on the exported samples) and the exported
samples against their EZKL witnesses; PyTorch eager float on the same GPU; onnxruntime on the
host's CPU. GPU work is timed like ``triton.testing.do_bench`` (median of single calls, the L2
cache flushed before each), and in steady state (``time_stream``: batches back to back, warm
caches; the engine's with its input and result copies, and its pass alone as ``warm``); the
engine also end to end (host float32 arrays in, int64 arrays out: ``BatchResult.fixed``) and
served (``Engine.infer_stream``, batches overlapped, every result checked). Writes ``OUT/bench-engine.json`` and
``OUT/bench-engine.png``; prints a table last. Exit 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def _pool(case: Path, n: int) -> tuple[list[list[np.ndarray]], dict[int, list[list[int]]], dict]:
    """``n`` samples: the exported ones (with witnesses) first, then seeded uniform(-1, 1) draws
    of the same shapes (the bundled models' sample distribution)."""
    from vcompute.engine.engine import _concrete_shapes
    from vcompute.engine.graph import model_input_shapes

    settings = json.loads((case / "settings.json").read_text())
    b = json.loads((case / "batch.json").read_text())
    declared = model_input_shapes(case / "model.onnx")
    first = [np.asarray(x, dtype=np.float64) for x in b["samples"][0]]
    shapes = _concrete_shapes(declared, [x.shape for x in first], [x.size for x in first])
    samples = [[np.asarray(x, dtype=np.float64).reshape(s) for x, s in zip(smp, shapes)] for smp in b["samples"]]
    witnesses = {i: w for i, w in enumerate(b["witness_outputs"]) if i < n}
    rng = np.random.default_rng(2026)
    while len(samples) < n:
        samples.append([np.round(rng.uniform(-1.0, 1.0, s), 6) for s in shapes])
    return samples[:n], witnesses, settings


def _steady(e: dict, t: dict, sp: dict) -> str:
    """The steady-state columns (back-to-back batches, warm caches) and the served stream's
    (``Engine.infer_stream``), blank without a graph."""
    if "steady" not in e:
        return f"{'-':>9} {'-':>8} {'-':>7} {'-':>7} | {'-':>8} {'-':>7} {'-':>7} | {'-':>9} {'-':>7}"
    ts = t.get("steady", t)["median_ms"]
    return (f"{e['steady']['median_ms']:>9.4f} {ts:>8.4f} {sp['steady_vs_torch']:>7.2f} "
            f"{sp['steady_vs_onnxruntime']:>7.2f} | {e['warm']['median_ms']:>8.4f} {sp['warm_vs_torch']:>7.2f} "
            f"{sp['warm_vs_onnxruntime']:>7.2f} | {e['stream']['median_ms']:>9.4f} "
            f"{sp['stream_vs_onnxruntime']:>7.2f}")


def policy_from_spec(spec: str):
    """``name`` or ``name:field=value,...``: a named tile policy with some fields replaced (e.g.
    ``auto:gemm_impl=f64,direct_block=32``; ``net_blocks=BMxBNxWARPS``;
    ``gemm=BMxBNxBKxWARPSxSTAGESxGROUP``: every limb GEMM on those tiles)."""
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
        if key == "gemm":  # block_m x block_n x block_k x num_warps x num_stages x group_m (no TMA)
            from vcompute.kernels.gemm import GemmConfig

            fields[key] = GemmConfig(*(int(v) for v in val.split("x")), tma=False)
            continue
        fields[key] = (int(val) if val.lstrip("-").isdigit() else val == "true" if val in ("true", "false")
                       else val)
    return replace(pol, name=spec, **fields) if fields else pol


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", type=Path)
    ap.add_argument("--models", nargs="+", default=None, help="case folder names (default: all)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64, 256, 1024])
    ap.add_argument("--repeat", type=int, default=20, help="end-to-end and onnxruntime repetitions")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--device", default=None)
    ap.add_argument("--variants", type=int, nargs="*", default=None,
                    help="also time the engine with convs on the limb GEMM (tensor cores) instead of the "
                         "direct int64 kernel, at these batch sizes")
    ap.add_argument("--tiles", nargs="+", default=[],
                    help="also time the engine under these tile policies at every batch size, every sample "
                         "checked: a name, or name:field=value,... (e.g. auto:gemm_impl=f64,direct_block=32)")
    a = ap.parse_args(argv)

    import onnxruntime
    import torch
    import triton

    from vcompute import __version__
    from vcompute.bench.plot import write_models_plot
    from vcompute.bench.run import (bench_engine_batched, bench_onnxruntime_apart, bench_torch, cpu_name,
                                    speedups)
    from vcompute.engine.run import run_fixed_batch
    from vcompute.engine.witness import compare

    a.out.mkdir(parents=True, exist_ok=True)
    names = a.models or sorted(p.name for p in a.cases.iterdir() if (p / "batch.json").exists())
    results, bad = [], 0
    for name in names:
        case = a.cases / name
        samples, witnesses, settings = _pool(case, max(a.batches))
        t0 = time.perf_counter()
        reference = run_fixed_batch(case / "model.onnx", samples, settings, backend="torch").outputs_fixed
        ref_s = time.perf_counter() - t0
        for i, want in witnesses.items():  # the reference itself, against EZKL
            ok, where = compare(reference[i], want)
            if not ok:
                print(f"{name}: the op path differs from EZKL's witness of sample {i}: {where}", flush=True)
                bad += 1
        rows = []
        for bs in a.batches:
            wit = {i: w for i, w in witnesses.items() if i < bs}
            row = {"batch": bs}
            row["engine"] = bench_engine_batched(case / "model.onnx", settings, samples[:bs], a.repeat, a.device,
                                                 wit, reference[:bs])
            row["torch"] = bench_torch(case / "model.onnx", samples[:bs], a.repeat)
            # in a process of its own: its thread pool slows the engine's stream in this one (§2h)
            row["onnxruntime"] = bench_onnxruntime_apart(case / "model.onnx", samples[:bs], a.repeat)
            row["engine_speedup"] = speedups(row)
            e = row["engine"]
            if not (e["matches_reference"] and e["matches_witness"] is not False):
                bad += 1
            print(f"{name} batch {bs}: engine {e['median_ms']:.4f} ms ({e['path']}, e2e {e['end_to_end']['median_ms']:.3f} ms)"
                  f" torch {row['torch']['median_ms']:.4f} ms ort {row['onnxruntime']['median_ms']:.4f} ms;"
                  f" exact: {e['samples_checked']} vs op path {e['matches_reference']}, {e['witnesses_checked']} vs"
                  f" witness {e['matches_witness']}", flush=True)
            rows.append(row)
        from vcompute.engine.compiled import TilePolicy

        runs = [(bs, label, pol) for bs in a.variants or [] for label, pol in (
            ("convs on the limb GEMM (tensor cores)", TilePolicy("mma-conv", conv_impl="mma")),
            ("convs direct (int64, CUDA cores)", TilePolicy("direct-conv", conv_impl="direct")))]
        runs += [(bs, f"tiles {spec}", policy_from_spec(spec)) for bs in a.batches for spec in a.tiles]
        variants = []
        for bs, label, pol in runs:
            v = bench_engine_batched(case / "model.onnx", settings, samples[:bs], 3, a.device,
                                     {i: w for i, w in witnesses.items() if i < bs}, reference[:bs], tiles=pol)
            bad += not (v["matches_reference"] and v["matches_witness"] is not False)
            variants.append({"batch": bs, "variant": label, "median_ms": v["median_ms"],
                             **{f"{col}_ms": v.get(col, {}).get("median_ms") for col in ("steady", "warm", "stream")},
                             "throughput_per_s": v["throughput_per_s"], "exact": v["matches_reference"]})
            print(f"{name} batch {bs} variant {label}: {v['median_ms']:.4f} ms (steady "
                  f"{variants[-1]['steady_ms']} ms, warm {variants[-1]['warm_ms']} ms, stream "
                  f"{variants[-1]['stream_ms']} ms), exact {v['matches_reference']}", flush=True)
        results.append({"name": name, "reference_cpu_s": round(ref_s, 3), "inference": rows, "variants": variants,
                        "settings": {k: settings["run_args"][k] for k in ("input_scale", "param_scale", "logrows")
                                     if k in settings["run_args"]}})

    doc = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "host": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "versions": {"vcompute": __version__, "torch": torch.__version__, "triton": triton.__version__,
                     "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
        "command": "python scripts/bench_engine.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "models": results,
    }
    (a.out / "bench-engine.json").write_text(json.dumps(doc, indent=1))
    write_models_plot(results, a.out / "bench-engine.png",
                      f"exact engine vs PyTorch float ({doc['device']}) vs onnxruntime (CPU), {doc['date']}")
    print(f"\n{doc['device']}, {doc['date']}, {doc['versions']}")
    print(f"{'model':<7} {'batch':>5} | {'engine ms':>10} {'samples/s':>12} | {'torch ms':>9} {'samples/s':>12} | "
          f"{'ort ms':>9} {'samples/s':>11} | {'x torch':>7} {'x ort':>7} | {'steady ms':>9} {'torch':>8} "
          f"{'x torch':>7} {'x ort':>7} | {'warm ms':>8} {'x torch':>7} {'x ort':>7} | {'stream ms':>9} {'x ort':>7} | "
          f"e2e ms | exact")
    for res in results:
        for row in res["inference"]:
            e, t, o = row["engine"], row["torch"], row["onnxruntime"]
            sp = row["engine_speedup"]
            exact = "yes" if e["matches_reference"] and e["matches_witness"] is not False else f"NO {e['mismatch']}"
            print(f"{res['name']:<7} {row['batch']:>5} | {e['median_ms']:>10.4f} {e['throughput_per_s']:>12,.0f} | "
                  f"{t['median_ms']:>9.4f} {t['throughput_per_s']:>12,.0f} | {o['median_ms']:>9.4f} "
                  f"{o['throughput_per_s']:>11,.0f} | {sp['vs_torch']:>7.2f} {sp['vs_onnxruntime']:>7.2f} | "
                  f"{_steady(e, t, sp)} | "
                  f"{e['end_to_end']['median_ms']:.3f} | {exact} ({e['samples_checked']}/{e['witnesses_checked']})")
    print("all exact" if not bad else f"{bad} mismatch(es)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
