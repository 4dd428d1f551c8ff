"""Model inputs in EZKL's JSON format, ``{"input_data": [[...], ...]}``: one list per model input.

Reading accepts every form EZKL's ``gen_witness`` accepts (``src/graph/input.rs``,
``FileSourceInner``) and checks it against the model first, so a wrong file fails with one line
naming the problem instead of a Rust panic:

* numbers for any input. EZKL converts them by the input's type (``InputType::roundtrip``):
  float inputs through f32, then quantized at the input scale; **integer inputs truncated toward
  zero** (``to_i64``) and taken at scale 0; **bool inputs** truncated too and then required to
  be 0 or 1. We do the same and say so in a note when a value was not already whole.
* ``true``/``false``, for bool inputs only (EZKL panics on them for any other input type).
* field elements: EZKL's own serialization, 64 hex digits of the little-endian representation
  (what ``witness.json`` holds). They are already-quantized integers: exact for integer and bool
  inputs, and for float inputs only when the input scale is known (a single ``--scales`` value, or
  a settings file), since their meaning is ``value / 2^scale``.
* nested lists: EZKL itself wants one flat list per input; nested ones are flattened (row-major)
  and the file we hand EZKL is always flat.
* no inputs at all, for a model without inputs (a constant graph): ``[]`` or ``[[]]``.

Counts: the tensors in ``input_data`` are the graph inputs that are not initializers, in order.
Older exporters list the weights in ``graph.input`` too; then the summary notes how the file was
matched. Any other disagreement is refused with both counts and the input names.

``sample_input`` makes a deterministic input when the user gives none; ``check_range`` refuses
values a calibrated circuit cannot take (EZKL range-checks every model input).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcompute.artifacts import sha256_file
from vcompute.errors import UsageError
from vcompute.model import ModelInfo

SAMPLE_SEED = 0

#: BN254's scalar field modulus (EZKL's Fp): field elements above p/2 stand for negatives.
FIELD_MODULUS = 0x30644E72E131A029B85045B68181585D2833E84879B9709143E1F593F0000001
_FIELD_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
#: float inputs go through f32 in EZKL; integers beyond 2^24 do not survive that.
_F32_EXACT = 2**24


@dataclass
class ModelInput:
    """One value array per model input (float64, int64 or bool by input kind), and how they were read."""

    arrays: list[np.ndarray]
    notes: list[str] = field(default_factory=list)


def field_to_int(text: str) -> int | None:
    """A field element in EZKL's JSON form (64 hex digits, little-endian) as a signed integer, else None."""
    if not _FIELD_HEX.match(text):
        return None
    value = int.from_bytes(bytes.fromhex(text), "little")
    if value >= FIELD_MODULUS:
        return None
    return value - FIELD_MODULUS if value > FIELD_MODULUS // 2 else value


def _flatten(value: Any) -> list[Any]:
    """Nested lists to one flat row-major list of leaves."""
    flat: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    return flat


class _Reader:
    """Converts one input's JSON leaves to values of its kind, counting what needed converting."""

    def __init__(self, where: str, kind: str, type_name: str, scale: int | None) -> None:
        self.where, self.kind, self.type_name, self.scale = where, kind, type_name, scale
        self.truncated = 0
        self.fields = 0

    def value(self, item: Any) -> float | int | bool:
        if isinstance(item, bool):
            if self.kind != "bool":
                raise UsageError(
                    f"{self.where} is {self.type_name}: true/false are accepted for bool inputs only"
                    " (EZKL rejects them for other input types)"
                )
            return item
        if isinstance(item, str):
            return self._field(item)
        if not isinstance(item, (int, float)):
            raise UsageError(f"{self.where}: expected numbers, found {type(item).__name__} {item!r}")
        if isinstance(item, float) and not math.isfinite(item):
            raise UsageError(f"{self.where}: contains {item} (NaN and infinity cannot be quantized)")
        if self.kind == "float":
            if isinstance(item, int) and abs(item) > 2**127:
                raise UsageError(f"{self.where}: {item} is too large to quantize")
            return float(item)
        whole = math.trunc(item)  # EZKL: InputType::roundtrip, to_i64 truncates toward zero
        if whole != item:
            self.truncated += 1
        if self.kind == "bool":
            if whole not in (0, 1):
                raise UsageError(f"{self.where} is bool: {item!r} is not 0 or 1 (nor true/false)")
            return bool(whole)
        if not -(2**63) <= whole < 2**63:
            raise UsageError(f"{self.where} is {self.type_name}: {item!r} does not fit in 64 bits")
        return int(whole)

    def _field(self, text: str) -> float | int | bool:
        value = field_to_int(text)
        if value is None:
            raise UsageError(
                f"{self.where}: expected numbers, found str {text!r} (a string must be a field element:"
                " 64 hex digits, as in witness.json)"
            )
        self.fields += 1
        if self.kind == "bool":
            if value not in (0, 1):
                raise UsageError(f"{self.where} is bool: field element {text[:8]}… is {value}, not 0 or 1")
            return bool(value)
        if self.kind == "int":
            if not -(2**63) <= value < 2**63:
                raise UsageError(f"{self.where} is {self.type_name}: field element {text[:8]}… does not fit in 64 bits")
            return value
        if self.scale is None:
            raise UsageError(
                f"{self.where} is {self.type_name}: field elements are already-quantized integers, and the"
                " input scale is not known yet; pass a single --scales value (or --settings), or give floats"
            )
        if abs(value) >= _F32_EXACT:
            raise UsageError(
                f"{self.where}: field element {text[:8]}… ({value}) is beyond 2^24, which EZKL's f32 round"
                " trip of float inputs cannot keep exactly; give the float value instead"
            )
        return value / 2.0**self.scale

    def note(self, index: int, name: str) -> list[str]:
        notes = []
        if self.truncated:
            notes.append(
                f"input {index} ({name}, {self.type_name}): {self.truncated} non-integer value(s) truncated"
                " toward zero, as EZKL does"
            )
        if self.fields:
            at = "" if self.kind != "float" else f" at scale 2^{self.scale}"
            notes.append(f"input {index} ({name}): {self.fields} field element(s) read as integers{at}")
        return notes


def _array(values: list[Any], kind: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype = {"float": np.float64, "int": np.int64, "bool": np.bool_}[kind]
    return np.asarray(values, dtype=dtype).reshape(shape)


def _match_tensors(tensors: Any, model: ModelInfo, source: str) -> tuple[list[Any], list[str]]:
    """The input_data lists, one per model input, and a note for each way they were matched."""
    if not isinstance(tensors, list):
        raise UsageError(f'{source}: "input_data" must be a list with one list per model input')
    n = len(model.input_names)
    weights = [d for d in model.declared_inputs if d not in model.input_names]
    if n == 0:
        if tensors and any(_flatten(t) for t in tensors):
            raise UsageError(
                f"{source}: {len(tensors)} input tensor(s) given, the model takes none (a constant graph);"
                ' use {"input_data": [[]]}'
            )
        return [], ["the model has no inputs (a constant graph): it is proven with an empty input_data"]
    if not tensors:
        raise UsageError(
            f'{source}: "input_data" is empty, the model takes {n} input(s) ({model.describe_inputs()})'
        )
    if len(tensors) != n:
        extra = f"; graph.input also lists {len(weights)} initializer(s) (weights, fixed in the model)" if weights else ""
        raise UsageError(
            f"{source}: {len(tensors)} input tensor(s) given, the model takes {n} ({model.describe_inputs()}){extra}"
        )
    notes = []
    if weights:
        notes.append(
            f"graph.input declares {len(model.declared_inputs)} names; {len(weights)} are initializers (weights)"
            f" and not read from input_data, which holds the other {n}: {', '.join(model.input_names)}"
        )
    return tensors, notes


def read_input_data(data: Any, model: ModelInfo, source: str, scale: int | None = None) -> ModelInput:
    """Check an ``input_data`` JSON value against the model; one array per input, with notes.

    ``scale`` is the input scale (log2) when already known; only field elements on float inputs need it.
    """
    if not isinstance(data, dict) or "input_data" not in data:
        raise UsageError(f'{source}: expected a JSON object with "input_data" (EZKL\'s input format)')
    tensors, notes = _match_tensors(data["input_data"], model, source)
    arrays = []
    for i, (tensor, shape, name) in enumerate(zip(tensors, model.input_shapes, model.input_names)):
        kind, type_name = model.input_kinds[i], model.input_types[i]
        reader = _Reader(f"{source}: input {i} ({name})", kind, type_name, scale)
        flat = [reader.value(v) for v in _flatten(tensor)]
        expected = int(np.prod(shape))
        if len(flat) != expected:
            raise UsageError(
                f"{source}: input {i} ({name}) has {len(flat)} values, the model expects shape"
                f" {list(shape)} = {expected} values"
            )
        arrays.append(_array(flat, kind, shape))
        notes.extend(reader.note(i, name))
    return ModelInput(arrays, notes)


def parse_input_data(data: Any, model: ModelInfo, source: str, scale: int | None = None) -> list[np.ndarray]:
    """Check an ``input_data`` JSON value against the model and return one array per input."""
    return read_input_data(data, model, source, scale).arrays


def _read_json(path: Path, what: str) -> Any:
    if not path.exists():
        raise UsageError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None


def read_input(path: Path, model: ModelInfo, scale: int | None = None) -> ModelInput:
    """Read and check an input file (arrays and notes)."""
    return read_input_data(_read_json(path, "input file"), model, str(path), scale)


def load_input(path: Path, model: ModelInfo, scale: int | None = None) -> list[np.ndarray]:
    """Read and check an input file."""
    return read_input(path, model, scale).arrays


@dataclass
class CalibrationData:
    """A calibration file, checked and rewritten in the flat form EZKL reads; ``sha256`` is the original file's."""

    data: dict[str, Any]
    sha256: str
    samples: int


def read_calibration_data(path: Path, model: ModelInfo, scale: int | None = None) -> CalibrationData:
    """Several samples per input, concatenated: each length must be a whole number of samples, the same for all."""
    raw = _read_json(path, "calibration data")
    source = f"{path} (calibration data)"
    if not isinstance(raw, dict) or "input_data" not in raw:
        raise UsageError(f'{source}: expected a JSON object with "input_data" (EZKL\'s input format)')
    tensors, _ = _match_tensors(raw["input_data"], model, source)
    flat_tensors, counts = [], []
    for i, (tensor, size, name) in enumerate(zip(tensors, model.input_sizes, model.input_names)):
        reader = _Reader(f"{source}: input {i} ({name})", model.input_kinds[i], model.input_types[i], scale)
        flat = [reader.value(v) for v in _flatten(tensor)]
        if not flat or len(flat) % size:
            raise UsageError(f"{source}: input {i} ({name}) has {len(flat)} values, not a whole number of samples of {size}")
        counts.append(len(flat) // size)
        flat_tensors.append(flat)
    if len(set(counts)) > 1:
        raise UsageError(f"{source}: the inputs hold different numbers of samples ({counts})")
    return CalibrationData({"input_data": flat_tensors}, sha256_file(path), counts[0] if counts else 1)


def sample_input(model: ModelInfo) -> list[np.ndarray]:
    """A deterministic input, seeded so reruns match: floats in [-1, 1), integers and bools 0 or 1."""
    rng = np.random.default_rng(SAMPLE_SEED)
    arrays = []
    for shape, kind in zip(model.input_shapes, model.input_kinds or ["float"] * len(model.input_shapes)):
        if kind == "float":
            arrays.append(np.round(rng.uniform(-1.0, 1.0, size=shape), 6))
        else:
            arrays.append(_array(rng.integers(0, 2, size=shape).reshape(-1).tolist(), kind, shape))
    return arrays


def _json_values(a: np.ndarray) -> list[Any]:
    flat = np.asarray(a).reshape(-1)
    if flat.dtype == np.bool_:
        return [bool(v) for v in flat]
    if np.issubdtype(flat.dtype, np.integer):
        return [int(v) for v in flat]
    return flat.astype(np.float64).tolist()


def to_json(arrays: list[np.ndarray]) -> dict[str, Any]:
    """Arrays back to EZKL's input format: flat lists; bools as true/false, integers as integers."""
    return {"input_data": [_json_values(a) for a in arrays]}


def range_limit(settings: dict[str, Any]) -> int | None:
    """The largest |integer| EZKL's range check lets into the circuit (None when the check is off)."""
    run_args = settings["run_args"]
    if run_args.get("ignore_range_check_inputs_outputs"):
        return None
    return int(run_args.get("decomp_base", 16384)) ** int(run_args.get("decomp_legs", 2)) - 1


def check_range(arrays: list[np.ndarray], model: ModelInfo, settings: dict[str, Any]) -> None:
    """Refuse an input the calibrated circuit cannot take: EZKL range-checks each quantized model input.

    The limit is ``decomp_base^decomp_legs - 1`` (2^28 - 1 by default; ``tensor/ops.rs::get_rep``),
    so a float input must stay below ``limit / 2^input_scale`` in magnitude.
    """
    limit = range_limit(settings)
    if limit is None:
        return
    scales = settings.get("model_input_scales") or [settings["run_args"]["input_scale"]] * len(arrays)
    for i, (a, name, kind, scale) in enumerate(zip(arrays, model.input_names, model.input_kinds, scales)):
        if a.size == 0:
            continue
        if kind == "float":
            q = np.abs(np.round(np.asarray(a, dtype=np.float32).astype(np.float64) * 2.0 ** int(scale)))
        else:
            q = np.abs(np.asarray(a).astype(np.float64))
        worst = int(np.argmax(q))
        if q.reshape(-1)[worst] > limit:
            value = np.asarray(a).reshape(-1)[worst]
            bound = limit / 2.0 ** int(scale) if kind == "float" else limit
            raise UsageError(
                f"input {i} ({name}): value {value} is outside what this circuit takes (|x| <= {bound:.6g}"
                f" at input scale 2^{scale}; EZKL range-checks every input); calibrate with data of this range"
                " (--calibration-data)"
            )
