"""The engine takes an already-loaded ModelProto as well as a path, so a caller that loaded the
model once need not have it parsed again; the plan cache keys protos by content (or by the
caller's key) and files by path and mtime."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from vcompute.engine import run_fixed, run_fixed_batch
from vcompute.engine.graph import load_graph, model_input_shapes

ROOT = Path(__file__).resolve().parent.parent.parent
SETTINGS = {"run_args": {"input_scale": 7, "param_scale": 7, "scale_rebase_multiplier": 1}}


def _inputs(name: str) -> list[np.ndarray]:
    data = json.loads((ROOT / "circuits" / name / "input.json").read_text())["input_data"]
    return [np.array(x) for x in data]


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_proto_and_path_give_the_same_bits(name):
    path = ROOT / "circuits" / name / "model.onnx"
    proto = onnx.load(str(path))
    assert model_input_shapes(proto) == model_input_shapes(path)
    shapes = [tuple(d or 1 for d in s) for s in model_input_shapes(path)]
    a, b = load_graph(path, shapes), load_graph(proto, shapes)
    assert [(n.name, n.op, n.inputs, n.shape) for n in a.nodes.values()] == \
        [(n.name, n.op, n.inputs, n.shape) for n in b.nodes.values()]
    x = _inputs(name)
    by_path = run_fixed(path, x, SETTINGS, backend="torch")
    by_proto = run_fixed(proto, x, SETTINGS, backend="torch")
    assert by_proto.outputs_fixed == by_path.outputs_fixed
    batch = run_fixed_batch(proto, [x, x], SETTINGS, backend="torch", model_key="bundled-" + name)
    assert batch.outputs_fixed == [by_path.outputs_fixed] * 2


def _scaled(proto: onnx.ModelProto, factor: float) -> onnx.ModelProto:
    """A copy of ``proto`` with its first weight multiplied by ``factor``."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    w = out.graph.initializer[0]
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * np.float32(factor), w.name))
    return out


def test_plan_cache_keys_protos_by_content():
    proto = onnx.load(str(ROOT / "circuits" / "mlp" / "model.onnx"))
    x = _inputs("mlp")
    base = run_fixed(proto, x, SETTINGS, backend="torch").outputs_fixed
    changed = run_fixed(_scaled(proto, 2.0), x, SETTINGS, backend="torch").outputs_fixed
    assert changed != base, "a different proto must not reuse the cached plan"
    assert run_fixed(proto, x, SETTINGS, backend="torch").outputs_fixed == base
    # a caller's key names the model: the same key means the same (cached) plan
    keyed = run_fixed(proto, x, SETTINGS, backend="torch", model_key="mlp-v1").outputs_fixed
    assert keyed == base
    assert run_fixed(_scaled(proto, 2.0), x, SETTINGS, backend="torch",
                     model_key="mlp-v1").outputs_fixed == base


def test_plan_cache_sees_a_rewritten_file(tmp_path):
    proto = onnx.load(str(ROOT / "circuits" / "mlp" / "model.onnx"))
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    x = _inputs("mlp")
    before = run_fixed(path, x, SETTINGS, backend="torch").outputs_fixed
    onnx.save(_scaled(proto, 2.0), str(path))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert run_fixed(path, x, SETTINGS, backend="torch").outputs_fixed != before
