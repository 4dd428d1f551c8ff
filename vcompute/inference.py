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
from vcompute.errors import UsageError, first_line
from vcompute.inputs import check_range, load_input, read_calibration_data, sample_input, to_json
from vcompute.model import ModelInfo, load_model


def _load_settings(path: Path) -> dict[str, Any]:
    from vcompute.zk.proofdir import layout, read_json

    if not path.exists():
        raise UsageError(f"settings file not found: {path}")
    settings = read_json(path, "settings")
    try:
        layout(settings)
    except UsageError as exc:
        raise UsageError(f"{path} is not an EZKL settings file ({exc})") from None
    return settings


def check_settings_fit(settings: dict[str, Any], model: ModelInfo, path: Path) -> None:
    """Settings made for another model would give meaningless integers: refuse them."""
    n = len(settings.get("model_input_scales") or [])
    if n != len(model.input_shapes):
        raise UsageError(f"{path} was made for a model with {n} input(s); {model.path} has {len(model.input_shapes)}")
    public_in = str(settings["run_args"].get("input_visibility", "")).lower() == "public"
    shapes = settings.get("model_instance_shapes") or []
    if public_in and shapes[: len(model.input_shapes)] and [list(s) for s in shapes[: len(model.input_shapes)]] != [list(s) for s in model.input_shapes]:
        raise UsageError(f"{path} was made for inputs of shape {shapes[: len(model.input_shapes)]}; {model.path} takes {[list(s) for s in model.input_shapes]}")


def check_device(device: str | None) -> None:
    """A device torch knows and this machine has; one line otherwise."""
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device {device!r} is not a torch device (try cpu or cuda:0)") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise UsageError(f"--device {device}: no such CUDA device on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {device}: the engine runs on cpu or cuda")


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
    check_device(device)
    model = load_model(model_path)
    settings = _load_settings(settings_path) if settings_path else None
    # field-element inputs need the input scale: from the settings, or a single --scales value
    scale = settings["run_args"]["input_scale"] if settings else (options.scales[0] if options.scales and len(options.scales) == 1 else None)
    inputs = load_input(input_path, model, scale) if input_path else sample_input(model)
    if settings is not None:
        check_settings_fit(settings, model, settings_path)
    else:
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
    try:
        result = run_fixed(model.proto if model.proto is not None else model.path, inputs, settings, device=device, model_key=model.sha256)
    except OverflowError as exc:
        raise UsageError(f"the input does not fit the circuit's fixed-point range ({first_line(exc)})") from None
    return {
        "model": str(model.path),
        "outputs": result.outputs,
        "outputs_fixed": result.outputs_fixed,
        "output_scales": result.output_scales,
        "device": result.device,
        "time_ms": result.time_ms,
        "ops": result.ops,
    }
