"""Build the engine's per-op test cases: tiny ONNX models and the witness EZKL 23.0.5 computes.

For every op family of issue #11 this script builds small ONNX graphs with ``onnx.helper`` (odd
shapes, several attribute settings), runs EZKL once on each (``gen_settings`` -> fixed scales or
``calibrate_settings`` -> ``compile_circuit`` -> ``gen_witness``) and stores the case as

    tests/engine/cases/<case>.onnx
    tests/engine/cases/<case>.json   input, run_args, output scales, witness output integers
                                     (decimal strings) -- or ``"status": "refused"`` and EZKL's
                                     error when EZKL cannot build the witness

``tests/engine/test_ops.py`` runs the engine on every stored case, without EZKL. Existing cases
are kept unless ``--force``; ``--only PREFIX...`` limits the run to cases whose name starts with
one of the prefixes; ``--list`` prints the case names. Every EZKL run happens in a child process
(EZKL panics abort it), one at a time, at ``nice 10``.

    python scripts/make_op_cases.py [--only Gather Cast] [--force] [--out DIR]

The expected EZKL behaviour of each op is documented in docs/ezkl-semantics.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "engine" / "cases"

F, I64, BOOL, U32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL, TensorProto.UINT32
N = helper.make_node


@dataclass
class Case:
    name: str
    family: str
    nodes: list
    inputs: list  # (name, elem type, shape)
    outputs: list  # (name, elem type, shape or None)
    xs: list  # input arrays
    inits: dict = field(default_factory=dict)
    scale: int | None = 7  # None: calibrate_settings("resources")
    mult: int = 1
    args: dict = field(default_factory=dict)  # extra PyRunArgs fields
    opsets: dict = field(default_factory=lambda: {"": 17})
    #: what the engine must do when EZKL succeeds but its witness is out of the engine's reach
    #: (e.g. ln(0) = i128::MIN): "refuse"
    engine: str | None = None
    note: str = ""
    model: onnx.ModelProto | None = None  # a ready model (composites) instead of nodes

    def build(self) -> onnx.ModelProto:
        if self.model is not None:
            return self.model
        g = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info(n, t, s) for n, t, s in self.inputs],
            [helper.make_tensor_value_info(n, t, s) for n, t, s in self.outputs],
            initializer=[numpy_helper.from_array(np.asarray(v), name=k)
                         for k, v in self.inits.items()],
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid(d, v)
                                                for d, v in self.opsets.items()])
        m.ir_version = 8
        return m


CASES: list[Case] = []


def case(name: str, family: str, nodes, inputs, outputs, xs, inits=None, **kw) -> None:
    if any(c.name == name for c in CASES):
        raise ValueError(f"case {name} defined twice")
    CASES.append(Case(name, family, nodes, inputs, outputs, xs, inits or {}, **kw))


def unary(name: str, family: str, op: str, x: np.ndarray, out_shape=None, out_type=F, in_type=F,
          inits=None, extra_ins=(), **kw) -> None:
    """One-node model ``y = op(x, *extra_ins)`` (attributes in ``attrs``)."""
    attrs = kw.pop("attrs", {})
    case(name, family, [N(op, ["x", *extra_ins], ["y"], **attrs)],
         [("x", in_type, list(x.shape))], [("y", out_type, out_shape)], [x], inits, **kw)


rng = np.random.default_rng(11)


def rnd(*shape, lo=-3.0, hi=3.0, dec=3) -> np.ndarray:
    return np.round(rng.uniform(lo, hi, shape), dec).astype(np.float32)


# ------------------------------------------------------------------------------------------
# Group 1: tree ensembles / classic ML
# ------------------------------------------------------------------------------------------
X35 = rnd(3, 5)
X35[0, 1], X35[1, 2], X35[2, 0], X35[2, 4] = -1.5, 2.5, -0.25, 2.5  # halves and a tie


def _gather() -> None:
    fam = "Gather"
    for nm, idx, ax in [("ax0", [2, 0, 2, 1], 0), ("ax1_2d", [[0, 4], [1, 1], [3, 2]], 1),
                        ("scalar", 2, 0), ("single", [3], 1), ("neg", [-1, -2, 0], 1)]:
        idx = np.array(idx, np.int64)
        unary(f"Gather_const_{nm}", fam, "Gather", X35, None, inits={"i": idx},
              extra_ins=["i"], attrs={"axis": ax})
    case("Gather_dyn", fam, [N("Gather", ["x", "i"], ["y"], axis=1)],
         [("x", F, [3, 5]), ("i", I64, [4])], [("y", F, None)],
         [X35, np.array([4, 0, 1, 1], np.int64)])
    case("Gather_dyn_2d_ax0", fam, [N("Gather", ["x", "i"], ["y"], axis=0)],
         [("x", F, [3, 5]), ("i", I64, [2, 2])], [("y", F, None)],
         [X35, np.array([[2, 0], [1, 2]], np.int64)], scale=9)
    case("Gather_dyn_from_argmax", fam,
         [N("ArgMax", ["x"], ["a"], axis=1, keepdims=0), N("Gather", ["x", "a"], ["y"], axis=1)],
         [("x", F, [3, 5])], [("y", F, None)], [X35])
    case("Gather_idx_from_cast", fam,
         [N("Cast", ["i"], ["ii"], to=I64), N("Gather", ["x", "ii"], ["y"], axis=1)],
         [("x", F, [3, 5]), ("i", F, [1, 3])], [("y", F, None)],
         [X35, np.array([[0.4, 1.7, 2.2]], np.float32)])

    fam = "GatherElements"
    ge = np.array([[1, 0, 3, 4, 2], [0, 2, 1, 0, 4]], np.int64)
    unary("GatherElements_const", fam, "GatherElements", X35, None, inits={"i": ge},
          extra_ins=["i"], attrs={"axis": 1})
    unary("GatherElements_const_ax0", fam, "GatherElements", X35, None,
          inits={"i": np.array([[2, 0, 1, 2, 1]], np.int64)}, extra_ins=["i"], attrs={"axis": 0})
    unary("GatherElements_negidx", fam, "GatherElements", X35, None,
          inits={"i": np.array([[-1, 0], [-2, 1], [3, -4]], np.int64)}, extra_ins=["i"],
          attrs={"axis": 1})
    case("GatherElements_dyn", fam, [N("GatherElements", ["x", "i"], ["y"], axis=1)],
         [("x", F, [3, 5]), ("i", I64, [2, 5])], [("y", F, None)], [X35, ge], scale=10)

    fam = "GatherND"
    gn = np.array([[0, 1], [2, 4], [1, 0]], np.int64)
    unary("GatherND_const", fam, "GatherND", X35, None, inits={"i": gn}, extra_ins=["i"])
    unary("GatherND_const_rows", fam, "GatherND", X35, None,
          inits={"i": np.array([[2], [0]], np.int64)}, extra_ins=["i"])
    case("GatherND_dyn", fam, [N("GatherND", ["x", "i"], ["y"])],
         [("x", F, [3, 5]), ("i", I64, [3, 2])], [("y", F, None)], [X35, gn])

    fam = "ScatterElements"
    si = np.array([[1, 0, 2, 2, 0]], np.int64)
    upd = np.array([[0.3, -0.7, 1.1, 2.05, -3.0]], np.float32)
    unary("ScatterElements_const_upd_const", fam, "ScatterElements", X35, None,
          inits={"i": si, "u": upd}, extra_ins=["i", "u"], attrs={"axis": 0})
    case("ScatterElements_const_idx", fam, [N("ScatterElements", ["x", "i", "u"], ["y"], axis=0)],
         [("x", F, [3, 5]), ("u", F, [1, 5])], [("y", F, None)], [X35, upd], {"i": si})
    case("ScatterElements_dyn_ax1", fam,
         [N("ScatterElements", ["x", "i", "u"], ["y"], axis=1)],
         [("x", F, [3, 5]), ("i", I64, [3, 2]), ("u", F, [3, 2])], [("y", F, None)],
         [X35, np.array([[4, 0], [1, 1], [2, 3]], np.int64), rnd(3, 2)])
    case("ScatterElements_reduction_add", fam,
         [N("ScatterElements", ["x", "i", "u"], ["y"], axis=0, reduction="add")],
         [("x", F, [3, 5]), ("u", F, [1, 5])], [("y", F, None)], [X35, upd], {"i": si})

    fam = "ScatterND"
    sn = np.array([[2], [0]], np.int64)
    updn = rnd(2, 5)
    case("ScatterND_const_idx", fam, [N("ScatterND", ["x", "i", "u"], ["y"])],
         [("x", F, [3, 5]), ("u", F, [2, 5])], [("y", F, None)], [X35, updn], {"i": sn})
    case("ScatterND_dyn_elems", fam, [N("ScatterND", ["x", "i", "u"], ["y"])],
         [("x", F, [3, 5]), ("i", I64, [3, 2]), ("u", F, [3])], [("y", F, None)],
         [X35, np.array([[0, 4], [2, 2], [1, 0]], np.int64), rnd(3)], scale=9)


XC = np.array([[-2.5, -1.0, -0.99, -0.5, -0.01, 0.0, 0.3],
               [0.01, 0.5, 0.99, 1.0, 1.5, 3.75, -3.3]], np.float32)


def _cast_compare_where_logic() -> None:
    fam = "Cast"
    unary("Cast_int64", fam, "Cast", XC, None, I64, attrs={"to": I64})
    unary("Cast_bool", fam, "Cast", XC, None, BOOL, attrs={"to": BOOL})
    unary("Cast_int32_s10", fam, "Cast", XC, None, TensorProto.INT32,
          attrs={"to": TensorProto.INT32}, scale=10)
    case("Cast_int_float", fam, [N("Cast", ["x"], ["t"], to=I64), N("Cast", ["t"], ["y"], to=F)],
         [("x", F, [2, 7])], [("y", F, None)], [XC])
    unary("Cast_intin_float", fam, "Cast", np.array([[3, -2, 0, 7, 1]], np.int64), None,
          in_type=I64, attrs={"to": F})
    unary("Cast_overflow_s13", fam, "Cast", np.array([[9000.0, -1.5, 3.0]], np.float32), None,
          I64, attrs={"to": I64}, scale=13)

    fam = "Compare"
    c7 = np.array([0.5, -1.0, -0.99, 0.1, -0.01, 1.0, -3.3], np.float32)
    for op in ("Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal"):
        unary(f"{op}_const", fam, op, XC, None, BOOL, inits={"c": c7}, extra_ins=["c"])
        case(f"{op}_inputs", fam, [N(op, ["x", "z"], ["y"])],
             [("x", F, [2, 7]), ("z", F, [2, 7])], [("y", BOOL, None)], [XC, XC[::-1].copy()],
             scale=9)
    unary("Greater_scalar_const", fam, "Greater", XC, None, BOOL,
          inits={"c": np.array(0.3, np.float32)}, extra_ins=["c"])
    case("Less_const_used_twice", fam, [N("Less", ["x", "c"], ["y"]), N("Add", ["x", "c"], ["z"])],
         [("x", F, [2, 7])], [("y", BOOL, None), ("z", F, None)], [XC], {"c": c7})
    case("Greater_int_vs_float", fam,
         [N("Cast", ["k"], ["kf"], to=F), N("Greater", ["x", "kf"], ["y"])],
         [("x", F, [1, 5]), ("k", I64, [1, 5])], [("y", BOOL, None)],
         [XC[1:, :5].copy(), np.array([[3, -2, 0, 1, 1]], np.int64)])
    unary("Greater_overflow_s13", fam, "Greater", np.array([[40000.0, -1.0, 3.0]], np.float32),
          None, BOOL, inits={"c": np.array([0.5], np.float32)}, extra_ins=["c"], scale=13)
    case("Equal_cast_matmul", fam,
         [N("Equal", ["x", "c"], ["e"]), N("Cast", ["e"], ["ef"], to=F),
          N("MatMul", ["ef", "w"], ["y"])],
         [("x", F, [2, 7])], [("y", F, None)], [XC],
         {"c": np.array([-1.0, 0.5, 0.99, 1.0, 0.0, 0.0, 0.3], np.float32), "w": rnd(7, 3)})

    fam = "Where"
    yv = rnd(2, 7, lo=-2, hi=2)
    case("Where_cmp_xy", fam, [N("Greater", ["x", "c"], ["m"]), N("Where", ["m", "x", "z"], ["y"])],
         [("x", F, [2, 7]), ("z", F, [2, 7])], [("y", F, None)], [XC, yv], {"c": c7})
    case("Where_const_branches", fam,
         [N("Less", ["x", "c"], ["m"]), N("Where", ["m", "a", "b"], ["y"])],
         [("x", F, [2, 7])], [("y", F, None)], [XC],
         {"c": c7, "a": np.array([1.5], np.float32), "b": rnd(7)})
    mb = np.array([[1, 0, 1, 1, 0, 0, 1], [0, 0, 1, 0, 1, 1, 0]], bool)
    case("Where_bool_input", fam, [N("Where", ["m", "x", "z"], ["y"])],
         [("m", BOOL, [2, 7]), ("x", F, [2, 7]), ("z", F, [2, 7])], [("y", F, None)],
         [mb, XC, yv], scale=10)
    for mult in (1, 2):
        case(f"Where_mixed_scales_m{mult}", fam,
             [N("Greater", ["x", "c"], ["m"]), N("Mul", ["x", "z"], ["p"]),
              N("Where", ["m", "p", "x"], ["y"])],
             [("x", F, [2, 7]), ("z", F, [2, 7])], [("y", F, None)], [XC, yv], {"c": c7},
             mult=mult)
    case("Where_scalar_branch_m2", fam,
         [N("Greater", ["x", "c"], ["m"]), N("Where", ["m", "a", "x"], ["y"])],
         [("x", F, [2, 7])], [("y", F, None)], [XC],
         {"c": np.array(0.2, np.float32), "a": np.array(0.3, np.float32)}, mult=2)
    case("Where_castbool_mask", fam,
         [N("Cast", ["x"], ["m"], to=BOOL), N("Where", ["m", "x", "z"], ["y"])],
         [("x", F, [2, 7]), ("z", F, [2, 7])], [("y", F, None)], [XC, yv])

    fam = "Logic"
    mb2 = np.array([[1, 1, 0, 0, 1, 0, 1], [0, 1, 1, 0, 1, 1, 1]], bool)
    for op in ("And", "Or", "Xor"):
        case(f"{op}_inputs", fam, [N(op, ["a", "b"], ["y"])],
             [("a", BOOL, [2, 7]), ("b", BOOL, [2, 7])], [("y", BOOL, None)], [mb, mb2])
        case(f"{op}_cmp", fam,
             [N("Greater", ["x", "c"], ["a"]), N("Less", ["x", "d"], ["b"]),
              N(op, ["a", "b"], ["y"])],
             [("x", F, [2, 7])], [("y", BOOL, None)], [XC],
             {"c": np.array([-0.6], np.float32), "d": np.array([0.75], np.float32)})
    case("Not_input", fam, [N("Not", ["a"], ["y"])], [("a", BOOL, [2, 7])], [("y", BOOL, None)],
         [mb])
    case("Not_cmp", fam, [N("Greater", ["x", "c"], ["a"]), N("Not", ["a"], ["y"])],
         [("x", F, [2, 7])], [("y", BOOL, None)], [XC], {"c": np.array([0.2], np.float32)})
    case("Not_castbool", fam, [N("Cast", ["x"], ["m"], to=BOOL), N("Not", ["m"], ["y"])],
         [("x", F, [2, 7])], [("y", BOOL, None)], [XC])


XT = np.array([[0.5, 2.0, 2.0, -1.0, 0.7], [-3.0, -3.0, -1.0, -3.0, 4.0],
               [1.0, 0.0, 1.0, 0.0, 0.0]], np.float32)


def _argmax_topk() -> None:
    for op in ("ArgMax", "ArgMin"):
        for ax in (0, 1):
            unary(f"{op}_ax{ax}_keep", op, op, XT, None, I64, attrs={"axis": ax, "keepdims": 1})
        unary(f"{op}_ax1_nokeep", op, op, XT, None, I64, attrs={"axis": 1, "keepdims": 0})
        unary(f"{op}_default_axis", op, op, XT, None, I64, scale=10)
        unary(f"{op}_select_last", op, op, XT, None, I64,
              attrs={"axis": 1, "keepdims": 1, "select_last_index": 1})
    fam = "TopK"
    k2 = {"k": np.array([2], np.int64)}
    for lg in (1, 0):
        case(f"TopK_k2_largest{lg}", fam, [N("TopK", ["x", "k"], ["v", "i"], axis=-1, largest=lg)],
             [("x", F, [3, 5])], [("v", F, None)], [XT], k2)
    case("TopK_ax0_k2", fam, [N("TopK", ["x", "k"], ["v", "i"], axis=0)],
         [("x", F, [3, 5])], [("v", F, None)], [XT], k2)
    case("TopK_k3_unsorted", fam, [N("TopK", ["x", "k"], ["v", "i"], axis=1, sorted=0)],
         [("x", F, [3, 5])], [("v", F, None)], [XT], {"k": np.array([3], np.int64)}, scale=9)
    case("TopK_indices_used", fam, [N("TopK", ["x", "k"], ["v", "i"], axis=-1)],
         [("x", F, [3, 5])], [("v", F, None), ("i", I64, None)], [XT], k2)
    fam = "OneHot"
    for nm, vals in (("01", [0.0, 1.0]), ("m1_2p5", [-1.0, 2.5])):
        case(f"OneHot_{nm}", fam, [N("OneHot", ["i", "d", "v"], ["y"], axis=-1)],
             [("i", I64, [1, 5])], [("y", F, None)], [np.array([[0, 2, 1, 2, 3]], np.int64)],
             {"d": np.array(4, np.int64), "v": np.array(vals, np.float32)})


# ------------------------------------------------------------------------------------------
# Group 2: shape / layout
# ------------------------------------------------------------------------------------------
X3 = np.array([[[-2.5, -1.0, 0.3, 0.0, 1.1], [0.4, 1.7, -0.6, 2.2, -0.05],
                [1.0, -1.25, 0.5, 0.75, -3.0]]], np.float32)  # [1, 3, 5]


def _layout() -> None:
    fam = "Pad"
    p = np.array([0, 0, 1, 0, 1, 2], np.int64)
    unary("Pad_const0", fam, "Pad", X3, None, inits={"p": p}, extra_ins=["p"],
          attrs={"mode": "constant"})
    unary("Pad_const0_explicit", fam, "Pad", X3, None,
          inits={"p": p, "v": np.array(0.0, np.float32)}, extra_ins=["p", "v"], scale=10)
    unary("Pad_4d", fam, "Pad", rnd(1, 2, 3, 3), None,
          inits={"p": np.array([0, 0, 2, 1, 0, 0, 0, 3], np.int64)}, extra_ins=["p"])
    unary("Pad_const_nonzero", fam, "Pad", X3, None,
          inits={"p": p, "v": np.array(1.5, np.float32)}, extra_ins=["p", "v"])
    for mode in ("reflect", "edge"):
        unary(f"Pad_{mode}", fam, "Pad", X3, None, inits={"p": p}, extra_ins=["p"],
              attrs={"mode": mode})

    fam = "Expand"
    unary("Expand_batch", fam, "Expand", X3, None, inits={"s": np.array([2, 3, 5], np.int64)},
          extra_ins=["s"])
    unary("Expand_mid", fam, "Expand", X3[:, :1, :].copy(), None,
          inits={"s": np.array([3, 1], np.int64)}, extra_ins=["s"])
    unary("Expand_rank_up", fam, "Expand", X3, None,
          inits={"s": np.array([2, 1, 3, 1], np.int64)}, extra_ins=["s"])
    unary("Expand_rank_up_full", fam, "Expand", X3, None,
          inits={"s": np.array([2, 1, 3, 5], np.int64)}, extra_ins=["s"])

    fam = "Trilu"
    for up in (1, 0):
        for k in (-1, 0, 2):
            unary(f"Trilu_3d_up{up}_k{k}", fam, "Trilu", X3, None,
                  inits={"k": np.array(k, np.int64)}, extra_ins=["k"], attrs={"upper": up})
    unary("Trilu_no_k", fam, "Trilu", X3, None, attrs={"upper": 0})
    unary("Trilu_2d", fam, "Trilu", X3[0].copy(), None, attrs={"upper": 1})
    unary("Trilu_4d_low", fam, "Trilu", np.linspace(-3, 3, 72).reshape(2, 3, 3, 4)
          .astype(np.float32), None, attrs={"upper": 0})
    unary("Trilu_4d_up", fam, "Trilu", rnd(2, 1, 3, 4), None, attrs={"upper": 1})

    fam = "ConstantFolded"
    case("Range_add", fam, [N("Range", ["a", "b", "d"], ["r"]), N("Cast", ["r"], ["rf"], to=F),
                            N("Add", ["x", "rf"], ["y"])],
         [("x", F, [1, 3, 5])], [("y", F, None)], [X3],
         {"a": np.array(0, np.int64), "b": np.array(5, np.int64), "d": np.array(1, np.int64)})
    case("Range_float_add", fam, [N("Range", ["a", "b", "d"], ["r"]), N("Add", ["x", "r"], ["y"])],
         [("x", F, [1, 3, 5])], [("y", F, None)], [X3],
         {"a": np.array(0.25, np.float32), "b": np.array(2.5, np.float32),
          "d": np.array(0.5, np.float32)})
    cval = helper.make_tensor("v", F, [1], [0.7])
    case("ConstantOfShape_add", fam,
         [N("ConstantOfShape", ["s"], ["c"], value=cval), N("Add", ["x", "c"], ["y"])],
         [("x", F, [1, 3, 5])], [("y", F, None)], [X3], {"s": np.array([1, 3, 5], np.int64)})
    case("ConstantOfShape_of_shape_mul", fam,
         [N("Shape", ["x"], ["sh"]), N("ConstantOfShape", ["sh"], ["c"], value=cval),
          N("Mul", ["x", "c"], ["y"])],
         [("x", F, [1, 3, 5])], [("y", F, None)], [X3])
    case("EyeLike_const_add", fam,
         [N("EyeLike", ["c"], ["e"], k=1), N("Add", ["x", "e"], ["y"])],
         [("x", F, [1, 3, 5])], [("y", F, None)], [X3], {"c": np.zeros((3, 5), np.float32)})
    case("EyeLike_runtime_add", fam,
         [N("EyeLike", ["x"], ["e"]), N("Add", ["x", "e"], ["y"])],
         [("x", F, [3, 5])], [("y", F, None)], [X3[0].copy()])
    fam = "Tile"
    unary("Tile", fam, "Tile", X3, None, inits={"r": np.array([1, 2, 1], np.int64)},
          extra_ins=["r"])


# ------------------------------------------------------------------------------------------
# Group 3: activations
# ------------------------------------------------------------------------------------------
XA = np.array([[-4.0, -2.5, -1.0, -0.3, -0.0078125, 0.0, 0.00390625, 0.4, 0.5, 1.7, 2.5, 3.1,
                -0.6]], np.float32)  # [1, 13]


def _activations() -> None:
    sl = np.linspace(0.05, 0.6, 13).astype(np.float32)
    for s in (7, 10):
        fam = "PRelu"
        unary(f"PRelu_pow2_s{s}", fam, "PRelu", XA, None,
              inits={"sl": np.array([0.25], np.float32)}, extra_ins=["sl"], scale=s)
        unary(f"PRelu_scalar0.3_s{s}", fam, "PRelu", XA, None,
              inits={"sl": np.array([0.3], np.float32)}, extra_ins=["sl"], scale=s)
        unary(f"PRelu_vec_s{s}", fam, "PRelu", XA, None, inits={"sl": sl}, extra_ins=["sl"],
              scale=s)
        unary(f"PRelu_vec_m2_s{s}", fam, "PRelu", XA, None, inits={"sl": sl}, extra_ins=["sl"],
              scale=s, mult=2)
        for a in (1.0, 0.3, 0.5):
            unary(f"Elu_a{a}_s{s}", "Elu", "Elu", XA, None, attrs={"alpha": a}, scale=s)
        unary(f"Selu_s{s}", "Selu", "Selu", XA, None, scale=s)
        for a in (1.0, 0.6):
            unary(f"Celu_a{a}_s{s}", "Celu", "Celu", XA, None, attrs={"alpha": a}, scale=s)
        unary(f"Softplus_s{s}", "Softplus", "Softplus", XA, None, scale=s)
        unary(f"Softsign_s{s}", "Softsign", "Softsign", XA, None, scale=s)
        unary(f"HardSigmoid_s{s}", "HardSigmoid", "HardSigmoid", XA, None, scale=s)
        unary(f"HardSigmoid_a0.25_b0.6_s{s}", "HardSigmoid", "HardSigmoid", XA, None,
              attrs={"alpha": 0.25, "beta": 0.6}, scale=s)
        unary(f"ThresholdedRelu_s{s}", "ThresholdedRelu", "ThresholdedRelu", XA, None,
              attrs={"alpha": 0.5}, scale=s)
        unary(f"Shrink_s{s}", "Shrink", "Shrink", XA, None, attrs={"lambd": 0.5, "bias": 0.1},
              scale=s)
        unary(f"LogSoftmax_s{s}", "LogSoftmax", "LogSoftmax", XA, None, attrs={"axis": -1},
              scale=s, engine="refuse", note="ln(0) = i128::MIN in the witness")
        unary(f"Sign_s{s}", "Sign", "Sign", XA, None, scale=s)
        for op in ("Floor", "Ceil", "Round"):
            unary(f"{op}_s{s}", op, op, XA, None, scale=s)
        for base in (2.0, 1.5):  # Pow(constant, x): an exp lookup with that base
            case(f"Pow_cbase{base}_s{s}", "Pow", [N("Pow", ["b", "x"], ["y"])],
                 [("x", F, [1, 13])], [("y", F, None)], [XA],
                 {"b": np.array(base, np.float32)}, scale=s)
    x2 = rnd(2, 3, lo=-2, hi=2)
    unary("LogSoftmax_ax0_no_zero_s7", "LogSoftmax", "LogSoftmax", x2 * 0.2, None,
          attrs={"axis": 0})
    unary("LogSoftmax_rows_s7", "LogSoftmax", "LogSoftmax", (x2 * 0.3).T.copy(), None,
          attrs={"axis": 1}, scale=8)
    XH = np.array([[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -3.5, 0.25, -0.75, 1.0, 0.0]],
                  np.float32)
    for op in ("Round", "Floor", "Ceil"):
        unary(f"{op}_ties", op, op, XH, None)
    unary("Floor_overflow", "Floor", "Floor", np.array([[200.0, -1.5, 3.0]], np.float32), None)
    unary("Mish", "Mish", "Mish", XA, None)
    xi = np.array([[7, -7, 2, 0, 5, -1, 9]], np.int64)
    unary("Mod_fmod0", "Mod", "Mod", xi, None, I64, I64, inits={"c": np.array([3], np.int64)},
          extra_ins=["c"], attrs={"fmod": 0})
    unary("Mod_fmod1_float", "Mod", "Mod", XA, None, inits={"c": np.array([1.5], np.float32)},
          extra_ins=["c"], attrs={"fmod": 1})
    xu = np.array([[7, 1, 2, 0, 5, 3, 9, 10, 11]], np.uint32)
    for d, k in (("LEFT", 2), ("RIGHT", 1)):
        unary(f"BitShift_{d.lower()}", "BitShift", "BitShift", xu, None, U32, U32,
              inits={"c": np.array([k], np.uint32)}, extra_ins=["c"], attrs={"direction": d})
    # Pow(x, constant scalar): every branch of EZKL's "Pow" arm
    xp = np.array([[0.3, 0.5, 1.0, 1.7, 2.5, 4.0, 0.9]], np.float32)
    xn = np.array([[-2.0, -0.5, 0.3, 1.0, 0.0, 2.5, -0.1]], np.float32)
    for s in (7, 10):
        for nm, xv in (("pos", xp), ("mixed", xn)):
            for e in (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 0.5, 0.25, -0.5, 1.5):
                unary(f"Pow_e{e}_{nm}_s{s}", "Pow", "Pow", xv, None,
                      inits={"e": np.array(e, np.float32)}, extra_ins=["e"], scale=s)
    case("Pow_tensor_exponent", "Pow", [N("Pow", ["x", "z"], ["y"])],
         [("x", F, [1, 13]), ("z", F, [1, 13])], [("y", F, None)], [XA, np.abs(XA)])
    unary("Pow_uniform_vector_exponent", "Pow", "Pow", xp, None,
          inits={"e": np.full(7, 2.0, np.float32)}, extra_ins=["e"])
    unary("Pow_vector_exponent", "Pow", "Pow", xp, None,
          inits={"e": np.array([2, 2, 3, 2, 2, 2, 2], np.float32)}, extra_ins=["e"])


# ------------------------------------------------------------------------------------------
# Group 4: reductions / normalization
# ------------------------------------------------------------------------------------------
def _reductions() -> None:
    def red(name, op, ax, keep, x=X3, **kw):
        unary(name, op, op, x, None, attrs={"axes": list(ax), "keepdims": keep}, **kw)

    for s in (7, 10):
        red(f"ReduceMin_s{s}", "ReduceMin", (2,), 1, scale=s)
        red(f"ReduceMin_all_nokeep_s{s}", "ReduceMin", (1, 2), 0, scale=s)
        red(f"ReduceProd_ax1_s{s}", "ReduceProd", (1,), 1, scale=s)
        red(f"ReduceL1_s{s}", "ReduceL1", (2,), 1, scale=s)
        red(f"ReduceL2_s{s}", "ReduceL2", (2,), 1, scale=s)
        red(f"ReduceL2_m2_s{s}", "ReduceL2", (2,), 0, scale=s, mult=2)
        red(f"ReduceSumSquare_s{s}", "ReduceSumSquare", (1, 2), 1, scale=s)
        red(f"ReduceLogSumExp_s{s}", "ReduceLogSumExp", (2,), 1, scale=s)
        red(f"ReduceLogSum_s{s}", "ReduceLogSum", (1,), 1, x=np.abs(X3) + 0.1, scale=s)
    red("ReduceProd_ax2_s7", "ReduceProd", (2,), 0, x=X3 * 0.5 + 0.25)
    red("ReduceProd_ax2_s10", "ReduceProd", (2,), 1, x=X3 + 0.01, scale=10)  # rebase 2^40
    red("ReduceMin_ax0_s8", "ReduceMin", (0,), 1, x=rnd(3, 4), scale=8)
    g = np.array([1.0, 0.5, 2.0], np.float32)
    b = np.array([0.0, 0.1, -0.2], np.float32)
    fam = "InstanceNormalization"
    X2 = np.concatenate([X3, X3[:, ::-1] * 0.5 + 0.25], 0).astype(np.float32)
    X4 = rnd(1, 3, 4, 4, lo=-2, hi=2)
    for s in (7, 10):
        inn = lambda gg, bb: {"g": gg, "b": bb}  # noqa: E731
        for nm, x, gb in (("n1", X3, inn(g, b)), ("n2", X2, inn(g, b)),
                          ("g1_b0", X3, inn(np.ones(3, np.float32), np.zeros(3, np.float32))),
                          ("2d", X4, inn(g, b))):
            case(f"InstanceNorm_{nm}_s{s}", fam,
                 [N("InstanceNormalization", ["x", "g", "b"], ["y"], epsilon=1e-5)],
                 [("x", F, list(x.shape))], [("y", F, None)], [x], gb, scale=s)
    case("InstanceNorm_w6_s7", fam, [N("InstanceNormalization", ["x", "g", "b"], ["y"])],
         [("x", F, [1, 3, 6])], [("y", F, None)],
         [np.concatenate([X3, X3[..., :1]], 2).astype(np.float32)], {"g": g, "b": b})


# ------------------------------------------------------------------------------------------
# Group 5: conv family, resize, pooling
# ------------------------------------------------------------------------------------------
def _conv_family() -> None:
    r5 = np.random.default_rng(5)
    X = np.round(r5.uniform(-2, 2, (1, 2, 5, 6)), 2).astype(np.float32)
    W = np.round(r5.uniform(-1, 1, (2, 3, 3, 3)), 2).astype(np.float32)  # [Cin, Cout/g, kh, kw]
    B = np.array([0.1, -0.2, 0.3], np.float32)
    Wg = np.round(r5.uniform(-1, 1, (4, 1, 3, 3)), 2).astype(np.float32)
    wg2 = np.round(r5.uniform(-1, 1, (2, 2, 3, 2)), 2).astype(np.float32)

    def conv(name, fam, op, inits, ins=None, x=X, **attrs):
        scale = attrs.pop("scale", 7)
        ins = ins or (("x", "w") if "w" in inits else ("x",))
        case(name, fam, [N(op, ["x", *ins[1:]], ["y"], **attrs)], [("x", F, list(x.shape))],
             [("y", F, None)], [x], inits, scale=scale)

    for s in (7, 9):
        conv(f"Conv_group2_s{s}", "Conv", "Conv", {"w": Wg}, group=2, pads=[1, 1, 1, 1],
             strides=[1, 1], scale=s)
        conv(f"Conv_dw_s2_bias_s{s}", "Conv", "Conv", {"w": Wg[:2], "b": B[:2]},
             ins=("x", "w", "b"), group=2, strides=[2, 2], pads=[0, 1, 1, 0], scale=s)
        conv(f"Conv1d_s{s}", "Conv", "Conv", {"w": np.round(r5.uniform(-1, 1, (3, 2, 3)), 2)
                                              .astype(np.float32), "b": B},
             ins=("x", "w", "b"), x=X[:, :, 0, :].copy(), strides=[1], pads=[1, 0], scale=s)
        ct = "ConvTranspose"
        conv(f"ConvT_s2_p1_bias_s{s}", ct, ct, {"w": W, "b": B}, ins=("x", "w", "b"),
             strides=[2, 2], pads=[1, 1, 1, 1], scale=s)
        conv(f"ConvT_s2_op1_s{s}", ct, ct, {"w": W}, strides=[2, 2], pads=[1, 1, 1, 1],
             output_padding=[1, 1], scale=s)
        conv(f"ConvT_s1_s{s}", ct, ct, {"w": W}, strides=[1, 1], scale=s)
        conv(f"ConvT_s2_asym_pads_s{s}", ct, ct, {"w": W}, strides=[2, 1], pads=[0, 1, 1, 0],
             scale=s)
        conv(f"ConvT_g2_s{s}", ct, ct, {"w": wg2}, strides=[1, 1], group=2, scale=s)
        conv(f"ConvT_output_shape_s{s}", ct, ct, {"w": W}, strides=[2, 2],
             output_shape=[10, 11], scale=s)
        ap = "AveragePool"
        conv(f"AvgPool_pad_cip0_s{s}", ap, ap, {}, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
             count_include_pad=0, strides=[1, 1], scale=s)
        conv(f"AvgPool_pad_cip1_s{s}", ap, ap, {}, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
             count_include_pad=1, strides=[1, 1], scale=s)
        conv(f"AvgPool_k2s2_s{s}", ap, ap, {}, kernel_shape=[2, 2], strides=[2, 2], scale=s)
        rs = "Resize"
        for nm, sc, kw in (("x2", [1, 1, 2, 2], {}),
                           ("x3x2_asym", [1, 1, 3, 2], {"coordinate_transformation_mode":
                                                        "asymmetric", "nearest_mode": "floor"}),
                           ("x3_align", [1, 1, 3, 3], {"coordinate_transformation_mode":
                                                       "align_corners"}),
                           ("x2_ceil", [1, 1, 2, 2], {"nearest_mode": "ceil"})):
            case(f"Resize_{nm}_s{s}", rs, [N(rs, ["x", "", "sc"], ["y"], mode="nearest", **kw)],
                 [("x", F, list(X.shape))], [("y", F, None)], [X],
                 {"sc": np.array(sc, np.float32)}, scale=s)
    # refusals
    conv("Conv_dilation2", "Conv", "Conv", {"w": np.repeat(Wg[:2], 2, 1)}, dilations=[2, 2],
         strides=[1, 1])
    conv("Conv_no_strides", "Conv", "Conv", {"w": W.transpose(1, 0, 2, 3).copy()})
    conv("ConvT_no_strides", "ConvTranspose", "ConvTranspose", {"w": W})
    conv("ConvT_stride3", "ConvTranspose", "ConvTranspose", {"w": W}, strides=[3, 3])
    conv("ConvT_g2_cin_eq_cout", "ConvTranspose", "ConvTranspose", {"w": Wg[:2]},
         strides=[1, 1], group=2)
    conv("AvgPool_no_strides", "AveragePool", "AveragePool", {}, kernel_shape=[3, 3])
    conv("MaxPool_no_strides", "MaxPool", "MaxPool", {}, kernel_shape=[2, 2])
    conv("AvgPool_ceil", "AveragePool", "AveragePool", {}, kernel_shape=[2, 2], strides=[2, 2],
         ceil_mode=1)
    for nm, mode, sc in (("linear", "linear", [1, 1, 2, 2]), ("x1.5", "nearest",
                                                                [1, 1, 1.5, 1.5])):
        case(f"Resize_{nm}", "Resize", [N("Resize", ["x", "", "sc"], ["y"], mode=mode)],
             [("x", F, list(X.shape))], [("y", F, None)], [X], {"sc": np.array(sc, np.float32)})
    case("Resize_sizes", "Resize", [N("Resize", ["x", "", "", "sz"], ["y"], mode="nearest")],
         [("x", F, list(X.shape))], [("y", F, None)], [X],
         {"sz": np.array([1, 2, 10, 12], np.int64)})
    case("Upsample", "Resize", [N("Upsample", ["x", "sc"], ["y"], mode="nearest")],
         [("x", F, list(X.shape))], [("y", F, None)], [X],
         {"sc": np.array([1, 1, 2, 2], np.float32)}, opsets={"": 9})


# ------------------------------------------------------------------------------------------
# Group 6: Gemm variants, RNN / GRU / LSTM
# ------------------------------------------------------------------------------------------
def _gemm_rnn() -> None:
    r6 = np.random.default_rng(6)
    A = np.round(r6.uniform(-2, 2, (2, 3)), 2).astype(np.float32)
    W = np.round(r6.uniform(-1, 1, (3, 5)), 2).astype(np.float32)
    C = np.round(r6.uniform(-1, 1, (5,)), 2).astype(np.float32)
    fam = "Gemm"
    for s in (7, 10):
        def g(nm, attrs, x=A, inits=None):
            case(f"Gemm_{nm}_s{s}", fam, [N("Gemm", ["x", "w", "c"], ["y"], **attrs)],
                 [("x", F, list(x.shape))], [("y", F, None)], [x],
                 inits if inits is not None else {"w": W, "c": C}, scale=s)
        g("transA", {"transA": 1}, x=A.T.copy())
        g("alpha0.5", {"alpha": 0.5})
        g("alpha0.3", {"alpha": 0.3})
        g("alpha2", {"alpha": 2.0})
        g("beta2", {"beta": 2.0})
        g("beta0.3", {"beta": 0.3})
        g("alpha0.3_beta0.3_transA_transB", {"alpha": 0.3, "beta": 0.3, "transA": 1, "transB": 1},
          x=A.T.copy(), inits={"w": W.T.copy(), "c": C})
        case(f"Gemm_inputs_transB_s{s}", fam, [N("Gemm", ["x", "z"], ["y"], transB=1)],
             [("x", F, [2, 3]), ("z", F, [5, 3])], [("y", F, None)], [A, W.T.copy()], scale=s)
        case(f"Gemm_C_input_beta0.5_s{s}", fam, [N("Gemm", ["x", "w", "cc"], ["y"], beta=0.5)],
             [("x", F, [2, 3]), ("cc", F, [2, 5])], [("y", F, None)], [A, np.tile(C, (2, 1))],
             {"w": W}, scale=s)

    r3 = np.random.default_rng(3)
    T, Bt, Isz, H = 4, 2, 3, 2
    X = np.round(r3.uniform(-1, 1, (T, Bt, Isz)), 2).astype(np.float32)

    def w(*sh):
        return np.round(r3.uniform(-0.8, 0.8, sh), 2).astype(np.float32)

    shp = {"y": [T, 1, Bt, H], "yh": [1, Bt, H], "yc": [1, Bt, H]}
    for s in (7, 10):
        for op, ng in (("RNN", 1), ("GRU", 3), ("LSTM", 4)):
            inits = {"W": w(1, ng * H, Isz), "R": w(1, ng * H, H), "B": w(1, 2 * ng * H)}
            combos = [["y"], ["yh"], ["y", "yh"]]
            if op == "LSTM":
                combos += [["yc"], ["yh", "yc"], ["y", "yc"], ["y", "yh", "yc"]]
            for outs in combos:
                names = [o if o in outs else "" for o in ("y", "yh", "yc")]
                while names[-1] == "":
                    names.pop()
                case(f"{op}_out_{'_'.join(outs)}_s{s}", op,
                     [N(op, ["x", "W", "R", "B"], names, hidden_size=H)],
                     [("x", F, [T, Bt, Isz])], [(o, F, shp[o]) for o in outs], [X], inits, scale=s)
    case("GRU_m2_s7", "GRU", [N("GRU", ["x", "W", "R", "B"], ["y"], hidden_size=H)],
         [("x", F, [T, Bt, Isz])], [("y", F, shp["y"])], [X],
         {"W": w(1, 3 * H, Isz), "R": w(1, 3 * H, H), "B": w(1, 6 * H)}, mult=2, engine="refuse",
         note="state scales with a rebase multiplier != 1 are not verified: the engine refuses")
    inits = {"W": w(1, 4 * H, Isz), "R": w(1, 4 * H, H), "B": w(1, 8 * H)}
    case("LSTM_calibrated", "LSTM", [N("LSTM", ["x", "W", "R", "B"], ["y", "yh"], hidden_size=H)],
         [("x", F, [T, Bt, Isz])], [("y", F, shp["y"]), ("yh", F, shp["yh"])], [X], inits,
         scale=None)


# ------------------------------------------------------------------------------------------
# Cross-cutting: a hand-built hummingbird-style GEMM tree (comparisons, Equal's scale quirk)
# ------------------------------------------------------------------------------------------
def _tree_gemm() -> None:
    A = np.eye(3, dtype=np.float32)
    B = np.array([0.5, -0.25, 1.0], np.float32)
    Cm = np.array([[1, 1, -1, -1], [1, -1, 0, 0], [0, 0, 1, -1]], np.float32)
    D = np.array([2, 0, 1, -1], np.float32)
    Ev = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.05, 0.95]], np.float32)
    nodes = [N("MatMul", ["x", "A"], ["t1"]), N("Less", ["t1", "B"], ["t2"]),
             N("Cast", ["t2"], ["t3"], to=F), N("MatMul", ["t3", "C"], ["t4"]),
             N("Equal", ["t4", "D"], ["t5"]), N("Cast", ["t5"], ["t6"], to=F),
             N("MatMul", ["t6", "E"], ["y"]), N("ArgMax", ["y"], ["cls"], axis=1, keepdims=0)]
    X = np.array([[0.3, -0.5, 2.0], [0.7, 0.0, 0.5], [0.5, -0.25, 1.0], [-1.0, 1.0, 3.0],
                  [0.1, 0.2, 0.3]], np.float32)
    inits = {"A": A, "B": B, "C": Cm, "D": D, "E": Ev}
    outs = [("y", F, None), ("cls", I64, None)]
    for nm, kw in (("s7", {}), ("s7_m2", {"mult": 2}), ("calibrated", {"scale": None})):
        case(f"TreeGemm_{nm}", "TreeGemm", nodes, [("x", F, [5, 3])], outs, [X], inits, **kw)
    tec = N("TreeEnsembleClassifier", ["x"], ["label", "probs"], domain="ai.onnx.ml",
            nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2], nodes_featureids=[0, 0, 0],
            nodes_values=[0.5, 0, 0], nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"],
            nodes_truenodeids=[1, 0, 0], nodes_falsenodeids=[2, 0, 0],
            nodes_hitrates=[1.0, 1.0, 1.0], nodes_missing_value_tracks_true=[0, 0, 0],
            class_treeids=[0, 0], class_nodeids=[1, 2], class_ids=[0, 1],
            class_weights=[1.0, 1.0], classlabels_int64s=[0, 1])
    case("TreeEnsembleClassifier", "TreeEnsemble", [tec], [("x", F, [5, 3])],
         [("label", I64, [5]), ("probs", F, [5, 2])], [X], opsets={"": 17, "ai.onnx.ml": 3})


# ------------------------------------------------------------------------------------------
# Composite models real users bring, made by the real converters (optional: skipped when a
# converter is not installed; the stored .onnx files keep CI free of them)
# ------------------------------------------------------------------------------------------
def _composite(name: str, m: onnx.ModelProto, xs: list, **kw) -> None:
    m = onnx.shape_inference.infer_shapes(m)
    CASES.append(Case(name, "Composite", [], [], [], xs, model=m, **kw))


def _sklearn_models():
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.svm import LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    X, y = make_classification(n_samples=200, n_features=5, n_informative=3, n_classes=3,
                               random_state=0)
    X = np.round(X, 3).astype(np.float32)
    return X, {
        "DecisionTree": DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y),
        "RandomForest": RandomForestClassifier(n_estimators=3, max_depth=3,
                                               random_state=0).fit(X, y),
        "LinearSVC": LinearSVC(random_state=0).fit(X, y),
    }


def _composites() -> None:
    import warnings

    try:
        X, models = _sklearn_models()
        from skl2onnx import to_onnx
    except ImportError as e:  # optional dev extra ("pip install -e .[converters]")
        print(f"(composite sklearn models skipped: {e})", file=sys.stderr)
        return
    xs = [X[:4]]
    for nm, mdl in models.items():
        m = to_onnx(mdl, X[:1], target_opset={"": 17, "ai.onnx.ml": 3},
                    options={id(mdl): {"zipmap": False}} if nm != "LinearSVC" else None)
        _composite(f"Composite_skl2onnx_{nm}", m, xs)
    try:
        from hummingbird.ml import convert
    except ImportError as e:
        print(f"(hummingbird composites skipped: {e})", file=sys.stderr)
    else:
        import torch

        for nm in ("DecisionTree", "RandomForest"):
            # hummingbird's own ONNX export needs the dynamo exporter (onnxscript): take its torch
            # module and export it with TorchScript, as EZKL's own examples do
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hb = convert(models[nm], "torch", X[:4],
                             extra_config={"tree_implementation": "gemm"})
                path = Path(tempfile.mkdtemp()) / "m.onnx"
                torch.onnx.export(hb.model, torch.from_numpy(X[:4]), str(path),
                                  opset_version=17, dynamo=False)
            for tag, kw in (("s7", {}), ("calibrated", {"scale": None})):
                _composite(f"Composite_hummingbird_gemm_{nm}_{tag}", onnx.load(str(path)), xs,
                           **kw)

    import torch
    from torch import nn

    def export(module, example, name, **kw):
        path = Path(tempfile.mkdtemp()) / "m.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), example, str(path), opset_version=17, dynamo=False)
        _composite(name, onnx.load(str(path)), [example.numpy()], **kw)

    torch.manual_seed(0)

    class Rec(nn.Module):
        def __init__(self, cell):
            super().__init__()
            self.cell, self.head = cell, nn.Linear(4, 2)

        def forward(self, x):
            y, _ = self.cell(x)
            return self.head(y[-1])

    seq = torch.round(torch.rand(5, 2, 3) * 200 - 100) / 100
    export(Rec(nn.GRU(3, 4)), seq, "Composite_torch_GRU_s7")
    export(Rec(nn.LSTM(3, 4)), seq, "Composite_torch_LSTM_s7")
    export(Rec(nn.LSTM(3, 4)), seq, "Composite_torch_LSTM_s10", scale=10)

    class Block(nn.Module):
        """A pre-norm transformer encoder block: 2 heads, GELU MLP."""

        def __init__(self, d=8, heads=2):
            super().__init__()
            self.h, self.dk = heads, d // heads
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

        def forward(self, x):
            t, d = x.shape[1], x.shape[2]
            q, k, v = self.qkv(self.ln1(x)).reshape(t, 3, self.h, self.dk).permute(1, 2, 0, 3)
            att = torch.softmax(q @ k.transpose(-1, -2) / self.dk ** 0.5, dim=-1)
            y = (att @ v).permute(1, 0, 2).reshape(1, t, d)
            x = x + self.proj(y)
            return x + self.mlp(self.ln2(x))

    tok = torch.round(torch.randn(1, 5, 8) * 100) / 100
    export(Block(), tok, "Composite_torch_transformer_block_s7")
    export(Block(), tok, "Composite_torch_transformer_block_calibrated", scale=None)


for _group in (_gather, _cast_compare_where_logic, _argmax_topk, _layout, _activations,
               _reductions, _conv_family, _gemm_rnn, _tree_gemm, _composites):
    _group()


# ------------------------------------------------------------------------------------------
# Running EZKL
# ------------------------------------------------------------------------------------------
_RUNNER = r'''
import json, sys, ezkl
d, mode = sys.argv[1], json.loads(sys.argv[2])
onnx_p, data_p, set_p, comp_p, wit_p = (f"{d}/{n}" for n in
    ("model.onnx", "input.json", "settings.json", "model.compiled", "witness.json"))
args = ezkl.PyRunArgs()
for k, v in mode["args"].items():
    setattr(args, k, v)
if mode["scale"] is not None:
    args.input_scale = args.param_scale = mode["scale"]
    args.scale_rebase_multiplier = mode["mult"]
assert ezkl.gen_settings(onnx_p, set_p, py_run_args=args)
if mode["scale"] is None:
    assert ezkl.calibrate_settings(data_p, onnx_p, set_p, "resources", max_logrows=17)
assert ezkl.compile_circuit(onnx_p, comp_p, set_p)
ezkl.gen_witness(data_p, comp_p, wit_p)
'''

P = 21888242871839275222246405745257275088548364400416034343698204186575808495617


def _felt(h: str) -> int:
    v = int.from_bytes(bytes.fromhex(h[2:] if h.startswith("0x") else h), "little")
    return v - P if v > P // 2 else v


def _python() -> str:
    return os.environ.get("EZKL_PYTHON", sys.executable)


def run_case(c: Case, out: Path, work: Path) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix=c.name + "_", dir=work))
    m = c.build()
    onnx.save(m, d / "model.onnx")
    xs = [np.asarray(x) for x in c.xs]
    data = {"input_data": [x.astype(np.float64).reshape(-1).tolist() for x in xs]}
    (d / "input.json").write_text(json.dumps(data))
    (d / "runner.py").write_text(_RUNNER)
    mode = {"scale": c.scale, "mult": c.mult, "args": c.args}
    t0 = time.time()
    p = subprocess.run(["nice", "-n", "10", _python(), str(d / "runner.py"), str(d),
                        json.dumps(mode)], capture_output=True, text=True, timeout=900,
                       env={**os.environ, "RUST_LOG": "error"})
    rec: dict[str, Any] = {
        "name": c.name, "family": c.family, "note": c.note,
        "inputs": [{"shape": list(x.shape), "dtype": str(x.dtype),
                    "data": x.reshape(-1).tolist()} for x in xs],
        "mode": {"scale": c.scale, "mult": c.mult, "args": c.args},
    }
    if (d / "settings.json").exists():
        st = json.loads((d / "settings.json").read_text())
        keep = ("input_scale", "param_scale", "scale_rebase_multiplier", "rebase_scale",
                "epsilon", "decomp_base", "decomp_legs", "rebase_frac_zero_constants",
                "ignore_range_check_inputs_outputs", "check_mode")
        rec["run_args"] = {k: st["run_args"].get(k) for k in keep if k in st["run_args"]}
        rec["output_scales"] = st.get("model_output_scales")
    if p.returncode != 0 or not (d / "witness.json").exists():
        err = [ln for ln in ((p.stderr or "") + (p.stdout or "")).splitlines() if ln.strip()]
        rec["status"] = "refused"
        rec["error"] = "\n".join(err[-4:])[-1500:] or f"exit code {p.returncode}"
    else:
        w = json.loads((d / "witness.json").read_text())
        rec["status"] = "ok"
        rec["outputs"] = [[str(_felt(f)) for f in o] for o in w["outputs"]]
        if c.engine:
            rec["engine"] = c.engine
    rec["seconds"] = round(time.time() - t0, 1)
    onnx.save(m, out / f"{c.name}.onnx")
    body = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in rec.items())
    (out / f"{c.name}.json").write_text("{\n" + body + "\n}\n")
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", default=[], help="case-name prefixes")
    ap.add_argument("--force", action="store_true", help="rebuild cases that already exist")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    todo = [c for c in CASES if not a.only or any(c.name.startswith(p) for p in a.only)]
    if a.list:
        for c in todo:
            print(c.family, c.name)
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="op_cases_"))
    for i, c in enumerate(todo):
        if not a.force and (a.out / f"{c.name}.json").exists():
            continue
        rec = run_case(c, a.out, work)
        extra = "" if rec["status"] == "ok" else "  " + rec["error"].splitlines()[-1][:150]
        print(f"[{i + 1}/{len(todo)}] {c.name}: {rec['status']} ({rec['seconds']} s){extra}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
