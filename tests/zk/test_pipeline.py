"""End-to-end ``prove`` and ``verify`` on the bundled models, with real EZKL proofs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vcompute.zk import pipeline
from vcompute.errors import ProofError
from vcompute.zk.pipeline import ARTIFACTS

from tests.conftest import CIRCUITS


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_prove_and_verify_bundled_model(proved, name: str) -> None:
    out = proved(name)
    for artifact in (*ARTIFACTS, "summary.json"):
        assert (out / artifact).is_file(), f"{artifact} missing from {out}"
    assert not list(out.glob(".staging-*")), "staging dir left behind"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verified"] is True
    assert summary["srs"]["development"] is True
    assert summary["proof"]["bytes"] > 1000
    assert [r["name"] for r in summary["stages"]][:4] == ["calibrate + compile", "srs", "setup", "witness"]
    assert summary["max_abs_error"] < 0.05, f"proven outputs too far from float: {summary['max_abs_error']}"
    assert len(summary["outputs"][0]) == len(summary["float_outputs"][0])
    assert summary["engine_exact"] is True, summary.get("engine_reason")
    result = pipeline.verify(out)
    assert result["valid"] is True


def test_second_prove_with_new_input_skips_setup(proved, tmp_path: Path) -> None:
    proved("mlp")  # populates the cache
    new_input = tmp_path / "input.json"
    new_input.write_text(json.dumps({"input_data": [[0.5, -0.25, 0.125, 0.0, -0.5, 0.75, 0.3, -0.1]]}))
    summary = pipeline.prove(
        pipeline.ProveRequest(model=CIRCUITS / "mlp" / "model.onnx", input=new_input, out=tmp_path / "out")
    )
    assert summary["cache"] == {"calibrate + compile": True, "srs": True, "setup": True}, summary["cache"]
    first = json.loads((proved("mlp") / "summary.json").read_text())
    assert summary["input"]["sha256"] != first["input"]["sha256"]
    assert summary["outputs_fixed"] != first["outputs_fixed"], "a new input should give new outputs"
    pipeline.verify(tmp_path / "out")


def test_sample_input_is_made_and_saved(proved, tmp_path: Path) -> None:
    proved("mlp")
    out = tmp_path / "out"
    summary = pipeline.prove(pipeline.ProveRequest(model=CIRCUITS / "mlp" / "model.onnx", out=out, evm=False))
    assert summary["input"]["generated"] is True
    data = json.loads((out / "input.json").read_text())
    assert len(data["input_data"][0]) == 8
    again = pipeline.prove(pipeline.ProveRequest(model=CIRCUITS / "mlp" / "model.onnx", out=tmp_path / "again", evm=False))
    assert again["input"]["sha256"] == summary["input"]["sha256"], "the sample input must be deterministic"


def _flip_proof_byte(out: Path, index: int = 200) -> None:
    proof = json.loads((out / "proof.json").read_text())
    proof["proof"][index] ^= 0x01
    proof["hex_proof"] = "0x" + bytes(proof["proof"]).hex()
    (out / "proof.json").write_text(json.dumps(proof))


def test_flipped_proof_byte_is_rejected(proof_copy) -> None:
    out = proof_copy("mlp")
    _flip_proof_byte(out)
    with pytest.raises(ProofError, match="rejected"):
        pipeline.verify(out)


def test_changed_public_output_is_rejected(proof_copy) -> None:
    out = proof_copy("mlp")
    proof = json.loads((out / "proof.json").read_text())
    last = proof["instances"][0][-1]
    proof["instances"][0][-1] = ("01" if last[:2] != "01" else "02") + last[2:]
    (out / "proof.json").write_text(json.dumps(proof))
    with pytest.raises(ProofError, match="rejected"):
        pipeline.verify(out)


def test_hex_proof_must_match_proof_bytes(proof_copy) -> None:
    out = proof_copy("mlp")
    proof = json.loads((out / "proof.json").read_text())
    raw = bytearray(bytes.fromhex(proof["hex_proof"][2:]))
    raw[10] ^= 0xFF
    proof["hex_proof"] = "0x" + raw.hex()
    (out / "proof.json").write_text(json.dumps(proof))
    with pytest.raises(ProofError, match="hex_proof"):
        pipeline.verify(out)


def test_summary_claiming_other_outputs_is_rejected(proof_copy) -> None:
    out = proof_copy("mlp")
    summary = json.loads((out / "summary.json").read_text())
    summary["outputs_fixed"][0][0] += 1
    (out / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ProofError, match="does not attest"):
        pipeline.verify(out)


def test_model_engine_cannot_run_still_proves_with_exact_null(tmp_path: Path) -> None:
    """Floor: EZKL proves it, the engine does not run it; summary says so and claims nothing."""
    import onnx
    import onnx.helper as oh

    graph = oh.make_graph(
        [oh.make_node("Mul", ["x", "k"], ["m"]), oh.make_node("Floor", ["m"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor("k", onnx.TensorProto.FLOAT, [1], [3.0])],
    )
    model = tmp_path / "floor.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), str(model))
    data = tmp_path / "input.json"
    data.write_text(json.dumps({"input_data": [[0.3, -0.7, 1.2, 0.05]]}))
    summary = pipeline.prove(pipeline.ProveRequest(model=model, input=data, out=tmp_path / "out", evm=False))
    assert summary["engine_exact"] is None
    assert "Floor" in summary["engine_reason"], summary["engine_reason"]
    assert summary["verified"] is True
    assert summary["float_outputs"] is not None and summary["max_abs_error"] < 0.01


def test_model_onnxruntime_refuses_still_proves(tmp_path: Path) -> None:
    """The float reference is informative: an IR version onnxruntime cannot load leaves it null, with why."""
    import onnx
    import onnx.helper as oh

    graph = oh.make_graph(
        [oh.make_node("Relu", ["x"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )
    model = tmp_path / "relu.onnx"
    proto = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    proto.ir_version = 14  # valid ONNX, newer than onnxruntime 1.31 loads (13)
    onnx.save(proto, str(model))
    data = tmp_path / "input.json"
    data.write_text(json.dumps({"input_data": [[0.3, -0.7, 1.2, 0.05]]}))
    summary = pipeline.prove(pipeline.ProveRequest(model=model, input=data, out=tmp_path / "out", evm=False))
    assert summary["float_outputs"] is None and "onnxruntime" in summary["float_error"]
    assert summary["engine_exact"] is True and summary["verified"] is True
