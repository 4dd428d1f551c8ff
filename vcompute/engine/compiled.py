"""Plan compilation for the fast path (#9): bounds, limb counts, fusion, no host sync.

:func:`compile_plan` turns a scale plan (:mod:`.quantize`) into a :class:`CompiledPlan` whose
``forward`` runs a whole batch with no device-to-host transfer, so that it can be captured in a
CUDA graph (:mod:`.engine`). Three things make that possible:

1. **Static bounds** (:func:`analyze_bounds`). Every value gets a bound on ``|v|`` from the model
   input's bound (the batch's own, rounded up to a power of two: a *tier*) and the weights,
   which are known: a GEMM's output is bounded by its input bound times the largest column L1
   norm of its integer weights, a conv's by the largest per-channel L1 norm plus the bias,
   a rebase divides the bound, an add adds bounds... The limb counts and overflow bounds of
   every GEMM and conv (``limbs=``, ``bounds=`` of the kernels' planned path) follow from
   them, as does int64 safety for everything else: a plan whose bounds could reach 2^52
   (where EZKL's f64 division stops being exact) is not compiled at all.
2. **Device flags.** What the host no longer checks is checked on the device and ORed into
   one int32 flag per op (:class:`kernels.flags.ErrorFlags`): a model input beyond the tier
   (``fast_kernels.FLAG_INPUT_RANGE``), an operand beyond its planned limbs, a wrapped add.
   They are read once, after the whole batch, with the outputs. Static bounds make all but the
   input check unreachable; they stay as a second line of defence. A raised flag never yields
   outputs: the caller re-runs the batch on the op-by-op path, which gives the same bits or
   the error EZKL's rules call for (:class:`.engine.Engine`).
3. **Fusion** (:func:`fuse`). EZKL's rebase (``div_round`` by ``2^k``), a Gemm's bias add and a
   following ReLU / Clip / Max-Min by a constant fold into the GEMM's epilogue; a conv's rebase
   and activation into the conv's (EZKL adds a conv's bias before its rebase, a Gemm's after);
   Add / Sub / Mult with their rebase and activation into one ``fused_elementwise``; pooling
   with an average's division into one pool kernel. Anything else in a small whitelist runs its
   registered op on :class:`NoSyncBackend` (exact int64 torch ops, bounded statically); a model
   with any other op is not compiled (:class:`NotCompilable`) and runs op by op.

4. **Fewer launches for small models** (``TilePolicy.chain`` / ``net`` / ``fold_io``). A plan
   that is a chain of small dense layers (an MLP: every width <= 32, each exact in float64) runs
   as one ``kernels.dense_chain`` launch: quantize, layers, outputs and flags. A chain of GEMMs
   and convs (with their pools) whose gather tables are small (a small CNN) runs as one
   ``kernels.small_net`` launch, its layers as tap layers (:mod:`.taps`). The chain writes its
   flags as per-program words with plain stores (``kernels.flags.store_flag_words``; the host ORs
   them in :meth:`CompiledPlan.read_flags`): no atomics and no zeroing. Otherwise a first
   float64 GEMM, or a direct conv of at most :data:`FOLD_CONV_MAX_TAPS` taps, quantizes the model
   input it reads, and a last float64 GEMM writes the result and hands the flags over
   (``kernels.flags.publish_flags``): no quantize or finalize launch of their own.

Tile configurations are explicit (:class:`TilePolicy`): bits never depend on them, and the tests
run every policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .ir import Graph
from .ops import registry
from .ops._batch import align
from .ops._ezkl import decomp_limit
from .quantize import Plan, Step

#: every bound must stay below this: EZKL's f64 division is exact below 2^52, and int64
#: intermediates (shifts, sums of two bounded terms) then cannot wrap
BOUND_LIMIT = 2**52
INT32_LIMIT = 2**31
#: convs with at most this many (output channels per group) x (taps) run on the CUDA cores
DIRECT_CONV_MAX = 4096
#: GEMMs with a reduction this short run in float64 (``TilePolicy.gemm_impl`` "auto"; measured
#: on the H100: kernels/gemm_f64.py)
F64_GEMM_MAX_K = 64
#: with float64 dots for GEMMs (``TilePolicy.f64_dot`` "dot" or "gemm"), GEMMs with weights of at
#: most this many entries run in float64, one launch where the limbs take a split and a GEMM. In
#: the H100's graph replay (BENCHMARKS.md §2m) dots beat the limbs up to 128 x 256 (32,768 entries)
#: and lost from 400 x 120 (48,000: LeNet-5's fc1) and 256 x 256 up, at 256 and 1,024 samples
F64_DOT_GEMM_MAX = 2**15
#: float64 sums of integers are exact below this
F64_EXACT = 2**53
#: a limb GEMM with fewer default tiles than this (about the SMs of an H100) gets narrow tiles
FEW_TILES = 132
#: a direct conv with at most this many taps (channels x kh x kw) quantizes the model input it
#: reads (fold_io): it does so once per tap, which beat a quantize launch for the CNN's 3x3
#: single-channel conv and lost for LeNet's 5x5 one on the H100 (101 -> 127 µs per 256 samples)
FOLD_CONV_MAX_TAPS = 9
#: the one-kernel net's gather tables (entries over all layers) stay below this; every program
#: streams them from L2
SMALL_NET_MAX_TAPS = 2**16


class NotCompilable(Exception):
    """The plan cannot run on the fast path (an op outside it, or bounds too large); the engine
    runs the op-by-op path instead. ``str(e)`` says why."""


# -- tile configurations ----------------------------------------------------------------------


def _pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


@dataclass(frozen=True)
class TilePolicy:
    """Explicit tile configs for every kernel of a compiled plan (never autotuned).

    ``gemm``/``conv``/``block`` fix one config for every call; None means the rule: the
    kernels' ``default_config(m, la, lb)`` for GEMMs, :meth:`conv_config`'s for convs and the
    default 1-D block for elementwise and pooling kernels. Bits never depend on the policy.
    """

    name: str = "auto"
    gemm: Any = None
    conv: Any = None
    block: Any = None
    #: convolution kernel: "mma" (limb GEMM on the tensor cores), "direct" (int64 on the CUDA
    #: cores: no limbs, no gathers of single bytes) or "auto" (direct for few channels)
    conv_impl: str = "auto"
    #: pixels per program of the direct conv (None: its rule)
    direct_block: int | None = None
    #: GEMM kernel: "limbs" (int8 limbs on the tensor cores, kernels.gemm), "f64" (float64,
    #: exact below 2^53, kernels.gemm_f64: one launch, no split) or "auto" (f64 for K <= 64)
    gemm_impl: str = "auto"
    #: the direct conv's accumulator: "int64", "f64" (exact below 2^53) or "auto" (f64)
    conv_acc: str = "auto"
    #: how the float64 direct conv and float64 GEMM multiply: "fma" (one FMA at a time on the
    #: CUDA cores), "dot" (a float64 ``tl.dot``: the FP64 tensor cores on Hopper; the GEMM then
    #: also takes long reductions, see :meth:`gemm_f64`), "conv" or "gemm" (dots for that kind of
    #: layer only) or "auto" (the measured rule: dots for convs, and for GEMMs of short reductions
    #: only, which is where the float64 GEMM runs at all; longer ones keep the limbs, which beat
    #: dots in LeNet-5's graph replay on the H100, BENCHMARKS.md §2m). Same bits either way: the
    #: sums are exact
    f64_dot: str = "auto"
    #: with dots for convs, a conv of fewer taps (channels x kh x kw) keeps its FMAs
    dot_conv_min_taps: int = 0
    #: tiles of the float64 GEMM (None: ``kernels.gemm_f64.f64_config``'s rule)
    f64: Any = None
    #: limb GEMMs whose default tiles would be few get 64 x 64 tiles (see :meth:`gemm_config`)
    narrow_gemm: bool = True
    #: a limb GEMM splits its int64 activations in its own kernel (``kernels.gemm_a64``: one
    #: launch a layer) instead of after a split kernel; no faster on the H100 (BENCHMARKS.md §2g), so off in auto
    split_in_gemm: bool = False
    #: a model of small dense layers only (an MLP) runs as one kernel: quantize, layers, outputs
    #: and flags (``kernels.dense_chain``)
    chain: bool = True
    #: samples per program of the one-kernel chain (None: ``chain_block_m``'s rule)
    chain_block: int | None = None
    #: fold the model input's quantize into a first float64 GEMM or direct conv, and the finalize
    #: (outputs and flags into the result) into a last float64 GEMM: two launches fewer
    fold_io: bool = True
    #: a small CNN (convs with their pools, dense layers; tables of at most ``net_max_taps``
    #: entries) runs as one kernel: quantize, layers, outputs and flags (``kernels.small_net``)
    net: bool = True
    #: the one-kernel net's blocks (None: :meth:`net_config`'s rule)
    net_blocks: Any = None
    #: the largest net (entries of its gather tables) that runs as one kernel
    net_max_taps: int = SMALL_NET_MAX_TAPS
    #: programmatic dependent launch between the pass's kernels on Hopper and later
    #: (``kernels.pdl``: "off", "wait" or "early"); each kernel still waits for the one before it,
    #: so only launch latency overlaps and the bits cannot change. "wait": the mode that never
    #: measured slower (BENCHMARKS.md §2f: 0.5-4.5% on LeNet-5's ten kernels)
    pdl: str = "wait"

    def gemm_config(self, m: int, la: int, lb: int, n: int | None = None):
        """The kernels' rule, except (``narrow_gemm``, knowing N) that a layer whose default
        tiles would leave most SMs idle (fewer than :data:`FEW_TILES`: LeNet's fc layers at a
        batch of 1024 get 24) runs on 64 x 64 tiles instead."""
        from vcompute.kernels.gemm import GemmConfig, default_config

        if self.gemm is not None:
            return self.gemm
        cfg = default_config(m, la, lb)
        if self.narrow_gemm and n is not None and m * la > 64:
            tiles = -(-m * la // cfg.block_m) * -(-n * lb // cfg.block_n)
            if tiles < FEW_TILES:
                return GemmConfig(64, 64, 128, 4, 3, 8, tma=cfg.tma)
        return cfg

    def conv_config(self, m: int, og: int, k: int, la: int, lb: int):
        """Narrow tiles for the few output channels of small CNNs (a 128-wide tile would be
        mostly padding), a K step no larger than the reduction."""
        if self.conv is not None:
            return self.conv
        from vcompute.kernels.conv import ConvConfig

        block_n = min(128, max(16, _pow2(og * lb)))
        block_k = 32 if k <= 32 else 64
        block_m = 128 if m * la >= 128 else max(16, _pow2(m * la))
        return ConvConfig(block_m, block_n, block_k, 4 if block_n <= 64 else 8, 3, 8)

    def block_config(self):
        return self.block

    def use_f64_dot(self, kind: str) -> bool:
        """Whether float64 products of a ``kind`` ("conv" or "gemm") layer run as ``tl.dot`` (the
        FP64 tensor cores), per ``f64_dot``."""
        if self.f64_dot not in ("auto", "fma", "dot", "conv", "gemm"):
            raise ValueError(f"TilePolicy.f64_dot must be auto, fma, dot, conv or gemm, got {self.f64_dot!r}")
        return self.f64_dot in ("auto", "dot", kind)

    def conv_dot(self, taps: int) -> bool:
        """Whether a float64 direct conv of ``taps`` taps runs as float64 dots."""
        return self.use_f64_dot("conv") and taps >= self.dot_conv_min_taps

    def gemm_f64(self, k: int, n: int) -> bool:
        """Whether a GEMM with a K x N weight runs in float64 (the caller has checked that its
        sums stay below 2^53): short reductions (K <= :data:`F64_GEMM_MAX_K`), where one float64
        launch beats a limb split plus a mostly-padding tensor-core tile; with ``f64_dot`` "dot"
        or "gemm", any weight of at most :data:`F64_DOT_GEMM_MAX` entries. On the H100
        (BENCHMARKS.md §2m) the limbs won the whole engine for LeNet-5's long reductions (K = 84
        to 400), though per layer dots beat them on fc3 and tied on fc2 at 256 samples, so
        ``auto`` keeps the limbs there."""
        if self.gemm_impl in ("limbs", "f64"):
            return self.gemm_impl == "f64"
        if self.f64_dot in ("dot", "gemm"):
            return k * n <= F64_DOT_GEMM_MAX
        return k <= F64_GEMM_MAX_K and k * n <= (F64_DOT_GEMM_MAX if self.use_f64_dot("gemm") else 2**16)

    def f64_config(self, m: int, n: int, k: int):
        """The float64 GEMM's tiles: ``f64`` if fixed, else its rule (dot tiles with ``f64_dot``)."""
        from vcompute.kernels.gemm_f64 import f64_config

        return self.f64 if self.f64 is not None else f64_config(m, n, k, dot=self.use_f64_dot("gemm"))

    def net_config(self):
        """The one-kernel net's blocks (``net_blocks``, else ``kernels.small_net.NetConfig()``)."""
        from vcompute.kernels.small_net import NetConfig

        return self.net_blocks if self.net_blocks is not None else NetConfig()

    def direct(self, og: int, k: int) -> bool:
        """Whether a conv with ``og`` output channels per group and ``k`` taps runs direct: its
        tensor-core tile would be mostly padding (``og * k <= 4096``, e.g. every LeNet conv)."""
        if self.conv_impl in ("mma", "direct"):
            return self.conv_impl == "direct"
        return og * k <= DIRECT_CONV_MAX


def tile_policy(name: str | TilePolicy | None) -> TilePolicy:
    """A named policy: ``auto`` (the rules: float64 direct convs and float64 GEMMs of short
    reductions, both multiplying with ``tl.dot`` on the FP64 tensor cores, an MLP as one dense-chain
    launch, a small CNN as one small-net launch, quantize and finalize folded into the first and
    last layers, dependent launches that wait where a GPU has them: ``kernels.pdl``), ``small``
    (16x16 limb tiles, 16-element blocks: every mask and edge;
    convs on the limb GEMM; no chain or net; no dependent launches), ``wide`` (float64 GEMMs on
    64x64 tiles, int64 direct convs of 64 pixels; no chain or net, so the folded first and last
    layers run), ``persistent`` (TMA limb GEMM on a persistent grid, convs on 32x32 limb tiles, the
    chain and the net at 2 samples per program), ``int64``
    (limb GEMMs, each splitting its activations itself, and int64 direct convs: no float64
    anywhere), ``unfolded`` (the auto rules with
    every launch of its own: no one-kernel chain or net, no quantize or finalize folded into a layer;
    dependent launches released early), ``fma`` (the auto rules as they were before float64 dots:
    float64 products one FMA at a time on the CUDA cores, GEMMs in float64 only for K <= 64; no
    chain or net, so every model's layers run them and those kernels stay tested), ``dot``
    (float64 dots for long reductions too: any GEMM of at most :data:`F64_DOT_GEMM_MAX` weights;
    no chain or net, so every model's layers run the dot kernels).
    A :class:`TilePolicy` passes through."""
    if isinstance(name, TilePolicy):
        return name
    from vcompute.kernels import BlockConfig, ConvConfig, GemmConfig

    from vcompute.kernels.gemm_f64 import F64Config
    from vcompute.kernels.small_net import NetConfig

    presets = {
        "auto": TilePolicy(),
        "small": TilePolicy("small", GemmConfig(16, 16, 32, 1, 1, 1, tma=False),
                            ConvConfig(16, 16, 32, 1, 1, 1), BlockConfig(16, 1), "mma", gemm_impl="limbs",
                            chain=False, net=False, pdl="off"),
        "wide": TilePolicy("wide", GemmConfig(64, 128, 64, 4, 2, 4, tma=False),
                           ConvConfig(64, 64, 64, 4, 2, 4), BlockConfig(256, 2), "direct", 64,
                           gemm_impl="f64", conv_acc="int64", f64=F64Config(64, 64, 4), chain=False, net=False),
        "persistent": TilePolicy("persistent", GemmConfig(64, 64, 64, 4, 2, 8, tma=True, persistent=True),
                                 ConvConfig(32, 32, 32, 2, 2, 2), BlockConfig(512, 4), "mma", gemm_impl="limbs",
                                 chain_block=2, net_blocks=NetConfig(2, 16, 2)),
        "int64": TilePolicy("int64", gemm_impl="limbs", conv_acc="int64", chain=False, fold_io=False, net=False,
                            split_in_gemm=True),
        "unfolded": TilePolicy("unfolded", chain=False, fold_io=False, net=False, pdl="early"),
        "fma": TilePolicy("fma", f64_dot="fma", chain=False, net=False),
        "dot": TilePolicy("dot", f64_dot="dot", chain=False, net=False),
    }
    key = name or "auto"
    if key not in presets:
        raise ValueError(f"unknown tile policy {name!r} (one of {', '.join(presets)})")
    return presets[key]


TILE_POLICIES = ("auto", "small", "wide", "persistent", "int64", "unfolded", "fma", "dot")


# -- static bounds ----------------------------------------------------------------------------


def _absmax(a: np.ndarray) -> int:
    """max |a| as a Python int (exact for the int64 minimum too); 0 when empty."""
    a = np.asarray(a)
    return max(-int(a.min()), int(a.max())) if a.size else 0


def _sum_abs(a: np.ndarray, axis) -> np.ndarray:
    """Exact sums of |a| along ``axis`` (object ints when int64 could wrap)."""
    a = np.asarray(a)
    if a.size and _absmax(a) * max(1, a.size) >= 2**62:
        return np.abs(a.astype(object)).sum(axis=axis)
    return np.abs(a.astype(np.int64)).sum(axis=axis)


def rebase_bound(b: int, d: int) -> int:
    """Largest ``|div_round(x, d)|`` for ``|x| <= b``: ``floor(b / d + 1/2)``."""
    return (2 * b + d) // (2 * d)


def _const_value(plan: Plan, name: str) -> np.ndarray | None:
    return plan.consts.get(name)


@dataclass
class Bounds:
    """``value[name]``: bound on ``|v|`` of each value; ``peak[name]``: the largest intermediate
    an op meets on the way (before its rebase, inside its own arithmetic)."""

    value: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)


def _gemm_weight(plan: Plan, step: Step) -> np.ndarray | None:
    """The constant 2-D weight of an einsum shared by every sample, else None."""
    if step.node.op != "einsum" or len(step.node.inputs) != 2:
        return None
    a, b = step.node.inputs
    w = _const_value(plan, b)
    if w is None or a in plan.consts or w.ndim != 2:
        return None
    return w


def _conv_weight(plan: Plan, step: Step) -> tuple[np.ndarray, np.ndarray | None] | None:
    if step.node.op != "conv":
        return None
    ins = step.node.inputs
    w = _const_value(plan, ins[1])
    if w is None or ins[0] in plan.consts:
        return None
    b = _const_value(plan, ins[2]) if len(ins) > 2 else None
    if len(ins) > 2 and b is None:
        return None
    return w, b


def _op_bounds(graph: Graph, plan: Plan, step: Step, ins: list[int]) -> tuple[int, int]:
    """(bound of the op's result before its rebase, peak of its intermediates) for the ops the
    fast path runs; NotCompilable for any other."""
    node = step.node
    op = node.op
    sh = step.in_shifts
    if op == "einsum":
        w = _gemm_weight(plan, step)
        if w is None:
            raise NotCompilable(f"{node.onnx_op or op}: only a product with one constant 2-D weight "
                                "matrix shared by every sample runs on the fast path")
        k = w.shape[0]
        col = int(np.max(_sum_abs(w, 0))) if w.size else 0
        guard = k * ins[0] * _absmax(w)  # the planned kernel's own host check
        if guard >= 2**63:
            raise NotCompilable(f"{node.onnx_op}: K={k} x bound {ins[0]} x max|w| could leave int64")
        r = ins[0] * col
        return r, r
    if op == "conv":
        wb = _conv_weight(plan, step)
        if wb is None:
            raise NotCompilable(f"{node.onnx_op or op}: conv with a non-constant kernel or bias")
        w, b = wb
        per = _sum_abs(w.reshape(w.shape[0], -1), 1)
        bias = np.abs(b.astype(object)).reshape(-1) if b is not None else np.zeros(w.shape[0], dtype=object)
        r = max(int(ins[0] * int(p) + int(q)) for p, q in zip(per, bias)) if w.shape[0] else 0
        k = int(np.prod(w.shape[1:]))
        if k * ins[0] * _absmax(w) + (int(max(bias)) if len(bias) else 0) >= 2**63:
            raise NotCompilable(f"{node.onnx_op}: K={k} x bound {ins[0]} x max|w| could leave int64")
        return r, r
    if op in ("add", "sub"):
        a, b = ins[0] << sh[0], ins[1] << sh[1]
        return a + b, a + b
    if op == "mult":
        return ins[0] * ins[1], ins[0] * ins[1]
    if op == "pow":
        n = node.attrs["n"]
        r = ins[0] ** n if n >= 1 else ins[0]
        return r, r
    if op in ("relu", "identity", "view", "reshape", "transpose", "slice", "neg"):
        return ins[0], ins[0]
    if op == "abs":  # 2 relu(x) - x
        return ins[0], 3 * ins[0]
    if op == "leaky":
        alpha = abs(int(step.extra["alpha_q"]))
        pos, neg = ins[0] << step.extra["shift"], ins[0] * alpha
        return max(pos, neg), pos + neg + ins[0]
    if op in ("max", "min"):  # b + relu(a - b), a - relu(a - b)
        a, b = ins[0] << sh[0], ins[1] << sh[1]
        return max(a, b), 2 * (a + b)
    if op == "concat":
        r = max(b << s for b, s in zip(ins, sh))
        return r, r
    if op == "maxpool":
        return ins[0], ins[0]
    if op == "sumpool":
        kk = int(np.prod(node.attrs["kernel"]))
        r = kk * ins[0]
        return (rebase_bound(r, kk) if node.attrs["normalized"] else r), r
    if op == "sum":
        src = graph.nodes[node.inputs[0]].shape
        n = int(np.prod([src[i] for i in node.attrs["axes"]] or [1]))
        return n * ins[0], n * ins[0]
    raise NotCompilable(f"{node.onnx_op or op}: EZKL op {op!r} has no fast-path implementation")


def analyze_bounds(graph: Graph, plan: Plan, input_bounds: list[int]) -> Bounds:
    """Static bounds of every value for model inputs bounded by ``input_bounds``.

    NotCompilable when an op is outside the fast path, a bound reaches :data:`BOUND_LIMIT`, or a
    rebase divisor is beyond EZKL's decomposition limit (EZKL range-checks those rebases).
    """
    bd = Bounds()
    for name, q in plan.consts.items():
        bd.value[name] = _absmax(np.asarray(q))
    for name, b in zip(graph.inputs, input_bounds):
        bd.value[name] = int(b)
    for name, step in plan.steps.items():
        ins = [bd.value[i] for i in step.node.inputs]
        r, peak = _op_bounds(graph, plan, step, ins)
        if step.rebase_div is not None:
            if step.rebase_div > step.extra.get("decomp_limit", decomp_limit({})):
                raise NotCompilable(f"{step.node.onnx_op}: a rebase by {step.rebase_div} (EZKL "
                                    "range-checks its remainder)")
            r = rebase_bound(r, step.rebase_div)
        peak = max(peak, r)
        if peak >= BOUND_LIMIT:
            raise NotCompilable(f"{step.node.onnx_op or step.node.op}: values could reach "
                                f"2^{peak.bit_length()} (at least 2^52) for inputs within the bound")
        bd.value[name], bd.peak[name] = r, peak
    return bd


# -- fusion -----------------------------------------------------------------------------------


@dataclass
class FusedOp:
    """One launch group: ``kind`` is ``gemm``, ``conv``, ``eltwise``, ``pool`` or ``step``
    (a registered op on :class:`NoSyncBackend`); ``steps`` are the plan steps it covers, the
    last one naming its output."""

    kind: str
    steps: list[str]
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def out(self) -> str:
        return self.steps[-1]


def _consumers(plan: Plan) -> dict[str, list[str]]:
    cons: dict[str, list[str]] = {}
    for name, step in plan.steps.items():
        for i in step.node.inputs:
            cons.setdefault(i, []).append(name)
    return cons


def _scalar_const(plan: Plan, name: str) -> int | None:
    v = plan.consts.get(name)
    if v is None or v.size != 1:
        return None
    return int(v.reshape(-1)[0])


def _absorb_clamps(plan: Plan, cur: str, cons: dict[str, list[str]], outputs: set[str],
                   lo: int | None, hi: int | None, steps: list[str]) -> tuple[int | None, int | None]:
    """Fold ReLU / Max(., c) / Min(., c) steps that solely consume ``cur`` into a clamp
    (at most one lower bound, then at most one upper bound, as ``clamp`` applies them)."""
    while cur not in outputs and len(cons.get(cur, [])) == 1:
        nxt = plan.steps[cons[cur][0]]
        if nxt.rebase_div is not None or nxt.node.inputs[0] != cur:
            break
        op = nxt.node.op
        if op == "relu" and hi is None:
            lo = 0 if lo is None else max(lo, 0)
        elif op in ("max", "min") and len(nxt.node.inputs) == 2 and nxt.in_shifts == [0, 0]:
            c = _scalar_const(plan, nxt.node.inputs[1])
            if c is None or (op == "max" and hi is not None):
                break
            if op == "max":
                lo = c if lo is None else max(lo, c)
            else:
                if lo is not None and c < lo:
                    break
                hi = c if hi is None else min(hi, c)
        else:
            break
        cur = nxt.node.name
        steps.append(cur)
    return lo, hi


def _bias_vector(c: np.ndarray, n: int) -> bool:
    """Whether a constant broadcasts along the last axis only (a bias row of n, or a scalar)."""
    return c.size == 1 or (c.shape[-1] == n and c.size == n)


def _rescale_shift(step: Step) -> int:
    d = step.rebase_div
    return 0 if d is None else d.bit_length() - 1


#: ops the fast path runs through their registered implementation on NoSyncBackend
GENERIC_OPS = {"relu", "leaky", "max", "min", "abs", "neg", "pow", "identity", "view", "reshape",
               "transpose", "slice", "concat", "sum"}


def _poolable(plan: Plan, cur: str, cons: dict[str, list[str]], outputs: set[str]) -> str | None:
    """The pooling step that solely consumes ``cur`` if the conv kernel can pool in its epilogue:
    non-overlapping windows (kernel = stride), no padding, a window of 2, 4, 8 or 16 cells."""
    if cur in outputs or len(cons.get(cur, [])) != 1:
        return None
    p = plan.steps[cons[cur][0]]
    a = p.node.attrs
    if p.node.op not in ("maxpool", "sumpool") or p.rebase_div is not None or p.node.inputs[0] != cur:
        return None
    kk = int(np.prod(a["kernel"]))
    if tuple(a["kernel"]) != tuple(a["stride"]) or any(v for pair in a["pads"] for v in pair):
        return None
    if kk not in (2, 4, 8, 16) or len(p.node.shape) != 4:
        return None
    return p.node.name


def fuse(plan: Plan, outputs: list[str], pool_fusion: bool = True) -> list[FusedOp]:
    """Group the plan's steps into launches (see the module docstring)."""
    cons = _consumers(plan)
    outs = set(outputs)
    done: set[str] = set()
    ops: list[FusedOp] = []
    for name, step in plan.steps.items():
        if name in done:
            continue
        node = step.node
        op = node.op
        steps = [name]
        if op == "einsum" and _gemm_weight(plan, step) is not None:
            attrs: dict[str, Any] = {"weight": node.inputs[1], "shift": _rescale_shift(step), "bias": None}
            cur = name
            if cur not in outs and len(cons.get(cur, [])) == 1:
                nxt = plan.steps[cons[cur][0]]
                other = [i for i in nxt.node.inputs if i != cur]
                n = node.shape[-1]
                if (nxt.node.op == "add" and nxt.rebase_div is None and nxt.in_shifts == [0, 0]
                        and len(other) == 1 and other[0] in plan.consts and nxt.node.inputs.count(cur) == 1
                        and tuple(nxt.node.shape) == tuple(node.shape)
                        and _bias_vector(plan.consts[other[0]], n)):
                    attrs["bias"] = other[0]
                    cur = nxt.node.name
                    steps.append(cur)
            attrs["lo"], attrs["hi"] = _absorb_clamps(plan, cur, cons, outs, None, None, steps)
            ops.append(FusedOp("gemm", steps, [node.inputs[0]], attrs))
        elif op == "conv" and _conv_weight(plan, step) is not None:
            attrs = {"weight": node.inputs[1], "bias": node.inputs[2] if len(node.inputs) > 2 else None,
                     "shift": _rescale_shift(step), "pool": None}
            attrs["lo"], attrs["hi"] = _absorb_clamps(plan, name, cons, outs, None, None, steps)
            pool = _poolable(plan, steps[-1], cons, outs) if pool_fusion else None
            if pool is not None:
                pstep = plan.steps[pool]
                kk = int(np.prod(pstep.node.attrs["kernel"]))
                psteps = [pool]
                plo, phi = _absorb_clamps(plan, pool, cons, outs, None, None, psteps)
                attrs["pool"] = {"kernel": tuple(pstep.node.attrs["kernel"]), "max": pstep.node.op == "maxpool",
                                 "divisor": kk if pstep.node.op == "sumpool" and pstep.node.attrs["normalized"] else 1,
                                 "lo": plo, "hi": phi}
                steps += psteps
            ops.append(FusedOp("conv", steps, [node.inputs[0]], attrs))
        elif op in ("add", "sub", "mult"):
            attrs = {"op": {"add": "add", "sub": "sub", "mult": "mul"}[op], "shift": _rescale_shift(step),
                     "shifts": list(step.in_shifts) if op != "mult" else [0, 0]}
            attrs["lo"], attrs["hi"] = _absorb_clamps(plan, name, cons, outs, None, None, steps)
            ops.append(FusedOp("eltwise", steps, list(node.inputs), attrs))
        elif op in ("maxpool", "sumpool"):
            kk = int(np.prod(node.attrs["kernel"]))
            attrs = {"divisor": kk if op == "sumpool" and node.attrs["normalized"] else 1,
                     "rebase": step.rebase_div}
            lo = hi = None
            if step.rebase_div is None:
                lo, hi = _absorb_clamps(plan, name, cons, outs, None, None, steps)
            attrs["lo"], attrs["hi"] = lo, hi
            ops.append(FusedOp("pool", steps, [node.inputs[0]], attrs))
        elif op in ("relu", "max", "min") and step.rebase_div is None and (
                op == "relu" or (len(node.inputs) == 2 and node.inputs[1] in plan.consts
                                 and _scalar_const(plan, node.inputs[1]) is not None
                                 and step.in_shifts[1] == 0)):
            sh = step.in_shifts[0] if op != "relu" else 0
            lo = hi = None
            if op == "relu":
                lo = 0
            elif op == "max":
                lo = _scalar_const(plan, node.inputs[1])
            else:
                hi = _scalar_const(plan, node.inputs[1])
            lo, hi = _absorb_clamps(plan, name, cons, outs, lo, hi, steps)
            ops.append(FusedOp("eltwise", steps, [node.inputs[0]],
                               {"op": None, "shift": 0, "shifts": [sh, 0], "lo": lo, "hi": hi}))
        elif op in GENERIC_OPS:
            ops.append(FusedOp("step", steps, list(node.inputs), {"rebase": step.rebase_div}))
        else:
            raise NotCompilable(f"{node.onnx_op or op}: EZKL op {op!r} has no fast-path implementation")
        done.update(steps)
    return ops


# -- a backend with no host checks, for the whitelisted generic ops --------------------------


def torch_div_round(x: torch.Tensor, d: int) -> torch.Tensor:
    """``div_round`` with plain int64 torch ops (no host check: |x| < 2^52 is planned)."""
    from vcompute.kernels.reference import round_quotient

    return round_quotient(x, d)


class NoSyncBackend:
    """Exact int64 torch ops with no host check (the plan's static bounds rule out overflow):
    the primitives the whitelisted generic ops (:data:`GENERIC_OPS`) use. GEMMs, convs and
    lookups never reach it."""

    name = "nosync"

    def describe(self) -> str:
        return "nosync"

    def int_add(self, a, b, a_shift=0, b_shift=0):
        return (a << a_shift) + (b << b_shift)

    def int_sub(self, a, b, a_shift=0, b_shift=0):
        return (a << a_shift) - (b << b_shift)

    def int_mul(self, a, b, a_shift=0, b_shift=0):
        return (a << a_shift) * (b << b_shift)

    def relu(self, x):
        return x.clamp_min(0)

    def div_round(self, x, divisor):
        return torch_div_round(x, int(divisor))

    def _unsupported(self, *a, **k):
        raise NotCompilable("a primitive outside the fast path")

    int_matmul = int_conv2d = table_lookup = max_pool2d = sum_pool2d = _unsupported


# -- the compiled plan ------------------------------------------------------------------------

#: the env key under which a publishing last launch leaves the pass's result
RESULT = "\x00result"


def _epilogue_text(bias: Any, shift: int, lo: int | None, hi: int | None) -> str:
    """A fused epilogue for ``describe``: " +bias >>13 clamp(0,None)"."""
    return (f"{' +bias' if bias is not None else ''}{f' >>{shift}' if shift else ''}"
            f"{f' clamp({lo},{hi})' if lo is not None or hi is not None else ''}")


@dataclass
class _Prepared:
    """A fused op ready to run: ``fn(env, flags)`` stores its output in ``env``."""

    op: FusedOp
    fn: Callable[[dict[str, torch.Tensor], torch.Tensor], None]
    describe: str


class CompiledPlan:
    """A plan compiled for one device, one input tier and one tile policy (see the module doc).

    ``forward(inputs, flags)`` takes each model input batched, on the device (float32 for float
    inputs, quantized here; int64 for integer inputs) and an int32 flag buffer from
    :meth:`new_flags` (the ``n_flags`` flags, then the pass's hand-over ticket), and returns one
    flat int64 tensor: the flags (as int64), then every output's ``B * n`` integers. It never
    synchronizes with the host.
    """

    def __init__(self, graph: Graph, plan: Plan, input_bits: list[int], device: str,
                 tiles: str | TilePolicy | None = None, pool_fusion: bool = True) -> None:
        self.graph, self.plan = graph, plan
        self.device = torch.device(device)
        self.input_bits = list(input_bits)
        self.input_bounds = [(1 << b) - 1 for b in input_bits]
        self.tiles = tile_policy(tiles)
        self.bounds = analyze_bounds(graph, plan, self.input_bounds)
        self.ops = fuse(plan, graph.outputs, pool_fusion)
        self.flag_names: list[str] = ["inputs"]
        self._consts: dict[str, torch.Tensor] = {}
        #: how many int64 flag words lead a pass's result for a batch of ``nb`` (the dense chain
        #: writes its flags per program; every other pass writes ``n_flags``)
        self._flag_words: Callable[[int], int] = lambda nb: self.n_flags
        self._words: dict[int, int] = {}
        self._spans: dict[int, tuple[int, list[tuple[int, int, int]]]] = {}  # per nb: clean_outputs' layout
        self.chain = self._one_kernel()
        #: float inputs a first layer may quantize as it reads them (one consumer, fold_io), and
        #: those its kernel did take (the rest get a quantize launch of their own)
        self._foldable = self._fold_candidates() if self.tiles.fold_io else {}
        self._folded: set[str] = set()
        #: whether the last fused op writes the result and hands the flags over (no finalize)
        self._publishes = False
        self.prepared = [] if self.chain is not None else [self._prepare(op) for op in self.ops]
        self.n_flags = len(self.flag_names)
        self.output_sizes = [int(np.prod(graph.nodes[o].shape)) for o in graph.outputs]

    # -- set-up (plan time: packing the weights syncs, once) ---------------------------------
    def _one_kernel(self) -> _Prepared | None:
        """The whole pass as one launch where the policy allows and the plan fits: an MLP as a
        dense chain, else a small CNN as a tap-layer net; None: one launch per fused op."""
        chain = self._layer_chain() if self.tiles.chain or self.tiles.net else None
        if chain is None:
            return None
        one = self._dense_chain(chain) if self.tiles.chain else None
        if one is None and self.tiles.net:
            one = self._small_net(chain)
        return one

    def _const(self, name: str) -> torch.Tensor:
        """A constant on the device with the batch axis of 1 (as the op path holds it)."""
        if name not in self._consts:
            q = np.ascontiguousarray(self.plan.consts[name])
            self._consts[name] = torch.from_numpy(q).to(self.device).unsqueeze(0)
        return self._consts[name]

    def _slot(self, what: str) -> int:
        self.flag_names.append(what)
        return len(self.flag_names) - 1

    def _per_sample(self, name: str) -> int:
        return int(np.prod(self.graph.nodes[name].shape))

    def _layer_chain(self) -> list[FusedOp] | None:
        """The plan's GEMMs and convs if it is one chain of them (reshapes between them skipped)
        from one float input to one output; else None."""
        g = self.graph
        if len(g.inputs) != 1 or len(g.outputs) != 1 or not g.nodes[g.inputs[0]].attrs["float"]:
            return None
        cur, layers = g.inputs[0], []
        for op in self.ops:
            node = self.plan.steps[op.out].node
            if op.kind == "step" and node.op in ("reshape", "view", "identity") and op.inputs == [cur]:
                cur = op.out
                continue
            if op.kind not in ("gemm", "conv") or op.inputs[0] != cur:
                return None
            layers.append(op)
            cur = op.out
        return layers if layers and cur == g.outputs[0] else None

    def _dense_chain(self, chain: list[FusedOp]) -> _Prepared | None:
        """The whole plan as one ``kernels.dense_chain`` launch, if ``chain`` is small dense layers
        only, each exact in float64 under its planned input bound; else None."""
        from vcompute.kernels.dense_chain import DenseLayer, dense_chain, flag_words, pack_dense_chain

        layers, txt = [], []
        for op in chain:
            if op.kind != "gemm":
                return None
            w, bias = self._gemm_operands(op)
            x = op.inputs[0]
            if not self._dense_fits(op, tuple(w.shape)):
                return None
            shift, lo, hi = op.attrs["shift"], op.attrs["lo"], op.attrs["hi"]
            layers.append(DenseLayer(w, bias, shift, lo, hi, self.bounds.value[x]))
            txt.append(f"{w.shape[0]}->{w.shape[1]}{_epilogue_text(bias, shift, lo, hi)}")
        try:
            packed = pack_dense_chain(layers)
        except (ValueError, OverflowError):
            return None
        outs = [op.out for op in chain]
        self.flag_names.append(f"dense chain ({', '.join(outs)})")
        block = self.tiles.chain_block
        self._flag_words = lambda nb: flag_words(nb, packed, block)

        def fn(inputs: list[torch.Tensor], flags: torch.Tensor) -> torch.Tensor:
            x = inputs[0].reshape(inputs[0].shape[0], -1)
            return dense_chain(x, packed, *self._quant(0), block_m=block)

        return _Prepared(FusedOp("chain", outs, [self.graph.inputs[0]]), fn,
                         f"dense chain in one launch (quantize, {len(layers)} float64 layers, outputs and flags): "
                         + "; ".join(txt))

    def _dense_fits(self, op: FusedOp, shape: tuple[int, ...]) -> bool:
        """Whether the fused GEMM ``op`` is one dense layer per sample: its weight [K, N]
        (``shape``) maps the K values of each sample's input to the N of its output."""
        return len(shape) == 2 and self._per_sample(op.inputs[0]) == shape[0] and self._per_sample(op.out) == shape[1]

    def _tap_layer(self, op: FusedOp, budget: int):
        """``op`` (a fused GEMM, or a 2-D conv with its activation and pool) as a
        ``kernels.small_net.TapLayer`` of at most ``budget`` table entries, or None if it does not
        fit one (the size is checked before any table is built)."""
        from vcompute.kernels.small_net import POOL_MAX, POOL_SUM, TapLayer

        from .taps import conv_table_size, conv_taps, dense_taps

        x, a = op.inputs[0], op.attrs
        common = dict(shift=a["shift"], lo=a["lo"], hi=a["hi"], in_width=self._per_sample(x),
                      a_bound=self.bounds.value[x], out_bound=self.bounds.value[op.out])
        if op.kind == "gemm":
            w, bias = self._gemm_consts(op)
            if not self._dense_fits(op, w.shape) or w.size > budget:
                return None
            idx, wt = dense_taps(w)
            return TapLayer(idx, wt, bias, True, **common)
        w = np.asarray(self.plan.consts[a["weight"]])
        node = self.plan.steps[op.steps[0]].node
        shape = tuple(self.graph.nodes[x].shape)
        if w.ndim != 4 or len(shape) != 4 or shape[0] != 1:
            return None
        (t, b), (l, r) = node.attrs["pads"]
        stride, pool = tuple(node.attrs["stride"]), a.get("pool")
        kernel = pool["kernel"] if pool else None
        if conv_table_size(w.shape, shape[1:], stride, (t, l, b, r), kernel) > budget:
            return None
        idx, wt, (o, hp, wp) = conv_taps(w, shape[1:], stride, (t, l, b, r), node.attrs["group"], kernel)
        if o * hp * wp != self._per_sample(op.out):
            return None
        bias = None
        if a["bias"] is not None:
            bias = np.repeat(np.asarray(self.plan.consts[a["bias"]]).reshape(-1), hp * wp)
        if pool is None:
            return TapLayer(idx, wt, bias, False, **common)
        if pool["divisor"] & (pool["divisor"] - 1):
            return None
        return TapLayer(idx, wt, bias, False, **common, pool=POOL_MAX if pool["max"] else POOL_SUM,
                        pool_shift=pool["divisor"].bit_length() - 1, pool_lo=pool["lo"], pool_hi=pool["hi"])

    def _small_net(self, chain: list[FusedOp]) -> _Prepared | None:
        """The whole plan as one ``kernels.small_net`` launch, if ``chain``'s layers fit tap layers
        of at most ``TilePolicy.net_max_taps`` table entries in all, each exact in float64; else None."""
        from vcompute.kernels.small_net import N_FLAGS, pack_small_net, small_net

        layers, budget = [], self.tiles.net_max_taps
        for op in chain:
            ly = self._tap_layer(op, budget)
            if ly is None:
                return None
            layers.append(ly)
            budget -= ly.idx.size
        try:
            packed = pack_small_net(layers, self.device)
        except (ValueError, OverflowError):
            return None
        outs = [op.out for op in chain]
        self.flag_names.append(f"small net ({', '.join(outs)})")
        n_out, cfg = packed.widths[-1], self.tiles.net_config()

        def fn(inputs: list[torch.Tensor], flags: torch.Tensor) -> torch.Tensor:
            x = inputs[0].reshape(inputs[0].shape[0], -1)
            res = torch.empty(N_FLAGS + x.shape[0] * n_out, dtype=torch.int64, device=x.device)
            return small_net(x, packed, *self._quant(0), res, config=cfg)

        txt = [f"{'conv' if op.kind == 'conv' else 'dense'} {ly.in_width}->{ly.width}"
               f"{f' x{ly.idx.shape[0]} pooled' if ly.idx.shape[0] > 1 else ''}" for op, ly in zip(chain, layers)]
        return _Prepared(FusedOp("chain", outs, [self.graph.inputs[0]]), fn,
                         f"small net in one launch (quantize, {len(layers)} float64 tap layers, outputs and flags; "
                         f"blocks {cfg.block_m}x{cfg.block_n}): " + "; ".join(txt))

    def _fold_candidates(self) -> dict[str, int]:
        """{float graph input: its index} for each float input read by exactly one fused op."""
        reads: dict[str, int] = {}
        for op in self.ops:
            for i in set(op.inputs):
                reads[i] = reads.get(i, 0) + 1
        return {name: k for k, name in enumerate(self.graph.inputs)
                if self.graph.nodes[name].attrs["float"] and reads.get(name) == 1
                and name not in self.graph.outputs}

    def _fold_input(self, name: str) -> int | None:
        """The input's index if the op reading ``name`` quantizes it itself (and records that);
        its kernel reads the scale and ``input_bounds[k]`` at launch, as the quantize launch would."""
        k = self._foldable.get(name)
        if k is not None:
            self._folded.add(name)
        return k

    def _quant(self, k: int) -> tuple[int, int]:
        """(scale, bound) of float input ``k``, at launch time."""
        return self.plan.input_scales[k], self.input_bounds[k]

    def _publishing(self, op: FusedOp) -> bool:
        """Whether ``op`` is the pass's last launch and gives its one output (fold_io): it then
        writes that output into the result and hands the flags over itself."""
        outs = self.graph.outputs
        return self.tiles.fold_io and self.ops[-1] is op and len(outs) == 1 and op.out == outs[0]

    def _prepare(self, op: FusedOp) -> _Prepared:
        return getattr(self, f"_prep_{op.kind}")(op)

    def _gemm_consts(self, op: FusedOp) -> tuple[np.ndarray, np.ndarray | None]:
        """A fused GEMM's int64 weight [K, N] and its bias as an [N] vector (or None), on the host."""
        w = np.ascontiguousarray(self.plan.consts[op.attrs["weight"]])
        bias = None
        if op.attrs["bias"] is not None:
            bias = np.broadcast_to(np.asarray(self.plan.consts[op.attrs["bias"]]).reshape(-1), (w.shape[1],)).copy()
        return w, bias

    def _gemm_operands(self, op: FusedOp) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`_gemm_consts` on the device."""
        w, bias = self._gemm_consts(op)
        return (torch.from_numpy(w).to(self.device),
                None if bias is None else torch.from_numpy(bias).to(self.device))

    def _prep_gemm(self, op: FusedOp) -> _Prepared:
        from vcompute.kernels import int_matmul, pack_weight
        from vcompute.kernels.epilogue import Epilogue
        from vcompute.kernels.gemm import limbs_needed, padded_limbs
        from vcompute.kernels.gemm_a64 import a64_matmul
        from vcompute.kernels.gemm_f64 import f64_exact, pack_weight_f64

        step = self.plan.steps[op.steps[0]]
        w, bias = self._gemm_operands(op)
        k = w.shape[0]
        ba = self.bounds.value[op.inputs[0]]
        la = limbs_needed(-ba, ba)
        slot = self._slot(op.out)
        shift, lo, hi = op.attrs["shift"], op.attrs["lo"], op.attrs["hi"]
        out_shape = tuple(self.plan.steps[op.out].node.shape)
        tiles, x_name = self.tiles, op.inputs[0]
        if tiles.gemm_f64(k, w.shape[1]):
            wf = pack_weight_f64(w)
            if f64_exact(ba, wf):
                return self._prep_gemm_f64(op, step, wf, ba, bias, slot)
        packed = pack_weight(w)
        plim = (padded_limbs(la), packed.limbs.shape[1])
        epi = Epilogue.make("gemm", shift, True, None, (lo, hi))

        def fn(env, flags):
            a = env[x_name]
            nb = a.shape[0]
            a2 = a.reshape(-1, k)
            cfg = tiles.gemm_config(a2.shape[0], *plim, w.shape[1])
            if tiles.split_in_gemm:
                y = a64_matmul(a2, packed, bias, la, ba, flags[slot:slot + 1], epi, cfg)
            else:
                y = int_matmul(a2, packed, bias, cfg, limbs=la, bounds=(ba, None), flag=flags[slot:slot + 1],
                               rescale_shift=shift, bias_after_rescale=True, clip=(lo, hi))
            env[op.out] = y.reshape(nb, *out_shape)

        split = " split in the GEMM" if tiles.split_in_gemm else ""
        return _Prepared(op, fn, f"gemm K={k} N={w.shape[1]} limbs {la}x{packed.n_limbs}{split}"
                                 f"{_epilogue_text(bias, shift, lo, hi)} [{step.node.onnx_op}]")

    def _prep_gemm_f64(self, op: FusedOp, step: Step, wf, ba: int, bias: torch.Tensor | None,
                       slot: int) -> _Prepared:
        """The GEMM in float64 (``kernels.gemm_f64``): one launch, the epilogue fused, exact because
        ``ba`` times the weight's column L1 norm stays below 2^53. With fold_io it also quantizes
        a model input it reads, and as the last launch writes the result and hands the flags over."""
        from vcompute.kernels.epilogue import Epilogue
        from vcompute.kernels.flags import Handover
        from vcompute.kernels.gemm_f64 import f64_matmul

        shift, lo, hi = op.attrs["shift"], op.attrs["lo"], op.attrs["hi"]
        epi = Epilogue.make("gemm", shift, True, None, (lo, hi))
        out_shape = tuple(self.plan.steps[op.out].node.shape)
        tiles, x_name = self.tiles, op.inputs[0]
        k, n = wf.shape
        quant = self._fold_input(x_name)
        n_flags = len(self.flag_names) if self._publishing(op) else 0
        self._publishes = self._publishes or n_flags > 0

        def fn(env, flags):
            a = env[x_name]
            nb = a.shape[0]
            a2 = a.reshape(-1, k)
            out = hand = None
            if n_flags:
                env[RESULT] = res = torch.empty(n_flags + a2.shape[0] * n, dtype=torch.int64, device=a.device)
                ticket = flags[self.n_flags:self.n_flags + 1]  # the buffer's own (new_flags)
                out, hand = res[n_flags:].view(a2.shape[0], n), Handover(ticket, flags, n_flags, res)
            scale, bound = self._quant(quant) if quant is not None else (None, ba)
            y = f64_matmul(a2, wf, bound, flags[slot:slot + 1], bias, epi, tiles.f64_config(a2.shape[0], n, k),
                           a_scale=scale, in_flag=flags[0:1], out=out, handover=hand)
            env[op.out] = y.reshape(nb, *out_shape)

        dot = tiles.f64_config(1, n, k).block_k > 0  # the K step does not depend on the rows
        return _Prepared(op, fn, f"gemm K={k} N={n} float64{' dot' if dot else ''}"
                                 f"{' (quantizes its input)' if quant is not None else ''}"
                                 f"{' (writes the result and flags)' if n_flags else ''}"
                                 f"{_epilogue_text(bias, shift, lo, hi)} [{step.node.onnx_op}]")

    def _prep_conv(self, op: FusedOp) -> _Prepared:
        from dataclasses import replace

        from vcompute.kernels import pack_conv_weight
        from vcompute.kernels.conv import _launch_conv
        from vcompute.kernels.epilogue import Epilogue
        from vcompute.kernels.gemm import check_accumulator_bound, limbs_needed, padded_limbs

        from .fast_kernels import DotWeight, conv_pool, direct_conv, pack_dot_weight, split_nchw

        step = self.plan.steps[op.steps[0]]
        node = step.node
        w = torch.from_numpy(np.ascontiguousarray(self.plan.consts[op.attrs["weight"]])).to(self.device)
        if w.dim() == 3:  # 1-D conv: (O, I, k) -> (O, I, 1, k)
            w = w.unsqueeze(2)
        bias = self._const(op.attrs["bias"]).reshape(-1) if op.attrs["bias"] is not None else None
        bx = self.bounds.value[op.inputs[0]]
        o, cg, kh, kw = w.shape
        k = cg * kh * kw
        groups = node.attrs["group"]
        direct = self.tiles.direct(o // groups, k)
        if direct:
            wq = self.plan.consts[op.attrs["weight"]]
            w_max = _absmax(wq)
            narrow = bx < 2**31 and w_max < 2**31
            # the conv's peak (analyze_bounds) bounds every partial sum of its accumulator
            f64 = self.tiles.conv_acc != "int64" and self.bounds.peak[op.steps[0]] < F64_EXACT
            if f64 and self.tiles.conv_dot(k):  # an implicit GEMM on the FP64 tensor cores
                w_direct = pack_dot_weight(w, groups)
            else:
                w_direct = w.to(torch.float64 if f64 else torch.int32 if w_max < 2**31 else torch.int64).contiguous()
            la = lb = 0
        else:
            packed = pack_conv_weight(w)
            la = padded_limbs(limbs_needed(-bx, bx))
            lb = packed.limbs.shape[1]
            check_accumulator_bound(k, la, lb, bx, packed.bound, f"conv {node.onnx_op}")
        slot = self._slot(op.out)
        (t, b), (l, r) = node.attrs["pads"]
        stride = tuple(node.attrs["stride"])
        shift, lo, hi = op.attrs["shift"], op.attrs["lo"], op.attrs["hi"]
        epi = Epilogue.make("conv", shift, False, None, (lo, hi))
        # the folded conv quantizes each input value once per tap it feeds: a gain for few taps
        quant = self._fold_input(op.inputs[0]) if direct and k <= FOLD_CONV_MAX_TAPS else None
        pool = op.attrs.get("pool")
        out_shape = tuple(self.plan.steps[op.out].node.shape)
        tiles, x_name = self.tiles, op.inputs[0]
        kk = int(np.prod(pool["kernel"])) if pool else 1

        def fn(env, flags):
            x = env[x_name]
            nb = x.shape[0]
            xi = x.reshape(-1, *x.shape[2:])
            if xi.dim() == 3:
                xi = xi.unsqueeze(2)
            n_img, _, h, wd = xi.shape
            f = flags[slot:slot + 1]
            if direct:
                y = direct_conv(xi, w_direct, bias, stride, (t, l, b, r), groups, epi, f, narrow,
                                pool["kernel"] if pool else None, bool(pool and pool["max"]),
                                pool["divisor"] if pool else 1, (pool["lo"], pool["hi"]) if pool else (None, None),
                                tiles.direct_block, x_quant=(*self._quant(quant), flags[0:1]) if quant is not None else None)
                env[op.out] = y.reshape(nb, *out_shape)
                return
            x_l = split_nchw(xi, la, -bx, bx, f)
            ho = (h + t + b - kh) // stride[0] + 1
            wo = (wd + l + r - kw) // stride[1] + 1
            cfg = tiles.conv_config(n_img * ho * wo, o // groups, k, la, lb)
            if pool is None:
                y = _launch_conv(x_l, packed.limbs, bias, (n_img, h, wd, o, ho, wo, cg, kw, k),
                                 (stride[0], stride[1], t, l, 1, 1), groups, cfg, epi, f)
            else:
                if cfg.block_m // la < kk:
                    cfg = replace(cfg, block_m=kk * la)
                y = conv_pool(x_l, packed.limbs, bias, n_img, h, wd, o, cg, kh, kw, stride, (t, l, b, r), groups,
                              pool["kernel"], pool["max"], pool["divisor"], (pool["lo"], pool["hi"]), cfg, epi, f)
            env[op.out] = y.reshape(nb, *out_shape)

        pool_txt = ""
        if pool:
            kind, (ph, pw), pdiv = "max" if pool["max"] else "sum", pool["kernel"], pool["divisor"]
            pool_txt = f" + {kind}pool {ph}x{pw}" + (f" /{pdiv}" if pdiv > 1 else "")
        acc = ("float64 dot" if isinstance(w_direct, DotWeight) else
               "float64" if w_direct.dtype == torch.float64 else "int64") if direct else ""
        how = (f"direct {acc}"
               f"{' (quantizes its input)' if quant is not None else ''}" if direct else f"limbs {la}x{lb}")
        return _Prepared(op, fn, f"conv {o}x{cg}x{kh}x{kw} {how}{_epilogue_text(bias, shift, lo, hi)}{pool_txt}")

    def _prep_eltwise(self, op: FusedOp) -> _Prepared:
        from vcompute.kernels import fused_elementwise

        step = self.plan.steps[op.steps[0]]
        shape = tuple(step.node.shape)
        rank = len(shape) + 1
        kind, shift, (sa, sb) = op.attrs["op"], op.attrs["shift"], op.attrs["shifts"]
        lo, hi = op.attrs["lo"], op.attrs["hi"]
        clip = (lo, hi) if lo is not None or hi is not None else None
        slot = self._slot(op.out)
        names = list(op.inputs)
        consts = {n: self._const(n) for n in names if n in self.plan.consts}
        cfg = self.tiles.block_config()
        out_shape = tuple(self.plan.steps[op.out].node.shape)

        def fn(env, flags):
            f = flags[slot:slot + 1]
            if kind is None:
                y = fused_elementwise(env[names[0]], None, None, a_shift=sa, rescale_shift=shift, clip=clip,
                                      flag=f, config=cfg)
            else:
                a, b = (align(consts.get(n, env.get(n)), rank) for n in names)
                nb = max(a.shape[0], b.shape[0])
                full = (nb, *shape)
                x_sa, x_sb = sa, sb
                if tuple(a.shape) != full:
                    if kind in ("add", "mul") and tuple(b.shape) == full:
                        a, b, x_sa, x_sb = b, a, sb, sa
                    else:
                        a = a.expand(full).contiguous()
                y = fused_elementwise(a, b, kind, a_shift=x_sa, b_shift=x_sb, rescale_shift=shift, clip=clip,
                                      flag=f, config=cfg)
            env[op.out] = y.reshape(y.shape[0], *out_shape)

        return _Prepared(op, fn, f"eltwise {kind or 'unary'}{f' <<{sa},{sb}' if sa or sb else ''}"
                                 f"{f' >>{shift}' if shift else ''}"
                                 f"{f' clamp({lo},{hi})' if clip else ''} [{'+'.join(op.steps) if len(op.steps) < 4 else step.node.onnx_op}]")

    def _prep_pool(self, op: FusedOp) -> _Prepared:
        from vcompute.kernels import fused_elementwise

        from .fast_kernels import pool2d

        node = self.plan.steps[op.steps[0]].node
        (t, b), (l, r) = node.attrs["pads"]
        kernel, stride = tuple(node.attrs["kernel"]), tuple(node.attrs["stride"])
        is_max = node.op == "maxpool"
        div, rebase = op.attrs["divisor"], op.attrs["rebase"]
        lo, hi = op.attrs["lo"], op.attrs["hi"]
        slot = self._slot(op.out)
        cfg = self.tiles.block_config()
        out_shape = tuple(self.plan.steps[op.out].node.shape)
        x_name = op.inputs[0]

        def fn(env, flags):
            x = env[x_name]
            nb = x.shape[0]
            f = flags[slot:slot + 1]
            y = pool2d(x.reshape(-1, *x.shape[-3:]), kernel, stride, (t, l, b, r), is_max, f, div, (lo, hi), cfg)
            if rebase is not None:
                y = fused_elementwise(y, None, None, rescale_shift=rebase.bit_length() - 1, flag=f, config=cfg)
            env[op.out] = y.reshape(nb, *out_shape)

        return _Prepared(op, fn, f"{node.op} {kernel[0]}x{kernel[1]}/{stride[0]}"
                                 f"{f' /{div}' if div > 1 else ''}"
                                 f"{f' clamp({lo},{hi})' if lo is not None or hi is not None else ''}")

    def _prep_step(self, op: FusedOp) -> _Prepared:
        from vcompute.kernels import fused_elementwise

        step = self.plan.steps[op.out]
        node = step.node
        be = NoSyncBackend()
        names = list(op.inputs)
        consts = {n: self._const(n) for n in names if n in self.plan.consts}
        rebase = op.attrs["rebase"]
        slot = self._slot(op.out) if rebase is not None else None
        cfg = self.tiles.block_config()
        if node.op == "sum":
            axes = [int(a) + 1 for a in node.attrs["axes"]]

            def run(args):
                return args[0].sum(dim=axes, keepdim=True).reshape(args[0].shape[0], *node.shape)
        elif node.op == "leaky":  # run_leaky's integers, without a host-made tensor (graph capture)
            alpha, lshift = int(step.extra["alpha_q"]), int(step.extra["shift"])

            def run(args):
                pos = args[0].clamp_min(0)
                return (pos << lshift) + (args[0] - pos) * alpha
        else:
            spec = registry.ezkl(node)

            def run(args):
                return spec.run(be, step, args)

        def fn(env, flags):
            y = run([consts[n] if n in consts else env[n] for n in names])
            if rebase is not None:
                y = fused_elementwise(y.contiguous(), None, None, rescale_shift=rebase.bit_length() - 1,
                                      flag=flags[slot:slot + 1], config=cfg)
            env[op.out] = y

        return _Prepared(op, fn, f"{node.op}{f' >>{rebase.bit_length() - 1}' if rebase else ''}")

    # -- running ------------------------------------------------------------------------------
    def flag_words(self, nb: int) -> int:
        """How many int64 flag words lead :meth:`forward`'s result for a batch of ``nb`` (kept per
        batch size: every served batch reads its flags through this)."""
        if nb not in self._words:
            self._words[nb] = self._flag_words(nb)
        return self._words[nb]

    def clean_outputs(self, res: np.ndarray, nb: int) -> list[np.ndarray] | None:
        """Each output's [nb, n] integers (copies) from a pass's result on the host, or None where
        any flag word is set (then :meth:`read_flags` says which). A clean pass leaves every word
        zero, so one ``any`` over them decides: the hot step of every served batch
        (``Engine.infer_stream``), cheaper than ORing the words into flags first."""
        layout = self._spans.get(nb)
        if layout is None:
            words = off = self.flag_words(nb)
            spans = []
            for n in self.output_sizes:
                spans.append((off, off + nb * n, n))
                off += nb * n
            layout = self._spans[nb] = (words, spans)
        words, spans = layout
        if res[:words].any():
            return None
        return [res[a:b].reshape(nb, n).copy() for a, b, n in spans]

    def read_flags(self, res: np.ndarray, nb: int) -> np.ndarray:
        """The pass's ``n_flags`` flags (one per entry of ``flag_names``) from its result on the
        host: the flag words ORed (one row of them unless the pass was one kernel)."""
        from vcompute.kernels.flags import or_flag_words

        return or_flag_words(res[: self.flag_words(nb)], self.n_flags)

    def new_flags(self) -> torch.Tensor:
        """A zeroed int32 flag buffer for :meth:`forward`: the ``n_flags`` flags, then the int32
        ticket of the last kernel's flag hand-over (``kernels.flags.publish_flags``). Each buffer
        has its own ticket, so passes of one plan with their own buffers (graphs replayed on
        different streams: ``Engine.infer_stream``) may run at the same time."""
        return torch.zeros(self.n_flags + 1, dtype=torch.int32, device=self.device)

    def forward(self, inputs: list[torch.Tensor], flags: torch.Tensor) -> torch.Tensor:
        """The whole batch, no host sync: returns ``cat(flag words, out_0, out_1, ...)`` as int64
        (:meth:`flag_words` of them, :meth:`read_flags` to read them).

        ``flags`` must be zero on entry; the last kernel copies them out and zeroes them again (a
        one-kernel pass does not touch them), so a CUDA graph of this pass can be replayed as it is."""
        from vcompute.kernels.pdl import dependent_launches

        with dependent_launches(self.tiles.pdl):
            return self._forward(inputs, flags)

    def _forward(self, inputs: list[torch.Tensor], flags: torch.Tensor) -> torch.Tensor:
        from .fast_kernels import finalize, quantize_input

        if self.chain is not None:
            return self.chain.fn(inputs, flags)
        env: dict[str, torch.Tensor] = {}
        cfg = self.tiles.block_config()
        for k, name in enumerate(self.graph.inputs):
            node = self.graph.nodes[name]
            x = inputs[k]
            if node.attrs["float"] and name not in self._folded:
                x = quantize_input(x, self.plan.input_scales[k], self.input_bounds[k], flags[0:1], cfg)
            env[name] = x.reshape(x.shape[0], *node.shape)
        for p in self.prepared:
            p.fn(env, flags)
        if self._publishes:
            return env[RESULT]
        return finalize(flags, self.n_flags, [env[o] for o in self.graph.outputs])

    def describe(self) -> list[str]:
        """One line per launch group, with its limbs and epilogue (for ``--json`` and docs)."""
        return [self.chain.describe] if self.chain is not None else [p.describe for p in self.prepared]


__all__ = ["BOUND_LIMIT", "Bounds", "CompiledPlan", "FusedOp", "GENERIC_OPS", "NoSyncBackend",
           "NotCompilable", "TILE_POLICIES", "TilePolicy", "analyze_bounds", "fuse", "rebase_bound",
           "tile_policy", "torch_div_round"]
