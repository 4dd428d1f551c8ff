"""``vcompute bench`` runs end to end and reports every column; it asserts no times."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import CIRCUITS


def test_bench_reports_inference_and_proof_side_by_side(cli, tmp_path: Path) -> None:
    plot = tmp_path / "bench.png"
    result = cli(
        "bench", CIRCUITS / "mlp" / "model.onnx", "--batch", "1,3", "--repeat", "2",
        "--out", tmp_path / "work", "--plot", plot, "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [row["batch"] for row in report["inference"]] == [1, 3]
    for row in report["inference"]:
        assert row["engine"]["matches_witness"] is True, row["engine"]
        assert row["engine"]["matches_reference"] is True and row["engine"]["samples_checked"] == row["batch"]
        assert row["engine"]["witnesses_checked"] == row["batch"]
        for runner in ("engine", "torch", "onnxruntime"):
            assert row[runner]["median_ms"] > 0 and row[runner]["min_ms"] <= row[runner]["max_ms"], (runner, row[runner])
            assert row[runner]["throughput_per_s"] > 0
        assert set(row["engine_speedup"]) == {"vs_torch", "vs_onnxruntime"}
        assert row["onnxruntime"]["process"] == "its own", "onnxruntime timed in the engine's process"
    proof = report["proof"]
    assert proof["cold"]["cached"]["setup"] is False, "the cold run must start from an empty cache"
    assert proof["warm"]["cached"] == {**proof["warm"]["cached"], "calibrate + compile": True, "srs": True, "setup": True}
    assert proof["cold"]["peak_rss_bytes"] > 10 * 2**20
    assert proof["proof_bytes"] > 1000 and proof["logrows"] >= 10
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "plot is not a PNG"


def test_bench_bad_batch(cli) -> None:
    result = cli("bench", CIRCUITS / "mlp" / "model.onnx", "--batch", "0,x")
    assert result.returncode == 2 and "--batch takes" in result.stderr and "Traceback" not in result.stderr


def test_float_baseline_follows_onnx_average_pool(tmp_path: Path) -> None:
    """ONNX AveragePool divides by the cells inside the image unless count_include_pad=1 (torch's
    avg_pool2d counts the padding by default): the baseline must match onnxruntime both ways."""
    import warnings

    import numpy as np
    import onnxruntime as ort
    import torch

    from vcompute.bench.torch_float import FloatModel

    x = np.random.default_rng(0).standard_normal((2, 3, 7, 7)).astype(np.float32)
    for cip in (False, True):
        path = tmp_path / f"avg{int(cip)}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(torch.nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=cip),
                              (torch.zeros(2, 3, 7, 7),), str(path), opset_version=17, dynamo=False)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        got = FloatModel(path, "cpu")(torch.from_numpy(x))[0].numpy()
        assert np.allclose(got, want, atol=1e-6), (cip, np.abs(got - want).max())


def test_bench_engine_script_on_exported_cases(tmp_path: Path) -> None:
    """scripts/bench_engine.py (the GPU host's benchmark, no EZKL there) runs on exported cases and
    checks every sample; here on the CPU, op by op."""
    import subprocess
    import sys

    import pytest

    pytest.importorskip("ezkl")
    from vcompute.engine import selfcheck

    cases = tmp_path / "cases"
    selfcheck.export(cases, [CIRCUITS / "mlp"], samples=3, draw="uniform")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(CIRCUITS.parent / "scripts" / "bench_engine.py"), str(cases),
                             "--batches", "1", "4", "--repeat", "2", "--out", str(out), "--tiles", "auto:direct_block=32"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    doc = json.loads((out / "bench-engine.json").read_text())
    rows = doc["models"][0]["inference"]
    assert [r["batch"] for r in rows] == [1, 4]
    assert all(r["engine"]["matches_reference"] for r in rows) and rows[1]["engine"]["witnesses_checked"] == 3
    # onnxruntime timed in a process of its own (its thread pool slows the engine's stream in one)
    assert all(r["onnxruntime"]["process"] == "its own" and r["onnxruntime"]["median_ms"] > 0 for r in rows), \
        [r["onnxruntime"] for r in rows]
    variants = doc["models"][0]["variants"]  # --tiles: the policy at every batch size, every sample checked
    assert [(v["batch"], v["variant"], v["exact"]) for v in variants] == [
        (1, "tiles auto:direct_block=32", True), (4, "tiles auto:direct_block=32", True)], variants
    # each metric a throughput cell may be judged by (None here: no graph on the CPU)
    assert all({"median_ms", "steady_ms", "warm_ms", "stream_ms"} <= set(v) for v in variants), variants
    assert (out / "bench-engine.png").read_bytes()[:4] == b"\x89PNG"


def _graph_model(tmp_path: Path, nodes, inits, name: str) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_float_baseline_elementwise_reduce_and_shape_ops_match_onnxruntime(tmp_path: Path) -> None:
    """The ops the big example models use (Erf, Cos, Sin, Atan, HardSwish, ...), a Clip with only
    an upper bound (an absent optional input), reductions with axes as an input: same floats as
    onnxruntime."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnx import helper

    from vcompute.bench.torch_float import FloatModel

    chain = ["Erf", "Cos", "Sin", "Atan", "HardSwish", "Neg", "Abs", "Softplus", "LeakyRelu", "HardSigmoid"]
    nodes, cur = [], "x"
    for i, op in enumerate(chain):
        nodes.append(helper.make_node(op, [cur], [f"t{i}"]))
        cur = f"t{i}"
    nodes += [helper.make_node("Clip", [cur, "", "hi"], ["c"]),
              helper.make_node("Max", ["c", "x"], ["m"]),
              helper.make_node("ReduceSum", ["m", "ax"], ["r"], keepdims=1),
              helper.make_node("ReduceMean", ["r"], ["rm"], axes=[2], keepdims=0),
              helper.make_node("Unsqueeze", ["rm", "ax"], ["u"]),
              helper.make_node("Squeeze", ["u", "ax"], ["y"])]
    path = _graph_model(tmp_path, nodes, {"hi": np.array(0.6, np.float32), "ax": np.array([1], np.int64)}, "ops")
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = FloatModel(path, "cpu")(torch.from_numpy(x))[0].numpy()
    assert got.shape == want.shape and np.allclose(got, want, atol=1e-5), (got.shape, want.shape, got, want)


def test_float_baseline_without_an_op_leaves_its_column_out(tmp_path: Path) -> None:
    from onnx import helper

    from vcompute.bench.run import bench_torch, speedups

    path = _graph_model(tmp_path, [helper.make_node("Tan", ["x"], ["y"])], {}, "tan")
    row = bench_torch(path, [[__import__("numpy").zeros((2, 3, 4), "float32")]], 1)
    assert row == {"unsupported": "the PyTorch float baseline has no op for ONNX Tan"}
    sp = speedups({"engine": {"throughput_per_s": 10.0}, "torch": row, "onnxruntime": {"throughput_per_s": 5.0}})
    assert sp == {"vs_torch": None, "vs_onnxruntime": 2.0}


def test_bench_f64_dot_script_checks_every_variant(tmp_path: Path) -> None:
    """scripts/bench_f64_dot.py (FMA against float64 dots per LeNet-5 layer, BENCHMARKS.md §2k):
    on Triton's interpreter every variant runs and gives the first one's bits (it exits non-zero
    otherwise); without a GPU and without --device cpu it says so and exits 2."""
    import subprocess
    import sys

    script = str(CIRCUITS.parent / "scripts" / "bench_f64_dot.py")
    out = tmp_path / "f64dot.json"
    result = subprocess.run([sys.executable, script, "--device", "cpu", "--batches", "2", "--gemms", "24x10",
                             "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    layers = json.loads(out.read_text())["layers"]
    names = [(x["layer"], x["samples"]) for x in layers]
    assert names == [(n, 2) for n in ("conv1", "conv2", "fc1", "fc2", "fc3", "24x10")], names
    for layer in layers:
        errors = [r for r in layer["rows"] if "us" not in r]
        assert not errors and len(layer["rows"]) >= 8, (layer["layer"], layer["rows"])
        assert any(r["variant"].startswith("dot") for r in layer["rows"]), layer["layer"]
    bad = subprocess.run([sys.executable, script, "--device", "cpu", "--gemms", "512by512"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "KxN" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    import torch

    if not torch.cuda.is_available():
        plain = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300)
        assert plain.returncode == 2 and "no CUDA GPU" in plain.stderr, plain.stderr
