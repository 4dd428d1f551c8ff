"""A small fixed-point CNN in one launch: quantize, every conv / pool / dense layer, outputs, flags (#9).

:mod:`kernels.dense_chain` runs an MLP as one kernel; a small CNN still paid a launch per conv
(its pool fused), one for its head and the flag hand-over, each far shorter than its launch. Here
every layer is a *tap layer*: output ``j`` at window position ``p`` is

    v[p, j] = clamp(rescale(sum_t h[idx[p, t, j]] * w[p, t, j]  (+ bias[j] before or after)), lo, hi)

and the layer's output is ``pool_p v[p, j]`` (max, or sum then a rounded shift: EZKL's average),
clamped again. A dense layer is one position with ``idx[0, t, j] = t``; a conv lists, for each
output pixel of each pooling-window position, the input cells its taps read (a padded tap reads
cell 0 with weight 0, which adds an exact 0). The host builds the tables
(``vcompute.engine.taps``); this kernel only gathers, multiplies and reduces.

Each program takes ``BLOCK_M`` samples. Their activations live in a per-program float64 scratch
of two ``[BLOCK_M, S]`` buffers (read one, write the other, a block barrier between layers:
``tl.debug_barrier`` orders the block's global-memory accesses, and the buffers stay in the SM's
L1). Products are float64, exact for the reason :mod:`kernels.gemm_f64` gives: the host refuses
a layer unless ``a_bound * max_{p,j} sum_t |w[p, t, j]| < 2^53``, so every partial sum is an
integer below 2^53 and the bits never depend on the summation order or on the block sizes.

Flags, as the dense chain's: flag 0 is the model input's (``FLAG_INPUT_RANGE``), flag 1 all the
layers' (an output beyond its planned bound: ``FLAG_A_RANGE``; a rescale at 2^52; a wrapped bias
add). They go straight into the first two int64 words of the result, zeroed before the launch: a
program with no error does no atomic at all, and no last program hands the flags over.
"""

from __future__ import annotations

from vcompute.kernels import runtime  # noqa: F401,I001  (first: sets TRITON_INTERPRET before triton loads)

from dataclasses import dataclass

import numpy as np
import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import INT64_MAX, INT64_MIN
from vcompute.kernels.epilogue import bit_or
from vcompute.kernels.flags import FLAG_A_RANGE, FLAG_ADD_OVERFLOW, FLAG_INPUT_RANGE, FLAG_RESCALE_LIMIT
from vcompute.kernels.gemm_f64 import check_f64_bound, pack_weight_f64
from vcompute.kernels.quantize import quantize_tile
from vcompute.kernels.rescale import DIV_ROUND_LIMIT, round_shift

#: the net's flags: the model input's, then one for all its layers
N_FLAGS = 2
#: pooling kinds of the layer table
POOL_NONE, POOL_MAX, POOL_SUM = 0, 1, 2
_ROW = 16  # table columns per layer, see SmallNet

_A_CODE: tl.constexpr = tl.constexpr(FLAG_A_RANGE)
_ADD_CODE: tl.constexpr = tl.constexpr(FLAG_ADD_OVERFLOW)
_INPUT_CODE: tl.constexpr = tl.constexpr(FLAG_INPUT_RANGE)
_LIMIT_CODE: tl.constexpr = tl.constexpr(FLAG_RESCALE_LIMIT)
_LIMIT: tl.constexpr = tl.constexpr(DIV_ROUND_LIMIT)


@triton.jit
def _tap_layer(src, dst, idx_ptr, w_ptr, b_ptr, row, res_ptr, out_offset, rm, m_ok, rows,
               S: tl.constexpr, T: tl.constexpr, P: tl.constexpr, NP: tl.constexpr, DENSE: tl.constexpr,
               BIAS_AFTER: tl.constexpr, POOL: tl.constexpr, TAP_OFF: tl.constexpr, BIAS_OFF: tl.constexpr,
               NC: tl.constexpr,
               LAST: tl.constexpr, BLOCK_M: tl.constexpr):
    """One tap layer of ``BLOCK_M`` samples from the float64 scratch ``src`` into ``dst`` (or, the
    ``LAST``, into ``res``); returns its error codes ORed. Every loop is unrolled (the shapes are
    constexprs): a layer's loads can all be in flight at once, with no loop-carried chain of
    latencies; a dense layer reads its input row directly, not through ``idx``. The table offsets
    are constexprs too: with the L2 cache cold, a load of them would put one more memory round
    trip before the layer's first weight load."""
    shift = tl.load(row)
    lo = tl.load(row + 1)
    hi = tl.load(row + 2)
    p_shift = tl.load(row + 3)
    p_lo = tl.load(row + 4)
    p_hi = tl.load(row + 5)
    out_bound = tl.load(row + 6)
    code = 0
    for j0 in tl.static_range(0, NP, NC):
        jj = j0 + tl.arange(0, NC)
        j_ok = jj < NP
        bias = tl.load(b_ptr + BIAS_OFF + jj, mask=j_ok, other=0)[None, :]
        err = tl.zeros((BLOCK_M, NC), dtype=tl.int32)
        pooled = tl.zeros((BLOCK_M, NC), dtype=tl.int64)
        for p in tl.static_range(P):
            acc = tl.zeros((BLOCK_M, NC), dtype=tl.float64)
            for t in tl.static_range(T):  # one FMA per cell and tap: no reductions, no shuffles
                cell = TAP_OFF + (p * T + t) * NP + jj
                w = tl.load(w_ptr + cell, mask=j_ok, other=0.0)
                if DENSE:
                    h = tl.load(src + rows * S + t)[:, None]
                else:
                    h = tl.load(src + rows[:, None] * S + tl.load(idx_ptr + cell, mask=j_ok, other=0)[None, :])
                acc += h * w[None, :]
            v = acc.to(tl.int64)
            if not BIAS_AFTER:
                s = v + bias
                err |= tl.where(((v ^ s) & (bias ^ s)) < 0, _ADD_CODE, 0)
                v = s
            # EZKL's rebase by 2^shift where shift > 0, its 2^52 limit checked (a shift, not a
            # runtime division: see kernels.dense_chain)
            err |= tl.where(((v >= _LIMIT) | (v <= -_LIMIT)) & (shift > 0), _LIMIT_CODE, 0)
            v = tl.where(shift > 0, round_shift(v, tl.maximum(shift, 1)), v)
            if BIAS_AFTER:
                s = v + bias
                err |= tl.where(((v ^ s) & (bias ^ s)) < 0, _ADD_CODE, 0)
                v = s
            v = tl.minimum(tl.maximum(v, lo), hi)
            if p == 0:
                pooled = v
            elif POOL == 1:
                pooled = tl.maximum(pooled, v)
            else:
                pooled += v
        if POOL == 2:
            pooled = tl.where(p_shift > 0, round_shift(pooled, tl.maximum(p_shift, 1)), pooled)
        if POOL != 0:
            pooled = tl.minimum(tl.maximum(pooled, p_lo), p_hi)
        err |= tl.where((pooled > out_bound) | (pooled < -out_bound), _A_CODE, 0)
        err = tl.where(m_ok[:, None] & j_ok[None, :], err, 0)
        code |= tl.reduce(tl.reduce(err, 1, bit_or), 0, bit_or)
        if LAST:
            tl.store(res_ptr + out_offset + rm[:, None] * NP + jj[None, :], pooled,
                     mask=m_ok[:, None] & j_ok[None, :])
        else:
            tl.store(dst + rows[:, None] * S + jj[None, :], pooled.to(tl.float64), mask=j_ok[None, :])
    return code


@triton.jit
def _small_net_kernel(x_ptr, idx_ptr, w_ptr, b_ptr, tab_ptr, scratch_ptr, res_ptr,
                      M, out_offset, mult, in_bound,
                      SHAPES: tl.constexpr, L: tl.constexpr, K0: tl.constexpr, S: tl.constexpr,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """res[out_offset + m * n_out + j] = the net's output j of sample m; flags as in the module doc.
    ``SHAPES[l]``: layer l's (taps, positions, outputs, dense, bias_after, pool, tap offset, bias
    offset, outputs per step)."""
    pid = tl.program_id(0).to(tl.int64)
    rm = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = rm < M
    rows = tl.arange(0, BLOCK_M).to(tl.int64)
    src = scratch_ptr + pid * (2 * BLOCK_M * S)
    dst = src + BLOCK_M * S
    # the model input, quantized as EZKL does, into the first buffer
    in_err = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for c0 in tl.static_range(0, K0, BLOCK_N):
        cc = c0 + tl.arange(0, BLOCK_N)
        ok = m_ok[:, None] & (cc < K0)[None, :]
        x = tl.load(x_ptr + rm[:, None] * K0 + cc[None, :], mask=ok, other=0.0)
        q, bad = quantize_tile(x, mult, in_bound)
        in_err |= tl.where(bad & ok, _INPUT_CODE, 0)
        tl.store(src + rows[:, None] * S + cc[None, :], q.to(tl.float64), mask=(cc < K0)[None, :])
    code = 0
    for layer in tl.static_range(L):
        tl.debug_barrier()  # the layer's input is in ``src``, written by the whole block
        code |= _tap_layer(src, dst, idx_ptr, w_ptr, b_ptr, tab_ptr + layer * 16, res_ptr, out_offset, rm, m_ok,
                           rows, S, SHAPES[layer][0], SHAPES[layer][1], SHAPES[layer][2], SHAPES[layer][3],
                           SHAPES[layer][4], SHAPES[layer][5], SHAPES[layer][6], SHAPES[layer][7], SHAPES[layer][8],
                           layer == L - 1,
                           BLOCK_M)
        src, dst = dst, src
    # the flags go straight into the result (zeroed before the launch): no atomics unless an
    # error occurred, and no hand-over ticket (its round trip cost about 2 µs per pass)
    in_code = tl.reduce(tl.reduce(tl.where(m_ok[:, None], in_err, 0), 1, bit_or), 0, bit_or)
    if in_code != 0:
        tl.atomic_or(res_ptr, in_code.to(tl.int64))
    if code != 0:
        tl.atomic_or(res_ptr + 1, code.to(tl.int64))


@dataclass(frozen=True)
class TapLayer:
    """One layer as int64 tables (see the module doc): ``idx`` and ``weight`` [P, T, NP] (P window
    positions, T taps, NP outputs), ``bias`` [NP] or None, added after the rescale if
    ``bias_after`` (an ONNX Gemm) else before (a conv); rescale by ``2^shift``; clamp ``lo``/``hi``;
    ``pool`` (POOL_NONE with P == 1, POOL_MAX, POOL_SUM) then a rounded shift by ``pool_shift``
    and the clamp ``pool_lo``/``pool_hi``. ``in_width``: the input's width; ``a_bound`` and
    ``out_bound``: the planned bounds on ``|input|`` and ``|output|``."""

    idx: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    bias_after: bool
    shift: int
    lo: int | None
    hi: int | None
    in_width: int
    a_bound: int
    out_bound: int
    pool: int = POOL_NONE
    pool_shift: int = 0
    pool_lo: int | None = None
    pool_hi: int | None = None

    @property
    def width(self) -> int:
        return int(self.idx.shape[2])


@dataclass(frozen=True)
class SmallNet:
    """Packed layers on one device: the int32 gather indices and float64 weights of every layer,
    flat; the int64 biases, flat; an int64 table [L, 16] (shift, lo, hi, pool_shift, pool_lo,
    pool_hi, out_bound, then zeros); and per layer the kernel's static shape (taps, positions,
    outputs, dense, bias_after, pool, tap offset, bias offset)."""

    idx: torch.Tensor
    weights: torch.Tensor
    biases: torch.Tensor
    table: torch.Tensor
    shapes: tuple[tuple[int, ...], ...]
    widths: tuple[int, ...]

    @property
    def n_layers(self) -> int:
        return len(self.widths) - 1

    @property
    def scratch_width(self) -> int:
        """Cells per sample of each scratch buffer: the widest layer input."""
        return max(self.widths[:-1])

    def kernel_shapes(self, block_n: int) -> tuple[tuple[int, ...], ...]:
        """``shapes`` with each layer's outputs per step (at most ``block_n``)."""
        return tuple((*sh, min(block_n, triton.next_power_of_2(sh[2]))) for sh in self.shapes)


def _dense(ly: "TapLayer") -> bool:
    """Whether the layer reads input t at tap t for every output (a dense layer: no gather)."""
    p, t, n = ly.idx.shape
    return p == 1 and bool((ly.idx[0] == np.arange(t)[:, None]).all())


def _check_layer(i: int, ly: TapLayer, width: int) -> None:
    """ValueError / OverflowError naming layer ``i`` if its tables are inconsistent or inexact."""
    what = f"small_net: layer {i}"
    if ly.idx.ndim != 3 or ly.idx.shape != ly.weight.shape:
        raise ValueError(f"{what}: idx and weight must be [P, T, NP] alike, got {ly.idx.shape} and {ly.weight.shape}")
    if ly.in_width != width:
        raise ValueError(f"{what} takes {ly.in_width} inputs, the previous layer gives {width}")
    if ly.idx.size and (ly.idx.min() < 0 or ly.idx.max() >= width):
        raise ValueError(f"{what}: a gather index is outside [0, {width})")
    if ly.bias is not None and ly.bias.shape != (ly.width,):
        raise ValueError(f"{what}: bias has shape {ly.bias.shape} for {ly.width} outputs")
    if not 0 <= ly.shift <= 52 or not 0 <= ly.pool_shift <= 4:
        raise ValueError(f"{what}: shift must be in [0, 52] and pool_shift in [0, 4]")
    if ly.pool not in (POOL_NONE, POOL_MAX, POOL_SUM) or (ly.pool == POOL_NONE and ly.idx.shape[0] != 1):
        raise ValueError(f"{what}: pool {ly.pool} with {ly.idx.shape[0]} window positions")
    p, t, n = ly.weight.shape  # each (position, output) sums over the taps: a column of [T, P * NP]
    columns = torch.from_numpy(np.ascontiguousarray(ly.weight.transpose(1, 0, 2).reshape(t, p * n), dtype=np.int64))
    check_f64_bound(ly.a_bound, pack_weight_f64(columns), what)


def pack_small_net(layers: list[TapLayer], device: torch.device | str) -> SmallNet:
    """Check ``layers`` (ValueError / OverflowError naming the layer) and pack them on ``device``."""
    if not layers:
        raise ValueError("small_net: no layers")
    widths = [layers[0].in_width]
    rows, idx, wts, biases, shapes = [], [], [], [], []
    tap_off = bias_off = 0
    for i, ly in enumerate(layers):
        _check_layer(i, ly, widths[-1])
        p, t, n = ly.idx.shape
        bias = np.zeros(n, dtype=np.int64) if ly.bias is None else ly.bias.astype(np.int64)
        rows.append([ly.shift, INT64_MIN if ly.lo is None else ly.lo, INT64_MAX if ly.hi is None else ly.hi,
                     ly.pool_shift, INT64_MIN if ly.pool_lo is None else ly.pool_lo,
                     INT64_MAX if ly.pool_hi is None else ly.pool_hi, ly.out_bound] + [0] * (_ROW - 7))
        shapes.append((t, p, n, int(_dense(ly)), int(ly.bias_after), ly.pool, tap_off, bias_off))
        idx.append(ly.idx.reshape(-1).astype(np.int32))
        wts.append(ly.weight.reshape(-1).astype(np.float64))
        biases.append(bias)
        tap_off += ly.idx.size
        bias_off += n
        widths.append(n)
    dev = torch.device(device)
    return SmallNet(torch.from_numpy(np.concatenate(idx)).to(dev), torch.from_numpy(np.concatenate(wts)).to(dev),
                    torch.from_numpy(np.concatenate(biases)).to(dev),
                    torch.tensor(rows, dtype=torch.int64).reshape(len(layers), _ROW).to(dev), tuple(shapes),
                    tuple(widths))


@dataclass(frozen=True)
class NetConfig:
    """Samples per program, at most this many outputs per step, warps (powers of two). Bits never
    depend on them (the sums are exact). The default was the fastest for the bundled CNN on the
    H100 (BENCHMARKS.md §2d): more samples per program spill registers (8: 4x slower)."""

    block_m: int = 1
    block_n: int = 64
    num_warps: int = 2

    def check(self) -> None:
        for name in ("block_m", "block_n", "num_warps"):
            v = getattr(self, name)
            if v < 1 or v & (v - 1):
                raise ValueError(f"small_net: {name} must be a power of two, got {v}")


def small_net(x: torch.Tensor, net: SmallNet, scale: int, in_bound: int, res: torch.Tensor,
              out_offset: int | None = None, config: NetConfig | None = None) -> torch.Tensor:
    """Run the net on float32 ``x`` [M, K0] (quantized at ``scale``; ``|q| <= in_bound``, else
    FLAG_INPUT_RANGE in flag 0). Writes the two flags (input, layers) into ``res[0:2]`` as int64
    and the int64 outputs [M, N] from ``out_offset`` (default: after the flags); returns ``res``.
    No host sync: ``res[0:2]`` is zeroed on the device first."""
    if x.dtype != torch.float32 or x.dim() != 2:
        raise TypeError(f"small_net: x must be a float32 matrix, got {x.dtype} {tuple(x.shape)}")
    m, k0 = x.shape
    n_out = net.widths[-1]
    if k0 != net.widths[0]:
        raise ValueError(f"small_net: x has {k0} columns, the net takes {net.widths[0]}")
    offset = N_FLAGS if out_offset is None else out_offset
    if res.dtype != torch.int64 or res.numel() < offset + m * n_out or offset < N_FLAGS:
        raise ValueError(f"small_net: res must be int64 with the {N_FLAGS} flags, then {m} x {n_out} outputs")
    if len({x.device, res.device, net.weights.device}) != 1:
        raise ValueError("small_net: x, the net and res must be on one device")
    cfg = config or NetConfig()
    cfg.check()
    grid = max(1, triton.cdiv(m, cfg.block_m))
    s = net.scratch_width
    scratch = torch.empty(grid * 2 * cfg.block_m * s, dtype=torch.float64, device=x.device)
    res[:N_FLAGS].zero_()
    _small_net_kernel[(grid,)](x.contiguous(), net.idx, net.weights, net.biases, net.table, scratch, res,
                               m, offset, float(2.0 ** scale), int(in_bound),
                               SHAPES=net.kernel_shapes(cfg.block_n), L=net.n_layers, K0=k0, S=s,
                               BLOCK_M=cfg.block_m, BLOCK_N=min(cfg.block_n, triton.next_power_of_2(k0)),
                               num_warps=cfg.num_warps)
    return res


__all__ = ["N_FLAGS", "NetConfig", "POOL_MAX", "POOL_NONE", "POOL_SUM", "SmallNet", "TapLayer", "pack_small_net",
           "small_net"]
