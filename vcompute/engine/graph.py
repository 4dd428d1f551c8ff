"""Load an ONNX model and lower it to the op list EZKL actually computes.

EZKL does not run the ONNX graph as written: it loads it through tract, which declutters it
(``Gemm`` becomes an einsum plus an ``Add``, ``Div`` by a constant becomes ``Mul`` by its f32
reciprocal, ``x * x`` becomes ``Square``, ``GlobalAveragePool`` becomes a sum and a multiply by
``1/n``, reshapes that only drop unit axes in front of a matmul are absorbed into the einsum...),
and then maps tract's ops onto its own (``src/graph/utilities.rs::new_op_from_onnx``). This
module holds the generic part of that lowering (the topological walk, constant folding, tract's
absorption rules); what each ONNX op becomes is registered by its family in
:mod:`vcompute.engine.ops`. The result lets :mod:`vcompute.engine.quantize` see the same op
sequence EZKL sees. See docs/ezkl-semantics.md.

Anything else raises :class:`UnsupportedOpError` naming the ONNX op: the engine never guesses.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Union

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from vcompute.errors import UsageError

from . import ops
from .ir import Graph, Node, UnsupportedOpError
from .ops.nonlinear import LOOKUP_OPS  # noqa: F401  (re-exported: EZKL's lookup ops by ONNX name)
from .ops.registry import OnnxNode

#: a model as callers hand it: a path to an .onnx file, or an already-loaded ModelProto
ModelLike = Union[str, Path, onnx.ModelProto]

# ONNX ops evaluated only to fold constants (shape arithmetic and the like).
_FOLDABLE = {
    "Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Reshape",
    "Slice", "Mul", "Add", "Sub", "Div", "Transpose", "Identity", "ConstantOfShape", "Range",
    "Equal", "Where", "Expand", "Neg", "Sqrt", "Reciprocal", "Floor", "Ceil", "Flatten",
}

__all__ = ["Graph", "Lowerer", "ModelLike", "Node", "UnsupportedOpError", "load_graph",
           "load_model", "model_input_shapes"]


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class Lowerer:
    """Builds the lowered graph, one ONNX node at a time; the op families call its helpers."""

    def __init__(self, model: onnx.ModelProto, input_shapes: list[tuple[int, ...]]) -> None:
        self.model = model
        g = model.graph
        self.consts: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in g.initializer
        }
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.nodes: dict[str, Node] = {}
        self.alias: dict[str, str] = {}
        self.used_consts: dict[str, str] = {}
        self.counter = 0
        self.onnx_uses: dict[str, int] = {}
        for n in g.node:
            for i in n.input:
                self.onnx_uses[i] = self.onnx_uses.get(i, 0) + 1
        for o in g.output:
            self.onnx_uses[o.name] = self.onnx_uses.get(o.name, 0) + 1
        real_inputs = [i for i in g.input if i.name not in self.consts]
        if len(real_inputs) != len(input_shapes):
            raise UsageError(
                f"model has {len(real_inputs)} inputs, got {len(input_shapes)} arrays"
            )
        self.input_names: list[str] = []
        for i, (vi, shp) in enumerate(zip(real_inputs, input_shapes)):
            elem = vi.type.tensor_type.elem_type
            is_float = elem in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                                onnx.TensorProto.FLOAT16)
            self.shapes[vi.name] = tuple(shp)
            self.nodes[vi.name] = Node(vi.name, "input", [], {"index": i, "float": is_float},
                                       "Input", tuple(shp))
            self.input_names.append(vi.name)

    # -- helpers for the op families ---------------------------------------------------------
    def new(self, op: str, inputs: list[str], shape, onnx_op: str, name: str | None = None,
            **attrs) -> str:
        """Add an EZKL op node; returns its name (``name``, or a fresh one)."""
        self.counter += 1
        name = name or f"__{op}_{self.counter}"
        if name in self.nodes:
            name = f"{name}__{self.counter}"
        self.nodes[name] = Node(name, op, inputs, attrs, onnx_op, tuple(int(s) for s in shape))
        self.shapes[name] = tuple(int(s) for s in shape)
        return name

    def const(self, value: np.ndarray, hint: str) -> str:
        """Add a constant node (quantized later at its own scale)."""
        self.counter += 1
        name = f"__const_{hint}_{self.counter}"
        self.nodes[name] = Node(name, "const", [], {"value": np.asarray(value)}, "Const",
                                tuple(np.asarray(value).shape))
        self.shapes[name] = tuple(np.asarray(value).shape)
        return name

    def ref(self, name: str) -> str:
        """The node an ONNX value name stands for (aliases resolved)."""
        while name in self.alias:
            name = self.alias[name]
        return name

    def input_ref(self, name: str, hint: str = "c") -> str:
        """Reference to a value: a runtime node, or the const node of an ONNX initializer."""
        if name in self.consts:
            if name not in self.used_consts:  # one EZKL const node per ONNX initializer
                self.used_consts[name] = self.const(self.consts[name], hint)
            return self.used_consts[name]
        return self.ref(name)

    def reduce_axes(self, a: dict[str, Any], ins: list[str], rank: int) -> list[int]:
        """A reduction's axes, sorted and non-negative: the ``axes`` attribute (opset < 18) or the
        constant second input (opset 18), all axes when neither is given."""
        axes = a.get("axes")
        if axes is None and len(ins) > 1 and ins[1]:
            axes = [int(v) for v in self.consts[ins[1]].reshape(-1)]
        if axes is None:
            axes = list(range(rank))
        return sorted(int(ax) % rank for ax in axes)

    # -- tract's rewrites shared by several families -----------------------------------------
    def mul_const(self, x: str, c: np.ndarray, out: str, onnx_op: str) -> None:
        """``x * c`` with ``c`` a constant, as EZKL maps it (utilities.rs, "Mul"): a scalar
        ``c < 1`` with ``1/c`` a power of two only raises the scale (IDENTITY), else MULT."""
        c32 = np.asarray(c, dtype=np.float32)
        shape = np.broadcast_shapes(self.shapes[x], c32.shape)
        if c32.size == 1 and float(c32.reshape(-1)[0]) < 1.0:
            with np.errstate(divide="ignore", invalid="ignore"):
                recip = np.float32(1.0) / c32.reshape(-1)[0]
                lg = np.log2(recip)
            if np.isfinite(lg) and float(lg) == math.floor(float(lg)):
                self.new("identity", [x], shape, onnx_op, name=out, log2=int(lg))
                return
        self.new("mult", [x, self.const(c32, "mul")], shape, onnx_op, name=out)

    def fold_into_conv(self, x: str, kind: str, operand: np.ndarray, out: str,
                       conv_on_left: bool = True) -> bool:
        """tract's ``Conv::declutter_channel_arithmetic_succ``: a per-channel Mul/Add/Sub by a
        constant right after a group-1 Conv with no other consumer is folded into the conv's
        kernel and bias, in f32. Returns True when folded (``out`` then aliases the conv)."""
        node = self.nodes.get(x)
        if node is None or node.op != "conv" or node.attrs["group"] != 1:
            return False
        if self.onnx_uses.get(x, 0) != 1 or x in self.input_names:
            return False
        c = node.shape[1]
        rank = len(node.shape)  # 4 for a 2-D conv, 3 for a 1-D one
        op = np.asarray(operand, dtype=np.float32)
        if op.ndim > rank:
            return False
        opr = op.reshape((1,) * (rank - op.ndim) + op.shape)
        if opr.shape != (1, c) + (1,) * (rank - 2):
            return False
        vec = opr.reshape(c)
        w_node = self.nodes[node.inputs[1]]
        if len(node.inputs) < 3:
            node.inputs.append(self.const(np.zeros(c, dtype=np.float32), "conv_b"))
        b_node = self.nodes[node.inputs[2]]
        w = np.asarray(w_node.attrs["value"], dtype=np.float32)
        b = np.asarray(b_node.attrs["value"], dtype=np.float32).reshape(c)
        if kind == "Mul":
            w = w * vec.reshape(c, *([1] * (w.ndim - 1)))
            b = b * vec
        elif kind == "Add":
            b = b + vec
        elif kind == "Sub":
            if not conv_on_left:
                # tract folds ``c - conv(x)`` into the bias without negating the kernel
                raise UnsupportedOpError("Sub", "constant minus a Conv output (tract folds it "
                                         "into the conv bias with the wrong sign)")
            b = b - vec
        else:
            return False
        w_node.attrs["value"] = w
        b_node.attrs["value"] = b
        self.alias[out] = x
        self.onnx_uses[x] = self.onnx_uses.get(out, 0)  # the conv now feeds out's consumers
        return True

    # -- the walk ----------------------------------------------------------------------------
    def _fold(self, node: onnx.NodeProto) -> bool:
        """Evaluate ``node`` now if all its inputs are known constants."""
        if node.op_type not in _FOLDABLE:
            return False
        ins = [i for i in node.input if i]
        if node.op_type == "Shape":
            src = self.ref(ins[0])
            if src in self.shapes or ins[0] in self.consts:
                shp = self.consts[ins[0]].shape if ins[0] in self.consts else self.shapes[src]
                a = _attrs(node)
                start, end = a.get("start", 0), a.get("end", None)
                self.consts[node.output[0]] = np.array(shp[start:end], dtype=np.int64)
                return True
            return False
        if not all(i in self.consts for i in ins):
            return False
        if node.op_type == "Range" and any(
                np.issubdtype(self.consts[i].dtype, np.floating)
                and np.any(self.consts[i] != np.floor(self.consts[i])) for i in ins):
            # EZKL's "Range" arm converts the float delta with `as usize` (0.5 -> 0): it panics
            raise UnsupportedOpError("Range", "non-integer float inputs (EZKL panics)")
        from onnx.reference import ReferenceEvaluator

        g_in = [onnx.helper.make_tensor_value_info(i, onnx.helper.np_dtype_to_tensor_dtype(
            self.consts[i].dtype), list(self.consts[i].shape)) for i in ins]
        g_out = [onnx.helper.make_empty_tensor_value_info(o) for o in node.output]
        gm = onnx.helper.make_model(
            onnx.helper.make_graph([node], "fold", g_in, g_out),
            opset_imports=self.model.opset_import,
        )
        res = ReferenceEvaluator(gm).run(None, {i: self.consts[i] for i in ins})
        for o, v in zip(node.output, res):
            self.consts[o] = np.asarray(v)
        return True

    def lower(self) -> Graph:
        for node in self.model.graph.node:
            if self._fold(node):
                continue
            self._lower_node(node)
        outputs = [self.ref(o.name) for o in self.model.graph.output]
        for o in outputs:
            if o not in self.nodes:
                raise UnsupportedOpError("Constant output", "a model output is a constant")
        for name in [k for k, v in self.nodes.items() if v.op == "dead"]:
            del self.nodes[name]
        graph = Graph(self.nodes, self.input_names, outputs)
        _absorb_unit_reshapes(graph)
        return graph

    def _lower_node(self, node: onnx.NodeProto) -> None:
        """Dispatch one ONNX node to its family's registered lowering."""
        op = node.op_type
        ins = list(node.input)
        spec = ops.registry.lowering(op)
        if spec is None or spec.check_inputs:
            if any(i and i not in self.consts and self.ref(i) not in self.nodes for i in ins):
                raise UnsupportedOpError(op, "input not produced by a supported op")
        if spec is None:
            raise UnsupportedOpError(op)
        x = self.ref(ins[0]) if ins and ins[0] not in self.consts else None
        spec.fn(self, OnnxNode(node, op, _attrs(node), ins, node.output[0], x))


def _absorb_unit_reshapes(graph: Graph) -> None:
    """Reshapes that only add/drop unit axes and feed only matmuls disappear in tract.

    tract folds such axis ops into the einsum (EZKL's table shows ``EINSUM mkba,nk->mn``), so no
    EZKL node exists for them and no rescaling can happen there. Mark them as ``view``.
    """
    for node in list(graph.nodes.values()):
        if node.op != "reshape" or node.name in graph.outputs:
            continue
        src = graph.nodes[node.inputs[0]].shape
        if [d for d in src if d != 1] != [d for d in node.shape if d != 1]:
            continue
        cons = graph.consumers(node.name)
        if cons and all(c.op == "einsum" and c.inputs[0] == node.name for c in cons):
            node.op = "view"


def load_model(model: ModelLike) -> onnx.ModelProto:
    """The ModelProto of ``model``: parsed from a path, or the proto itself."""
    if isinstance(model, onnx.ModelProto):
        return model
    return onnx.load(str(model))


def load_graph(model: ModelLike, input_shapes: list[tuple[int, ...]]) -> Graph:
    """Lower ``model`` (a path or a loaded ModelProto) for the given (concrete) input shapes."""
    proto = load_model(model)
    try:
        proto = shape_inference.infer_shapes(proto)
    except Exception:  # shape inference is advisory: we compute shapes ourselves
        pass
    return Lowerer(proto, [tuple(int(d) for d in s) for s in input_shapes]).lower()


def model_input_shapes(model: ModelLike) -> list[tuple[int | None, ...]]:
    """The declared input shapes (``None`` for symbolic dims) of a path or a ModelProto."""
    from vcompute.model import graph_inputs

    return [tuple(d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim)
            for vi in graph_inputs(load_model(model))]
