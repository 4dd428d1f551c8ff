"""The float baseline for benchmarks: an ONNX graph executed op by op with PyTorch eager ops.

There is no ONNX → PyTorch converter we can install here (onnx2torch needs torchvision, which
has no CPU build on these machines), so this covers the ops of the CNN/MLP family directly.
It runs on the GPU when there is one, batched along the first axis.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from vcompute.errors import UsageError


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pads(a: dict[str, Any], spatial: int) -> list[int]:
    """ONNX pads (begin..., end...) as torch F.pad's (last dim first) list."""
    pads = list(a.get("pads", [0] * 2 * spatial))
    out: list[int] = []
    for i in reversed(range(spatial)):
        out += [pads[i], pads[i + spatial]]
    return out


def _conv(x, w, b=None, **a):
    x = F.pad(x, _pads(a, w.dim() - 2))
    conv = F.conv1d if w.dim() == 3 else F.conv2d
    return conv(x, w, b, stride=a.get("strides", 1), dilation=a.get("dilations", 1), groups=a.get("group", 1))


def _pool(kind: str):
    def run(x, **a):
        k = a["kernel_shape"]
        x = F.pad(x, _pads(a, len(k)), value=float("-inf") if kind == "max" else 0.0)
        strides = a.get("strides", k)
        return (F.max_pool2d if kind == "max" else F.avg_pool2d)(x, k, strides)

    return run


def _gemm(a, b, c=None, **at):
    a = a.T if at.get("transA") else a
    b = b.T if at.get("transB") else b
    y = at.get("alpha", 1.0) * (a @ b)
    return y if c is None else y + at.get("beta", 1.0) * c


def _reshape(x, shape, **a):
    dims = [x.shape[i] if d == 0 else int(d) for i, d in enumerate(shape.tolist())]
    return x.reshape(dims)


OPS: dict[str, Callable[..., torch.Tensor]] = {
    "Gemm": _gemm,
    "MatMul": lambda a, b, **_: a @ b,
    "Conv": _conv,
    "Relu": lambda x, **_: F.relu(x),
    "Sigmoid": lambda x, **_: torch.sigmoid(x),
    "Tanh": lambda x, **_: torch.tanh(x),
    "Exp": lambda x, **_: torch.exp(x),
    "Add": lambda a, b, **_: a + b,
    "Sub": lambda a, b, **_: a - b,
    "Mul": lambda a, b, **_: a * b,
    "Div": lambda a, b, **_: a / b,
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda x, **_: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
    "Flatten": lambda x, **a: x.flatten(a.get("axis", 1)) if a.get("axis", 1) > 0 else x.reshape(1, -1),
    "Reshape": _reshape,
    "Transpose": lambda x, **a: x.permute(*a["perm"]) if "perm" in a else x.permute(*reversed(range(x.dim()))),
    "Identity": lambda x, **_: x,
    "Softmax": lambda x, **a: torch.softmax(x, dim=a.get("axis", -1)),
    "Concat": lambda *xs, **a: torch.cat(xs, dim=a["axis"]),
}


class FloatModel:
    """An ONNX model prepared once (weights on the device), run many times."""

    def __init__(self, path: Path, device: str) -> None:
        proto = onnx.load(str(path))
        self.device = device
        self.consts = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()).to(device) for i in proto.graph.initializer}
        for node in proto.graph.node:
            if node.op_type == "Constant":
                continue
            if node.op_type not in OPS:
                raise UsageError(f"the float baseline has no PyTorch op for ONNX {node.op_type}")
        self.nodes = list(proto.graph.node)
        self.inputs = [i.name for i in proto.graph.input if i.name not in self.consts]
        self.outputs = [o.name for o in proto.graph.output]

    @torch.inference_mode()
    def __call__(self, *xs: torch.Tensor) -> list[torch.Tensor]:
        env = dict(self.consts)
        env.update(zip(self.inputs, xs))
        for node in self.nodes:
            attrs = _attrs(node)
            if node.op_type == "Constant":
                env[node.output[0]] = torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy()).to(self.device)
                continue
            args = [env[i] for i in node.input if i]
            env[node.output[0]] = OPS[node.op_type](*args, **attrs)
        return [env[o] for o in self.outputs]


def batch_inputs(arrays: list[np.ndarray], device: str) -> list[torch.Tensor]:
    return [torch.from_numpy(a.astype(np.float32)).to(device) for a in arrays]
