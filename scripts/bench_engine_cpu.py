"""Time the engine's CPU backends on the bundled circuits: exact int64 torch vs the Triton interpreter.

    python scripts/bench_engine_cpu.py [--repeat 5] [--batch 1 16 64] [--json out.json]

For each bundled model (circuits/mlp, circuits/cnn) EZKL calibrates settings (as ``prove``
does), then each backend runs ``run_fixed_batch`` on batches of the model's input with small
random perturbations (distinct samples); the median wall time of the engine's own timing
(``time_ms``: quantize, every op, outputs back on the host) is reported per batch and per
sample, and the two backends' integers are checked equal. Needs ezkl.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _settings(model_dir: Path, tmp: Path) -> dict:
    import ezkl

    s = tmp / f"{model_dir.name}-settings.json"
    assert ezkl.gen_settings(str(model_dir / "model.onnx"), str(s))
    assert ezkl.calibrate_settings(str(model_dir / "input.json"), str(model_dir / "model.onnx"),
                                   str(s), "resources", max_logrows=17)
    return json.loads(s.read_text())


def _samples(model_dir: Path, n: int) -> list[list[np.ndarray]]:
    base = [np.asarray(x, dtype=np.float64)
            for x in json.loads((model_dir / "input.json").read_text())["input_data"]]
    rng = np.random.default_rng(0)
    return [[x + rng.uniform(-0.05, 0.05, x.shape) for x in base] for _ in range(n)]


def bench(model_dir: Path, settings: dict, batches: list[int], repeat: int) -> list[dict]:
    from vcompute.engine import run_fixed_batch

    rows = []
    for nb in batches:
        samples = _samples(model_dir, nb)
        fixed = {}
        for backend in ("torch", "triton"):
            run_fixed_batch(model_dir / "model.onnx", samples, settings, backend=backend)  # warm-up
            times, res = [], None
            for _ in range(repeat):
                res = run_fixed_batch(model_dir / "model.onnx", samples, settings, backend=backend)
                times.append(res.time_ms)
            fixed[backend] = res.outputs_fixed
            med = statistics.median(times)
            rows.append({"model": model_dir.name, "backend": backend, "device": res.device,
                         "batch": nb, "median_ms": med, "per_sample_ms": med / nb,
                         "min_ms": min(times), "repeat": repeat})
        if fixed["torch"] != fixed["triton"]:
            raise SystemExit(f"{model_dir.name} batch {nb}: torch and triton integers differ")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models:
            d = ROOT / "circuits" / name
            rows += bench(d, _settings(d, Path(tmp)), a.batch, a.repeat)
    print(f"{'model':6} {'batch':>5} {'torch ms':>10} {'triton ms':>10} {'speed-up':>9}")
    by = {(r["model"], r["batch"], r["backend"]): r for r in rows}
    for name in a.models:
        for nb in a.batch:
            t, k = by[(name, nb, "torch")], by[(name, nb, "triton")]
            print(f"{name:6} {nb:5d} {t['median_ms']:10.2f} {k['median_ms']:10.1f} "
                  f"{k['median_ms'] / t['median_ms']:8.0f}x")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
