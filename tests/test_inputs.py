"""Input files: EZKL's format, checked against the model before anything runs."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.errors import UsageError
from vcompute.inputs import parse_input_data, sample_input, to_json
from vcompute.model import load_model

from tests.conftest import CIRCUITS


@pytest.fixture(scope="module")
def cnn():
    return load_model(CIRCUITS / "cnn" / "model.onnx")


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


def test_booleans_are_not_numbers(cnn) -> None:
    with pytest.raises(UsageError, match="expected numbers"):
        parse_input_data({"input_data": [[True] * 64]}, cnn, "x")


def test_model_info(cnn) -> None:
    assert cnn.input_shapes == [(1, 1, 8, 8)]
    assert {"Conv", "Relu", "MaxPool", "Gemm"} <= set(cnn.op_types)
