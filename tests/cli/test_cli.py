"""The command line as a user meets it: exit codes, one-line errors, no tracebacks, no half-written out dirs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import onnx
import onnx.helper as oh
import pytest

from tests.conftest import CIRCUITS

MLP = CIRCUITS / "mlp" / "model.onnx"


def assert_clean_failure(result, code: int, needle: str) -> None:
    """One clear line on stderr naming the problem, the right exit code, no traceback."""
    assert result.returncode == code, f"exit {result.returncode}, expected {code}; stderr: {result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert needle.lower() in " ".join(result.stderr.split()).lower(), f"{needle!r} not in stderr: {result.stderr}"


def assert_no_artifacts(out: Path) -> None:
    if out.exists():
        assert not (out / "summary.json").exists(), "summary.json written for a failed prove"
        assert not (out / "proof.json").exists(), "proof.json written for a failed prove"
        assert not list(out.glob(".staging-*")), "staging dir left behind"


def test_help_explains_commands(cli) -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("prove", "verify"):
        assert command in result.stdout
    prove_help = cli("prove", "--help").stdout
    for option in ("--input", "--out", "--srs", "--target", "--calibration-data", "--scales", "--max-logrows", "--json"):
        assert option in prove_help, f"{option} missing from prove --help"


def test_missing_model(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli("prove", tmp_path / "nope.onnx", "--out", out)
    assert_clean_failure(result, 2, "model file not found")
    assert_no_artifacts(out)


def test_not_an_onnx_file(cli, tmp_path: Path) -> None:
    bogus = tmp_path / "model.onnx"
    bogus.write_text("this is not a protobuf")
    result = cli("prove", bogus, "--out", tmp_path / "out")
    assert_clean_failure(result, 2, "is not an ONNX model")


def test_op_ezkl_cannot_take_is_named(cli, tmp_path: Path) -> None:
    graph = oh.make_graph(
        [oh.make_node("Unique", ["x"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None])],
    )
    path = tmp_path / "unique.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)]), str(path))
    out = tmp_path / "out"
    result = cli("prove", path, "--out", out)
    assert_clean_failure(result, 2, "unsupported ONNX op Unique")
    assert_no_artifacts(out)


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"input_data": [[0.1] * 7]}, "has 7 values, the model expects shape [1, 8]"),
        ({"input_data": [[0.1] * 8, [0.2] * 8]}, "2 input tensor(s) given, the model takes 1"),
        ({"input_data": [[0.1] * 7 + [math.nan]]}, "NaN"),
        ({"input_data": [[0.1] * 7 + [math.inf]]}, "inf"),
        ({"input_data": [["a"] * 8]}, "expected numbers"),
        ({"inputs": [[0.1] * 8]}, '"input_data"'),
    ],
    ids=["wrong-shape", "wrong-count", "nan", "inf", "not-numbers", "wrong-format"],
)
def test_bad_input(cli, tmp_path: Path, data: dict, needle: str) -> None:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "out"
    result = cli("prove", MLP, "--input", path, "--out", out)
    assert_clean_failure(result, 2, needle)
    assert_no_artifacts(out)


def test_missing_input_file(cli, tmp_path: Path) -> None:
    result = cli("prove", MLP, "--input", tmp_path / "none.json", "--out", tmp_path / "out")
    assert_clean_failure(result, 2, "input file not found")


def test_unwritable_out_dir(cli, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    result = cli("prove", MLP, "--out", blocker / "out")
    assert_clean_failure(result, 2, "cannot write to out dir")


def test_bad_options(cli, tmp_path: Path) -> None:
    assert_clean_failure(cli("prove", MLP, "--target", "speed", "--out", tmp_path / "o"), 2, "'speed' is not one of 'resources', 'accuracy'")
    assert_clean_failure(cli("prove", MLP, "--scales", "a,b", "--out", tmp_path / "o"), 2, "--scales takes")
    assert_clean_failure(
        cli("prove", MLP, "--input-visibility", "secret", "--out", tmp_path / "o"), 2, "Invalid value for '--input-visibility'"
    )


def test_srs_with_too_few_rows_is_refused(cli, proved, tmp_path: Path) -> None:
    import ezkl

    proved("mlp")
    small = tmp_path / "small.srs"
    ezkl.gen_srs(str(small), 10)
    out = tmp_path / "out"
    result = cli("prove", MLP, "--input", CIRCUITS / "mlp" / "input.json", "--srs", small, "--out", out)
    assert_clean_failure(result, 2, "has 2^10 rows; this circuit needs 2^15")
    assert_no_artifacts(out)


def test_prove_json_then_verify_exit_codes(cli, proved, tmp_path: Path) -> None:
    proved("mlp")  # warm cache: this run skips calibration and setup
    out = tmp_path / "out"
    result = cli("prove", MLP, "--input", CIRCUITS / "mlp" / "input.json", "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    import hashlib

    assert summary["cache"]["setup"] is True, "a second prove of the same model must reuse the keys"
    assert summary["proof"]["sha256"] == hashlib.sha256((out / "proof.json").read_bytes()).hexdigest()
    assert "development SRS" in result.stderr, "every prove with a development SRS must say so"

    ok = cli("verify", out, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["outputs_fixed"] == summary["outputs_fixed"], "verify must report the proven outputs"

    proof = json.loads((out / "proof.json").read_text())
    proof["proof"][300] ^= 0x04
    proof["hex_proof"] = "0x" + bytes(proof["proof"]).hex()
    (out / "proof.json").write_text(json.dumps(proof))
    bad = cli("verify", out, "--json")
    assert bad.returncode == 1, bad.stderr
    assert json.loads(bad.stdout)["valid"] is False
    assert "Traceback" not in bad.stderr


def test_verify_corrupt_proof_file_is_rejected(cli, proof_copy) -> None:
    out = proof_copy("mlp")
    text = (out / "proof.json").read_text()
    (out / "proof.json").write_text(text[:100] + "#" + text[101:])
    assert_clean_failure(cli("verify", out), 1, "rejected")


def test_verify_not_a_proof_dir(cli, tmp_path: Path) -> None:
    assert_clean_failure(cli("verify", tmp_path / "nowhere"), 2, "proof dir not found")
    assert_clean_failure(cli("verify", tmp_path), 2, "not a proof dir written by 'vcompute prove'")
