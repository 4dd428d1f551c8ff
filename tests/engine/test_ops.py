"""The engine against stored EZKL witnesses, one tiny model per op variant (no EZKL needed).

Every ``cases/<case>.json`` was written by ``scripts/make_op_cases.py`` from a real EZKL 23.0.5
run on ``cases/<case>.onnx``: the inputs, the run_args and output scales of EZKL's settings, and
the witness outputs. The engine (exact int64 torch backend, CPU) must reproduce the witness bit
for bit; where EZKL refuses the model (``"status": "refused"``) or its witness holds values no
int64 engine can represent (``"engine": "refuse"``) the engine must raise UnsupportedOpError.
Each case also runs as a batch of two samples through the batched executors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vcompute.engine import UnsupportedOpError, compare, run_fixed
from vcompute.engine.graph import load_graph
from vcompute.engine.ops import TorchBackend, run_step
from vcompute.engine.quantize import make_plan, quantize_input

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


def _run_batch(model: Path, samples: list[list[np.ndarray]], run_args: dict):
    """The plan executed once on a batch of samples (a leading batch axis on every value)."""
    graph = load_graph(model, [tuple(x.shape) for x in samples[0]])
    plan = make_plan(graph, run_args)
    be = TorchBackend()
    values: dict[str, torch.Tensor] = {}
    for name in graph.inputs:
        node = graph.nodes[name]
        k = node.attrs["index"]
        q = [quantize_input(s[k].reshape(node.shape), plan.input_scales[k], node.attrs["float"])
             for s in samples]
        values[name] = torch.from_numpy(np.stack(q))
    for name, q in plan.consts.items():
        values[name] = torch.from_numpy(np.ascontiguousarray(q)).unsqueeze(0)
    for name, step in plan.steps.items():
        values[name] = run_step(be, step, [values[i] for i in step.node.inputs])
    return [values[o] for o in graph.outputs]


BATCHABLE = [p for p in ALL if not _expect_refusal(json.loads(p.read_text()))]


@pytest.mark.parametrize("path", BATCHABLE, ids=[p.stem for p in BATCHABLE])
def test_op_case_batched(path: Path) -> None:
    """Two samples in one batch: the stored input and the same input again, so both rows must
    equal the witness (the batch axis must never mix samples)."""
    rec, inputs, settings = _load(path)
    outs = _run_batch(path.with_suffix(".onnx"), [inputs, inputs], settings["run_args"])
    want = [[int(v) for v in o] for o in rec["outputs"]]
    for b in range(2):
        got = [[int(v) for v in o[min(b, o.shape[0] - 1)].reshape(-1).tolist()] for o in outs]
        msg = _first_difference(got, want)
        assert not msg, f"{rec['name']} (batch row {b}): {msg}"
