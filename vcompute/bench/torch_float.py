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
    """ONNX MaxPool / AveragePool (2-D, floor mode). An average divides by the window's cells
    inside the image unless ``count_include_pad=1`` (ONNX's default is 0; torch's avg_pool2d counts
    the padding by default, and padding by hand would count it too)."""

    def run(x, **a):
        k = a["kernel_shape"]
        pads = _pads(a, len(k))
        strides = a.get("strides", k)
        if kind == "max":
            return F.max_pool2d(F.pad(x, pads, value=float("-inf")), k, strides)
        total = F.avg_pool2d(F.pad(x, pads), k, strides, divisor_override=1)
        if a.get("count_include_pad", 0) or not any(pads):
            return total / float(k[0] * k[1])
        ones = F.pad(torch.ones_like(x[:1, :1]), pads)
        cells = F.avg_pool2d(ones, k, strides, divisor_override=1)
        return total / cells

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


def _const(array: np.ndarray, device: str) -> torch.Tensor:
    """Float constants (weights) on the device; integer ones (shapes, axes) stay on the CPU, so
    reading them never syncs with the GPU."""
    t = torch.from_numpy(array.copy())
    return t.to(device) if t.is_floating_point() else t


class FloatModel:
    """An ONNX model prepared once (weights on the device, attributes parsed, Constant nodes
    evaluated), run many times: PyTorch eager, one op after another, as a float baseline."""

    def __init__(self, path: Path, device: str) -> None:
        proto = onnx.load(str(path))
        self.device = device
        self.consts = {i.name: _const(numpy_helper.to_array(i), device) for i in proto.graph.initializer}
        self.nodes: list[tuple[Callable[..., torch.Tensor], list[str], str, dict[str, Any]]] = []
        for node in proto.graph.node:
            attrs = _attrs(node)
            if node.op_type == "Constant":
                self.consts[node.output[0]] = _const(numpy_helper.to_array(attrs["value"]), device)
                continue
            if node.op_type not in OPS:
                raise UsageError(f"the float baseline has no PyTorch op for ONNX {node.op_type}")
            self.nodes.append((OPS[node.op_type], [i for i in node.input if i], node.output[0], attrs))
        self.inputs = [i.name for i in proto.graph.input if i.name not in self.consts]
        self.outputs = [o.name for o in proto.graph.output]

    @torch.inference_mode()
    def __call__(self, *xs: torch.Tensor) -> list[torch.Tensor]:
        env = dict(self.consts)
        env.update(zip(self.inputs, xs))
        for fn, ins, out, attrs in self.nodes:
            env[out] = fn(*[env[i] for i in ins], **attrs)
        return [env[o] for o in self.outputs]


def batch_inputs(arrays: list[np.ndarray], device: str) -> list[torch.Tensor]:
    return [torch.from_numpy(a.astype(np.float32)).to(device) for a in arrays]
