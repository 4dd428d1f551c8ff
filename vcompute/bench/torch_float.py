"""The float baseline for benchmarks: an ONNX graph executed op by op with PyTorch eager ops.

There is no ONNX → PyTorch converter we can install here (onnx2torch needs torchvision, which
has no CPU build on these machines), so this covers the ops of the CNN/MLP family and the
elementwise, reduction and shape ops EZKL proves directly; a model with any other op raises
:class:`UnsupportedFloatOp` and benchmarks show the column as unsupported.
It runs on the GPU when there is one, batched along the first axis.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from vcompute.errors import UsageError


class UnsupportedFloatOp(UsageError):
    """The model has an op the float baseline does not cover: benchmarks leave its column out."""


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


def _axes(axes) -> list[int] | None:
    """Axes from the input (newer opsets: a CPU integer tensor) or the attribute (older ones: a
    list, which arrives under the same keyword); None when absent."""
    if axes is None:
        return None
    return [int(v) for v in (axes.reshape(-1).tolist() if isinstance(axes, torch.Tensor) else axes)]


def _reduce(kind: str):
    """ReduceSum / ReduceMean / ReduceMax / ReduceMin: no axes means every axis (unless
    ``noop_with_empty_axes``), ``keepdims`` by default."""
    fns = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}

    def run(x, axes=None, **a):
        dims = _axes(axes)
        if not dims:
            if a.get("noop_with_empty_axes", 0):
                return x
            dims = list(range(x.dim()))
        return fns[kind](x, dim=dims, keepdim=bool(a.get("keepdims", 1)))

    return run


def _clip(x, lo=None, hi=None, **a):
    """Clip's bounds come as inputs (opset 11+, either may be absent) or attributes (older)."""
    lo = a.get("min") if lo is None else lo
    hi = a.get("max") if hi is None else hi
    return torch.clamp(x, min=lo, max=hi)


def _squeeze(x, axes=None, **a):
    dims = _axes(axes)
    return x.squeeze() if dims is None else x.squeeze(tuple(d % x.dim() for d in dims))


def _unsqueeze(x, axes=None, **a):
    dims = _axes(axes)
    for d in sorted(d % (x.dim() + len(dims)) for d in dims):
        x = x.unsqueeze(d)
    return x


def _batch_norm(x, scale, bias, mean, var, **a):
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, a.get("epsilon", 1e-5))


#: ONNX TensorProto data types -> torch dtypes, for Cast
_DTYPES = {1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32, 7: torch.int64,
           9: torch.bool, 10: torch.float16, 11: torch.float64}


def _cast(x, **a):
    if a["to"] not in _DTYPES:
        raise UnsupportedFloatOp(f"the PyTorch float baseline cannot Cast to ONNX data type {a['to']}")
    return x.to(_DTYPES[a["to"]])


def _gelu(x, **a):
    approx = a.get("approximate", b"none")
    return F.gelu(x, approximate=approx.decode() if isinstance(approx, bytes) else approx)


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
    "Erf": lambda x, **_: torch.erf(x),
    "Cos": lambda x, **_: torch.cos(x),
    "Sin": lambda x, **_: torch.sin(x),
    "Atan": lambda x, **_: torch.atan(x),
    "Neg": lambda x, **_: -x,
    "Abs": lambda x, **_: torch.abs(x),
    "Sqrt": lambda x, **_: torch.sqrt(x),
    "Log": lambda x, **_: torch.log(x),
    "Pow": lambda a, b, **_: torch.pow(a, b),
    "Max": lambda *xs, **_: functools.reduce(torch.maximum, xs),
    "Min": lambda *xs, **_: functools.reduce(torch.minimum, xs),
    "LeakyRelu": lambda x, **a: F.leaky_relu(x, a.get("alpha", 0.01)),
    "HardSigmoid": lambda x, **a: torch.clamp(a.get("alpha", 0.2) * x + a.get("beta", 0.5), 0.0, 1.0),
    "HardSwish": lambda x, **_: F.hardswish(x),
    "Softplus": lambda x, **_: F.softplus(x),
    "Gelu": _gelu,
    "Clip": _clip,
    "ReduceSum": _reduce("sum"),
    "ReduceMean": _reduce("mean"),
    "ReduceMax": _reduce("max"),
    "ReduceMin": _reduce("min"),
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "BatchNormalization": _batch_norm,
    "Cast": _cast,
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
                raise UnsupportedFloatOp(f"the PyTorch float baseline has no op for ONNX {node.op_type}")
            inputs = list(node.input)
            while inputs and not inputs[-1]:
                inputs.pop()
            self.nodes.append((OPS[node.op_type], inputs, node.output[0], attrs))
        self.inputs = [i.name for i in proto.graph.input if i.name not in self.consts]
        self.outputs = [o.name for o in proto.graph.output]

    @torch.inference_mode()
    def __call__(self, *xs: torch.Tensor) -> list[torch.Tensor]:
        env = dict(self.consts)
        env.update(zip(self.inputs, xs))
        for fn, ins, out, attrs in self.nodes:  # an absent optional input ("") is None
            env[out] = fn(*[env[i] if i else None for i in ins], **attrs)
        return [env[o] for o in self.outputs]


def batch_inputs(arrays: list[np.ndarray], device: str) -> list[torch.Tensor]:
    return [torch.from_numpy(a.astype(np.float32)).to(device) for a in arrays]
