"""The ONNX model as the user hands it: validation, inputs (names, shapes, types), the float reference run.

Checks happen here, before EZKL sees the file, so a user gets one clear line (a missing file,
a file that is not ONNX, an input type EZKL cannot take) instead of a Rust error.

Input types follow EZKL's loader (``src/graph/utilities.rs``, the "Source" arm): float inputs
(f16/f32/f64) are quantized at the calibrated input scale; integer and bool inputs enter the
circuit at scale 0, as the integers themselves. A model may have no inputs at all (a constant
graph): EZKL proves it with ``{"input_data": []}`` or ``[[]]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from vcompute.artifacts import sha256_file
from vcompute.errors import UsageError, first_line

#: EZKL resolves symbolic dimensions through its ``variables`` run-arg; we use batch size 1.
DEFAULT_DIM = 1

_T = onnx.TensorProto
#: ONNX element type -> (kind, numpy dtype for onnxruntime). Kinds: EZKL's InputType families.
INPUT_TYPES: dict[int, tuple[str, type]] = {
    _T.FLOAT: ("float", np.float32),
    _T.DOUBLE: ("float", np.float64),
    _T.FLOAT16: ("float", np.float16),
    _T.BOOL: ("bool", np.bool_),
    _T.INT8: ("int", np.int8),
    _T.INT16: ("int", np.int16),
    _T.INT32: ("int", np.int32),
    _T.INT64: ("int", np.int64),
    _T.UINT8: ("int", np.uint8),
    _T.UINT16: ("int", np.uint16),
    _T.UINT32: ("int", np.uint32),
    _T.UINT64: ("int", np.uint64),
}


@dataclass(frozen=True)
class ModelInfo:
    """What the pipeline needs to know about a model without running it.

    ``input_*`` describe the graph inputs that are not initializers (the tensors an input file
    holds, in order); ``declared_inputs`` is every name in ``graph.input``, which older exporters
    fill with the weights too.
    """

    path: Path
    sha256: str
    input_names: list[str]
    input_shapes: list[tuple[int, ...]]
    output_names: list[str]
    op_types: list[str]
    input_types: list[str] = field(default_factory=list)  # ONNX's names: "float", "int64", "bool", ...
    input_kinds: list[str] = field(default_factory=list)  # "float" | "int" | "bool"
    declared_inputs: list[str] = field(default_factory=list)
    #: the parsed model, loaded once here and handed to the engine and onnxruntime (never re-read)
    proto: onnx.ModelProto | None = field(default=None, repr=False, compare=False)

    @property
    def input_sizes(self) -> list[int]:
        return [int(np.prod(s)) for s in self.input_shapes]

    @property
    def input_dtypes(self) -> list[type]:
        return [INPUT_TYPES[_T.DataType.Value(t.upper())][1] for t in self.input_types]

    def describe_inputs(self) -> str:
        """``x: float [1, 4], m: bool [1, 4]`` (or ``none``) for one-line messages."""
        if not self.input_names:
            return "none"
        return ", ".join(f"{n}: {k} {list(s)}" for n, k, s in zip(self.input_names, self.input_types, self.input_shapes))


def _dims(value_info: onnx.ValueInfoProto) -> tuple[int, ...]:
    """A tensor's static shape, with symbolic or unknown dimensions set to ``DEFAULT_DIM``."""
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else DEFAULT_DIM for d in dims)


def graph_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph's real inputs: its declared inputs less the initializers older exporters list there."""
    initializers = {i.name for i in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in initializers]


def graph_input_shapes(proto: onnx.ModelProto) -> list[tuple[int, ...]]:
    """Each real input's static shape, symbolic dimensions set to ``DEFAULT_DIM`` (as EZKL runs it)."""
    return [_dims(i) for i in graph_inputs(proto)]


def _input_type(path: Path, value_info: onnx.ValueInfoProto) -> tuple[str, str]:
    """(ONNX type name, kind) of a graph input; a type EZKL's loader refuses is one line."""
    ttype = value_info.type
    if not ttype.HasField("tensor_type"):
        raise UsageError(f"{path}: input {value_info.name} is not a tensor (EZKL takes tensor inputs only)")
    elem = ttype.tensor_type.elem_type
    if elem not in INPUT_TYPES:
        name = _T.DataType.Name(elem).lower() if elem in _T.DataType.values() else str(elem)
        raise UsageError(
            f"{path}: input {value_info.name} has type {name}; EZKL takes float, integer and bool inputs only"
        )
    return _T.DataType.Name(elem).lower(), INPUT_TYPES[elem][0]


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
        raise UsageError(f"{path} is not a valid ONNX model: {first_line(exc)}") from None
    inputs = graph_inputs(proto)
    types = [_input_type(path, i) for i in inputs]
    return ModelInfo(
        path=path,
        sha256=sha256_file(path),
        input_names=[i.name for i in inputs],
        input_shapes=[_dims(i) for i in inputs],
        output_names=[o.name for o in proto.graph.output],
        op_types=sorted({n.op_type for n in proto.graph.node}),
        input_types=[t for t, _ in types],
        input_kinds=[k for _, k in types],
        declared_inputs=[i.name for i in proto.graph.input],
        proto=proto,
    )


def run_float(model: ModelInfo, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run the model with onnxruntime on the CPU (each input in its declared type): the reference for the error column."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = model.proto.SerializeToString() if model.proto is not None else str(model.path)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    dtypes = model.input_dtypes or [np.float32] * len(inputs)
    feeds = {name: np.asarray(x).astype(dt) for name, x, dt in zip(model.input_names, inputs, dtypes)}
    return [np.asarray(o, dtype=np.float64) for o in session.run(None, feeds)]
