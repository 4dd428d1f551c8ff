"""Regenerate the small bundled models that exercise input forms and calibration, deterministically.

Each is built with ``onnx.helper`` (opset 17, IR 8: what EZKL 23 and onnxruntime load) from
seeded weights, next to an ``input.json`` in EZKL's format:

* ``circuits/mixed``: three inputs of three kinds. A float feature vector, a bool mask that
  selects features, and int64 counts: ``y = (x * mask) @ W1 + counts @ W2 + b``. EZKL takes the
  bool and integer inputs at scale 0, as the integers themselves.
* ``circuits/counts``: integer inputs only (``relu(counts @ W + b)``): EZKL then calibrates only
  the parameter scale (input scale 0).
* ``circuits/constant``: no inputs at all (a constant graph; ``{"input_data": [[]]}``).
* ``circuits/price``: a house-price regressor on raw, unnormalized features (square feet,
  bedrooms, age, distance), a random-features ReLU layer whose output layer is fitted by least
  squares on synthetic sales. Prices near 3e5 overflow EZKL's default range check (2^28 at
  scale 2^13), so calibration at EZKL's defaults finds no parameters; vcompute's ladder
  (``vcompute/zk/circuit.py``) calibrates it on a later rung.

Run: ``python scripts/make_input_models.py`` (rewrites those four folders).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
from onnx import TensorProto as T

ROOT = Path(__file__).resolve().parent.parent / "circuits"


def _tensor(name: str, a: np.ndarray) -> onnx.TensorProto:
    return oh.make_tensor(name, T.FLOAT, list(a.shape), np.asarray(a, np.float32).reshape(-1).tolist())


def _save(name: str, nodes, inputs, outputs, inits, data: list) -> Path:
    graph = oh.make_graph(nodes, name, inputs, outputs, inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8, producer_name="vcompute-scripts")
    onnx.checker.check_model(model, full_check=True)
    out = ROOT / name
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out / "model.onnx"))
    (out / "input.json").write_text(json.dumps({"input_data": data}) + "\n")
    return out


def mixed() -> Path:
    rng = np.random.default_rng(10)
    w1, w2, b = rng.uniform(-1, 1, (4, 3)), rng.uniform(-0.5, 0.5, (2, 3)), rng.uniform(-0.5, 0.5, (1, 3))
    nodes = [
        oh.make_node("Cast", ["mask"], ["mask_f"], to=T.FLOAT),
        oh.make_node("Mul", ["x", "mask_f"], ["x_sel"]),
        oh.make_node("MatMul", ["x_sel", "W1"], ["a"]),
        oh.make_node("Cast", ["counts"], ["counts_f"], to=T.FLOAT),
        oh.make_node("MatMul", ["counts_f", "W2"], ["c"]),
        oh.make_node("Add", ["a", "c"], ["ac"]),
        oh.make_node("Add", ["ac", "b"], ["y"]),
    ]
    inputs = [
        oh.make_tensor_value_info("x", T.FLOAT, [1, 4]),
        oh.make_tensor_value_info("mask", T.BOOL, [1, 4]),
        oh.make_tensor_value_info("counts", T.INT64, [1, 2]),
    ]
    data = [[0.5, -0.75, 0.25, 0.9], [True, False, True, True], [3, 1]]
    return _save("mixed", nodes, inputs, [oh.make_tensor_value_info("y", T.FLOAT, [1, 3])],
                 [_tensor("W1", w1), _tensor("W2", w2), _tensor("b", b)], data)


def counts() -> Path:
    rng = np.random.default_rng(11)
    w, b = rng.uniform(-0.5, 0.5, (4, 2)), rng.uniform(-0.5, 0.5, (1, 2))
    nodes = [
        oh.make_node("Cast", ["counts"], ["f"], to=T.FLOAT),
        oh.make_node("MatMul", ["f", "W"], ["a"]),
        oh.make_node("Add", ["a", "b"], ["z"]),
        oh.make_node("Relu", ["z"], ["y"]),
    ]
    return _save("counts", nodes, [oh.make_tensor_value_info("counts", T.INT64, [1, 4])],
                 [oh.make_tensor_value_info("y", T.FLOAT, [1, 2])], [_tensor("W", w), _tensor("b", b)], [[2, 0, 5, 1]])


def constant() -> Path:
    rng = np.random.default_rng(12)
    c, w = np.array([[0.5, -1.0, 2.0, 0.25]]), rng.uniform(-1, 1, (4, 3))
    nodes = [oh.make_node("Relu", ["C"], ["r"]), oh.make_node("MatMul", ["r", "W"], ["y"])]
    return _save("constant", nodes, [], [oh.make_tensor_value_info("y", T.FLOAT, [1, 3])],
                 [_tensor("C", c), _tensor("W", w)], [[]])


def price() -> Path:
    rng = np.random.default_rng(13)
    n = 512  # synthetic sales: sqft, bedrooms, age (years), distance to centre (km)
    feats = np.column_stack([rng.uniform(600, 3500, n), rng.integers(1, 6, n), rng.uniform(0, 80, n), rng.uniform(0.5, 30, n)])
    price_ = 120 * feats[:, 0] + 9000 * feats[:, 1] - 900 * feats[:, 2] - 2500 * feats[:, 3] + 60000
    price_ = price_ + rng.normal(0, 15000, n)
    # random features in the features' own units (hidden values in the thousands, so the fitted
    # output weights stay small and scale-2^13 fixed point keeps the price to a few dollars)
    w1 = rng.normal(0, 1, (4, 8)) * np.array([[1.0], [300.0], [20.0], [60.0]])
    b1 = rng.uniform(-500, 500, (1, 8))
    hidden = np.maximum(feats @ w1 + b1, 0)
    design = np.column_stack([hidden, np.ones(n)])
    coef, *_ = np.linalg.lstsq(design, price_, rcond=None)
    w2, b2 = coef[:-1].reshape(8, 1), coef[-1:].reshape(1, 1)
    nodes = [
        oh.make_node("MatMul", ["x", "W1"], ["a"]),
        oh.make_node("Add", ["a", "b1"], ["z"]),
        oh.make_node("Relu", ["z"], ["h"]),
        oh.make_node("MatMul", ["h", "W2"], ["p"]),
        oh.make_node("Add", ["p", "b2"], ["y"]),
    ]
    return _save("price", nodes, [oh.make_tensor_value_info("x", T.FLOAT, [1, 4])],
                 [oh.make_tensor_value_info("y", T.FLOAT, [1, 1])],
                 [_tensor("W1", w1), _tensor("b1", b1), _tensor("W2", w2), _tensor("b2", b2)], [[1850.0, 3, 25.0, 6.5]])


MODELS = {"mixed": mixed, "counts": counts, "constant": constant, "price": price}

if __name__ == "__main__":
    for make in MODELS.values():
        print(f"wrote {make()}")
