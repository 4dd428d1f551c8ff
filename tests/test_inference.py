"""``vcompute infer``: the engine's integers are the ones a proof attests, with or without --settings."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import onnx.helper as oh
import pytest

from vcompute import inference
from vcompute.errors import UsageError

from tests.conftest import CIRCUITS


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_infer_with_proof_settings_equals_proven_outputs(proved, name: str) -> None:
    out = proved(name)
    result = inference.infer(CIRCUITS / name / "model.onnx", out / "input.json", out / "settings.json")
    summary = json.loads((out / "summary.json").read_text())
    assert result["outputs_fixed"] == summary["outputs_fixed"], (result["outputs_fixed"], summary["outputs_fixed"])
    assert result["outputs"] == summary["outputs"]


def test_infer_without_settings_calibrates_like_prove(proved, cli) -> None:
    out = proved("mlp")
    result = cli("infer", CIRCUITS / "mlp" / "model.onnx", "--input", CIRCUITS / "mlp" / "input.json", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["outputs_fixed"] == json.loads((out / "summary.json").read_text())["outputs_fixed"]
    assert data["ops"] == ["Gemm", "Relu", "Gemm"] and data["time_ms"] > 0 and data["device"]


def test_infer_bad_settings_file(cli, tmp_path: Path) -> None:
    bogus = tmp_path / "settings.json"
    bogus.write_text("{}")
    result = cli("infer", CIRCUITS / "mlp" / "model.onnx", "--settings", bogus)
    assert result.returncode == 2 and "is not an EZKL settings file" in result.stderr, result.stderr


def test_infer_unsupported_op_is_named(tmp_path: Path) -> None:
    """An op EZKL accepts but the engine does not run yet (1-D MaxPool) is named, never run in float."""
    graph = oh.make_graph(
        [oh.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2], strides=[2])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 2])],
    )
    path = tmp_path / "maxpool1d.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), str(path))
    with pytest.raises(UsageError, match="MaxPool"):
        inference.infer(path)
