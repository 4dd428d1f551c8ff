"""``vcompute bench --plot``: one PNG with inference latency and throughput per batch size, and the
proof stages (when the result has them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vcompute.artifacts import atomic_path

RUNNERS = (("engine", "fixed-point engine (exact)"), ("torch", "PyTorch float"), ("onnxruntime", "onnxruntime CPU"))


def _inference_axes(latency, throughput, rows: list[dict[str, Any]], title: str = "") -> None:
    batches = [row["batch"] for row in rows]
    for key, label in RUNNERS:
        ys = [row[key].get("median_ms") for row in rows]
        rates = [row[key].get("throughput_per_s") for row in rows]
        if all(y is not None for y in ys):
            latency.plot(batches, ys, marker="o", label=label)
            throughput.plot(batches, rates, marker="o", label=label)
    latency.set(xlabel="batch size", ylabel="median time per batch (ms)", title=f"{title}latency", xscale="log",
                yscale="log")
    throughput.set(xlabel="batch size", ylabel="samples / s", title=f"{title}throughput", xscale="log", yscale="log")
    latency.legend(fontsize=8)
    throughput.legend(fontsize=8)


def write_plot(result: dict[str, Any], dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_proof = "proof" in result
    fig, axes = plt.subplots(1, 3 if has_proof else 2, figsize=(17 if has_proof else 11.5, 4.5))
    _inference_axes(axes[0], axes[1], result["inference"])
    if has_proof:
        right = axes[2]
        stages = list(result["proof"]["cold"]["stages"])
        width = 0.4
        xs = range(len(stages))
        for offset, run in ((-width / 2, "cold"), (width / 2, "warm")):
            left_edges = [x + offset for x in xs]
            right.bar(left_edges, [result["proof"][run]["stages"].get(s, 0.0) for s in stages], width, label=f"{run} cache")
        right.set_xticks(list(xs), stages, rotation=30, ha="right")
        right.set(ylabel="seconds", title=f"proof pipeline (logrows {result['proof']['logrows']})")
        right.legend()
    model = Path(result["model"])
    fig.suptitle(f"{model.parent.name}/{model.name}: vcompute bench ({result['date']})")
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_models_plot(results: list[dict[str, Any]], dest: Path, title: str) -> None:
    """Latency and throughput of several models (``scripts/bench_engine.py``), one row each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(11.5, 4.2 * len(results)), squeeze=False)
    for (lat, thr), res in zip(axes, results):
        _inference_axes(lat, thr, res["inference"], f"{res['name']}: ")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
