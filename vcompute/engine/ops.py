"""Each lowered op in EZKL's fixed-point semantics, on an integer backend.

The arithmetic runs on a *backend* with the kernels' int64 API (``int_matmul``, ``int_conv2d``,
``div_round``, ``int_add/int_sub/int_mul``, ``relu``, ``table_lookup``, ``max_pool2d``,
``sum_pool2d``). The shipped backend is :class:`TritonBackend` (the Triton kernels in
``kernels/``); :class:`vcompute.engine.reference.ReferenceBackend` has the same API in plain
torch for tests. Layout ops (reshape, transpose, concat, padding) are torch tensor ops.

Lookup tables are built on the host in f64 with Python's ``math`` functions, with the same
formulas as EZKL's ``src/tensor/ops.rs::nonlinearities`` (``round(scale * f(x / scale))``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .graph import UnsupportedOpError
from .quantize import Step, round_half_away

MAX_TABLE = 1 << 20  # dense-table entries; wider inputs use a table of their distinct values


class TritonBackend:
    """The Triton kernels in ``kernels/`` (the GPU path, or Triton's interpreter on CPU)."""

    name = "triton"

    def __init__(self, device: str) -> None:
        try:
            from vcompute.kernels import runtime  # noqa: F401  (sets TRITON_INTERPRET=1 without a GPU)
        except ImportError as e:  # never fall back silently
            raise RuntimeError(f"Triton kernels are not available ({e})") from e
        self.device = torch.device(device)
        self._mods: dict[str, object] = {}

    def _k(self, module: str):
        """The kernel module ``kernels.<module>``; a missing kernel is an error, not a fallback."""
        if module not in self._mods:
            import importlib

            try:
                self._mods[module] = importlib.import_module(f"vcompute.kernels.{module}")
            except ImportError as e:
                raise RuntimeError(
                    f"Triton kernel module kernels.{module} is not available ({e}); the engine "
                    "does not fall back to another implementation (backend='reference' runs the "
                    "torch int64 reference, for debugging only)"
                ) from e
        return self._mods[module]

    def describe(self) -> str:
        if self.device.type == "cuda":
            return f"{self.device} {torch.cuda.get_device_name(self.device)}"
        return f"{self.device} (triton interpreter)"

    def int_matmul(self, a, b, bias=None):
        return self._k("gemm").int_matmul(a.contiguous(), b.contiguous(), bias)

    def int_conv2d(self, x, w, bias, stride, padding, dilation=(1, 1), groups=1):
        return self._k("conv").int_conv2d(x.contiguous(), w.contiguous(), bias, tuple(stride),
                                     tuple(padding), tuple(dilation), groups)

    def div_round(self, x, divisor):
        return self._k("rescale").div_round(x.contiguous(), int(divisor))

    def int_add(self, a, b, a_shift=0, b_shift=0):
        return self._k("elementwise").int_add(a.contiguous(), b.contiguous(), a_shift=a_shift, b_shift=b_shift)

    def int_sub(self, a, b, a_shift=0, b_shift=0):
        return self._k("elementwise").int_sub(a.contiguous(), b.contiguous(), a_shift=a_shift, b_shift=b_shift)

    def int_mul(self, a, b, a_shift=0, b_shift=0):
        return self._k("elementwise").int_mul(a.contiguous(), b.contiguous(), a_shift=a_shift, b_shift=b_shift)

    def relu(self, x):
        return self._k("activation").relu(x.contiguous())

    def table_lookup(self, x, table, offset):
        return self._k("lookup").table_lookup(x.contiguous(), table.contiguous(), offset)

    def max_pool2d(self, x, kernel, stride, padding=(0, 0)):
        return self._k("pool").max_pool2d(x.contiguous(), tuple(kernel), tuple(stride), tuple(padding))

    def sum_pool2d(self, x, kernel, stride, padding=(0, 0)):
        return self._k("pool").sum_pool2d(x.contiguous(), tuple(kernel), tuple(stride), tuple(padding))


# ---------------------------------------------------------------------------------------------
# Lookup functions: f64 formulas of EZKL's nonlinearities (src/tensor/ops.rs), scalar form.

_ERF_COF = [
    -1.3026537197817094, 6.419697923564902e-1, 1.9476473204185836e-2, -9.56151478680863e-3,
    -9.46595344482036e-4, 3.66839497852761e-4, 4.2523324806907e-5, -2.0278578112534e-5,
    -1.624290004647e-6, 1.303655835580e-6, 1.5626441722e-8, -8.5238095915e-8, 6.529054439e-9,
    5.059343495e-9, -9.91364156e-10, -2.27365122e-10, 9.6467911e-11, 2.394038e-12,
    -6.886027e-12, 8.94487e-13, 3.13092e-13, -1.12708e-13, 3.81e-16, 7.106e-15, -1.523e-15,
    -9.4e-17, 1.21e-16, -2.8e-17,
]


def _erfccheb(z: float) -> float:
    d = dd = 0.0
    t = 2.0 / (2.0 + z)
    ty = 4.0 * t - 2.0
    for j in range(len(_ERF_COF) - 2, 0, -1):
        d, dd = ty * d - dd + _ERF_COF[j], d
    return t * math.exp(-(z ** 2) + 0.5 * (_ERF_COF[0] + ty * d) - dd)


def _erf(x: float) -> float:
    return 1.0 - _erfccheb(x) if x >= 0 else _erfccheb(-x) - 1.0


def _safe(f):
    def g(x):
        try:
            return f(x)
        except (ValueError, OverflowError):
            return math.nan if not isinstance(x, float) or x == x else math.nan
    return g


def _hardswish(k: float) -> float:
    if k <= -3.0:
        return 0.0
    if k >= 3.0:
        return k
    return k * (k + 3.0) / 6.0


def lookup_values(fn: str, xs: np.ndarray, mult: float, a: float | None = None) -> np.ndarray:
    """EZKL's integer result of lookup ``fn`` at scale multiplier ``mult`` for integers ``xs``."""
    inner = {
        "tanh": math.tanh, "sin": math.sin, "cos": math.cos, "tan": math.tan,
        "asin": _safe(math.asin), "acos": _safe(math.acos), "atan": math.atan,
        "sinh": _safe(math.sinh), "cosh": _safe(math.cosh), "asinh": math.asinh,
        "acosh": _safe(math.acosh), "atanh": _safe(math.atanh), "erf": _erf,
        "ln": _safe(lambda k: math.log(k) if k > 0 else (-math.inf if k == 0 else math.nan)),
        "hardswish": _hardswish,
    }
    out = np.empty(len(xs), dtype=np.float64)
    for i, xi in enumerate(xs.tolist()):
        k = float(xi) / mult
        if fn == "sigmoid":
            try:
                v = mult / (1.0 + math.exp(-k))
            except OverflowError:
                v = 0.0
        elif fn == "exp":  # base e: base.powf(k) with base = f32(e) widened to f64
            try:
                v = mult * math.pow(float(np.float32(math.e)), k)
            except OverflowError:
                v = math.inf
        elif fn == "sqrt":  # NaN for negatives -> 0 (then EZKL's abs keeps it 0)
            v = mult * math.sqrt(k) if k >= 0 else math.nan
        elif fn == "pow":
            try:
                v = mult * math.pow(k, a)
            except (ValueError, ZeroDivisionError):
                v = math.nan
        else:
            v = mult * inner[fn](k)
        out[i] = v
    # Rust's `as i128` saturates; NaN -> 0
    r = round_half_away(out)
    r = np.clip(np.nan_to_num(r, nan=0.0, posinf=2.0 ** 62, neginf=-(2.0 ** 62)),
                -(2.0 ** 62), 2.0 ** 62)
    return r.astype(np.int64)


def _recip_values(xs: np.ndarray, in_mult: float, out_mult: float, eps: float) -> np.ndarray:
    """``nonlinearities::recip``: ``round(out * 1/(x/in))``, ``1/(0+eps)`` at zero."""
    out = []
    for xi in xs.tolist():
        r = float(xi) / in_mult
        v = out_mult * ((1.0 / (r + eps)) if r == 0.0 else (1.0 / r))
        out.append(v)
    r = round_half_away(np.array(out, dtype=np.float64))
    if np.any(np.abs(r) >= 2.0 ** 62):
        raise OverflowError("reciprocal of 0 (or a tiny value) does not fit in int64")
    return r.astype(np.int64)


def _table_values(fn: str, xs: np.ndarray, extra: dict, a: float | None) -> np.ndarray:
    if fn == "recip":
        return _recip_values(xs, extra["in_mult"], extra["out_mult"], extra["eps"])
    if fn == "rsqrt":  # layouts.rs::rsqrt: sqrt at the input scale, then recip
        s = lookup_values("sqrt", xs, extra["in_mult"])
        return _recip_values(s, extra["in_mult"], extra["out_mult"], extra["eps"])
    return lookup_values(fn, xs, extra["mult"], a)


# (fn, params) -> (first input value, table values): tables grow to cover every range seen
_TABLES: dict[tuple, tuple[int, np.ndarray]] = {}


def _dense_table(fn: str, lo: int, hi: int, extra: dict, a: float | None) -> np.ndarray:
    """Table of ``fn`` over [lo, hi], built once per (fn, scales) and extended as needed."""
    key = (fn, a, tuple(sorted(extra.items())))
    hit = _TABLES.get(key)
    if hit is None:
        vals = _table_values(fn, np.arange(lo, hi + 1), extra, a)
        _TABLES[key] = (lo, vals)
        return vals
    clo, vals = hit
    chi = clo + len(vals) - 1
    if lo < clo or hi > chi:
        nlo, nhi = min(lo, clo), max(hi, chi)
        if nhi - nlo + 1 > MAX_TABLE:
            return _table_values(fn, np.arange(lo, hi + 1), extra, a)
        parts = []
        if nlo < clo:
            parts.append(_table_values(fn, np.arange(nlo, clo), extra, a))
        parts.append(vals)
        if nhi > chi:
            parts.append(_table_values(fn, np.arange(chi + 1, nhi + 1), extra, a))
        vals, clo = np.concatenate(parts), nlo
        _TABLES[key] = (clo, vals)
    return vals[lo - clo: hi - clo + 1]


def _lookup(be, x: torch.Tensor, fn: str, extra: dict, a: float | None = None):
    """Apply EZKL's integer function ``fn`` through a host-built table and the lookup kernel.

    Dense table over [min, max] when that range is small; otherwise a table over the distinct
    input values, indexed by each element's rank among them.
    """
    lo, hi = int(x.min().item()), int(x.max().item())
    if hi - lo + 1 <= MAX_TABLE:
        vals = _dense_table(fn, lo, hi, extra, a)
        return be.table_lookup(x, torch.from_numpy(vals).to(x.device), lo)
    uniq, inv = torch.unique(x, return_inverse=True)
    vals = _table_values(fn, uniq.cpu().numpy(), extra, a)
    return be.table_lookup(inv.reshape(x.shape).contiguous(),
                           torch.from_numpy(vals).to(x.device), 0)


# ---------------------------------------------------------------------------------------------
# Op executors


def _matmul_nd(be, a: torch.Tensor, b: torch.Tensor, out_shape) -> torch.Tensor:
    if b.dim() == 2:
        k = b.shape[0]
        res = be.int_matmul(a.reshape(-1, k), b)
        return res.reshape(out_shape)
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a_ = a.expand(*batch, *a.shape[-2:]).reshape(-1, *a.shape[-2:])
    b_ = b.expand(*batch, *b.shape[-2:]).reshape(-1, *b.shape[-2:])
    outs = [be.int_matmul(a_[i].contiguous(), b_[i].contiguous()) for i in range(a_.shape[0])]
    return torch.stack(outs).reshape(out_shape)


def _bcast(x: torch.Tensor, shape) -> torch.Tensor:
    return x.expand(*shape).contiguous() if tuple(x.shape) != tuple(shape) else x


def _pad2d(x: torch.Tensor, pads) -> torch.Tensor:
    (t, b), (l, r) = pads
    if t or b or l or r:
        x = torch.nn.functional.pad(x, (l, r, t, b))  # zeros, as EZKL pads
    return x


def _reduce_max(be, x: torch.Tensor, axes, out_shape) -> torch.Tensor:
    keep = [i for i in range(x.dim()) if i not in axes]
    xt = x.permute(*keep, *axes).contiguous()
    k = int(np.prod([x.shape[i] for i in axes])) if axes else 1
    m = xt.numel() // k
    return be.max_pool2d(xt.reshape(1, 1, m, k), (1, k), (1, k), (0, 0)).reshape(out_shape)


def _reduce_sum(be, x: torch.Tensor, axes, out_shape) -> torch.Tensor:
    keep = [i for i in range(x.dim()) if i not in axes]
    xt = x.permute(*keep, *axes).contiguous()
    k = int(np.prod([x.shape[i] for i in axes])) if axes else 1
    ones = torch.ones((k, 1), dtype=torch.int64, device=x.device)
    return be.int_matmul(xt.reshape(-1, k), ones).reshape(out_shape)


def run_step(be, step: Step, args: list[torch.Tensor], consts_t: dict) -> torch.Tensor:
    node = step.node
    op = node.op
    sh = step.in_shifts
    shape = tuple(node.shape)

    if op == "einsum":
        y = _matmul_nd(be, args[0], args[1], shape)
    elif op == "conv":
        (t, b), (l, r) = node.attrs["pads"]
        bias = args[2] if len(args) > 2 else None
        y = be.int_conv2d(args[0], args[1], bias, node.attrs["stride"], (t, l, b, r), (1, 1),
                          node.attrs["group"])
    elif op == "add":
        y = be.int_add(args[0], args[1], sh[0], sh[1])
    elif op == "sub":
        y = be.int_sub(args[0], args[1], sh[0], sh[1])
    elif op == "mult":
        y = be.int_mul(args[0], args[1])
    elif op == "pow":
        y = args[0]
        for _ in range(node.attrs["n"] - 1):
            y = be.int_mul(y, args[0])
        if node.attrs["n"] == 0:
            y = torch.ones_like(args[0])
    elif op in ("identity", "view"):
        y = args[0].reshape(shape) if op == "view" else args[0]
    elif op == "relu":
        y = be.relu(args[0])
    elif op == "abs":  # |x| = 2 relu(x) - x
        r = be.relu(args[0])
        y = be.int_sub(r, args[0], 1, 0)
    elif op == "neg":
        y = be.int_sub(torch.zeros_like(args[0]), args[0])
    elif op in ("max", "min"):
        # max(a, b) = b + relu(a - b); min(a, b) = a - relu(a - b) (inputs at equal scale)
        d = be.relu(be.int_sub(args[0], args[1], sh[0], sh[1]))
        if op == "max":
            y = be.int_add(_bcast(args[1], shape) , d, sh[1], 0)
        else:
            y = be.int_sub(_bcast(args[0], shape), d, sh[0], 0)
    elif op == "leaky":
        x = args[0]
        pos = be.relu(x)
        neg = be.int_sub(x, pos)
        alpha = torch.tensor([step.extra["alpha_q"]], dtype=torch.int64, device=x.device)
        y = be.int_add(pos, be.int_mul(neg, alpha), step.extra["shift"], 0)
    elif op == "lookup":
        y = _lookup(be, args[0], node.attrs["fn"], step.extra, node.attrs.get("a"))
    elif op in ("sqrt", "recip", "rsqrt"):
        y = _lookup(be, args[0], op, step.extra)
    elif op == "meanofsquares":  # layouts.rs::mean_of_squares_axes: sum(x^2) / n, rounded
        sq = be.int_mul(args[0], args[0])
        axes = list(node.attrs["axes"])
        y = _reduce_sum(be, sq, axes, shape)
        y = be.div_round(y, int(np.prod([args[0].shape[i] for i in axes])))
    elif op == "reducemax":
        y = _reduce_max(be, args[0], list(node.attrs["axes"]), shape)
    elif op == "slice":
        y = args[0].narrow(node.attrs["axis"], node.attrs["start"],
                           node.attrs["end"] - node.attrs["start"]).contiguous()
    elif op == "maxpool":
        y = be.max_pool2d(_pad2d(args[0], node.attrs["pads"]), node.attrs["kernel"],
                          node.attrs["stride"], (0, 0))
    elif op == "sumpool":
        y = be.sum_pool2d(_pad2d(args[0], node.attrs["pads"]), node.attrs["kernel"],
                          node.attrs["stride"], (0, 0))
        if node.attrs["normalized"]:
            y = be.div_round(y, int(np.prod(node.attrs["kernel"])))
    elif op == "sum":
        y = _reduce_sum(be, args[0], list(node.attrs["axes"]), shape)
    elif op == "reshape":
        y = args[0].reshape(shape)
    elif op == "transpose":
        y = args[0].permute(*node.attrs["perm"]).contiguous()
    elif op == "concat":
        parts = [a if s == 0 else be.int_mul(a, torch.ones(1, dtype=torch.int64,
                                                           device=a.device), s, 0)
                 for a, s in zip(args, sh)]
        y = torch.cat(parts, dim=node.attrs["axis"])
    elif op == "softmax":
        y = _softmax(be, args[0], node.attrs["axis"], step.extra)
    else:
        raise UnsupportedOpError(node.onnx_op or op)

    if step.rebase_div is not None:
        y = be.div_round(y, step.rebase_div)
    return y


def _softmax(be, x: torch.Tensor, axis: int, extra: dict) -> torch.Tensor:
    """EZKL's softmax (layouts.rs::softmax): exp(x - max) * recip(sum), all in integers."""
    perm = [i for i in range(x.dim()) if i != axis] + [axis]
    xt = x.permute(*perm).contiguous()
    k = xt.shape[-1]
    x2 = xt.reshape(-1, k)
    m = x2.shape[0]
    mx = be.max_pool2d(x2.reshape(1, 1, m, k), (1, k), (1, k), (0, 0)).reshape(m, 1)
    ex = _lookup(be, be.int_sub(x2, mx), "exp", {"mult": extra["in_mult"]})
    denom = _reduce_sum(be, ex, [1], (m, 1))
    d = denom.cpu().numpy().astype(np.float64) / extra["in_mult"]
    with np.errstate(divide="ignore"):
        inv_f = np.where(d == 0, 1.0 / (d + extra["eps"]), 1.0 / np.where(d == 0, 1.0, d))
    inv = torch.from_numpy(round_half_away(extra["out_mult"] * inv_f).astype(np.int64))
    y = be.int_mul(ex, inv.to(x.device))
    inv_perm = np.argsort(perm).tolist()
    return y.reshape(xt.shape).permute(*inv_perm).contiguous()
