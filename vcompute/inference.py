"""``vcompute infer``: run a model on the Triton engine in EZKL's fixed-point arithmetic.

The scales come from a settings file (a proof dir's ``settings.json``) or, without one, from
calibrating exactly as ``prove`` would (through the same cache), so ``infer`` and ``prove``
agree on the integers for the same model, options and input. ``infer_batch`` runs many samples
(``load_samples``: EZKL JSON, JSON lines, .npy/.npz) in batches on one loaded engine.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vcompute.zk import circuit
from vcompute.errors import UsageError, first_line
from vcompute.inputs import check_range, load_input, parse_input_data, read_calibration_data, sample_input, to_json
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


def resolve_settings(
    model: ModelInfo,
    settings_path: Path | None,
    options: circuit.CircuitOptions,
    calibration_data: Path | None,
    first_sample: list[np.ndarray],
    scale: int | None = None,
) -> dict[str, Any]:
    """EZKL settings for the engine: the given file (checked against the model), or a calibration
    exactly as ``prove`` makes it (through the cache) on ``calibration_data`` or else the sample
    being run (for a batch, the first: the one ``prove`` of that sample would calibrate on)."""
    if settings_path:
        settings = _load_settings(settings_path)
        check_settings_fit(settings, model, settings_path)
        return settings
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input.json"
        data.write_text(json.dumps(to_json(first_sample)))
        calib_sha = None
        if calibration_data:  # checked and flattened as prove does: EZKL reads only flat lists
            calib = read_calibration_data(calibration_data, model, scale)
            data.write_text(json.dumps(calib.data))
            calib_sha = calib.sha256
        circ = circuit.build(model.path, model.sha256, options, data, calib_sha)
        return circ.settings()


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
    settings = resolve_settings(model, settings_path, options, calibration_data, inputs, scale)
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
        "path": result.path,
    }


# -- many samples ---------------------------------------------------------------------------------


def _sample_from_input_data(data: Any, model: ModelInfo, where: str) -> list[np.ndarray]:
    return parse_input_data({"input_data": data}, model, where)


def _looks_like_one_sample(data: Any, model: ModelInfo) -> bool:
    """EZKL's ``input_data`` of one sample: one flat (or nested) list per model input, each of the
    input's size; a list of samples is a list of those."""
    if not isinstance(data, list) or len(data) != len(model.input_shapes):
        return False
    try:
        parse_input_data({"input_data": data}, model, "")
        return True
    except UsageError:
        return False


def load_samples(path: Path, model: ModelInfo) -> list[list[np.ndarray]]:
    """Samples from a file, each a list of arrays (one per model input, at its shape):

    * ``.json``: EZKL's ``{"input_data": ...}`` (one sample, or a list of samples' input_data),
      a JSON list of such objects, or ``{"samples": [input_data, ...]}``;
    * ``.jsonl``: one sample per line, an EZKL input object or a bare ``input_data`` list;
    * ``.npy``: one array, samples on the first axis (a one-input model);
    * ``.npz``: one array per model input (named as the model's inputs, or ``arr_0``, ``arr_1``...),
      samples on the first axis.
    """
    if not path.exists():
        raise UsageError(f"inputs file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return _load_arrays(path, model)
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is neither JSON nor .npy/.npz: {exc}") from None
    if suffix == ".jsonl":
        samples = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path} line {n} is not valid JSON: {exc}") from None
            data = item["input_data"] if isinstance(item, dict) and "input_data" in item else item
            samples.append(_sample_from_input_data(data, model, f"{path} line {n}"))
        if not samples:
            raise UsageError(f"{path} holds no samples")
        return samples
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    if isinstance(doc, list):
        if not doc:
            raise UsageError(f"{path} holds no samples")
        return [_sample_from_input_data(d["input_data"] if isinstance(d, dict) and "input_data" in d else d, model,
                                        f"{path} sample {i}") for i, d in enumerate(doc)]
    if isinstance(doc, dict) and "samples" in doc:
        if not isinstance(doc["samples"], list) or not doc["samples"]:
            raise UsageError(f'{path}: "samples" must be a non-empty list of input_data values')
        return [_sample_from_input_data(d, model, f"{path} sample {i}") for i, d in enumerate(doc["samples"])]
    if isinstance(doc, dict) and "input_data" in doc:
        data = doc["input_data"]
        if _looks_like_one_sample(data, model):
            return [parse_input_data(doc, model, str(path))]
        if isinstance(data, list) and data and all(isinstance(d, list) for d in data):
            return [_sample_from_input_data(d, model, f"{path} sample {i}") for i, d in enumerate(data)]
        return [parse_input_data(doc, model, str(path))]  # its error names what is wrong
    raise UsageError(f'{path}: expected EZKL\'s {{"input_data": ...}}, a list of samples or {{"samples": [...]}}')


def _load_arrays(path: Path, model: ModelInfo) -> list[list[np.ndarray]]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a readable .npy/.npz file: {exc}") from None
    if isinstance(loaded, np.ndarray):
        if len(model.input_shapes) != 1:
            raise UsageError(f"{path}: a .npy file holds one array; {model.path} takes "
                             f"{len(model.input_shapes)} inputs (use .npz, one array per input)")
        arrays = [loaded]
    else:
        names = list(loaded.files)
        if all(n in names for n in model.input_names):
            arrays = [loaded[n] for n in model.input_names]
        elif len(names) == len(model.input_shapes):
            arrays = [loaded[f"arr_{i}"] if f"arr_{i}" in names else loaded[names[i]] for i in range(len(names))]
        else:
            raise UsageError(f"{path} holds arrays {names}; {model.path} takes {model.input_names}")
    if any(a.ndim == 0 for a in arrays) or len({a.shape[0] for a in arrays}) != 1:
        raise UsageError(f"{path}: every array needs the samples on its first axis, with the same count; "
                         f"got shapes {[a.shape for a in arrays]}")
    samples = []
    for i in range(arrays[0].shape[0]):
        sample = []
        for k, (a, shape, name) in enumerate(zip(arrays, model.input_shapes, model.input_names)):
            v = np.asarray(a[i], dtype=np.float64)
            if v.size != int(np.prod(shape)):
                raise UsageError(f"{path}: input {k} ({name}) of sample {i} has {v.size} values, the model "
                                 f"expects shape {list(shape)}")
            if not np.all(np.isfinite(v)):
                raise UsageError(f"{path}: input {k} ({name}) of sample {i} is not finite")
            sample.append(v.reshape(shape))
        samples.append(sample)
    if not samples:
        raise UsageError(f"{path} holds no samples")
    return samples


def infer_batch(
    model_path: Path,
    inputs_path: Path | None = None,
    settings_path: Path | None = None,
    options: circuit.CircuitOptions | None = None,
    calibration_data: Path | None = None,
    device: str | None = None,
    batch_size: int = 64,
    samples: list[list[np.ndarray]] | None = None,
    path: str = "auto",
) -> dict[str, Any]:
    """Run every sample of ``inputs_path`` (or ``samples``; default: the one sample input), in
    batches of ``batch_size``, on one loaded engine. Returns ``samples`` (each sample's outputs and
    outputs_fixed), output_scales, device, time_ms (wall clock, all batches), ops, the paths the batches ran
    and the throughput."""
    from vcompute.engine.engine import Engine

    options = options or circuit.CircuitOptions()
    options.check()
    check_device(device)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
    model = load_model(model_path)
    if samples is None:
        samples = load_samples(inputs_path, model) if inputs_path else [sample_input(model)]
    settings = resolve_settings(model, settings_path, options, calibration_data, samples[0])
    engine = Engine(model.path, settings, device, path=path)
    out: list[dict[str, Any]] = []
    paths: list[str] = []
    result = None
    chunks = [samples[start : start + batch_size] for start in range(0, len(samples), batch_size)]
    t0 = time.perf_counter()
    try:  # on a GPU, batches overlap (Engine.infer_stream); results come in order either way
        for result in engine.infer_stream(chunks):
            paths.append(result.path)
            out += [{"outputs": o, "outputs_fixed": f} for o, f in zip(result.outputs, result.outputs_fixed)]
    except OverflowError as exc:  # the stream stops at the failing batch, after those before it
        start = len(out)
        end = min(start + batch_size, len(samples)) - 1
        raise UsageError(f"samples {start}..{end} do not fit the circuit's fixed-point range "
                         f"({first_line(exc)})") from None
    total_ms = (time.perf_counter() - t0) * 1000.0
    assert result is not None
    return {
        "model": str(model.path),
        "samples": out,
        "batch_size": batch_size,
        "output_scales": result.output_scales,
        "device": result.device,
        "time_ms": total_ms,
        "samples_per_s": len(out) / (total_ms / 1000.0) if total_ms > 0 else None,
        "ops": result.ops,
        "path": sorted(set(paths), key=paths.index),
    }
