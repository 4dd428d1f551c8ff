"""A small fixed-point MLP in one launch: quantize, every dense layer, outputs and flags (#9).

A compiled engine pass is one kernel per layer plus an input quantize and a finalize; for a model
of a few small dense layers (the bundled 8 -> 16 -> 4 MLP) every one of those kernels is far
shorter than its launch, so the pass costs its launch count. Here the whole pass is one kernel:
each program takes ``BLOCK_M`` samples, quantizes their float32 inputs as EZKL does
(:func:`kernels.quantize.quantize_tile`), runs every layer on a ``[BLOCK_M, D]`` tile held in
registers (``D``: the widest layer, a power of two; narrower layers are zero-padded), and writes
the last layer's integers and its own flag words into the pass's result
(:func:`kernels.flags.store_flag_words`: plain stores, no atomics, nothing to zero between passes).
Each layer's scalars (shift, clamp, bound, width) are constexprs: the kernel is specialised to the
model, so no table load (a cold memory round trip with the L2 flushed) stands before a layer.

Each layer is ``clamp(round_div(h @ W, 2^shift) + bias, lo, hi)``: an ONNX Gemm with its rebase,
bias and a following ReLU / Clip folded, in the order EZKL applies them (the GEMM epilogue with
``bias_after_rescale``). The products are float64, exact for the reason :mod:`kernels.gemm_f64`
gives: the host refuses a layer unless ``a_bound * max column L1 norm of W < 2^53``, so every
partial sum is an integer below 2^53 and the bits never depend on the summation order or on
``BLOCK_M``. On the device, a model input beyond its bound sets ``FLAG_INPUT_RANGE`` in flag 0;
a layer input beyond its planned ``a_bound`` (``FLAG_A_RANGE``), a rescale at 2^52 or a wrapped
bias add set flag 1, the chain's (static bounds make them unreachable: a second line of defence).
The result is ``flag_words(M)`` int64 words (two per program), then the outputs [M, N].
"""

from __future__ import annotations

from vcompute.kernels import runtime  # noqa: F401,I001  (first: sets TRITON_INTERPRET before triton loads)

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import INT64_MAX, INT64_MIN, check_int64
from vcompute.kernels.epilogue import tile_code
from vcompute.kernels.flags import (FLAG_A_RANGE, FLAG_ADD_OVERFLOW, FLAG_INPUT_RANGE, FLAG_RESCALE_LIMIT,
                                    store_flag_words)
from vcompute.kernels.gemm_f64 import check_f64_bound, pack_weight_f64
from vcompute.kernels.quantize import quantize_tile
from vcompute.kernels.rescale import DIV_ROUND_LIMIT, round_shift

#: the widest layer (inputs or outputs) a chain takes: the [BLOCK_M, D, D] product tile lives in
#: registers, so wider layers belong to the tiled GEMMs
CHAIN_MAX_WIDTH = 32
#: cells of the product tile per program (BLOCK_M * D * D). The [BLOCK_M, D, D] product and its
#: reduction are register- and shuffle-bound: on the H100 the MLP's 8 -> 16 -> 4 chain took 4.7 µs
#: at 4 samples per program, 9.3 µs at 16 and 155 µs (spilled) at 64
_CELLS = 1024
#: the chain's flags: the model input's, then one for all its layers
N_FLAGS = 2

_A_CODE: tl.constexpr = tl.constexpr(FLAG_A_RANGE)
_ADD_CODE: tl.constexpr = tl.constexpr(FLAG_ADD_OVERFLOW)
_INPUT_CODE: tl.constexpr = tl.constexpr(FLAG_INPUT_RANGE)
_LIMIT_CODE: tl.constexpr = tl.constexpr(FLAG_RESCALE_LIMIT)
_LIMIT: tl.constexpr = tl.constexpr(DIV_ROUND_LIMIT)


@triton.jit
def _dense_chain_kernel(x_ptr, w_ptr, b_ptr, res_ptr, M, K0, N_OUT, out_offset, mult, in_bound,
                        LAYERS: tl.constexpr, L: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr):
    """res[out_offset + m * N_OUT + j] = the chain's output j of sample m; this program's flag
    words at res[2 * pid]. ``LAYERS[l]``: layer l's (shift, lo, hi, a_bound, k).

    The layer loop is unrolled (``LAYERS`` is a constexpr), so every layer's weights can be in
    flight before the first product; error conditions collect in one code tile and are reduced once
    at the end (one reduction per flag, not per check: each is a block-wide barrier)."""
    rm = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = rm < M
    cols = tl.arange(0, D)
    x_ok = m_ok[:, None] & (cols[None, :] < K0)
    x = tl.load(x_ptr + rm[:, None] * K0 + cols[None, :], mask=x_ok, other=0.0)
    h, bad = quantize_tile(x, mult, in_bound)
    in_err = tl.where(bad, _INPUT_CODE, 0)
    err = tl.zeros((BLOCK_M, D), dtype=tl.int32)
    for layer in tl.static_range(L):
        w = tl.load(w_ptr + layer * D * D + cols[:, None] * D + cols[None, :])
        bias = tl.load(b_ptr + layer * D + cols)[None, :]
        err |= tl.where(((h > LAYERS[layer][3]) | (h < -LAYERS[layer][3])) & (cols[None, :] < LAYERS[layer][4]),
                        _A_CODE, 0)
        acc = tl.sum(h.to(tl.float64)[:, :, None] * w[None, :, :], axis=1).to(tl.int64)
        # EZKL's rebase by 2^shift where shift > 0, its 2^52 limit checked. A shift, not
        # round_div's runtime divisor: int64 division made the MLP's kernel 4.8 -> 8.6 µs (H100)
        if LAYERS[layer][0] > 0:
            err |= tl.where((acc >= _LIMIT) | (acc <= -_LIMIT), _LIMIT_CODE, 0)
            acc = round_shift(acc, LAYERS[layer][0])
        s = acc + bias
        err |= tl.where(((acc ^ s) & (bias ^ s)) < 0, _ADD_CODE, 0)
        h = tl.minimum(tl.maximum(s, LAYERS[layer][1]), LAYERS[layer][2])
    tl.store(res_ptr + out_offset + rm[:, None] * N_OUT + cols[None, :], h,
             mask=m_ok[:, None] & (cols[None, :] < N_OUT))
    store_flag_words(res_ptr, tile_code(in_err, x_ok), tile_code(err, m_ok[:, None]))


@dataclass(frozen=True)
class DenseLayer:
    """One layer as the plan gives it: int64 ``weight`` [K, N], optional int64 ``bias`` [N] (added
    after the rescale), ``shift`` (rescale by 2^shift), an optional clamp and the planned bound on
    ``|input|``."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    shift: int
    lo: int | None
    hi: int | None
    a_bound: int


@dataclass(frozen=True)
class DenseChain:
    """Packed layers on one device: float64 weights [L, D, D] and int64 biases [L, D], zero-padded
    to the width ``D``, and per layer the kernel's constexprs (shift, lo, hi, a_bound, k)."""

    weights: torch.Tensor
    biases: torch.Tensor
    layers: tuple[tuple[int, int, int, int, int], ...]
    widths: tuple[int, ...]

    @property
    def width(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_layers(self) -> int:
        return len(self.widths) - 1


def pack_dense_chain(layers: list[DenseLayer]) -> DenseChain:
    """Check and pack ``layers`` (ValueError / OverflowError naming the layer), on their device."""
    if not layers:
        raise ValueError("dense_chain: no layers")
    widths = [int(layers[0].weight.shape[0])]
    packed = []
    for i, ly in enumerate(layers):
        check_int64(f"layer {i} weight", ly.weight, 2)
        k, n = ly.weight.shape
        if k != widths[-1]:
            raise ValueError(f"dense_chain: layer {i} takes {k} inputs, the previous layer gives {widths[-1]}")
        if ly.bias is not None:
            check_int64(f"layer {i} bias", ly.bias, 1)
            if ly.bias.numel() != n:
                raise ValueError(f"dense_chain: layer {i} bias has {ly.bias.numel()} values for {n} outputs")
        if not 0 <= ly.shift <= 52:
            raise ValueError(f"dense_chain: layer {i} shift must be in [0, 52], got {ly.shift}")
        packed.append(pack_weight_f64(ly.weight))
        check_f64_bound(ly.a_bound, packed[-1], f"dense_chain: layer {i}")
        widths.append(int(n))
    d = max(2, triton.next_power_of_2(max(widths)))
    if d > CHAIN_MAX_WIDTH:
        raise ValueError(f"dense_chain: a layer of width {max(widths)} is wider than {CHAIN_MAX_WIDTH}")
    dev = layers[0].weight.device
    n_l = len(layers)
    w = torch.zeros((n_l, d, d), dtype=torch.float64, device=dev)
    b = torch.zeros((n_l, d), dtype=torch.int64, device=dev)
    consts = []
    for i, (ly, wf) in enumerate(zip(layers, packed)):
        k, n = ly.weight.shape
        w[i, :k, :n] = wf.values
        if ly.bias is not None:
            b[i, :n] = ly.bias
        consts.append((int(ly.shift), INT64_MIN if ly.lo is None else int(ly.lo),
                       INT64_MAX if ly.hi is None else int(ly.hi), int(ly.a_bound), int(k)))
    return DenseChain(w, b, tuple(consts), tuple(widths))


def chain_block_m(m: int, width: int) -> int:
    """Samples per program: as many as keep the product tile at ``_CELLS`` cells (no more than
    the batch needs)."""
    return max(1, min(128, _CELLS // (width * width), triton.next_power_of_2(max(1, m))))


def flag_words(m: int, chain: DenseChain, block_m: int | None = None) -> int:
    """How many int64 flag words lead the result of a pass over ``m`` samples: ``N_FLAGS`` per
    program (:func:`kernels.flags.or_flag_words` turns them into the pass's flags)."""
    return N_FLAGS * max(1, triton.cdiv(m, block_m or chain_block_m(m, chain.width)))


def dense_chain(x: torch.Tensor, chain: DenseChain, scale: int, in_bound: int, block_m: int | None = None,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """Run the chain on float32 ``x`` [M, K0] (quantized at ``scale``; ``|q| <= in_bound``, else
    FLAG_INPUT_RANGE in flag 0). Returns the int64 result (``out`` if given, else a new tensor):
    ``flag_words(M, chain, block_m)`` flag words, then the outputs [M, N]. No host sync, and
    nothing to zero before the launch: every word is written."""
    if x.dtype != torch.float32 or x.dim() != 2:
        raise TypeError(f"dense_chain: x must be a float32 matrix, got {x.dtype} {tuple(x.shape)}")
    m, k0 = x.shape
    n_out = chain.widths[-1]
    if k0 != chain.widths[0]:
        raise ValueError(f"dense_chain: x has {k0} columns, the chain takes {chain.widths[0]}")
    bm = block_m or chain_block_m(m, chain.width)
    if bm < 1 or bm & (bm - 1):
        raise ValueError(f"dense_chain: block_m must be a power of two, got {bm}")
    words = flag_words(m, chain, bm)
    if out is None:
        out = torch.empty(words + m * n_out, dtype=torch.int64, device=x.device)
    if out.dtype != torch.int64 or out.numel() != words + m * n_out:
        raise ValueError(f"dense_chain: out must be int64 with {words} flag words, then {m} x {n_out} outputs")
    if len({x.device, out.device, chain.weights.device}) != 1:
        raise ValueError("dense_chain: x, the chain and out must be on one device")
    _dense_chain_kernel[(words // N_FLAGS,)](x.contiguous(), chain.weights, chain.biases, out, m, k0, n_out, words,
                                             float(2.0 ** scale), int(in_bound), LAYERS=chain.layers, L=chain.n_layers,
                                             D=chain.width, BLOCK_M=bm,
                                             num_warps=4 if bm * chain.width * chain.width >= 2048 else 2)
    return out


__all__ = ["CHAIN_MAX_WIDTH", "N_FLAGS", "DenseChain", "DenseLayer", "chain_block_m", "dense_chain", "flag_words",
           "pack_dense_chain"]
