"""Backend choice: Triton where it compiles (CUDA), the exact int64 torch backend elsewhere; the
Triton interpreter stays available on the CPU by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vcompute.engine import run_fixed
from vcompute.engine.backends import TorchBackend, TritonBackend, default_backend, resolve

ROOT = Path(__file__).resolve().parent.parent.parent
SETTINGS = {"run_args": {"input_scale": 10, "param_scale": 10, "scale_rebase_multiplier": 1}}


def test_default_is_triton_on_cuda_and_torch_elsewhere():
    assert default_backend("cpu") == "torch"
    assert default_backend("cuda:0") == "triton"
    be, dev = resolve(None, "cpu")
    assert isinstance(be, TorchBackend) and dev == "cpu"
    be, dev = resolve(None, "cuda:0")
    assert isinstance(be, TritonBackend) and dev == "cuda:0"
    be, dev = resolve("reference", "cuda:0")  # the former name; int64 matmul needs the CPU
    assert isinstance(be, TorchBackend) and dev == "cpu"
    with pytest.raises(ValueError, match="unknown backend"):
        resolve("numpy", "cpu")


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_default_cpu_backend_equals_the_kernels(name):
    if torch.cuda.is_available():
        pytest.skip("the default is Triton on a GPU host")
    d = ROOT / "circuits" / name
    x = [np.array(v) for v in json.loads((d / "input.json").read_text())["input_data"]]
    default = run_fixed(d / "model.onnx", x, SETTINGS)
    assert "int64 torch" in default.device
    kernels = run_fixed(d / "model.onnx", x, SETTINGS, backend="triton")
    assert "triton" in kernels.device
    assert default.outputs_fixed == kernels.outputs_fixed
