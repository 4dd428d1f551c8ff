"""Model inputs in EZKL's JSON format: ``{"input_data": [[...], ...]}``, one flat list per input.

Reading checks count, size and finiteness so a wrong file fails with one line naming the
problem; ``sample_input`` makes a deterministic input when the user gives none.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from vcompute.errors import UsageError
from vcompute.model import ModelInfo

SAMPLE_SEED = 0


def _flatten(value: Any, where: str) -> list[float]:
    """Flatten nested lists of numbers, rejecting anything that is not a finite number."""
    flat: list[float] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            raise UsageError(f"{where}: expected numbers, found {type(item).__name__} {item!r}")
        elif not math.isfinite(item):
            raise UsageError(f"{where}: contains {item} (NaN and infinity cannot be quantized)")
        else:
            flat.append(float(item))
    return flat


def parse_input_data(data: Any, model: ModelInfo, source: str) -> list[np.ndarray]:
    """Check an ``input_data`` JSON value against the model and return one array per input."""
    if not isinstance(data, dict) or "input_data" not in data:
        raise UsageError(f'{source}: expected a JSON object with "input_data" (EZKL\'s input format)')
    tensors = data["input_data"]
    if not isinstance(tensors, list) or not tensors:
        raise UsageError(f'{source}: "input_data" must be a non-empty list with one list per model input')
    if len(tensors) != len(model.input_shapes):
        raise UsageError(
            f"{source}: {len(tensors)} input tensor(s) given, the model takes {len(model.input_shapes)}"
            f" ({', '.join(model.input_names)})"
        )
    arrays = []
    for i, (tensor, shape, name) in enumerate(zip(tensors, model.input_shapes, model.input_names)):
        flat = _flatten(tensor, f"{source}: input {i} ({name})")
        expected = int(np.prod(shape))
        if len(flat) != expected:
            raise UsageError(
                f"{source}: input {i} ({name}) has {len(flat)} values, the model expects shape"
                f" {list(shape)} = {expected} values"
            )
        arrays.append(np.asarray(flat, dtype=np.float64).reshape(shape))
    return arrays


def load_input(path: Path, model: ModelInfo) -> list[np.ndarray]:
    """Read and check an input file."""
    if not path.exists():
        raise UsageError(f"input file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    return parse_input_data(data, model, str(path))


def sample_input(model: ModelInfo) -> list[np.ndarray]:
    """A deterministic input in [-1, 1) for each model input, seeded so reruns match."""
    rng = np.random.default_rng(SAMPLE_SEED)
    return [np.round(rng.uniform(-1.0, 1.0, size=shape), 6) for shape in model.input_shapes]


def to_json(arrays: list[np.ndarray]) -> dict[str, Any]:
    """Arrays back to EZKL's input format."""
    return {"input_data": [a.reshape(-1).tolist() for a in arrays]}
