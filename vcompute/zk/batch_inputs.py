"""The inputs of ``vcompute prove MODEL --inputs SOURCE``: one item per input, checked, named.

SOURCE is one of

* a JSON-lines file (``.jsonl``/``.ndjson``): one input per non-blank line, each in EZKL's format
  ``{"input_data": [[...], ...]}`` (a bare ``[[...], ...]`` is read as its ``input_data``);
  named by index: ``0000``, ``0001``, … (blank lines are skipped and do not count);
* a directory: every ``*.json`` file in it (not recursive, hidden files skipped), each an EZKL
  input file, in name order; named by file stem;
* an ``.npy`` array of samples with a leading sample axis (a one-input model; each sample may have
  any shape with the input's number of values), or an ``.npz`` with one such array per model
  input (keys: the model's input names, else ``arr_0``, ``arr_1``, … in order); named by index.

A sample that cannot be read (not JSON, the wrong size, NaN) becomes an item with an ``error``:
it fails alone and the others are proven. A SOURCE that cannot be read at all is a usage error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcompute.errors import UsageError, first_line
from vcompute.inputs import read_input_data
from vcompute.model import ModelInfo

JSONL_SUFFIXES = (".jsonl", ".ndjson")
#: a JSON input file larger than this is refused (it is read whole)
MAX_INPUT_BYTES = 256 << 20


@dataclass
class Item:
    """One input of the batch. ``arrays`` is None exactly when ``error`` says why it is refused."""

    index: int
    name: str
    source: str
    arrays: list[np.ndarray] | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)  # how the values were read (inputs.read_input_data)

    @property
    def ok(self) -> bool:
        return self.error is None


def index_names(n: int) -> list[str]:
    """``0000``, ``0001``, …: zero-padded to at least 4 digits, so names sort in order."""
    width = max(4, len(str(max(n - 1, 0))))
    return [f"{i:0{width}d}" for i in range(n)]


def _item(index: int, name: str, source: str, data: Any, model: ModelInfo, scale: int | None) -> Item:
    if isinstance(data, list):
        data = {"input_data": data}
    try:
        read = read_input_data(data, model, source, scale)
        return Item(index, name, source, arrays=read.arrays, notes=read.notes)
    except UsageError as exc:
        return Item(index, name, source, error=str(exc))
    except (RecursionError, ValueError, TypeError) as exc:
        return Item(index, name, source, error=f"{source}: not an input ({type(exc).__name__}: {first_line(exc)})")


def _read_jsonl(path: Path, model: ModelInfo, scale: int | None) -> list[Item]:
    records: list[tuple[int, str]] = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    records.append((lineno, line))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read inputs from {path}: {exc}") from None
    names = index_names(len(records))
    items = []
    for i, ((lineno, line), name) in enumerate(zip(records, names)):
        where = f"{path.name}:{lineno}"
        try:
            data = json.loads(line)
        except (ValueError, RecursionError) as exc:
            items.append(Item(i, name, where, error=f"{where}: not valid JSON ({first_line(exc)})"))
            continue
        items.append(_item(i, name, where, data, model, scale))
    return items


def _read_dir(folder: Path, model: ModelInfo, scale: int | None) -> list[Item]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".json" and not p.name.startswith("."))
    seen: dict[str, Path] = {}
    for p in files:
        if p.stem in seen:
            raise UsageError(f"{folder}: {seen[p.stem].name} and {p.name} would both be named {p.stem!r}: rename one")
        seen[p.stem] = p
    items = []
    for i, p in enumerate(files):
        where = str(p)
        try:
            if not p.is_file():
                raise OSError("not a regular file")
            if p.stat().st_size > MAX_INPUT_BYTES:
                raise OSError(f"larger than {MAX_INPUT_BYTES:,} bytes")
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            items.append(Item(i, p.stem, where, error=f"{where}: cannot read it ({exc})"))
            continue
        except (ValueError, RecursionError) as exc:
            items.append(Item(i, p.stem, where, error=f"{where}: not valid JSON ({first_line(exc)})"))
            continue
        items.append(_item(i, p.stem, where, data, model, scale))
    return items


def _arrays_per_input(path: Path, model: ModelInfo) -> list[np.ndarray]:
    """The stacked arrays of an .npy/.npz file, one per model input, each with a leading sample axis."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UsageError(f"cannot read {path} as a numpy array file: {first_line(exc)}") from None
    if isinstance(loaded, np.ndarray):
        if len(model.input_names) != 1:
            raise UsageError(f"{path}: one array, but the model takes {len(model.input_names)} inputs: use an .npz"
                             f" with the arrays {', '.join(model.input_names)}")
        stacked = [loaded]
    else:
        with loaded:
            keys = list(loaded.keys())
            if all(name in keys for name in model.input_names):
                stacked = [loaded[name] for name in model.input_names]
            elif len(keys) == len(model.input_names):
                stacked = [loaded[f"arr_{i}"] if f"arr_{i}" in keys else loaded[k] for i, k in enumerate(keys)]
            else:
                raise UsageError(f"{path}: arrays {keys}; the model's inputs are {model.input_names}")
    for a, name, size in zip(stacked, model.input_names, model.input_sizes):
        if a.ndim < 1 or a.dtype.kind not in "biuf":
            raise UsageError(f"{path}: the array for {name} must be numeric with a leading sample axis")
        per_sample = int(np.prod(a.shape[1:])) if a.ndim > 1 else 1
        if per_sample != size:
            raise UsageError(f"{path}: each sample of {name} has {per_sample} values (array shape {list(a.shape)}),"
                             f" the model expects {size}; the first axis counts samples")
    counts = {a.shape[0] for a in stacked}
    if len(counts) != 1:
        raise UsageError(f"{path}: the arrays hold different numbers of samples ({sorted(counts)})")
    return stacked


def _read_numpy(path: Path, model: ModelInfo, scale: int | None) -> list[Item]:
    stacked = _arrays_per_input(path, model)
    n = stacked[0].shape[0]
    items = []
    for i, name in enumerate(index_names(n)):
        data = {"input_data": [np.asarray(a[i]).reshape(-1).tolist() for a in stacked]}
        items.append(_item(i, name, f"{path.name}[{i}]", data, model, scale))
    return items


def read_source(source: Path, model: ModelInfo, scale: int | None = None) -> list[Item]:
    """Every input SOURCE holds, in order, each checked against the model (bad ones carry their error).

    ``scale``: the input scale when the user fixed it (field-element inputs need it)."""
    source = Path(source)
    if not source.exists():
        raise UsageError(f"--inputs {source}: not found")
    if source.is_dir():
        items = _read_dir(source, model, scale)
    elif source.suffix.lower() in JSONL_SUFFIXES:
        items = _read_jsonl(source, model, scale)
    elif source.suffix.lower() in (".npy", ".npz"):
        items = _read_numpy(source, model, scale)
    else:
        raise UsageError(f"--inputs {source}: expected a JSON-lines file (.jsonl), a directory of input .json files,"
                         " or an .npy/.npz array of samples")
    if not items:
        raise UsageError(f"--inputs {source}: holds no inputs")
    return items


def calibration_data(items: list[Item], limit: int) -> tuple[dict[str, Any], list[str]]:
    """EZKL calibration data from up to ``limit`` good items, evenly spaced: (data, their names).

    EZKL reads several samples per input as one flat list per input whose length is a multiple
    of the input's size."""
    good = [it for it in items if it.ok]
    if len(good) > limit:
        step = len(good) / limit
        good = [good[int(i * step)] for i in range(limit)]
    assert good, "no good inputs to calibrate on"
    tensors = [np.concatenate([it.arrays[k].reshape(-1) for it in good]).tolist() for k in range(len(good[0].arrays))]
    return {"input_data": tensors}, [it.name for it in good]


def items_from_values(values: Any, model: ModelInfo, scale: int | None = None) -> list[Item]:
    """Items from Python values (the API): an array with a leading sample axis (a one-input model),
    or a list whose elements are each one input: EZKL's dict, an array or tensor, or a list of them."""
    if isinstance(values, np.ndarray) or type(values).__module__.startswith("torch"):
        samples = [[_numpy(values[i])] for i in range(len(values))]
    else:
        samples = list(values)
    items = []
    for i, (value, name) in enumerate(zip(samples, index_names(len(samples)))):
        if isinstance(value, dict):
            data = value
        else:
            tensors = [value] if _is_array(value) else list(value)
            data = {"input_data": [np.asarray(_numpy(t)).reshape(-1).tolist() for t in tensors]}
        items.append(_item(i, name, f"inputs[{i}]", data, model, scale))
    if not items:
        raise UsageError("no inputs given")
    return items


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or type(value).__module__.startswith("torch")


def _numpy(value: Any) -> Any:
    if type(value).__module__.startswith("torch"):
        return value.detach().cpu().numpy()
    return value
