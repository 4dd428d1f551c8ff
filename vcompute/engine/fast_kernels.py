"""Two small Triton kernels the compiled engine path needs besides ``kernels/`` (#9).

* :func:`quantize_input`: EZKL's input quantization (``fixedpoint.quantize_input``: the f32
  value times ``2^scale``, rounded half away from zero, NaN -> 0) on the device, with the
  planned input bound checked into a device flag instead of a host sync. The host never touches
  the samples' values, so a batch is copied once, as float32, and quantized in the graph.
* :func:`pool2d`: max or sum pooling with EZKL's zero padding done in the kernel (no padded
  copy), then the epilogue of the fused GEMM (``round_div`` by a divisor, e.g. an average pool's
  window size, and a clamp). EZKL pads with zeros for both pools (``layouts.rs::max_pool``,
  ``sumpool``), so a padded cell reads 0 in both.

Both reuse the formulas of :mod:`kernels.rescale` / :mod:`kernels.epilogue`, so they round
exactly as ``div_round`` and the GEMM epilogue do. Neither syncs: bounds are planned, and what
the plan cannot rule out is ORed into an int32 flag.
"""

from __future__ import annotations

from vcompute.kernels import runtime  # noqa: F401,I001  (first: sets TRITON_INTERPRET before triton loads)

import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import DEFAULT_BLOCK_CONFIG, BlockConfig
from vcompute.kernels.epilogue import clamp, report
from vcompute.kernels.flags import FLAG_RESCALE_LIMIT
from vcompute.kernels.rescale import DIV_ROUND_LIMIT, round_div

#: a model input lies outside the bound the plan was made for (or is not finite)
FLAG_INPUT_RANGE = 1 << 10

_INPUT_CODE: tl.constexpr = tl.constexpr(FLAG_INPUT_RANGE)
_LIMIT_CODE: tl.constexpr = tl.constexpr(FLAG_RESCALE_LIMIT)
_LIMIT: tl.constexpr = tl.constexpr(DIV_ROUND_LIMIT)


@triton.jit
def _quantize_kernel(x_ptr, out_ptr, flag_ptr, n, mult, bound, BLOCK: tl.constexpr):
    """out = round_half_away(f64(x) * mult) (NaN -> 0); flag where |out| > bound or x is infinite."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float64) * mult
    nan = v != v
    av = tl.where(v < 0, -v, v)
    ok = av < 4611686018427387904.0  # 2^62: NaN compares false, so it is handled apart
    t = tl.where(ok, v, 0.0).to(tl.int64)  # truncation toward zero
    d = v - t.to(tl.float64)  # exact: |v| < 2^62 and t is v's integer part
    frac = tl.where(d < 0, -d, d)
    sign = tl.where(v < 0, -1, 1).to(tl.int64)
    q = t + tl.where(frac >= 0.5, sign, 0)
    q = tl.where(nan, 0, q)
    bad = (~ok & ~nan) | (q > bound) | (q < -bound)
    tl.store(out_ptr + offs, q, mask=mask)
    err = tl.where(bad, _INPUT_CODE, 0)
    report(err[None, :], mask[None, :], flag_ptr)


def quantize_input(x: torch.Tensor, scale: int, bound: int, flag: torch.Tensor,
                   config: BlockConfig | None = None) -> torch.Tensor:
    """int64 fixed-point values of the float32 tensor ``x`` at ``scale``, as EZKL quantizes model
    inputs; ``FLAG_INPUT_RANGE`` goes into ``flag`` where ``|q| > bound`` (no sync)."""
    if x.dtype != torch.float32:
        raise TypeError(f"quantize_input takes float32 (EZKL rounds inputs through f32), got {x.dtype}")
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.int64, device=x.device)
    n = x.numel()
    if n == 0:
        return out
    cfg = config or DEFAULT_BLOCK_CONFIG
    _quantize_kernel[(triton.cdiv(n, cfg.block),)](x, out, flag, n, float(2.0 ** scale), int(bound),
                                                   BLOCK=cfg.block, num_warps=cfg.num_warps)
    return out


@triton.jit
def _pool_kernel(x_ptr, out_ptr, flag_ptr, total, H, W, HO, WO, stride_h, stride_w, pad_t, pad_l, d, lo, hi,
                 KH: tl.constexpr, KW: tl.constexpr, IS_MAX: tl.constexpr, DIV: tl.constexpr,
                 HAS_LO: tl.constexpr, HAS_HI: tl.constexpr, BLOCK: tl.constexpr):
    """out[p, ho, wo] = clamp(round_div(max|sum over the window, d)); cells outside the image read 0."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    plane = offs // (HO * WO)
    ho = (offs % (HO * WO)) // WO
    wo = offs % WO
    h0 = ho * stride_h - pad_t
    w0 = wo * stride_w - pad_l
    base = x_ptr + plane * H * W
    if IS_MAX:
        acc = tl.full((BLOCK,), -9223372036854775808, tl.int64)
    else:
        acc = tl.zeros((BLOCK,), dtype=tl.int64)
    for r in tl.static_range(KH):
        for s in tl.static_range(KW):
            h = h0 + r
            w = w0 + s
            ok = mask & (h >= 0) & (h < H) & (w >= 0) & (w < W)
            v = tl.load(base + h * W + w, mask=ok, other=0)  # EZKL's zero padding, for max too
            if IS_MAX:
                acc = tl.maximum(acc, v)
            else:
                acc += v
    if DIV != -2:
        err = tl.where((acc >= _LIMIT) | (acc <= -_LIMIT), _LIMIT_CODE, 0)
        report(err[None, :], mask[None, :], flag_ptr)
        acc = round_div(acc, d, DIV)
    acc = clamp(acc, lo, hi, HAS_LO, HAS_HI)
    tl.store(out_ptr + offs, acc, mask=mask)


def pool2d(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
           padding: tuple[int, int, int, int], is_max: bool, flag: torch.Tensor, divisor: int = 1,
           clip: tuple[int | None, int | None] = (None, None),
           config: BlockConfig | None = None) -> torch.Tensor:
    """Max or sum pooling of x [N, C, H, W] (padding (top, left, bottom, right) of zeros) ->
    ``clamp(round_div(pool, divisor), lo, hi)`` int64 [N, C, Ho, Wo]. No host checks: the caller's
    plan bounds the sums (``kh * kw * max|x| < 2^63``)."""
    nb, c, h, w = x.shape
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, stride, padding
    ho, wo = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    x = x.contiguous()
    out = torch.empty((nb, c, ho, wo), dtype=torch.int64, device=x.device)
    if out.numel() == 0:
        return out
    lo, hi = clip
    div = -2 if divisor == 1 else (divisor.bit_length() - 1 if divisor & (divisor - 1) == 0 else -1)
    cfg = config or DEFAULT_BLOCK_CONFIG
    _pool_kernel[(triton.cdiv(out.numel(), cfg.block),)](
        x, out, flag, out.numel(), h, w, ho, wo, sh, sw, pt, pl, divisor,
        0 if lo is None else lo, 0 if hi is None else hi,
        KH=kh, KW=kw, IS_MAX=is_max, DIV=div, HAS_LO=lo is not None, HAS_HI=hi is not None,
        BLOCK=cfg.block, num_warps=cfg.num_warps)
    return out


__all__ = ["FLAG_INPUT_RANGE", "pool2d", "quantize_input"]
