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
from vcompute.errors import UsageError
from vcompute.inputs import check_range, load_input, read_calibration_data, sample_input, to_json
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
    settings = _load_settings(settings_path) if settings_path else None
    # field-element inputs need the input scale: from the settings, or a single --scales value
    scale = settings["run_args"]["input_scale"] if settings else (options.scales[0] if options.scales and len(options.scales) == 1 else None)
    inputs = load_input(input_path, model, scale) if input_path else sample_input(model)
    if settings is None:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "input.json"
            data.write_text(json.dumps(to_json(inputs)))
            calib_sha = None
            if calibration_data:
                calib = read_calibration_data(calibration_data, model, scale)
                data.write_text(json.dumps(calib.data))
                calib_sha = calib.sha256
            circ = circuit.build(model.path, model.sha256, options, data, calib_sha)
            settings = circ.settings()
    check_range(inputs, model, settings)
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
