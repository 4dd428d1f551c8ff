"""``vcompute bench --plot``: one PNG with inference latency per batch size and the proof stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vcompute.artifacts import atomic_path

RUNNERS = (("engine", "Triton fixed-point engine"), ("torch", "PyTorch float"), ("onnxruntime", "onnxruntime CPU"))


def write_plot(result: dict[str, Any], dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    batches = [row["batch"] for row in result["inference"]]
    for key, label in RUNNERS:
        ys = [row[key].get("median_ms") for row in result["inference"]]
        if all(y is not None for y in ys):
            left.plot(batches, ys, marker="o", label=label)
    left.set(xlabel="batch size", ylabel="median latency (ms)", title="inference", xscale="log", yscale="log")
    left.legend()

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
