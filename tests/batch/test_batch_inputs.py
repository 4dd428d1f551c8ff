"""Reading --inputs SOURCE (no EZKL): JSON lines, a directory, .npy/.npz; bad samples fail alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.batch.conftest import MLP, good_inputs
from vcompute.errors import UsageError
from vcompute.model import load_model
from vcompute.zk.batch_inputs import calibration_data, index_names, items_from_values, read_source


@pytest.fixture(scope="module")
def model():
    return load_model(MLP)


def test_jsonl_names_by_index_and_bad_lines_fail_alone(tmp_path: Path, model) -> None:
    g = good_inputs(2)
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(g[0]) + "\n\n{not json\n" + json.dumps(g[1]["input_data"]) + "\n" + '{"input_data": [[1, 2]]}\n')
    items = read_source(source, model)
    assert [it.name for it in items] == ["0000", "0001", "0002", "0003"]
    assert [it.ok for it in items] == [True, False, True, False]
    assert "in.jsonl:3: not valid JSON" in items[1].error  # line numbers count blank lines
    assert "has 2 values" in items[3].error
    assert items[2].arrays[0].shape == (1, 8)  # a bare list is read as input_data


def test_directory_names_by_stem(tmp_path: Path, model) -> None:
    g = good_inputs(2)
    (tmp_path / "cat.json").write_text(json.dumps(g[0]))
    (tmp_path / "dog.json").write_text(json.dumps(g[1]))
    (tmp_path / ".hidden.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "nan.json").write_text('{"input_data": [[NaN, 0, 0, 0, 0, 0, 0, 0]]}')
    items = read_source(tmp_path, model)
    assert [(it.name, it.ok) for it in items] == [("cat", True), ("dog", True), ("nan", False)]


def test_npy_with_a_leading_sample_axis(tmp_path: Path, model) -> None:
    arr = np.asarray([g["input_data"][0] for g in good_inputs(3)])
    np.save(tmp_path / "x.npy", arr.reshape(3, 1, 8))
    items = read_source(tmp_path / "x.npy", model)
    assert [it.name for it in items] == ["0000", "0001", "0002"] and all(it.ok for it in items)
    assert np.allclose(items[1].arrays[0].reshape(-1), arr[1])
    np.save(tmp_path / "wrong.npy", arr[:, :4])
    with pytest.raises(UsageError, match="each sample of input has 4 values"):
        read_source(tmp_path / "wrong.npy", model)
    np.savez(tmp_path / "x.npz", input=arr)
    assert len(read_source(tmp_path / "x.npz", model)) == 3
    bad = arr.copy()
    bad[1, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    assert [it.ok for it in read_source(tmp_path / "nan.npy", model)] == [True, False, True]


def test_unknown_or_empty_sources_are_usage_errors(tmp_path: Path, model) -> None:
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(UsageError, match="JSON-lines"):
        read_source(tmp_path / "x.csv", model)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UsageError, match="holds no inputs"):
        read_source(tmp_path / "empty.jsonl", model)


def test_api_values_and_calibration_data(model) -> None:
    arr = np.asarray([g["input_data"][0] for g in good_inputs(3)])
    items = items_from_values(arr, model)
    assert len(items) == 3 and all(it.ok for it in items)
    assert len(items_from_values(good_inputs(2), model)) == 2
    data, names = calibration_data(items, limit=2)
    assert names == ["0000", "0001"] and len(data["input_data"][0]) == 16
    assert index_names(12345)[-1] == "12344" and index_names(3) == ["0000", "0001", "0002"]
