"""``vcompute check``'s report: EZKL's verdict per op (from EZKL's gen_settings), the engine's (from its
lowering), and the estimates. Real EZKL, real ONNX; no calibration, no keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
from onnx import TensorProto as T

from vcompute.zk import check

from tests.conftest import CIRCUITS


def save(path: Path, nodes, inputs, outputs, inits=(), opset: int = 17) -> Path:
    graph = oh.make_graph(nodes, "g", inputs, outputs, list(inits))
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], ir_version=8), str(path))
    return path


def rows(report: dict) -> dict[str, dict]:
    return {r["op"]: r for r in report["ops"]}


def test_supported_model_every_op_yes_and_estimates() -> None:
    report = check.check_model(CIRCUITS / "mixed" / "model.onnx")
    assert report["provable"] is True and report["ezkl"]["failures"] == []
    assert {r["op"]: (r["count"], r["ezkl"], r["engine"]) for r in report["ops"]} == {
        "Cast": (2, "yes", "exact"), "Mul": (1, "yes", "exact"), "MatMul": (2, "yes", "exact"), "Add": (2, "yes", "exact"),
    }
    est = report["estimate"]
    assert est["logrows"] == 15, est  # EZKL calibrates this model to 15 without a cap
    assert est["public_instances"] == 4 + 4 + 2 + 3, "every public input and output element"
    assert est["verifier"]["features"] == {"range_checks": 3, "lookups": 0, "extra_columns": 0, "shuffle": False, "dynamic_lookup": False}
    assert abs(est["verifier"]["estimated_bytes"] - 14_864) < 0.02 * 14_864, "measured 14,864 bytes"
    assert "estimate" in est["logrows_is"]
    assert est["verifier"]["fits_eip170"] is True and "estimate" not in est["verifier"]["verifier"]
    assert report["seconds"] < 60


def test_every_refused_op_is_found_not_only_the_first(tmp_path: Path) -> None:
    """Mish (tract has no translation), then Mod and Tile (EZKL has no circuit op): one run names all three."""
    x = oh.make_tensor_value_info("x", T.FLOAT, [1, 4])
    path = save(
        tmp_path / "m.onnx",
        [
            oh.make_node("Relu", ["x"], ["r"]),
            oh.make_node("Mish", ["r"], ["m"]),
            oh.make_node("Mod", ["m", "c"], ["d"], fmod=1),
            oh.make_node("Tile", ["d", "rep"], ["t"]),
            oh.make_node("Sigmoid", ["t"], ["y"]),
        ],
        [x],
        [oh.make_tensor_value_info("y", T.FLOAT, [1, 8])],
        [oh.make_tensor("c", T.FLOAT, [1], [0.5]), oh.make_tensor("rep", T.INT64, [2], [1, 2])],
        opset=18,
    )
    report = check.check_model(path)
    assert report["provable"] is False
    ops = rows(report)
    assert {op: ops[op]["ezkl"] for op in ops} == {"Relu": "yes", "Mish": "no", "Mod": "no", "Tile": "no", "Sigmoid": "yes"}, report["ops"]
    assert "Unimplemented(Mish)" in ops["Mish"]["note"] and "tract's Rem" in ops["Mod"]["note"], report["ops"]
    assert {op: ops[op]["engine"] for op in ops} == {"Relu": "exact", "Mish": "no", "Mod": "no", "Tile": "no", "Sigmoid": "exact"}
    line = check.refusal_line(report)
    assert "unsupported ONNX op Mish (node m)" in line and "2 more: Mod, Tile" in line and "\n" not in line


def test_attribute_ezkl_refuses_names_the_node(tmp_path: Path) -> None:
    """A Conv with dilations: EZKL refuses the node while loading it; its debug log names the node."""
    w = oh.make_tensor("w", T.FLOAT, [1, 1, 3, 3], np.ones(9, np.float32).tolist())
    path = save(
        tmp_path / "m.onnx",
        [oh.make_node("Conv", ["x", "w"], ["c1"], strides=[1, 1], name="fine"),
         oh.make_node("Conv", ["c1", "w"], ["y"], strides=[1, 1], dilations=[2, 2], name="dilated")],
        [oh.make_tensor_value_info("x", T.FLOAT, [1, 1, 9, 9])],
        [oh.make_tensor_value_info("y", T.FLOAT, [1, 1, 3, 3])],
        [w],
    )
    report = check.check_model(path)
    failure = report["ezkl"]["failures"][0]
    assert failure["op"] == "Conv" and failure["node"] == "dilated", failure
    assert "non unit dilations" in failure["error"]
    engine = report["engine"]["failures"][0]
    assert engine["op"] == "Conv" and engine["node"] == "dilated", "the engine's refusal is pinned to the dilated Conv, not the first one"


def test_engine_gaps_do_not_block_proving(tmp_path: Path) -> None:
    """1-D MaxPool: EZKL proves it, the engine does not run it yet: provable, engine column says no."""
    path = save(
        tmp_path / "m.onnx",
        [oh.make_node("Mul", ["x", "k"], ["m"]), oh.make_node("MaxPool", ["m"], ["y"], kernel_shape=[2], strides=[2])],
        [oh.make_tensor_value_info("x", T.FLOAT, [1, 1, 4])],
        [oh.make_tensor_value_info("y", T.FLOAT, [1, 1, 2])],
        [oh.make_tensor("k", T.FLOAT, [1], [3.0])],
    )
    report = check.check_model(path)
    assert report["provable"] is True
    assert rows(report)["MaxPool"]["ezkl"] == "yes" and rows(report)["MaxPool"]["engine"] == "no"
    assert rows(report)["Mul"]["engine"] == "exact"
    assert report["engine"]["exact"] is None and report["estimate"]["logrows"] >= 12


def test_constant_model_and_bool_inputs() -> None:
    report = check.check_model(CIRCUITS / "constant" / "model.onnx")
    assert report["provable"] is True and report["inputs"] == []
    assert all(r["engine"] == "n/a" for r in report["ops"]) and "no inputs" in report["engine"]["skipped"]


def test_verifier_size_rule_reproduces_the_measured_verifiers() -> None:
    """The rule against every verifier measured with scripts/verifier_sizes.py (within its own margin)."""
    for name, _logrows, _instances, lookups, range_checks, extra, shuffles, dynamic, size in check.VERIFIER_MEASUREMENTS:
        predicted = check.VERIFIER_SIZE.bytes(range_checks, lookups, extra, shuffles > 0, dynamic > 0)
        assert abs(predicted - size) <= check.VERIFIER_SIZE.margin * size, (name, size, predicted)


def test_verifier_estimate_verdicts() -> None:
    small = check.estimate_verifier({"range_checks": 2, "lookups": 0, "extra_columns": 0, "shuffle": False, "dynamic_lookup": False})
    assert small["fits_eip170"] is True and small["estimated_bytes"] == 13_440
    many = check.estimate_verifier({"range_checks": 2, "lookups": 6, "extra_columns": 0, "shuffle": True, "dynamic_lookup": False})
    assert many["fits_eip170"] is False and "reusable verifier" in many["verifier"]


def test_logrows_cap_grows_the_verifier() -> None:
    """circuits/mlp: 2^15 rows by default; capped at 2^12 its range-check table takes 5 columns (measured 22,263 bytes)."""
    free = check.check_model(CIRCUITS / "mlp" / "model.onnx")["estimate"]
    capped = check.check_model(CIRCUITS / "mlp" / "model.onnx", max_logrows=12)["estimate"]
    assert free["logrows"] == 15 and capped["logrows"] == 12 and capped["fits_max_logrows"] is True
    assert free["verifier"]["estimated_bytes"] == 13_440
    assert abs(capped["verifier"]["estimated_bytes"] - 22_263) < 0.02 * 22_263, capped["verifier"]
