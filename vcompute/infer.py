"""``vcompute infer``: run a model on the Triton engine in EZKL's fixed-point arithmetic.

The scales come from a settings file (a proof dir's ``settings.json``) or, without one, from
calibrating exactly as ``prove`` would (through the same cache), so ``infer`` and ``prove``
agree on the integers for the same model, options and input.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from vcompute.zk import circuit
from vcompute.artifacts import sha256_file
from vcompute.errors import UsageError
from vcompute.inputs import load_input, sample_input, to_json
from vcompute.model import load_model


def _load_settings(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise UsageError(f"settings file not found: {path}")
    try:
        settings = json.loads(path.read_text())
        settings["run_args"]["input_scale"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} is not an EZKL settings file ({exc})") from None
    return settings


def infer(
    model_path: Path,
    input_path: Path | None = None,
    settings_path: Path | None = None,
    options: circuit.CircuitOptions | None = None,
    calibration_data: Path | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Run the engine once; returns outputs (floats), outputs_fixed (ints), device, time_ms, ops."""
    from vcompute.engine.run import run_fixed

    options = options or circuit.CircuitOptions()
    options.check()
    model = load_model(model_path)
    inputs = load_input(input_path, model) if input_path else sample_input(model)
    if settings_path:
        settings = _load_settings(settings_path)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "input.json"
            data.write_text(json.dumps(to_json(inputs)))
            calib_sha = sha256_file(calibration_data) if calibration_data else None
            circ = circuit.build(model.path, model.sha256, options, calibration_data or data, calib_sha)
            settings = circ.settings()
    result = run_fixed(model.path, inputs, settings, device=device)
    return {
        "model": str(model.path),
        "outputs": result.outputs,
        "outputs_fixed": result.outputs_fixed,
        "output_scales": result.output_scales,
        "device": result.device,
        "time_ms": result.time_ms,
        "ops": result.ops,
    }
