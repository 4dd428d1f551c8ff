"""RNN, GRU, LSTM as tract unrolls them (``onnx/src/ops/rec/{common,rnn,gru,lstm}.rs``) and EZKL
runs them: a ``Scan`` whose body EZKL lays out once per time step (``model.rs`` SubGraph).

The lowering unrolls the steps into the engine's own EZKL ops, so every einsum, MULT and lookup is
scaled and rebased by the usual rules (``S = 2^s``, every product rebased by ``S``):

* the input projections ``X W_g^T`` are hoisted out of the loop (one rebased einsum per gate);
* gate pre-activation ``p_g = xw_g + const_div(h R_g^T, S) + q(Wb_g + Rb_g)`` -- the two biases
  are summed in f32 by tract before quantization;
* RNN: ``h = tanh(p)``;
* GRU (gates z, r, h): ``z = sigmoid(p_z)``, ``r = sigmoid(p_r)``,
  ``h~ = tanh(xw_h + const_div(const_div(r h, S) R_h^T, S) + q(Rb_h) + q(Wb_h))`` (two separate
  bias constants here); with ``linear_before_reset = 1`` (torch's GRU)
  ``h~ = tanh(xw_h + const_div(r (const_div(h R_h^T, S) + q(Rb_h)), S) + q(Wb_h))``;
  ``h = const_div((S - z) h~, S) + const_div(z h, S)``;
* LSTM (gates i, o, f, c): ``C = const_div(f C, S) + const_div(i tanh(p_c), S)``,
  ``H = const_div(o tanh(C), S)``.

**EZKL's LSTM state bug** (``model.rs``, ``output_state_idx``): when exactly the outputs
``{Y, Y_h}`` or ``{Y_c}`` are used, both states are fed the new cell state: ``h_{t+1} = C_t``,
``c_{t+1} = C_t``; Y holds the H computed from those and ``Y_h = Y_c =`` the last C. Reproduced.

Supported as verified: forward direction, ``layout = 0``, zero initial states (absent, or zero
constants as torch exports them), no ``sequence_lens``, peepholes, ``clip`` or custom
activations, and a rebase multiplier of 1 with ``input_scale == param_scale`` (the state scales
EZKL pins then equal the step's own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..ir import UnsupportedOpError
from .registry import OnnxNode, ScaleCtx, ezkl_op, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step

_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _check(lw: Lowerer, n: OnnxNode) -> None:
    a, op = n.attrs, n.op
    if a.get("direction", b"forward") not in (b"forward", "forward"):
        raise UnsupportedOpError(op, "reverse/bidirectional (not verified against EZKL)")
    if a.get("layout", 0) != 0:
        raise UnsupportedOpError(op, "layout = 1 (not verified against EZKL)")
    for k in ("activations", "clip", "activation_alpha", "activation_beta"):
        if k in a:
            raise UnsupportedOpError(op, f"attribute {k} (not verified against EZKL)")
    if op == "LSTM" and a.get("input_forget", 0):
        raise UnsupportedOpError(op, "input_forget (not verified against EZKL)")
    extra = list(n.ins[4:]) + [""] * 4
    seq_lens, init_h, init_c, peep = extra[:4]
    if seq_lens or peep:
        raise UnsupportedOpError(op, "sequence_lens or peepholes (not verified against EZKL)")
    for i in (init_h, init_c):  # torch exports zero initial states as constants
        if i and (i not in lw.consts or np.any(lw.consts[i] != 0)):
            raise UnsupportedOpError(op, "non-zero initial states (not verified against EZKL)")
    if not all(i in lw.consts for i in n.ins[1:3]) or (
            len(n.ins) > 3 and n.ins[3] and n.ins[3] not in lw.consts):
        raise UnsupportedOpError(op, "non-constant weights")
    if n.x is None or len(lw.shapes[n.x]) != 3:
        raise UnsupportedOpError(op, "input must be a runtime [T, B, I] tensor")


class _Unroller:
    """Emits one time step's EZKL ops at a time (all values ``[B, H]`` at the state scale)."""

    def __init__(self, lw, op: str, bsz: int, hidden: int) -> None:
        self.lw, self.op, self.shape = lw, op, (bsz, hidden)

    def new(self, kind: str, ins: list[str], **attrs) -> str:
        return self.lw.new(kind, ins, self.shape, self.op, **attrs)

    def const(self, v: np.ndarray, hint: str) -> str:
        return self.lw.const(np.asarray(v, dtype=np.float32), hint)

    def add(self, *xs: str | None) -> str:
        xs = [x for x in xs if x is not None]
        cur = xs[0]
        for x in xs[1:]:
            cur = self.new("add", [cur, x])
        return cur

    def mul(self, a: str | None, b: str | None) -> str | None:
        return None if a is None or b is None else self.new("mult", [a, b])

    def matmul(self, h: str | None, w: str) -> str | None:
        return None if h is None else self.new("einsum", [h, w])

    def lookup(self, x: str, fn: str) -> str:
        return self.new("lookup", [x], fn=fn)


@lowers("RNN", "GRU", "LSTM")
def lower_recurrent(lw: Lowerer, n: OnnxNode) -> None:
    _check(lw, n)
    op, ins = n.op, n.ins
    ng = _GATES[op]
    hidden = int(n.attrs["hidden_size"])
    T, bsz, isz = lw.shapes[n.x]
    x = lw.new("recurrent_input", [n.x], (T, bsz, isz), op)
    W = lw.consts[ins[1]].astype(np.float32)[0]  # [ng*H, I]
    R = lw.consts[ins[2]].astype(np.float32)[0]  # [ng*H, H]
    Bv = (lw.consts[ins[3]].astype(np.float32)[0] if len(ins) > 3 and ins[3]
          else np.zeros(2 * ng * hidden, np.float32))
    gate = lambda m, k: m[k * hidden:(k + 1) * hidden]  # noqa: E731
    u = _Unroller(lw, op, bsz, hidden)

    # hoisted input projections: one einsum per gate over the whole sequence, then a slice per t
    xw = []
    for k in range(ng):
        wk = lw.const(np.ascontiguousarray(gate(W, k).T), f"{op.lower()}_w")
        full = lw.new("einsum", [x, wk], (T, bsz, hidden), op)
        xw.append([lw.new("reshape", [lw.new("slice", [full], (1, bsz, hidden), op, axis=0,
                                             start=t, end=t + 1)], u.shape, op)
                   for t in range(T)])
    rt = [u.const(np.ascontiguousarray(gate(R, k).T), f"{op.lower()}_r") for k in range(ng)]
    wb = [gate(Bv[: ng * hidden], k) for k in range(ng)]
    rb = [gate(Bv[ng * hidden:], k) for k in range(ng)]

    outs = list(n.proto.output) + [""] * 3
    used = [bool(o) and lw.onnx_uses.get(o, 0) > 0 for o in outs[:3]]
    lstm_bug = op == "LSTM" and used in ([True, True, False], [False, False, True])

    h = c = None  # zero initial states: every term they touch is 0
    ys: list[str] = []
    for t in range(T):
        def pre(k: int, biased: bool = True) -> str:
            b = u.const(wb[k] + rb[k], f"{op.lower()}_b") if biased else None
            return u.add(xw[k][t], u.matmul(h, rt[k]), b)

        if op == "RNN":
            h = u.lookup(pre(0), "tanh")
            ys.append(h)
        elif op == "GRU":
            z = u.lookup(pre(0), "sigmoid")
            r = u.lookup(pre(1), "sigmoid")
            if n.attrs.get("linear_before_reset", 0):  # r * (h R_h^T + Rb_h)
                hr = u.add(u.matmul(h, rt[2]), u.const(rb[2], "gru_rb"))
                ht = u.lookup(u.add(xw[2][t], u.mul(r, hr), u.const(wb[2], "gru_wb")), "tanh")
            else:  # (r * h) R_h^T
                rh = u.matmul(u.mul(r, h), rt[2])
                ht = u.lookup(u.add(xw[2][t], rh, u.const(rb[2], "gru_rb"),
                                    u.const(wb[2], "gru_wb")), "tanh")
            one_minus_z = u.new("sub", [u.const(np.array(1.0), "one"), z])
            h = u.add(u.mul(one_minus_z, ht), u.mul(z, h))
            ys.append(h)
        else:
            i_ = u.lookup(pre(0), "sigmoid")
            o_ = u.lookup(pre(1), "sigmoid")
            f_ = u.lookup(pre(2), "sigmoid")
            ct = u.lookup(pre(3), "tanh")
            c = u.add(u.mul(f_, c), u.mul(i_, ct))
            hn = u.mul(o_, u.lookup(c, "tanh"))
            ys.append(hn)
            h = c if lstm_bug else hn

    for k, name in enumerate(outs[:3]):
        if not name:
            continue
        if k == 0:
            parts = [lw.new("reshape", [y], (1, 1, bsz, hidden), op) for y in ys]
            lw.new("concat", parts, (T, 1, bsz, hidden), op, name=name, axis=0)
        elif k == 1 and not lstm_bug:
            lw.new("reshape", [ys[-1]], (1, bsz, hidden), op, name=name)
        else:  # Y_c, or Y_h under EZKL's state bug: the last cell state
            lw.new("reshape", [c], (1, bsz, hidden), op, name=name)


def _guard_scale(c: ScaleCtx) -> int:
    """The verified configuration (see the module docstring): EZKL pins the state scales to the
    initial states', which equal the step's own only with a rebase multiplier of 1 and
    ``input_scale == param_scale``."""
    ra = c.run_args
    if int(ra.get("scale_rebase_multiplier", 1)) != 1 or c.input_scale != c.param_scale \
            or c.scales[0] != c.param_scale:
        raise UnsupportedOpError(c.node.onnx_op, "only verified with a rebase multiplier of 1 "
                                                 "and input_scale == param_scale")
    return c.scales[0]


@ezkl_op("recurrent_input", scale=_guard_scale, rebased=False)
def run_guard(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    """No EZKL node: the sequence input as it is (the scale rule checks the configuration)."""
    return args[0]
