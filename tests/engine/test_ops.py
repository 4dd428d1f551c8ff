"""The engine against stored EZKL witnesses, one tiny model per op variant (no EZKL needed).

Every ``cases/<case>.json`` was written by ``scripts/make_op_cases.py`` from a real EZKL 23.0.5
run on ``cases/<case>.onnx``: the inputs, the run_args and output scales of EZKL's settings, and
the witness outputs. The engine (exact int64 torch backend, CPU) must reproduce the witness bit
for bit; where EZKL refuses the model (``"status": "refused"``) or its witness holds values no
int64 engine can represent (``"engine": "refuse"``) the engine must raise UnsupportedOpError.
Each case also runs in a batch of two samples (``run_fixed_batch``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vcompute.engine import UnsupportedOpError, compare, run_fixed, run_fixed_batch

CASES = Path(__file__).resolve().parent / "cases"
ALL = sorted(CASES.glob("*.json"))


def _load(path: Path):
    rec = json.loads(path.read_text())
    inputs = [np.array(i["data"], dtype=i["dtype"]).reshape(i["shape"]) for i in rec["inputs"]]
    run_args = rec.get("run_args") or {
        "input_scale": rec["mode"]["scale"] or 7, "param_scale": rec["mode"]["scale"] or 7,
        "scale_rebase_multiplier": rec["mode"]["mult"]}
    settings = {"run_args": run_args, "model_output_scales": rec.get("output_scales")}
    return rec, inputs, settings


def _expect_refusal(rec) -> bool:
    return rec["status"] == "refused" or rec.get("engine") == "refuse"


def _first_difference(got: list[list[int]], want: list[list[int]]) -> str:
    ok, msg = compare(got, want)
    return "" if ok else msg


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_op_case(path: Path) -> None:
    rec, inputs, settings = _load(path)
    model = path.with_suffix(".onnx")
    if _expect_refusal(rec):
        why = rec.get("error") or rec.get("note")
        with pytest.raises(UnsupportedOpError):
            run_fixed(model, inputs, settings, backend="torch")
            pytest.fail(f"{rec['name']}: EZKL refuses ({why}) but the engine ran")
        return
    res = run_fixed(model, inputs, settings, backend="torch")
    want = [[int(v) for v in o] for o in rec["outputs"]]
    msg = _first_difference(res.outputs_fixed, want)
    assert not msg, f"{rec['name']}: {msg}"


def _other_sample(inputs: list[np.ndarray]) -> list[np.ndarray]:
    """A second sample: the float inputs' values in reverse order (same range), other inputs
    (indices, masks) unchanged."""
    return [x.reshape(-1)[::-1].reshape(x.shape).copy() if x.dtype.kind == "f" else x
            for x in inputs]


BATCHABLE = [p for p in ALL if not _expect_refusal(json.loads(p.read_text()))]


@pytest.mark.parametrize("path", BATCHABLE, ids=[p.stem for p in BATCHABLE])
def test_op_case_batched(path: Path) -> None:
    """The stored sample and a second one in one batch: row 0 must equal the witness, row 1 the
    engine's own single-sample result (the batch axis must never mix samples)."""
    rec, inputs, settings = _load(path)
    model = path.with_suffix(".onnx")
    other = _other_sample(inputs)
    try:
        alone = run_fixed(model, other, settings, backend="torch").outputs_fixed
    except (UnsupportedOpError, OverflowError):  # the reversed sample is out of EZKL's range
        other, alone = inputs, None
    res = run_fixed_batch(model, [inputs, other], settings, backend="torch")
    want = [[int(v) for v in o] for o in rec["outputs"]]
    msg = _first_difference(res.outputs_fixed[0], want)
    assert not msg, f"{rec['name']} (batch row 0 vs the witness): {msg}"
    msg = _first_difference(res.outputs_fixed[1], alone or want)
    assert not msg, f"{rec['name']} (batch row 1 vs the same sample alone): {msg}"


@pytest.mark.gpu
@pytest.mark.parametrize("path", BATCHABLE, ids=[p.stem for p in BATCHABLE])
def test_op_case_gpu(path: Path) -> None:
    """The shipped path: Triton kernels and torch int64 ops on a CUDA device, batch of two."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    rec, inputs, settings = _load(path)
    res = run_fixed_batch(path.with_suffix(".onnx"), [inputs, inputs], settings,
                          device="cuda:0", backend="triton")
    want = [[int(v) for v in o] for o in rec["outputs"]]
    for b in range(2):
        msg = _first_difference(res.outputs_fixed[b], want)
        assert not msg, f"{rec['name']} (GPU, batch row {b}): {msg}"
