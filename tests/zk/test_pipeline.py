"""End-to-end ``prove`` and ``verify`` on the bundled models, with real EZKL proofs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vcompute.errors import ProofError, UsageError
from vcompute.zk import pipeline
from vcompute.zk.pipeline import ARTIFACTS
from vcompute.zk.verify import verify

from tests.conftest import CIRCUITS


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_prove_and_verify_bundled_model(proved, name: str) -> None:
    out = proved(name)
    for artifact in ARTIFACTS:
        assert (out / artifact).is_file(), f"{artifact} missing from {out}"
    assert not list(out.parent.glob(".*staging-*")), "staging dir left behind"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["srs"]["development"] is True and len(summary["srs"]["sha256"]) == 64
    assert summary["partial"] is False and summary["warnings"] == [], summary["warnings"]
    assert summary["proof"]["bytes"] > 1000
    assert [r["name"] for r in summary["stages"]][:4] == ["calibrate + compile", "srs", "setup", "witness"]
    assert summary["max_abs_error"] < 0.05, f"proven outputs too far from float: {summary['max_abs_error']}"
    assert len(summary["outputs"][0]) == len(summary["float_outputs"][0])
    assert summary["engine_exact"] is True, summary.get("engine_reason")
    result = verify(out)
    assert result.model_bound, result.binding
    assert result.outputs_fixed == summary["outputs_fixed"], "verify must decode the proven outputs"


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
    verify(tmp_path / "out")


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
        verify(out)


def test_changed_public_output_is_rejected(proof_copy) -> None:
    out = proof_copy("mlp")
    proof = json.loads((out / "proof.json").read_text())
    last = proof["instances"][0][-1]
    proof["instances"][0][-1] = ("01" if last[:2] != "01" else "02") + last[2:]
    (out / "proof.json").write_text(json.dumps(proof))
    with pytest.raises(ProofError, match="rejected"):
        verify(out)


def test_hex_proof_must_match_proof_bytes(proof_copy) -> None:
    out = proof_copy("mlp")
    proof = json.loads((out / "proof.json").read_text())
    raw = bytearray(bytes.fromhex(proof["hex_proof"][2:]))
    raw[10] ^= 0xFF
    proof["hex_proof"] = "0x" + raw.hex()
    (out / "proof.json").write_text(json.dumps(proof))
    with pytest.raises(ProofError, match="hex_proof"):
        verify(out)


def test_summary_claiming_other_outputs_is_rejected(proof_copy) -> None:
    out = proof_copy("mlp")
    summary = json.loads((out / "summary.json").read_text())
    summary["outputs_fixed"][0][0] += 1
    (out / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ProofError, match="differ from the values the proof attests"):
        verify(out)


def test_model_engine_cannot_run_still_proves_with_exact_null(tmp_path: Path) -> None:
    """1-D max pooling: EZKL proves it, the engine refuses it (not verified against EZKL yet); the
    summary says so, claims nothing, and the proof still lands."""
    import onnx
    import onnx.helper as oh

    graph = oh.make_graph(
        [oh.make_node("Mul", ["x", "k"], ["m"]), oh.make_node("MaxPool", ["m"], ["y"], kernel_shape=[2], strides=[2])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 2])],
        [oh.make_tensor("k", onnx.TensorProto.FLOAT, [1], [3.0])],
    )
    model = tmp_path / "maxpool1d.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), str(model))
    data = tmp_path / "input.json"
    data.write_text(json.dumps({"input_data": [[0.3, -0.7, 1.2, 0.05]]}))
    summary = pipeline.prove(pipeline.ProveRequest(model=model, input=data, out=tmp_path / "out", evm=False))
    assert summary["engine_exact"] is None
    assert "MaxPool" in summary["engine_reason"], summary["engine_reason"]
    assert summary["partial"] is True and summary["warnings"][0]["stage"] == "engine"
    verify(tmp_path / "out")
    assert summary["float_outputs"] is not None and summary["max_abs_error"] < 0.01


def test_model_onnxruntime_refuses_still_proves(tmp_path: Path) -> None:
    """The float reference is informative: a model onnxruntime refuses to load leaves it null, with why."""
    import onnx
    import onnx.helper as oh

    graph = oh.make_graph(
        [oh.make_node("Relu", ["x"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )
    model = tmp_path / "relu.onnx"
    # An opset far beyond any release: onnx's checker and EZKL accept a Relu stamped with it,
    # onnxruntime refuses opsets past its own (1.32: 28). The IR version used to do this job
    # until onnxruntime 1.32 caught up with onnx's (14), so it is no longer a reliable trigger.
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 1000)], ir_version=8), str(model))
    data = tmp_path / "input.json"
    data.write_text(json.dumps({"input_data": [[0.3, -0.7, 1.2, 0.05]]}))
    summary = pipeline.prove(pipeline.ProveRequest(model=model, input=data, out=tmp_path / "out", evm=False))
    assert summary["float_outputs"] is None and "onnxruntime" in summary["float_error"]
    assert summary["engine_exact"] is True
    verify(tmp_path / "out")


def test_occupied_out_dir_is_refused_and_left_alone(proved, tmp_path: Path) -> None:
    """A dir of the user's own files is never overwritten without --force (issue #8.8)."""
    proved("mlp")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "input.json").write_text('{"mine": true}')
    (out / "notes.txt").write_text("keep me")
    request = pipeline.ProveRequest(model=CIRCUITS / "mlp" / "model.onnx", out=out, evm=False)
    with pytest.raises(UsageError, match="not empty and is not a vcompute proof dir"):
        pipeline.prove(request)
    assert (out / "input.json").read_text() == '{"mine": true}' and (out / "notes.txt").exists()
    pipeline.prove(pipeline.ProveRequest(model=CIRCUITS / "mlp" / "model.onnx", out=out, evm=False, force=True))
    assert not (out / "notes.txt").exists(), "--force replaces the dir whole"
    verify(out)


def test_out_dir_holding_the_input_is_refused(tmp_path: Path) -> None:
    (tmp_path / "input.json").write_text(json.dumps({"input_data": [[0.1] * 8]}))
    request = pipeline.ProveRequest(model=CIRCUITS / "mlp" / "model.onnx", input=tmp_path / "input.json", out=tmp_path, force=True)
    with pytest.raises(UsageError, match="holds the input"):
        pipeline.prove(request)
    assert json.loads((tmp_path / "input.json").read_text()) == {"input_data": [[0.1] * 8]}


def test_old_proof_dir_of_another_model_is_replaced_whole_not_mixed(proved, tmp_path: Path) -> None:
    """Proving CNN with --no-evm into an MLP dir must not leave the MLP's Verifier.json beside the CNN's vk."""
    out = tmp_path / "out"
    import shutil

    shutil.copytree(proved("mlp"), out)
    with pytest.raises(UsageError, match="not a vcompute proof dir of this model"):
        pipeline.prove(pipeline.ProveRequest(model=CIRCUITS / "cnn" / "model.onnx", input=CIRCUITS / "cnn" / "input.json", out=out, evm=False))
    pipeline.prove(pipeline.ProveRequest(model=CIRCUITS / "cnn" / "model.onnx", input=CIRCUITS / "cnn" / "input.json", out=out, evm=False, force=True))
    assert not (out / "Verifier.json").exists(), "an old proof's file survived the replacement"


def test_failed_prove_leaves_no_out_dir(tmp_path: Path) -> None:
    bad = tmp_path / "input.json"
    bad.write_text(json.dumps({"input_data": [[0.1] * 3]}))
    with pytest.raises(UsageError):
        pipeline.prove(pipeline.ProveRequest(model=CIRCUITS / "mlp" / "model.onnx", input=bad, out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".*staging*")), "staging dir left behind"


def test_default_out_dir_is_named_after_the_models_folder() -> None:
    assert pipeline.default_out(CIRCUITS / "mlp" / "model.onnx") == Path("out/mlp")
    assert pipeline.default_out(Path("nets/lenet.onnx")) == Path("out/lenet")


def test_input_beyond_the_calibrated_lookup_range_is_refused_before_proving(tmp_path: Path) -> None:
    """EZKL's prove never returns on such a witness (seen with 23.0.5): one clear line instead."""
    import onnx
    import onnx.helper as oh

    graph = oh.make_graph(
        [oh.make_node("MatMul", ["x", "w"], ["m"]), oh.make_node("Sigmoid", ["m"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])],
        [oh.make_tensor("w", onnx.TensorProto.FLOAT, [4, 2], [0.5, -0.25, 0.75, 0.1, -0.3, 0.6, 0.2, -0.8])],
    )
    model = tmp_path / "sigmoid.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), str(model))
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({"input_data": [[0.1, -0.2, 0.3, -0.1]]}))
    far = tmp_path / "far.json"
    far.write_text(json.dumps({"input_data": [[60.0, -70.0, 80.0, -50.0]]}))
    request = pipeline.ProveRequest(model=model, input=far, calibration_data=calibration, out=tmp_path / "out", evm=False)
    with pytest.raises(UsageError, match="outside the calibrated range"):
        pipeline.prove(request)
    assert not (tmp_path / "out").exists()
