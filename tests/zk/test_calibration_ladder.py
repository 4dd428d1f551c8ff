"""Calibration that finds no parameters at EZKL's defaults climbs vcompute's ladder of wider settings.

``circuits/price`` is a house-price regressor on raw features: prices near 3e5 are 2.3e9 at scale
2^13, beyond EZKL's default range check (2^28 - 1), so EZKL's own calibration (scales 11..13)
fails with "could not find any suitable parameters"; the ladder's next rung (decomp_legs 3)
calibrates it at full precision. Real EZKL throughout.
"""

from __future__ import annotations

import json
from pathlib import Path

import ezkl
import pytest

from vcompute.errors import UsageError
from vcompute.zk.verify import verify
from vcompute.zk import circuit, pipeline

from tests.conftest import CIRCUITS

PRICE = CIRCUITS / "price" / "model.onnx"


def test_default_calibration_really_fails_on_price(tmp_path: Path) -> None:
    """The premise, with EZKL alone: its defaults find nothing for this model and input."""
    settings = tmp_path / "settings.json"
    ezkl.gen_settings(str(PRICE), str(settings))
    with pytest.raises(Exception, match="could not find any suitable parameters"):
        ezkl.calibrate_settings(str(CIRCUITS / "price" / "input.json"), str(PRICE), str(settings), "resources", 2.0, None, [1, 2, 10], None)


def test_ladder_calibrates_price_on_a_later_rung_and_proves(tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = pipeline.prove(
        pipeline.ProveRequest(model=PRICE, input=CIRCUITS / "price" / "input.json", out=out,
                              options=circuit.CircuitOptions(max_logrows=12), evm=False)
    )
    cal = summary["calibration"]
    assert cal["name"] == "wide-range" and cal["rung"] == 1, cal
    assert cal["settings"]["decomp_legs"] == 3 and cal["settings"]["max_logrows"] == 12, "the user's --max-logrows is kept"
    assert [f["rung"] for f in cal["failed"]] == ["default"], cal["failed"]
    assert "decomposition error" in cal["failed"][0]["reason"], cal["failed"][0]["reason"]
    settings = json.loads((out / "settings.json").read_text())
    assert settings["run_args"]["decomp_legs"] == 3 and summary["logrows"] <= 12
    assert verify(out).outputs_fixed == summary["outputs_fixed"]
    assert summary["engine_exact"] is True, summary.get("engine_reason")
    price = summary["float_outputs"][0][0]
    assert price > 1e5 and summary["max_abs_error"] < 1e-4 * price, (summary["outputs"], summary["float_outputs"])


def test_rungs_keep_the_users_scales_and_logrows() -> None:
    rungs = circuit.ladder(circuit.CircuitOptions(scales=(13,), max_logrows=14, target="accuracy"))
    assert [r.name for r, _ in rungs] == ["default", "wide-range", "wider-range", "small-tables", "lowest-scales"], "scale-only rungs are skipped"
    assert all(s["scales"] == [13] and s["max_logrows"] == 14 and s["target"] == "accuracy" for _, s in rungs)
    free = circuit.ladder(circuit.CircuitOptions())
    assert [r.name for r, _ in free] == [r.name for r in circuit.LADDER if not r.only_with_max_logrows]
    assert free[0][1] == {"target": "resources", "scales": None, "scale_rebase_multiplier": [1, 2, 10], "lookup_safety_margin": 2.0,
                          "decomp_base": 16384, "decomp_legs": 2, "max_logrows": None}, "rung 0 is EZKL's defaults"


def test_small_logrows_cap_calibrates_with_small_tables(tmp_path: Path) -> None:
    """circuits/mlp under --max-logrows 10: EZKL's 16384-row range-check table cannot fit (\"extended k\");
    base-128 decomposition checks the same range with a 128-row table, and the proof is 2^10 rows."""
    out = tmp_path / "out"
    summary = pipeline.prove(
        pipeline.ProveRequest(model=CIRCUITS / "mlp" / "model.onnx", input=CIRCUITS / "mlp" / "input.json", out=out,
                              options=circuit.CircuitOptions(max_logrows=10), evm=False)
    )
    cal = summary["calibration"]
    assert cal["name"] == "small-tables" and "extended k" in cal["failed"][0]["reason"], cal
    assert summary["logrows"] == 10 and summary["scales"]["input"] == 13
    assert summary["engine_exact"] is True and verify(out).outputs_fixed == summary["outputs_fixed"]
    assert summary["max_abs_error"] < 1e-3
    assert cal["fidelity"]["mean_abs_error"] < 1e-3, cal["fidelity"]


def test_fidelity_report_is_read_from_ezkl_log() -> None:
    message = (
        "\n\n <------------- Numerical Fidelity Report (input_scale: 8, param_scale: 8, scale_input_multiplier: 1) ---->\n\n"
        "+------+------+\n| mean_abs_error | mean_abs_percent_error |\n+------+------+\n| 1.625 | 0.0000046332384 |\n+------+------+\n"
    )
    assert circuit._parse_fidelity(message) == {"mean_abs_error": 1.625, "mean_abs_percent_error": 0.0000046332384}
    assert circuit._parse_fidelity("no table") is None


def test_all_rungs_failing_is_one_line(tmp_path: Path) -> None:
    """A 1e13 sq ft house: its input alone is beyond even 16384^4 at the user's fixed scale 2^13."""
    data = tmp_path / "huge.json"
    data.write_text(json.dumps({"input_data": [[1.0e13, 3, 25.0, 6.5]]}))
    with pytest.raises(UsageError) as err:
        circuit.build(PRICE, "test-all-rungs-fail", circuit.CircuitOptions(scales=(13,)), data, None)
    message = str(err.value)
    assert "\n" not in message
    assert "EZKL found no circuit parameters" in message and "on any of 4 calibration rungs" in message, message
    assert "your --scales kept on every rung" in message and "decomposition error" in message, message
