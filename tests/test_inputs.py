"""Input files: every form EZKL's gen_witness accepts, checked against the model before anything runs.

The forms and their conversions are EZKL's (``src/graph/input.rs`` ``FileSourceInner``,
``InputType::roundtrip``); the end-to-end proofs of these models are in tests/zk/test_input_forms.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest

from vcompute.errors import UsageError
from vcompute.inputs import (
    check_range,
    field_to_int,
    parse_input_data,
    read_calibration_data,
    read_input_data,
    sample_input,
    to_json,
)
from vcompute.model import load_model

from tests.conftest import CIRCUITS


def field(value: int) -> str:
    """A field element as EZKL writes it (witness.json): 64 hex digits, little-endian, negatives mod p."""
    from vcompute.inputs import FIELD_MODULUS

    return (value % FIELD_MODULUS).to_bytes(32, "little").hex()


@pytest.fixture(scope="module")
def cnn():
    return load_model(CIRCUITS / "cnn" / "model.onnx")


@pytest.fixture(scope="module")
def mixed():
    return load_model(CIRCUITS / "mixed" / "model.onnx")


@pytest.fixture(scope="module")
def constant():
    return load_model(CIRCUITS / "constant" / "model.onnx")


def test_nested_and_flat_inputs_are_accepted(cnn) -> None:
    flat = [float(i) / 64 for i in range(64)]
    nested = np.asarray(flat).reshape(1, 1, 8, 8).tolist()
    a = parse_input_data({"input_data": [flat]}, cnn, "x")
    b = parse_input_data({"input_data": [nested]}, cnn, "x")
    assert a[0].shape == (1, 1, 8, 8) and np.array_equal(a[0], b[0])


def test_sample_input_roundtrips(cnn) -> None:
    arrays = sample_input(cnn)
    again = parse_input_data(to_json(arrays), cnn, "x")
    assert np.array_equal(arrays[0], again[0])
    assert np.array_equal(arrays[0], sample_input(cnn)[0]), "sample input must be deterministic"


def test_booleans_for_a_float_input_are_refused(cnn) -> None:
    """EZKL panics on true/false for a non-bool input (assertion in FileSourceInner::as_type)."""
    with pytest.raises(UsageError, match="true/false are accepted for bool inputs only"):
        parse_input_data({"input_data": [[True] * 64]}, cnn, "x")


def test_model_info(cnn, mixed, constant) -> None:
    assert cnn.input_shapes == [(1, 1, 8, 8)]
    assert {"Conv", "Relu", "MaxPool", "Gemm"} <= set(cnn.op_types)
    assert mixed.input_names == ["x", "mask", "counts"]
    assert mixed.input_types == ["float", "bool", "int64"] and mixed.input_kinds == ["float", "bool", "int"]
    assert constant.input_names == [] and constant.describe_inputs() == "none"


def test_several_inputs_of_three_kinds(mixed) -> None:
    read = read_input_data({"input_data": [[[0.5, -0.75], [0.25, 0.9]], [True, False, 1, 0], [3, 1]]}, mixed, "f")
    x, mask, counts = read.arrays
    assert x.dtype == np.float64 and x.shape == (1, 4)
    assert mask.dtype == np.bool_ and mask.tolist() == [[True, False, True, False]]
    assert counts.dtype == np.int64 and counts.tolist() == [[3, 1]]
    assert read.notes == []
    assert to_json(read.arrays) == {"input_data": [[0.5, -0.75, 0.25, 0.9], [True, False, True, False], [3, 1]]}


def test_int_and_bool_values_are_truncated_as_ezkl_does(mixed) -> None:
    """EZKL's InputType::roundtrip: to_i64 truncates toward zero (1.9 -> 1, -0.5 -> 0), then bool must be 0 or 1."""
    read = read_input_data({"input_data": [[0.0] * 4, [1.5, 0.2, -0.5, 1], [2.7, -3.9]]}, mixed, "f")
    assert read.arrays[1].tolist() == [[True, False, False, True]]
    assert read.arrays[2].tolist() == [[2, -3]]
    assert any("input 1 (mask, bool): 3 non-integer value(s) truncated" in n for n in read.notes), read.notes
    assert any("input 2 (counts, int64): 2 non-integer value(s) truncated" in n for n in read.notes), read.notes


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"input_data": [[0.0] * 4, [1, 0, 2, 1], [1, 1]]}, "input 1 (mask) is bool: 2 is not 0 or 1"),
        ({"input_data": [[0.0] * 4, [1, 0, -1, 1], [1, 1]]}, "is not 0 or 1"),
        ({"input_data": [[0.0] * 4, [1, 0, 1, 1], [1, 2**70]]}, "does not fit in 64 bits"),
        ({"input_data": [[0.0] * 4, [1, 0, 1, 1], [1, "abc"]]}, "expected numbers, found str 'abc'"),
        ({"input_data": [[0.0] * 4, [1, 0, 1, 1], [1, None]]}, "expected numbers, found NoneType"),
        ({"input_data": [[0.0] * 4, [1, 0, 1, 1]]}, "2 input tensor(s) given, the model takes 3 (x: float [1, 4], mask: bool [1, 4], counts: int64 [1, 2])"),
        ({"input_data": [[0.0] * 4, [1, 0, 1, 1], [1, 1], [1]]}, "4 input tensor(s) given, the model takes 3"),
        ({"input_data": []}, '"input_data" is empty, the model takes 3 input(s)'),
        ({"input_data": [[0.0] * 3, [1, 0, 1, 1], [1, 1]]}, "input 0 (x) has 3 values, the model expects shape [1, 4]"),
    ],
    ids=["bool-2", "bool-neg", "int-overflow", "string", "null", "too-few", "too-many", "empty", "size"],
)
def test_bad_values_and_counts_are_one_line(mixed, data, needle: str) -> None:
    with pytest.raises(UsageError) as err:
        read_input_data(data, mixed, "f")
    assert needle in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_field_elements(mixed) -> None:
    """EZKL's own serialization: exact integers for int/bool inputs; float inputs need the input scale."""
    assert field_to_int(field(-3)) == -3 and field_to_int(field(4096)) == 4096
    data = {"input_data": [[field(4096), 0.25, 0.5, 1.0], [field(1), field(0), True, 0], [field(-3), 7]]}
    with pytest.raises(UsageError, match="field elements are already-quantized integers"):
        read_input_data(data, mixed, "f")
    read = read_input_data(data, mixed, "f", scale=13)
    assert read.arrays[0].tolist() == [[0.5, 0.25, 0.5, 1.0]]  # 4096 / 2^13
    assert read.arrays[1].tolist() == [[True, False, True, False]]
    assert read.arrays[2].tolist() == [[-3, 7]]
    assert "input 0 (x): 1 field element(s) read as integers at scale 2^13" in read.notes
    with pytest.raises(UsageError, match="expected numbers"):
        read_input_data({"input_data": [["0x" + field(1)[2:], 0, 0, 0], [0] * 4, [0, 0]]}, mixed, "f", scale=13)


def test_model_without_inputs(constant) -> None:
    for data in ({"input_data": [[]]}, {"input_data": []}):
        read = read_input_data(data, constant, "f")
        assert read.arrays == [] and "no inputs" in read.notes[0]
    with pytest.raises(UsageError, match=r"1 input tensor\(s\) given, the model takes none \(a constant graph\)"):
        read_input_data({"input_data": [[1.0]]}, constant, "f")
    assert sample_input(constant) == [] and to_json([]) == {"input_data": []}


def test_initializers_listed_as_inputs_are_matched_with_a_note(tmp_path: Path) -> None:
    """Older exporters list the weights in graph.input: input_data holds only the real inputs."""
    graph = oh.make_graph(
        [oh.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2]), oh.make_tensor_value_info("W", onnx.TensorProto.FLOAT, [2, 2])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])],
        [oh.make_tensor("W", onnx.TensorProto.FLOAT, [2, 2], [1.0, 0.0, 0.0, 1.0])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), str(path))
    model = load_model(path)
    assert model.input_names == ["x"] and model.declared_inputs == ["x", "W"]
    read = read_input_data({"input_data": [[1.0, 2.0]]}, model, "f")
    assert "graph.input declares 2 names; 1 are initializers (weights)" in read.notes[0], read.notes
    with pytest.raises(UsageError, match=r"2 input tensor\(s\) given, the model takes 1 \(x: float \[1, 2\]\); graph.input also lists 1 initializer"):
        read_input_data({"input_data": [[1.0, 2.0], [1, 0, 0, 1]]}, model, "f")


def test_input_types_ezkl_cannot_take_are_refused(tmp_path: Path) -> None:
    graph = oh.make_graph(
        [oh.make_node("Identity", ["s"], ["y"])],
        "g",
        [oh.make_tensor_value_info("s", onnx.TensorProto.STRING, [1])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.STRING, [1])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), str(path))
    with pytest.raises(UsageError, match="input s has type string; EZKL takes float, integer and bool inputs only"):
        load_model(path)


def test_sample_input_per_kind(mixed) -> None:
    x, mask, counts = sample_input(mixed)
    assert x.dtype == np.float64 and np.all(np.abs(x) <= 1)
    assert mask.dtype == np.bool_ and counts.dtype == np.int64 and set(counts.reshape(-1).tolist()) <= {0, 1}
    again = sample_input(mixed)
    assert all(np.array_equal(a, b) for a, b in zip(again, (x, mask, counts)))


def test_calibration_data_is_checked_and_flattened(mixed, tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"input_data": [[[0.1] * 4, [0.2] * 4], [[True] * 4, [0, 1, 0, 1]], [[1, 2], [3, 4]]]}))
    cal = read_calibration_data(path, mixed)
    assert cal.samples == 2
    assert cal.data["input_data"][0] == [0.1] * 4 + [0.2] * 4
    assert cal.data["input_data"][1] == [True] * 4 + [False, True, False, True]
    path.write_text(json.dumps({"input_data": [[0.1] * 8, [1] * 4, [1, 2]]}))
    with pytest.raises(UsageError, match=r"different numbers of samples \(\[2, 1, 1\]\)"):
        read_calibration_data(path, mixed)
    path.write_text(json.dumps({"input_data": [[0.1] * 7, [1] * 4, [1, 2]]}))
    with pytest.raises(UsageError, match="7 values, not a whole number of samples of 4"):
        read_calibration_data(path, mixed)


def test_range_check_refuses_values_the_circuit_cannot_take(mixed) -> None:
    """EZKL range-checks each quantized input against decomp_base^legs - 1 (2^28 - 1 by default)."""
    settings = {"run_args": {"input_scale": 13, "decomp_base": 16384, "decomp_legs": 2}, "model_input_scales": [13, 0, 0]}
    ok = [np.full((1, 4), 32767.0), np.ones((1, 4), bool), np.array([[268435455, 0]])]
    check_range(ok, mixed, settings)
    with pytest.raises(UsageError, match=r"input 0 \(x\): value 40000.0 is outside what this circuit takes"):
        check_range([np.full((1, 4), 40000.0), *ok[1:]], mixed, settings)
    with pytest.raises(UsageError, match=r"input 2 \(counts\): value 268435456"):
        check_range([ok[0], ok[1], np.array([[268435456, 0]])], mixed, settings)
    check_range([np.full((1, 4), 40000.0), *ok[1:]], mixed, {**settings, "run_args": {**settings["run_args"], "decomp_legs": 3}})
