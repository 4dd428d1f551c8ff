#!/usr/bin/env python3
"""Throughput of ``vcompute prove --inputs`` against the number of worker processes (issue #12).

    python scripts/bench_batch.py                                # circuits/mlp, workers 1,2,4,8,16
    python scripts/bench_batch.py --workers 1,2 --proofs-per-worker 3 --json bench-batch.json
    python scripts/bench_batch.py --model path/model.onnx --threads 2

For each worker count W it proves max(--min-proofs, W × --proofs-per-worker) fresh inputs into a
fresh batch dir (same circuit, keys from the cache: a warm-up batch fills it first) and reports:

* proofs per hour over the proving phase (workers ready → last proof landed), and the whole run;
* CPU-seconds per proof (all worker processes, from rusage) and the machine's load average before
  and after (a loaded machine makes every wall-clock number here noise: read them together);
* peak RSS per worker (VmHWM, read by each worker after each proof);
* the per-proof overhead above EZKL's own ``prove`` call: in the worker (witness, engine
  comparison, local verify, calldata, reading the results) and in the driver (writing the proof
  dir, summary.json, the rename); and, separately, the proving-key load *inside* ``ezkl.prove``
  (EZKL 23 re-reads the pk on every prove: it has no in-memory key API), measured by a prove
  that loads the pk and then fails on a missing SRS file.

It prints a Markdown table and writes everything as JSON (``--json``). Runs on any machine with
vcompute installed; the GPU host's 16 cores are what the default worker counts are for.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _inputs(model_path: Path, n: int, seed: int) -> list[dict]:
    from vcompute.model import load_model

    model = load_model(model_path)
    rng = np.random.default_rng(seed)
    return [{"input_data": [np.round(rng.uniform(-1, 1, size=s), 6).reshape(-1).tolist() for s in model.input_shapes]}
            for _ in range(n)]


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def pk_load_seconds(shared_dir: Path, batch_dir: Path, repeat: int = 3) -> dict:
    """EZKL's pk load inside ``ezkl.prove``: a prove given a missing SRS loads the pk, then fails."""
    import resource as res

    import ezkl

    from vcompute.cache import cache_root

    entry = next(p for p in (cache_root() / "keys").glob("*")
                 if (p / "vk.key").is_file() and (p / "vk.key").read_bytes() == (shared_dir / "vk.key").read_bytes())
    pk = entry / "pk.key"
    witness = next(batch_dir.glob("*/witness.json"))
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), res.getrusage(res.RUSAGE_SELF)
        try:
            ezkl.prove(str(witness), str(shared_dir / "model.compiled"), str(pk), str(batch_dir / ".pk-probe.json"), "/nonexistent/kzg.srs")
        except BaseException:  # noqa: BLE001  expected: the SRS is missing
            pass
        c1 = res.getrusage(res.RUSAGE_SELF)
        walls.append(time.perf_counter() - t0)
        cpus.append(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
    return {"pk_bytes": pk.stat().st_size, "wall_s": [round(w, 3) for w in walls], "cpu_s": [round(c, 3) for c in cpus],
            "median_wall_s": round(statistics.median(walls), 3), "median_cpu_s": round(statistics.median(cpus), 3)}


def run_one(model: Path, workers: int, threads: int | None, n: int, work: Path, calibration: Path | None,
            seed: int, evm: bool = True, engine: bool = True) -> dict:
    from vcompute.zk.batch import BatchRequest, prove_batch

    source = _write_jsonl(work / f"inputs-w{workers}.jsonl", _inputs(model, n, seed))
    out = work / f"batch-w{workers}"
    marks: dict[str, float] = {}

    def on_event(kind: str, record: dict) -> None:
        marks.setdefault(kind, time.perf_counter())
        if kind == "input":
            marks["last"] = time.perf_counter()

    load_before = os.getloadavg()
    cpu0, t0 = _children_cpu(), time.perf_counter()
    result = prove_batch(BatchRequest(model=model, inputs=source, out=out, workers=workers, threads=threads,
                                      calibration_data=calibration, evm=evm, engine=engine), on_event=on_event)
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    load_after = os.getloadavg()
    rec = result.record
    proven = [e for e in rec["inputs"] if e["status"] == "proven"]
    phase = marks.get("last", t0) - marks.get("workers", t0)
    overhead_worker = [e["seconds"] - e["prove_seconds"] for e in proven]
    return {
        "workers": rec["workers"]["count"], "rayon_threads": rec["workers"]["rayon_threads"], "proofs": len(proven),
        "failed": rec["counts"]["failed"],
        "proofs_per_hour": round(len(proven) / phase * 3600, 1) if phase > 0 else None,
        "proofs_per_hour_whole_run": round(len(proven) / wall * 3600, 1),
        "proving_phase_s": round(phase, 2), "wall_s": round(wall, 2),
        "worker_start_s": round(marks.get("workers", t0) - marks.get("start", t0), 2),
        "cpu_s_per_proof": round(cpu / len(proven), 2) if proven else None,
        "prove_s": {"median": round(statistics.median(e["prove_seconds"] for e in proven), 2),
                    "min": round(min(e["prove_seconds"] for e in proven), 2),
                    "max": round(max(e["prove_seconds"] for e in proven), 2)} if proven else None,
        "overhead_in_worker_s": round(statistics.median(overhead_worker), 3) if proven else None,
        "overhead_in_driver_s": round(statistics.median(e["land_seconds"] for e in proven), 3) if proven else None,
        "peak_rss_mb_per_worker": {"max": round(max(e["worker_peak_rss_mb"] for e in proven), 1),
                                   "median": round(statistics.median(e["worker_peak_rss_mb"] for e in proven), 1)} if proven else None,
        "worker_rss_after_start_mb": [round(w.get("rss", 0), 1) for w in rec["workers"]["workers"]],
        "driver_peak_rss_mb": round(rec.get("driver_rss_mb", {}).get("peak", 0), 1),
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "circuits" / "mlp" / "model.onnx")
    ap.add_argument("--workers", default="1,2,4,8,16", help="comma-separated worker counts")
    ap.add_argument("--threads", type=int, default=None, help="RAYON_NUM_THREADS per worker (default: cores // workers)")
    ap.add_argument("--proofs-per-worker", type=int, default=2)
    ap.add_argument("--min-proofs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--work", type=Path, default=None, help="where the batches go (default: a temp dir, removed)")
    ap.add_argument("--json", type=Path, default=None, help="write every number here")
    ap.add_argument("--no-evm", action="store_true", help="skip the Solidity verifier and calldata (no Node.js needed)")
    ap.add_argument("--no-engine", action="store_true", help="skip the engine's one pass and its comparison")
    args = ap.parse_args()

    import ezkl

    import vcompute
    from vcompute.zk.workers import cpu_count

    counts = [int(w) for w in args.workers.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-batch-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        # one calibration for every run: 64 samples of the same distribution as the inputs
        samples = _inputs(args.model, 64, args.seed + 999)
        calibration = work / "calibration.json"
        calibration.write_text(json.dumps({"input_data": [sum((x["input_data"][k] for x in samples), [])
                                                          for k in range(len(samples[0]["input_data"]))]}))
        # warm-up: circuit, SRS, keys, the verifier and EZKL's lookup tables into the caches
        t0 = time.perf_counter()
        flags = {"evm": not args.no_evm, "engine": not args.no_engine}
        run_one(args.model, 1, args.threads, 1, work, calibration, args.seed + 1000, **flags)
        warmup = time.perf_counter() - t0
        pk = pk_load_seconds(work / "batch-w1" / ".shared", work / "batch-w1")
        shutil.rmtree(work / "batch-w1")
        rows = []
        for w in counts:
            n = max(args.min_proofs, w * args.proofs_per_worker)
            print(f"workers={w}: {n} proofs…", file=sys.stderr, flush=True)
            rows.append(run_one(args.model, w, args.threads, n, work, calibration, args.seed + w, **flags))
            shutil.rmtree(work / f"batch-w{w}", ignore_errors=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cores": cpu_count(), "cpu": _cpu_model(), "host": platform.node(),
                    "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
        "versions": {"vcompute": vcompute.__version__, "ezkl": getattr(ezkl, "__version__", "?"), "python": platform.python_version()},
        "model": str(args.model), "evm": not args.no_evm, "engine": not args.no_engine, "warmup_s": round(warmup, 1), "pk_load_inside_prove": pk, "runs": rows,
        "command": " ".join(sys.argv),
    }
    print(f"\n{report['machine']['cores']} cores ({report['machine']['cpu']}), {report['date']}, model {args.model.name},"
          f" pk {pk['pk_bytes'] / 1e6:.0f} MB loaded in {pk['median_wall_s']} s ({pk['median_cpu_s']} CPU-s) inside every prove\n")
    print("| workers × threads | proofs | proofs/h (proving) | proofs/h (whole run) | prove s (median) | CPU-s/proof |"
          " overhead worker s | overhead driver s | peak RSS/worker MB | load before → after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} × {r['rayon_threads']} | {r['proofs']} | {r['proofs_per_hour']} | {r['proofs_per_hour_whole_run']} |"
              f" {r['prove_s']['median'] if r['prove_s'] else '–'} | {r['cpu_s_per_proof']} | {r['overhead_in_worker_s']} |"
              f" {r['overhead_in_driver_s']} | {r['peak_rss_mb_per_worker']['max'] if r['peak_rss_mb_per_worker'] else '–'} |"
              f" {r['load_before'][0]} → {r['load_after'][0]} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nJSON → {args.json}")


if __name__ == "__main__":
    main()
