"""``vcompute bench`` runs end to end and reports every column; it asserts no times."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import CIRCUITS


def test_bench_reports_inference_and_proof_side_by_side(cli, tmp_path: Path) -> None:
    plot = tmp_path / "bench.png"
    result = cli(
        "bench", CIRCUITS / "mlp" / "model.onnx", "--batch", "1,3", "--repeat", "2",
        "--out", tmp_path / "work", "--plot", plot, "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [row["batch"] for row in report["inference"]] == [1, 3]
    for row in report["inference"]:
        assert row["engine"]["matches_witness"] is True, row["engine"]
        for runner in ("engine", "torch", "onnxruntime"):
            assert row[runner]["median_ms"] > 0 and row[runner]["min_ms"] <= row[runner]["max_ms"], (runner, row[runner])
    proof = report["proof"]
    assert proof["cold"]["cached"]["setup"] is False, "the cold run must start from an empty cache"
    assert proof["warm"]["cached"] == {**proof["warm"]["cached"], "calibrate + compile": True, "srs": True, "setup": True}
    assert proof["cold"]["peak_rss_bytes"] > 10 * 2**20
    assert proof["proof_bytes"] > 1000 and proof["logrows"] >= 10
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "plot is not a PNG"


def test_bench_bad_batch(cli) -> None:
    result = cli("bench", CIRCUITS / "mlp" / "model.onnx", "--batch", "0,x")
    assert result.returncode == 2 and "--batch takes" in result.stderr and "Traceback" not in result.stderr
