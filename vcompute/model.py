"""The ONNX model as the user hands it: validation, input shapes, and the float reference run.

Checks happen here, before EZKL sees the file, so a user gets one clear line (a missing file,
a file that is not ONNX, a dynamic shape we cannot resolve) instead of a Rust error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from vcompute.artifacts import sha256_file
from vcompute.errors import UsageError

#: EZKL resolves symbolic dimensions through its ``variables`` run-arg; we use batch size 1.
DEFAULT_DIM = 1


@dataclass(frozen=True)
class ModelInfo:
    """What the pipeline needs to know about a model without running it."""

    path: Path
    sha256: str
    input_names: list[str]
    input_shapes: list[tuple[int, ...]]
    output_names: list[str]
    op_types: list[str]

    @property
    def input_sizes(self) -> list[int]:
        return [int(np.prod(s)) for s in self.input_shapes]


def _dims(value_info: onnx.ValueInfoProto) -> tuple[int, ...]:
    """A tensor's static shape, with symbolic or unknown dimensions set to ``DEFAULT_DIM``."""
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else DEFAULT_DIM for d in dims)


def load_model(path: Path) -> ModelInfo:
    """Open and check an ONNX file; raise ``UsageError`` naming what is wrong."""
    if not path.exists():
        raise UsageError(f"model file not found: {path}")
    if not path.is_file():
        raise UsageError(f"model path is not a file: {path}")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise UsageError(f"{path} is not an ONNX model ({type(exc).__name__})") from None
    if not proto.graph.node:
        raise UsageError(f"{path} is not an ONNX model (no graph nodes)")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise UsageError(f"{path} is not a valid ONNX model: {str(exc).splitlines()[0]}") from None
    initializers = {i.name for i in proto.graph.initializer}
    graph_inputs = [i for i in proto.graph.input if i.name not in initializers]
    if not graph_inputs:
        raise UsageError(f"{path} has no inputs")
    return ModelInfo(
        path=path,
        sha256=sha256_file(path),
        input_names=[i.name for i in graph_inputs],
        input_shapes=[_dims(i) for i in graph_inputs],
        output_names=[o.name for o in proto.graph.output],
        op_types=sorted({n.op_type for n in proto.graph.node}),
    )


def run_float(model: ModelInfo, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run the model in float32 with onnxruntime on the CPU: the reference for the error column."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
    feeds = {name: x.astype(np.float32) for name, x in zip(model.input_names, inputs)}
    return [np.asarray(o, dtype=np.float64) for o in session.run(None, feeds)]
