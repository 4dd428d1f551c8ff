"""vcompute/cli/report.py: the tables the commands print."""

from __future__ import annotations

from rich.console import Console

from vcompute.cli.report import print_bench


def _runner(median_ms: float, batch: int, device: str, **extra) -> dict:
    return {"median_ms": median_ms, "min_ms": median_ms * 0.9, "max_ms": median_ms * 1.2,
            "throughput_per_s": batch / (median_ms / 1000.0), "device": device, **extra}


def _bench(engine: dict, batch: int = 256) -> dict:
    stage = {"stages": {"setup": 1.0}, "cached": {"setup": False}, "total_s": 1.0, "peak_rss_bytes": 2**20}
    return {"inference": [{"batch": batch, "engine": engine, "torch": _runner(0.05, batch, "cuda"),
                           "onnxruntime": _runner(0.0187, batch, "cpu")}],
            "proof": {"logrows": 15, "proof_bytes": 19000, "proving_key_bytes": 2**27, "cold": stage, "warm": stage}}


def _printed(result: dict) -> str:
    console = Console(width=250, record=True)
    print_bench(console, result)
    return console.export_text()


def test_bench_shows_the_engine_end_to_end_beside_its_graph_replay():
    """On a GPU the engine's row times the graph replay with the batch already on the device; the
    row under it is the engine from host arrays to host arrays, as onnxruntime's row is timed."""
    engine = _runner(0.007, 256, "cuda:0", timed="graph replay (device)", matches_witness=True,
                     matches_reference=True, witnesses_checked=32, samples_checked=256, path="graph",
                     end_to_end=_runner(0.0716, 256, "cuda:0"))
    out = _printed(_bench(engine))
    e2e = [line for line in out.splitlines() if "end to end" in line]
    assert len(e2e) == 1 and "0.072 ms" in e2e[0] and "3,575,419" in e2e[0], out
    assert "host float32 arrays in, int64 arrays out" in e2e[0]


def test_bench_on_the_cpu_has_one_engine_row():
    """Without a graph the engine's row is already end to end: no second row."""
    e2e = _runner(0.77, 256, "cpu")
    engine = {**e2e, "timed": "end to end (host)", "end_to_end": e2e, "matches_witness": True,
              "matches_reference": True, "path": "ops"}
    out = _printed(_bench(engine))
    assert "end to end" not in out, out
    assert "0.770 ms" in out


def test_bench_shows_the_served_stream_under_the_engine():
    """On a GPU the bench also serves the batch through ``Engine.infer_stream``: a row of its own,
    and a stream that differed from ``infer`` says so."""
    engine = _runner(0.1, 256, "cuda:0", timed="graph replay (device)", matches_witness=True,
                     matches_reference=True, path="graph", end_to_end=_runner(0.232, 256, "cuda:0"),
                     stream=_runner(0.1624, 256, "cuda:0", exact=True))
    served = [line for line in _printed(_bench(engine)).splitlines() if "served" in line]
    assert len(served) == 1 and "0.162 ms" in served[0] and "1,576,355" in served[0], served
    assert "MISMATCH" not in served[0]
    engine["stream"]["exact"] = False
    served = [line for line in _printed(_bench(engine)).splitlines() if "served" in line]
    assert "MISMATCH vs infer" in served[0], served
