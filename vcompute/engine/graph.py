"""Load an ONNX model and lower it to the op list EZKL actually computes.

EZKL does not run the ONNX graph as written: it loads it through tract, which declutters it
(``Gemm`` becomes an einsum plus an ``Add``, ``Div`` by a constant becomes ``Mul`` by its f32
reciprocal, ``x * x`` becomes ``Square``, ``GlobalAveragePool`` becomes a sum and a multiply by
``1/n``, reshapes that only drop unit axes in front of a matmul are absorbed into the einsum...),
and then maps tract's ops onto its own (``src/graph/utilities.rs::new_op_from_onnx``). This
module reproduces that lowering for the ops the engine supports, so that the scale bookkeeping in
:mod:`vcompute.engine.quantize` sees the same op sequence EZKL sees. See docs/ezkl-semantics.md.

Anything else raises :class:`UnsupportedOpError` naming the ONNX op: the engine never guesses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from vcompute.errors import UsageError

# ONNX element-wise ops that EZKL evaluates as a lookup table (src/circuit/ops/lookup.rs).
LOOKUP_OPS = {
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Exp": "exp",
    "Log": "ln",
    "Sin": "sin",
    "Cos": "cos",
    "Tan": "tan",
    "Asin": "asin",
    "Acos": "acos",
    "Atan": "atan",
    "Sinh": "sinh",
    "Cosh": "cosh",
    "Asinh": "asinh",
    "Acosh": "acosh",
    "Atanh": "atanh",
    "Erf": "erf",
    "HardSwish": "hardswish",
}

# ONNX ops evaluated only to fold constants (shape arithmetic and the like).
_FOLDABLE = {
    "Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Reshape",
    "Slice", "Mul", "Add", "Sub", "Div", "Transpose", "Identity", "ConstantOfShape", "Range",
    "Equal", "Where", "Expand", "Neg", "Sqrt", "Reciprocal", "Floor", "Ceil", "Flatten",
}


class UnsupportedOpError(UsageError):
    """The model uses an op (or an op variant) the fixed-point engine cannot run exactly."""

    def __init__(self, op_type: str, detail: str = "") -> None:
        self.op_type = op_type
        msg = f"unsupported op: {op_type}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


@dataclass
class Node:
    """One op of the lowered graph, in EZKL's vocabulary.

    ``op`` is one of: ``input``, ``const``, ``einsum``, ``conv``, ``add``, ``sub``, ``mult``,
    ``pow``, ``identity`` (scale bump only), ``view`` (layout change tract absorbs: no node),
    ``relu``, ``leaky``, ``lookup``, ``maxpool``, ``sumpool``, ``sum``, ``reshape``,
    ``transpose``, ``concat``, ``softmax``.
    """

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    onnx_op: str = ""
    shape: tuple[int, ...] = ()


@dataclass
class Graph:
    nodes: dict[str, Node]  # in topological order (dict keeps insertion order)
    inputs: list[str]
    outputs: list[str]

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes.values() if name in n.inputs]


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Lowerer:
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
        self.input_names = []
        for i, (vi, shp) in enumerate(zip(real_inputs, input_shapes)):
            elem = vi.type.tensor_type.elem_type
            is_float = elem in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                                onnx.TensorProto.FLOAT16)
            self.shapes[vi.name] = tuple(shp)
            self.nodes[vi.name] = Node(vi.name, "input", [], {"index": i, "float": is_float},
                                       "Input", tuple(shp))
            self.input_names.append(vi.name)

    # -- helpers -------------------------------------------------------------------------------
    def _new(self, op: str, inputs: list[str], shape, onnx_op: str, name: str | None = None,
             **attrs) -> str:
        self.counter += 1
        name = name or f"__{op}_{self.counter}"
        if name in self.nodes:
            name = f"{name}__{self.counter}"
        self.nodes[name] = Node(name, op, inputs, attrs, onnx_op, tuple(int(s) for s in shape))
        self.shapes[name] = tuple(int(s) for s in shape)
        return name

    def _const(self, value: np.ndarray, hint: str) -> str:
        self.counter += 1
        name = f"__const_{hint}_{self.counter}"
        self.nodes[name] = Node(name, "const", [], {"value": np.asarray(value)}, "Const",
                                tuple(np.asarray(value).shape))
        self.shapes[name] = tuple(np.asarray(value).shape)
        return name

    def _ref(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def _is_const(self, name: str) -> bool:
        return name in self.consts

    def _in(self, name: str, hint: str = "c") -> str:
        """Reference to a value: a runtime node, or the const node of an ONNX initializer."""
        if name in self.consts:
            if name not in self.used_consts:  # one EZKL const node per ONNX initializer
                self.used_consts[name] = self._const(self.consts[name], hint)
            return self.used_consts[name]
        return self._ref(name)

    def _fold(self, node: onnx.NodeProto) -> bool:
        """Evaluate ``node`` now if all its inputs are known constants."""
        if node.op_type not in _FOLDABLE:
            return False
        ins = [i for i in node.input if i]
        if node.op_type == "Shape":
            src = self._ref(ins[0])
            if src in self.shapes or ins[0] in self.consts:
                shp = self.consts[ins[0]].shape if ins[0] in self.consts else self.shapes[src]
                a = _attrs(node)
                start, end = a.get("start", 0), a.get("end", None)
                self.consts[node.output[0]] = np.array(shp[start:end], dtype=np.int64)
                return True
            return False
        if not all(i in self.consts for i in ins):
            return False
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

    # -- lowering ------------------------------------------------------------------------------
    def lower(self) -> Graph:
        for node in self.model.graph.node:
            if self._fold(node):
                continue
            self._lower_node(node)
        outputs = [self._ref(o.name) for o in self.model.graph.output]
        for o in outputs:
            if o not in self.nodes:
                raise UnsupportedOpError("Constant output", "a model output is a constant")
        for name in [k for k, v in self.nodes.items() if v.op == "dead"]:
            del self.nodes[name]
        graph = Graph(self.nodes, self.input_names, outputs)
        _absorb_unit_reshapes(graph)
        return graph

    def _mul_const(self, x: str, c: np.ndarray, out: str, onnx_op: str) -> None:
        """``x * c`` with ``c`` a constant, as EZKL maps it (utilities.rs, "Mul")."""
        c32 = np.asarray(c, dtype=np.float32)
        shape = np.broadcast_shapes(self.shapes[x], c32.shape)
        if c32.size == 1 and float(c32.reshape(-1)[0]) < 1.0:
            with np.errstate(divide="ignore", invalid="ignore"):
                recip = np.float32(1.0) / c32.reshape(-1)[0]
                lg = np.log2(recip)
            if np.isfinite(lg) and float(lg) == math.floor(float(lg)):
                self._new("identity", [x], shape, onnx_op, name=out, log2=int(lg))
                return
        self._new("mult", [x, self._const(c32, "mul")], shape, onnx_op, name=out)

    def _lower_node(self, node: onnx.NodeProto) -> None:
        op = node.op_type
        a = _attrs(node)
        ins = list(node.input)
        out = node.output[0]

        if op in ("Identity", "Dropout"):
            self.alias[out] = self._ref(ins[0])
            return
        if op == "Cast":
            to = a.get("to")
            if to in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
                self.alias[out] = self._ref(ins[0])
                return
            raise UnsupportedOpError("Cast", "cast to a non-float type")
        if any(i and i not in self.consts and self._ref(i) not in self.nodes for i in ins):
            raise UnsupportedOpError(op, "input not produced by a supported op")

        x = self._ref(ins[0]) if ins and ins[0] not in self.consts else None

        if op == "Relu":
            self._new("relu", [x], self.shapes[x], op, name=out)
        elif op in ("Abs", "Neg"):
            self._new(op.lower(), [x], self.shapes[x], op, name=out)
        elif op == "Clip":
            # tract: Max(x, lo) then Min(., hi); Max with a 0 constant is EZKL's ReLU
            lo = ins[1] if len(ins) > 1 and ins[1] else None
            hi = ins[2] if len(ins) > 2 and ins[2] else None
            if "min" in a or "max" in a:  # opset < 11 attributes
                raise UnsupportedOpError("Clip", "attribute form (opset < 11)")
            if any(v is not None and v not in self.consts for v in (lo, hi)):
                raise UnsupportedOpError("Clip", "non-constant bounds")
            cur = x
            if lo is not None:
                tmp = out if hi is None else f"__clip_lo_{self.counter}"
                self._max_min("Max", cur, self.consts[lo], tmp)
                cur = tmp
            if hi is not None:
                self._max_min("Min", cur, self.consts[hi], out)
            if lo is None and hi is None:
                self.alias[out] = x
        elif op in ("Max", "Min"):
            if len(ins) != 2:
                raise UnsupportedOpError(op, "only two inputs")
            c0, c1 = ins[0] in self.consts, ins[1] in self.consts
            if c0 or c1:
                self._max_min(op, self._ref(ins[1] if c0 else ins[0]),
                              self.consts[ins[0] if c0 else ins[1]], out)
            else:
                a_, b_ = self._ref(ins[0]), self._ref(ins[1])
                self._new(op.lower(), [a_, b_],
                          np.broadcast_shapes(self.shapes[a_], self.shapes[b_]), op, name=out)
        elif op == "LeakyRelu":
            self._new("leaky", [x], self.shapes[x], op, name=out,
                      alpha=float(np.float32(a.get("alpha", 0.01))))
        elif op in LOOKUP_OPS:
            self._new("lookup", [x], self.shapes[x], op, name=out, fn=LOOKUP_OPS[op])
        elif op == "Gemm":
            if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise UnsupportedOpError("Gemm", "transA, alpha != 1 or beta != 1")
            if x is None:
                raise UnsupportedOpError("Gemm", "constant first input")
            if ins[1] in self.consts:
                w = self.consts[ins[1]]
                b = self._const(w.T if a.get("transB", 0) else w, "gemm_w")
            else:
                b = self._ref(ins[1])
                if a.get("transB", 0):
                    bs = self.shapes[b]
                    b = self._new("transpose", [b], (bs[1], bs[0]), "Transpose", perm=(1, 0))
            kdim = self.shapes[b][0]
            m = int(np.prod(self.shapes[x])) // kdim
            mm_shape = (m, self.shapes[b][1])
            if len(ins) > 2 and ins[2]:
                mm = self._new("einsum", [x, b], mm_shape, "Gemm")
                c = self._in(ins[2], "gemm_b")
                self._new("add", [mm, c], np.broadcast_shapes(mm_shape, self.shapes[c]), "Gemm",
                          name=out)
            else:
                self._new("einsum", [x, b], mm_shape, "Gemm", name=out)
        elif op == "MatMul":
            if x is None:
                raise UnsupportedOpError("MatMul", "constant first input")
            b = self._in(ins[1], "matmul_w")
            sa, sb = self.shapes[x], self.shapes[b]
            if len(sa) < 2 or len(sb) < 2:
                raise UnsupportedOpError("MatMul", "1-D operand")
            batch = np.broadcast_shapes(sa[:-2], sb[:-2])
            self._new("einsum", [x, b], (*batch, sa[-2], sb[-1]), op, name=out)
        elif op == "Conv":
            self._lower_conv(node, a, ins, x, out)
        elif op in ("Add", "Sub", "Mul", "Div"):
            self._lower_arith(op, ins, out)
        elif op == "Sqrt":
            self._new("sqrt", [x], self.shapes[x], op, name=out)
        elif op == "Reciprocal":
            self._recip(x, out)
        elif op == "ReduceMax":
            shp = self.shapes[x]
            axes = self._reduce_axes(a, ins, len(shp))
            kshape = tuple(1 if i in axes else d for i, d in enumerate(shp))
            if a.get("keepdims", 1):
                self._new("reducemax", [x], kshape, op, name=out, axes=tuple(axes))
            else:
                cur = self._new("reducemax", [x], kshape, op, axes=tuple(axes))
                self._new("reshape", [cur], tuple(d for i, d in enumerate(shp) if i not in axes),
                          op, name=out)
        elif op == "Slice":
            self._lower_slice(ins, x, out)
        elif op == "LayerNormalization":
            self._lower_layernorm(a, ins, x, out)
        elif op == "Pow":
            if ins[1] not in self.consts or self.consts[ins[1]].size != 1:
                raise UnsupportedOpError("Pow", "exponent must be a constant scalar")
            e = float(np.float32(self.consts[ins[1]].reshape(-1)[0]))
            if e == 0.5:  # tract: declutter_pow
                self._new("sqrt", [x], self.shapes[x], op, name=out)
            elif e == math.floor(e) and e >= 0:
                self._new("pow", [x], self.shapes[x], op, name=out, n=int(e))
            else:
                self._new("lookup", [x], self.shapes[x], op, name=out, fn="pow", a=e)
        elif op in ("MaxPool", "AveragePool"):
            if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1])):
                raise UnsupportedOpError(op, "ceil_mode or dilations")
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise UnsupportedOpError(op, "auto_pad")
            k = list(a["kernel_shape"])
            if len(k) != 2:
                raise UnsupportedOpError(op, "only 2-D pooling")
            s = list(a.get("strides", [1, 1]))
            p = list(a.get("pads", [0, 0, 0, 0]))
            pads = ((p[0], p[2]), (p[1], p[3]))
            n_, c_, h, w_ = self.shapes[x]
            oh = (h + p[0] + p[2] - k[0]) // s[0] + 1
            ow = (w_ + p[1] + p[3] - k[1]) // s[1] + 1
            kind = "maxpool" if op == "MaxPool" else "sumpool"
            self._new(kind, [x], (n_, c_, oh, ow), op, name=out, kernel=tuple(k),
                      stride=tuple(s), pads=pads, normalized=True)
        elif op in ("GlobalAveragePool", "ReduceMean", "ReduceSum"):
            shp = self.shapes[x]
            if op == "GlobalAveragePool":
                axes, keep = list(range(2, len(shp))), 1
            else:
                axes = self._reduce_axes(a, ins, len(shp))
                keep = a.get("keepdims", 1)
            kshape = tuple(1 if i in axes else d for i, d in enumerate(shp))
            src = self.nodes.get(x)
            if (op == "ReduceMean" and src is not None and src.op == "pow"
                    and src.attrs["n"] == 2 and self.onnx_uses.get(x, 0) == 1):
                # tract: Square -> Sum -> Mul(1/n) is Reduce<MeanOfSquares>
                cur = self._new("meanofsquares", [src.inputs[0]], kshape, op, axes=tuple(axes))
                src.op = "dead"
            else:
                cur = self._new("sum", [x], kshape, op, axes=tuple(axes))
            if op != "ReduceSum" and self.nodes[cur].op == "sum":
                n = int(np.prod([shp[i] for i in axes]))
                tmp = f"__mean_{self.counter}"
                recip = np.float32(1.0) / np.float32(n)
                self._mul_const(cur, np.array(recip, dtype=np.float32), tmp, op)
                cur = tmp
            if keep:
                self.alias[out] = cur
            else:
                oshape = tuple(d for i, d in enumerate(shp) if i not in axes)
                self._new("reshape", [cur], oshape, op, name=out)
        elif op in ("Flatten", "Reshape", "Squeeze", "Unsqueeze"):
            shp = self.shapes[x]
            if op == "Flatten":
                ax = a.get("axis", 1) % (len(shp) or 1)
                oshape = (int(np.prod(shp[:ax])), int(np.prod(shp[ax:])))
            elif op == "Reshape":
                tgt = [int(v) for v in self.consts[ins[1]].reshape(-1)]
                tgt = [shp[i] if v == 0 and not a.get("allowzero", 0) else v
                       for i, v in enumerate(tgt)]
                if -1 in tgt:
                    known = int(np.prod([v for v in tgt if v != -1]))
                    tgt[tgt.index(-1)] = int(np.prod(shp)) // known
                oshape = tuple(tgt)
            elif op == "Squeeze":
                axes = a.get("axes")
                if axes is None and len(ins) > 1 and ins[1]:
                    axes = [int(v) for v in self.consts[ins[1]].reshape(-1)]
                if axes is None:
                    axes = [i for i, d in enumerate(shp) if d == 1]
                axes = [int(v) % len(shp) for v in axes]
                oshape = tuple(d for i, d in enumerate(shp) if i not in axes)
            else:
                axes = a.get("axes")
                if axes is None:
                    axes = [int(v) for v in self.consts[ins[1]].reshape(-1)]
                r = len(shp) + len(axes)
                axes = sorted(int(v) % r for v in axes)
                it = iter(shp)
                oshape = tuple(1 if i in axes else next(it) for i in range(r))
            if oshape == tuple(shp):
                self.alias[out] = x
            else:
                self._new("reshape", [x], oshape, op, name=out)
        elif op == "Transpose":
            shp = self.shapes[x]
            perm = tuple(a.get("perm", list(range(len(shp)))[::-1]))
            self._new("transpose", [x], tuple(shp[p] for p in perm), op, name=out, perm=perm)
        elif op == "Concat":
            parts = [self._in(i, "concat") for i in ins]
            ax = a["axis"] % len(self.shapes[parts[0]])
            shp = list(self.shapes[parts[0]])
            shp[ax] = sum(self.shapes[p][ax] for p in parts)
            self._new("concat", parts, shp, op, name=out, axis=ax)
        elif op == "Softmax":
            shp = self.shapes[x]
            ax = a.get("axis", -1) % len(shp)
            self._new("softmax", [x], shp, op, name=out, axis=ax)
        elif op == "BatchNormalization":
            self._lower_bn(a, ins, x, out)
        else:
            raise UnsupportedOpError(op)

    def _reduce_axes(self, a: dict[str, Any], ins: list[str], rank: int) -> list[int]:
        """A reduction's axes, sorted and non-negative: the ``axes`` attribute (opset < 18) or the
        constant second input (opset 18), all axes when neither is given."""
        axes = a.get("axes")
        if axes is None and len(ins) > 1 and ins[1]:
            axes = [int(v) for v in self.consts[ins[1]].reshape(-1)]
        if axes is None:
            axes = list(range(rank))
        return sorted(int(ax) % rank for ax in axes)

    def _recip(self, x: str, out: str) -> None:
        """``1/x``: EZKL's ``RECIP``, or ``RSQRT`` when ``x`` is a single-use ``Sqrt``
        (tract's ``declutter_recip``)."""
        src = self.nodes.get(x)
        if src is not None and src.op == "sqrt" and self.onnx_uses.get(x, 0) == 1:
            src.op = "dead"
            self._new("rsqrt", [src.inputs[0]], self.shapes[x], "Reciprocal", name=out)
        else:
            self._new("recip", [x], self.shapes[x], "Reciprocal", name=out)

    def _lower_slice(self, ins, x, out) -> None:
        if not all(i in self.consts for i in ins[1:] if i):
            raise UnsupportedOpError("Slice", "non-constant starts/ends")
        shp = list(self.shapes[x])
        starts = [int(v) for v in self.consts[ins[1]].reshape(-1)]
        ends = [int(v) for v in self.consts[ins[2]].reshape(-1)]
        axes = ([int(v) for v in self.consts[ins[3]].reshape(-1)]
                if len(ins) > 3 and ins[3] else list(range(len(starts))))
        steps = ([int(v) for v in self.consts[ins[4]].reshape(-1)]
                 if len(ins) > 4 and ins[4] else [1] * len(starts))
        if any(st != 1 for st in steps):
            raise UnsupportedOpError("Slice", "steps != 1")
        cur = x
        for k, (st, en, ax) in enumerate(zip(starts, ends, axes)):
            ax %= len(shp)
            d = shp[ax]
            st = max(0, min(d, st + d if st < 0 else st))
            en = max(0, min(d, en + d if en < 0 else en))
            if st == 0 and en == d:
                continue
            shp[ax] = en - st
            cur = self._new("slice", [cur], tuple(shp), "Slice", axis=ax, start=st, end=en)
        self.alias[out] = cur

    def _lower_layernorm(self, a, ins, x, out) -> None:
        """LayerNormalization as tract expands it (onnx/src/ops/nn/layer_norm.rs), after
        decluttering: mean, d = x - mean, MeanOfSquares(d), + eps, Rsqrt, d * rsqrt,
        * scale (dropped if all ones), + bias (dropped if all zeros)."""
        if not all(i in self.consts for i in ins[1:] if i):
            raise UnsupportedOpError("LayerNormalization", "non-constant scale/bias")
        shp = self.shapes[x]
        axis = a.get("axis", -1) % len(shp)
        axes = tuple(range(axis, len(shp)))
        kshape = tuple(1 if i in axes else d for i, d in enumerate(shp))
        n = int(np.prod([shp[i] for i in axes]))
        ssum = self._new("sum", [x], kshape, "LayerNormalization", axes=axes)
        mean = f"__ln_mean_{self.counter}"
        self._mul_const(ssum, np.float32(1.0) / np.float32(n), mean, "LayerNormalization")
        d = self._new("sub", [x, mean], shp, "LayerNormalization")
        var = self._new("meanofsquares", [d], kshape, "LayerNormalization", axes=axes)
        eps = self._const(np.array(np.float32(a.get("epsilon", 1e-5))), "ln_eps")
        ve = self._new("add", [var, eps], kshape, "LayerNormalization")
        inv = self._new("rsqrt", [ve], kshape, "LayerNormalization")
        cur = self._new("mult", [d, inv], shp, "LayerNormalization")
        gamma = self.consts[ins[1]].astype(np.float32)
        if not np.all(gamma == 1.0):
            tmp = f"__ln_scaled_{self.counter}"
            self._mul_const(cur, gamma, tmp, "LayerNormalization")
            cur = tmp
        if len(ins) > 2 and ins[2]:
            beta = self.consts[ins[2]].astype(np.float32)
            if not np.all(beta == 0.0):
                cur = self._new("add", [cur, self._const(beta, "ln_beta")], shp,
                                "LayerNormalization")
        self.alias[out] = cur

    def _max_min(self, op: str, x: str, c: np.ndarray, out: str) -> None:
        """``Max``/``Min`` of ``x`` and a constant (utilities.rs "Max": Max with a single 0 is a
        ReLU, i.e. ``LeakyReLU(slope=0)``)."""
        c32 = np.asarray(c, dtype=np.float32)
        if op == "Max" and c32.size == 1 and float(c32.reshape(-1)[0]) == 0.0:
            self._new("relu", [x], self.shapes[x], "Clip", name=out)
            return
        cn = self._const(c32, op.lower())
        self._new(op.lower(), [x, cn], np.broadcast_shapes(self.shapes[x], c32.shape), op,
                  name=out)

    def _lower_conv(self, node, a, ins, x, out) -> None:
        if ins[1] not in self.consts:
            raise UnsupportedOpError("Conv", "kernel must be a constant")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise UnsupportedOpError("Conv", "non-unit dilations (EZKL rejects them)")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise UnsupportedOpError("Conv", "auto_pad")
        w = self.consts[ins[1]]
        if w.ndim != 4:
            raise UnsupportedOpError("Conv", "only 2-D convolution")
        if len(ins) > 2 and ins[2] and ins[2] not in self.consts:
            raise UnsupportedOpError("Conv", "bias must be a constant")
        s = list(a.get("strides", [1, 1]))
        p = list(a.get("pads", [0, 0, 0, 0]))
        g = a.get("group", 1)
        n_, c_, h, w_ = self.shapes[x]
        oh = (h + p[0] + p[2] - w.shape[2]) // s[0] + 1
        ow = (w_ + p[1] + p[3] - w.shape[3]) // s[1] + 1
        inputs = [x, self._const(w, "conv_w")]
        if len(ins) > 2 and ins[2]:
            inputs.append(self._const(self.consts[ins[2]], "conv_b"))
        self._new("conv", inputs, (n_, w.shape[0], oh, ow), "Conv", name=out,
                  stride=tuple(s), pads=((p[0], p[2]), (p[1], p[3])), group=g)

    def _fold_into_conv(self, x: str, kind: str, operand: np.ndarray, out: str,
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
        op = np.asarray(operand, dtype=np.float32)
        if op.ndim > 4:
            return False
        op4 = op.reshape((1,) * (4 - op.ndim) + op.shape)
        if op4.shape != (1, c, 1, 1):
            return False
        vec = op4.reshape(c)
        w_node = self.nodes[node.inputs[1]]
        if len(node.inputs) < 3:
            node.inputs.append(self._const(np.zeros(c, dtype=np.float32), "conv_b"))
        b_node = self.nodes[node.inputs[2]]
        w = np.asarray(w_node.attrs["value"], dtype=np.float32)
        b = np.asarray(b_node.attrs["value"], dtype=np.float32).reshape(c)
        if kind == "Mul":
            w = w * vec.reshape(c, 1, 1, 1)
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

    def _lower_bn(self, a, ins, x, out) -> None:
        """Standalone BatchNormalization, as tract expands it: ``x * slope + inter`` (f32)."""
        if not all(i in self.consts for i in ins[1:5]):
            raise UnsupportedOpError("BatchNormalization", "non-constant parameters")
        eps = np.float32(a.get("epsilon", 1e-5))
        scale, beta, mean, var = (self.consts[i].astype(np.float32) for i in ins[1:5])
        den = np.sqrt(var + eps)
        slope = scale / den
        inter = beta - (mean * scale) / den
        shp = self.shapes[x]
        cshape = [1] * len(shp)
        cshape[1] = shp[1]
        tmp = f"__bn_mul_{self.counter}"
        # tract wires Mul(slope) then Add(inter); a preceding Conv absorbs both.
        if self._fold_into_conv(x, "Mul", slope.reshape(cshape), tmp):
            self.onnx_uses[x] = 1  # the Add below
            self._fold_into_conv(x, "Add", inter.reshape(cshape), out)
            return
        self._new("mult", [x, self._const(slope.reshape(cshape), "bn_slope")], shp,
                  "BatchNormalization", name=tmp)
        self._new("add", [tmp, self._const(inter.reshape(cshape), "bn_inter")], shp,
                  "BatchNormalization", name=out)

    def _lower_arith(self, op, ins, out) -> None:
        c0, c1 = ins[0] in self.consts, ins[1] in self.consts
        if c0 and c1:
            raise UnsupportedOpError(op, "both inputs constant")
        if op == "Div":
            if c0:
                raise UnsupportedOpError("Div", "constant divided by a tensor")
            if not c1:
                # tract: x / y -> x * recip(y); recip(sqrt(z)) -> rsqrt(z)
                r = f"__recip_{self.counter}"
                self._recip(self._ref(ins[1]), r)
                a_ = self._ref(ins[0])
                self._new("mult", [a_, r], np.broadcast_shapes(self.shapes[a_], self.shapes[r]),
                          "Div", name=out)
                return
            recip = np.float32(1.0) / self.consts[ins[1]].astype(np.float32)
            self._mul_const(self._ref(ins[0]), recip, out, "Div")
            return
        if (c0 or c1) and op in ("Add", "Sub", "Mul"):
            xv = self._ref(ins[1] if c0 else ins[0])
            if self._fold_into_conv(xv, op, self.consts[ins[0] if c0 else ins[1]], out,
                                    conv_on_left=c1):
                return
        if op == "Mul":
            if c0 or c1:
                xv = self._ref(ins[1] if c0 else ins[0])
                self._mul_const(xv, self.consts[ins[0] if c0 else ins[1]], out, "Mul")
                return
            a_, b_ = self._ref(ins[0]), self._ref(ins[1])
            shp = np.broadcast_shapes(self.shapes[a_], self.shapes[b_])
            if a_ == b_:
                self._new("pow", [a_], shp, "Mul", name=out, n=2)
            else:
                self._new("mult", [a_, b_], shp, "Mul", name=out)
            return
        a_ = self._in(ins[0], op.lower())
        b_ = self._in(ins[1], op.lower())
        shp = np.broadcast_shapes(self.shapes[a_], self.shapes[b_])
        self._new(op.lower(), [a_, b_], shp, op, name=out)


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


def load_graph(model_path: Path | str, input_shapes: list[tuple[int, ...]]) -> Graph:
    """Load ``model_path`` and lower it for the given (concrete) input shapes."""
    model = onnx.load(str(model_path))
    try:
        model = shape_inference.infer_shapes(model)
    except Exception:  # shape inference is advisory: we compute shapes ourselves
        pass
    return _Lowerer(model, [tuple(int(d) for d in s) for s in input_shapes]).lower()


def model_input_shapes(model_path: Path | str) -> list[tuple[int | None, ...]]:
    """The declared input shapes (``None`` for symbolic dims)."""
    model = onnx.load(str(model_path))
    inits = {t.name for t in model.graph.initializer}
    shapes = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        shapes.append(tuple(d.dim_value if d.HasField("dim_value") else None for d in dims))
    return shapes
