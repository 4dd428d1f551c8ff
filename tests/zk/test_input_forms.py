"""Every input form EZKL's gen_witness accepts, proven end to end with real EZKL and verified.

The models are bundled (``scripts/make_input_models.py``): ``mixed`` (float, bool and int64
inputs), ``counts`` (int64 only: EZKL calibrates the parameter scale alone) and ``constant`` (no
inputs). Circuits are capped at 2^12 rows (``max_logrows``) to keep each proof quick on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vcompute import inference
from vcompute.model import load_model, run_float
from vcompute.zk.verify import verify
from vcompute.zk import circuit, pipeline

from tests.conftest import CIRCUITS
from tests.test_inputs import field

SMALL = circuit.CircuitOptions(max_logrows=12)


def prove(name: str, data: dict, out: Path) -> dict:
    path = out.parent / f"{name}-input.json"
    path.write_text(json.dumps(data))
    summary = pipeline.prove(pipeline.ProveRequest(model=CIRCUITS / name / "model.onnx", input=path, out=out, options=SMALL, evm=False))
    result = verify(out)
    if summary["outputs_fixed"] and result.outputs_fixed is not None:
        assert result.outputs_fixed == summary["outputs_fixed"], "verify must decode the proven outputs"
    return summary


def assert_close_to_float(summary: dict, tolerance: float = 1e-3) -> None:
    assert summary["float_outputs"] is not None, summary.get("float_error")
    assert summary["max_abs_error"] < tolerance, (summary["outputs"], summary["float_outputs"])


def test_mixed_inputs_in_every_form(tmp_path: Path) -> None:
    """Three inputs (float, bool, int64) given as nested lists, true/false, 0/1, a truncated 1.9 and field elements."""
    data = {"input_data": [[[0.5, -0.75], [0.25, 0.9]], [True, 0, 1, True], [field(3), 1.9]]}
    summary = prove("mixed", data, tmp_path / "out")
    assert summary["engine_exact"] is True, summary.get("engine_reason")
    assert_close_to_float(summary)
    notes = summary["input"]["notes"]
    assert any("counts, int64): 1 non-integer value(s) truncated" in n for n in notes), notes
    assert any("input 2 (counts): 1 field element(s)" in n for n in notes), notes
    # what EZKL was given: flat lists, bools as true/false, the truncated integers
    written = json.loads((tmp_path / "out" / "input.json").read_text())
    assert written == {"input_data": [[0.5, -0.75, 0.25, 0.9], [True, False, True, True], [3, 1]]}
    assert summary["scales"]["input"] == 13
    settings = json.loads((tmp_path / "out" / "settings.json").read_text())
    assert settings["model_input_scales"] == [13, 0, 0], "EZKL takes bool and int inputs at scale 0"
    # the float reference got each input in its declared type: same answer as feeding the clean input
    model = load_model(CIRCUITS / "mixed" / "model.onnx")
    clean = [np.array([[0.5, -0.75, 0.25, 0.9]]), np.array([[True, False, True, True]]), np.array([[3, 1]])]
    assert np.allclose(summary["float_outputs"][0], run_float(model, clean)[0].reshape(-1))

    # infer on the same input and settings: the integers the proof attests
    inp = tmp_path / "mixed-input.json"
    result = inference.infer(CIRCUITS / "mixed" / "model.onnx", inp, tmp_path / "out" / "settings.json")
    assert result["outputs_fixed"] == summary["outputs_fixed"]


def test_integer_only_model(tmp_path: Path) -> None:
    summary = prove("counts", json.loads((CIRCUITS / "counts" / "input.json").read_text()), tmp_path / "out")
    assert summary["scales"]["input"] == 0, "all-integer inputs: EZKL calibrates only the parameter scale"
    assert summary["engine_exact"] is True, summary.get("engine_reason")
    assert_close_to_float(summary)


def test_model_without_inputs(tmp_path: Path) -> None:
    summary = prove("constant", {"input_data": [[]]}, tmp_path / "out")
    assert summary["input"]["notes"] == ["the model has no inputs (a constant graph): it is proven with an empty input_data"]
    assert summary["engine_exact"] is None and "no inputs" in summary["engine_reason"]
    assert_close_to_float(summary)


def test_float_field_elements_need_a_known_scale(tmp_path: Path) -> None:
    from vcompute.errors import UsageError

    data = tmp_path / "in.json"
    data.write_text(json.dumps({"input_data": [[field(4096), 0, 0, 0], [1, 1, 1, 1], [0, 0]]}))
    with pytest.raises(UsageError, match="pass a single --scales value"):
        pipeline.prove(pipeline.ProveRequest(model=CIRCUITS / "mixed" / "model.onnx", input=data, out=tmp_path / "out", evm=False))
    assert not (tmp_path / "out" / "summary.json").exists()




def test_input_beyond_the_calibrated_range_check_is_refused(tmp_path: Path) -> None:
    """EZKL range-checks every input (|x| * 2^scale < 2^28): one line, before any key is made."""
    from vcompute.errors import UsageError

    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({"input_data": [[0.5, -0.5, 0.25, 1.0], [1, 0, 1, 1], [1, 2]]}))
    data = tmp_path / "in.json"
    data.write_text(json.dumps({"input_data": [[40000.0, 0.0, 0.0, 0.0], [1, 0, 1, 1], [1, 2]]}))
    with pytest.raises(UsageError, match=r"input 0 \(x\): value 40000.0 is outside what this circuit takes \(\|x\| <= 32768"):
        pipeline.prove(pipeline.ProveRequest(model=CIRCUITS / "mixed" / "model.onnx", input=data, calibration_data=cal,
                                             out=tmp_path / "out", options=SMALL, evm=False))


def test_input_beyond_the_calibrated_lookup_table_is_refused_before_prove(tmp_path: Path) -> None:
    """Sigmoid calibrated on [-1, 1], proven at 4: gen_witness accepts it, EZKL's prove would fail or hang."""
    import onnx
    import onnx.helper as oh

    graph = oh.make_graph(
        [oh.make_node("Sigmoid", ["x"], ["y"])], "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )
    model = tmp_path / "sigmoid.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), str(model))
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({"input_data": [[-1.0, -0.5, 0.5, 1.0]]}))
    data = tmp_path / "in.json"
    data.write_text(json.dumps({"input_data": [[4.0, 0.0, 0.0, 0.0]]}))
    from vcompute.errors import UsageError

    with pytest.raises(UsageError, match=r"this input drives EZKL's lookup tables to \[.*\], outside the calibrated range"):
        pipeline.prove(pipeline.ProveRequest(model=model, input=data, calibration_data=cal, out=tmp_path / "out", options=SMALL, evm=False))
    assert not (tmp_path / "out" / "proof.json").exists()
