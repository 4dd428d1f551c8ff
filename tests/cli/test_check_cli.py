"""``vcompute check`` as a user meets it: a table and exit 0 for a provable model, JSON for machines,
one line and exit 2 naming the op EZKL cannot take, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import onnx.helper as oh

from tests.cli.test_cli import assert_clean_failure
from tests.conftest import CIRCUITS


def test_check_provable_model_prints_the_table(cli) -> None:
    result = cli("check", CIRCUITS / "mlp" / "model.onnx")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for needle in ("Gemm", "Relu", "EZKL", "engine", "logrows (estimate)", "verifier (estimate)", "fits EIP-170"):
        assert needle in text, f"{needle!r} missing from: {result.stdout}"
    assert "Traceback" not in result.stderr


def test_check_json(cli) -> None:
    result = cli("check", CIRCUITS / "cnn" / "model.onnx", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["provable"] is True and report["engine"]["exact"] is True
    assert {r["op"] for r in report["ops"]} >= {"Conv", "Relu", "MaxPool", "Gemm"}
    assert all(r["ezkl"] == "yes" and r["engine"] == "exact" for r in report["ops"]), report["ops"]
    assert report["estimate"]["logrows"] == 15 and report["estimate"]["public_instances"] == 64 + 3


def test_check_refused_op_exits_2_with_one_line(cli, tmp_path: Path) -> None:
    graph = oh.make_graph(
        [oh.make_node("Relu", ["x"], ["r"]), oh.make_node("Mod", ["r", "c"], ["y"], fmod=1)],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor("c", onnx.TensorProto.FLOAT, [1], [0.5])],
    )
    path = tmp_path / "mod.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), str(path))
    result = cli("check", path)
    assert_clean_failure(result, 2, "unsupported ONNX op Mod (node y)")
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, result.stderr
    assert "Mod" in result.stdout, "the table is still printed"
    as_json = cli("check", path, "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["provable"] is False


def test_check_bad_files(cli, tmp_path: Path) -> None:
    assert_clean_failure(cli("check", tmp_path / "nope.onnx"), 2, "model file not found")
    bogus = tmp_path / "m.onnx"
    bogus.write_text("not a protobuf")
    assert_clean_failure(cli("check", bogus), 2, "is not an ONNX model")
    assert_clean_failure(cli("check", CIRCUITS / "mlp" / "model.onnx", "--input-visibility", "secret"), 2, "--input-visibility must be")
