"""The Triton kernels the compiled engine path needs besides ``kernels/`` (#9).

* :func:`quantize_input` (re-exported from :mod:`kernels.quantize`): EZKL's input
  quantization on the device, the planned input bound checked into a device flag. The host never
  touches the samples' values, so a batch is copied once, as float32, and quantized in the graph
  (or inside the first layer: ``X_FLOAT`` of the direct conv).
* :func:`pool2d`: max or sum pooling with EZKL's zero padding done in the kernel (no padded
  copy), then the epilogue of the fused GEMM (``round_div`` by a divisor, e.g. an average pool's
  window size, and a clamp). EZKL pads with zeros for both pools (``layouts.rs::max_pool``,
  ``sumpool``), so a padded cell reads 0 in both.
* :func:`split_nchw`: a conv input's signed 8-bit limbs straight from NCHW (the kernels' conv
  copies the input to NHWC first), checked against the planned range into a flag.
* :func:`direct_conv`: convs of few channels without limbs: one exact FMA per tap on the CUDA
  cores (int64, or float64 below 2^53), or, with a :class:`DotWeight` from
  :func:`pack_dot_weight`, an implicit GEMM of float64 ``tl.dot`` on the FP64 tensor cores (the
  same exact sums); either way with the GEMM epilogue and an optional following pool.
* :func:`conv_pool`: the kernels' implicit-GEMM conv (same limb scheme, same epilogue: bias,
  rescale, clamp) whose output rows are ordered window by window of a following non-overlapping
  pooling (2x2: four consecutive rows), so the epilogue also pools (sum or max, then the
  average's ``round_div`` and a clamp) and only the pooled map is written: the conv's int64
  output never reaches memory.

All reuse the formulas of :mod:`kernels.rescale` / :mod:`kernels.epilogue` (and the conv's tile
code from :mod:`kernels.conv` / :mod:`kernels.gemm`), so they round exactly as ``div_round``
and the GEMM epilogue do. None syncs: bounds are planned, and what the plan cannot rule out is
ORed into an int32 flag.
"""

from __future__ import annotations

from dataclasses import dataclass

from vcompute.kernels import runtime  # noqa: F401,I001  (first: sets TRITON_INTERPRET before triton loads)

import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import DEFAULT_BLOCK_CONFIG, F64_EXACT, BlockConfig
from vcompute.kernels.epilogue import Epilogue, apply_epilogue, clamp, report
from vcompute.kernels.flags import FLAG_A_RANGE, FLAG_INPUT_RANGE, FLAG_RESCALE_LIMIT
from vcompute.kernels.gemm import _combine_limbs, _tile_coords
from vcompute.kernels.pdl import launch_options, wait_previous
from vcompute.kernels.pool import window_reduce
from vcompute.kernels.quantize import quantize_input, quantize_tile
from vcompute.kernels.rescale import DIV_ROUND_LIMIT, round_div

#: direct convs with at most this many taps (channels x kh x kw) unroll their whole reduction
UNROLL_TAPS = 256

_A_CODE: tl.constexpr = tl.constexpr(FLAG_A_RANGE)
_INPUT_CODE: tl.constexpr = tl.constexpr(FLAG_INPUT_RANGE)
_LIMIT_CODE: tl.constexpr = tl.constexpr(FLAG_RESCALE_LIMIT)
_LIMIT: tl.constexpr = tl.constexpr(DIV_ROUND_LIMIT)


@triton.jit
def _pool_kernel(x_ptr, out_ptr, flag_ptr, total, H, W, HO, WO, stride_h, stride_w, pad_t, pad_l, d, lo, hi,
                 KH: tl.constexpr, KW: tl.constexpr, IS_MAX: tl.constexpr, DIV: tl.constexpr,
                 HAS_LO: tl.constexpr, HAS_HI: tl.constexpr, BLOCK: tl.constexpr, GDC: tl.constexpr = 0):
    """out[p, ho, wo] = clamp(round_div(max|sum over the window, d)); cells outside the image read 0."""
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    # EZKL's zero padding, for max too
    acc = window_reduce(x_ptr, offs, mask, H, W, HO, WO, stride_h, stride_w, pad_t, pad_l, KH, KW, IS_MAX, True,
                        BLOCK)
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
        BLOCK=cfg.block, num_warps=cfg.num_warps, **launch_options(out.device))
    return out


@triton.jit
def _split_nchw_kernel(x_ptr, out_ptr, flag_ptr, P, C, HW, lo, hi, L: tl.constexpr, BLOCK_P: tl.constexpr,
                       BLOCK_C: tl.constexpr, GDC: tl.constexpr = 0):
    """out[p, i, c] = i-th signed 8-bit limb of x[n, c, hw] (p = n*HW + hw); FLAG_A_RANGE into the
    flag where a value lies outside [lo, hi] (its limbs would be cut)."""
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    p = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (p[:, None] < P) & (c[None, :] < C)
    n = p // HW
    hw = p % HW
    x = tl.load(x_ptr + (n * C * HW + hw)[:, None] + c[None, :].to(tl.int64) * HW, mask=mask, other=0)
    outside = tl.max(tl.max((mask & ((x < lo) | (x > hi))).to(tl.int32), axis=1), axis=0)
    if outside != 0:
        tl.atomic_or(flag_ptr, _A_CODE)
    base = out_ptr + p[:, None] * (L * C) + c[None, :]
    for i in tl.static_range(L):
        d = ((x + 128) & 255) - 128
        tl.store(base + i * C, d.to(tl.int8), mask=mask)
        x = (x - d) >> 8



def split_nchw(x: torch.Tensor, limbs: int, lo: int, hi: int, flag: torch.Tensor) -> torch.Tensor:
    """int8 [N*H*W, limbs, C] limbs of an NCHW int64 tensor (pixels in NHWC order, as the kernels'
    conv reads them); values outside [lo, hi] set FLAG_A_RANGE in ``flag``. No host sync."""
    nb, c, h, w = x.shape
    x = x.contiguous()
    p = nb * h * w
    out = torch.empty((p, limbs, c), dtype=torch.int8, device=x.device)
    if p == 0 or c == 0:
        return out
    block_c = min(64, triton.next_power_of_2(c))
    block_p = max(16, 4096 // block_c)
    grid = (triton.cdiv(p, block_p), triton.cdiv(c, block_c))
    _split_nchw_kernel[grid](x, out, flag, p, c, h * w, lo, hi, L=limbs, BLOCK_P=block_p, BLOCK_C=block_c,
                             **launch_options(out.device))
    return out


@triton.jit
def _store_pooled(res, out_ptr, win0, MW, HP, WP, O, oc, o_ok, pd, plo, phi,
                  KK: tl.constexpr, OUT_W: tl.constexpr, BLOCK_O: tl.constexpr, IS_MAX: tl.constexpr,
                  PDIV: tl.constexpr, P_HAS_LO: tl.constexpr, P_HAS_HI: tl.constexpr):
    """Pool a conv tile whose rows come window by window (``KK`` consecutive rows per window,
    windows ``win0 ..`` of ``MW`` in raster order over n, hp, wp) and store the pooled map
    [N, O, HP, WP] at channels ``oc`` (``o_ok`` real): max or sum, the average's ``round_div``
    by ``pd``, a clamp. Shared by the limb conv (:func:`conv_pool`) and the direct conv."""
    r3 = tl.reshape(res, (OUT_W, KK, BLOCK_O))
    if IS_MAX:
        pooled = tl.max(r3, axis=1)
    else:
        pooled = tl.sum(r3, axis=1)
    if PDIV != -2:
        pooled = round_div(pooled, pd, PDIV)
    pooled = clamp(pooled, plo, phi, P_HAS_LO, P_HAS_HI)
    offs_w = win0 + tl.arange(0, OUT_W)
    ww = tl.where(offs_w < MW, offs_w, 0)
    out_off = ((ww // (HP * WP)).to(tl.int64) * O * HP * WP + (ww % (HP * WP)))[:, None] \
        + oc.to(tl.int64)[None, :] * (HP * WP)
    tl.store(out_ptr + out_off, pooled, mask=(offs_w[:, None] < MW) & o_ok[None, :])


@triton.jit
def _conv_pool_kernel(x_ptr, w_ptr, bias_ptr, out_ptr, flag_ptr,
                      H, W, stride_xp, stride_xl, HP, WP, O, OG, CG, KW, K, K_PAD, stride_wo, stride_wl, M,
                      stride_h, stride_w, pad_t, pad_l, d, lo, hi, pd, plo, phi,
                      LA: tl.constexpr, LB: tl.constexpr, HAS_BIAS: tl.constexpr, BIAS_AFTER: tl.constexpr,
                      DIV: tl.constexpr, HAS_LO: tl.constexpr, HAS_HI: tl.constexpr, CHECK: tl.constexpr,
                      PH: tl.constexpr, PW: tl.constexpr, IS_MAX: tl.constexpr, PDIV: tl.constexpr,
                      P_HAS_LO: tl.constexpr, P_HAS_HI: tl.constexpr,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr, GDC: tl.constexpr = 0):
    """pooled[n, g*OG+o, hp, wp] = pclamp(round_div(pool_{dy,dx} epilogue(conv[n, o, hp*PH+dy, wp*PW+dx]), pd)).

    kernels.conv._conv_limb_kernel with its rows ordered window by window: row m is window
    m // (PH*PW) (n, hp, wp in raster order) and position m % (PH*PW) (dy, dx) inside it, so a
    tile's rows hold whole windows and the epilogue pools them before the one store.
    """
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    KK: tl.constexpr = PH * PW
    OUT_M: tl.constexpr = BLOCK_M // LA
    OUT_N: tl.constexpr = BLOCK_N // LB
    OUT_W: tl.constexpr = OUT_M // KK
    g = tl.program_id(1)
    pid_m, pid_n = _tile_coords(tl.program_id(0), tl.cdiv(M, OUT_M), tl.cdiv(OG, OUT_N), GROUP_M)

    ra = tl.arange(0, BLOCK_M)
    m = pid_m * OUT_M + ra // LA
    m_ok = m < M
    m = tl.where(m_ok, m, 0)
    win = m // KK
    j = m % KK
    n_img = win // (HP * WP)
    ho = ((win % (HP * WP)) // WP) * PH + j // PW
    wo = (win % WP) * PW + j % PW
    h0 = ho * stride_h - pad_t
    w0 = wo * stride_w - pad_l
    a_row = (ra % LA).to(tl.int64) * stride_xl + g * CG
    img = n_img.to(tl.int64) * H

    rb = tl.arange(0, BLOCK_N)
    o = pid_n * OUT_N + rb // LB
    o = tl.where(o < OG, o, 0)
    b_row = (g * OG + o).to(tl.int64) * stride_wo + (rb % LB).to(tl.int64) * stride_wl

    rk = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for k0 in range(0, K_PAD, BLOCK_K):
        k = k0 + rk
        c = k % CG
        rs = k // CG
        h = h0[:, None] + (rs // KW)[None, :]
        w = w0[:, None] + (rs % KW)[None, :]
        ok = m_ok[:, None] & (k < K)[None, :] & (h >= 0) & (h < H) & (w >= 0) & (w < W)
        pix = (img[:, None] + h) * W + w
        a = tl.load(x_ptr + pix * stride_xp + a_row[:, None] + c[None, :], mask=ok, other=0)
        b = tl.load(w_ptr + b_row[None, :] + k[:, None], mask=(k < K_PAD)[:, None], other=0)
        acc = tl.dot(a, b, acc, out_dtype=tl.int32)

    res = _combine_limbs(acc, LA, LB, BLOCK_M, BLOCK_N)
    offs_m = pid_m * OUT_M + tl.arange(0, OUT_M)
    offs_o = pid_n * OUT_N + tl.arange(0, OUT_N)
    mask = (offs_m[:, None] < M) & (offs_o[None, :] < OG)
    bias = tl.zeros((1, OUT_N), dtype=tl.int64)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + g * OG + offs_o, mask=offs_o < OG, other=0)[None, :]
    res = apply_epilogue(res, bias, mask, flag_ptr, d, lo, hi, HAS_BIAS, BIAS_AFTER, DIV, HAS_LO, HAS_HI, CHECK)
    _store_pooled(res, out_ptr, pid_m * OUT_W, M // KK, HP, WP, O, g * OG + offs_o, offs_o < OG, pd, plo, phi,
                  KK, OUT_W, OUT_N, IS_MAX, PDIV, P_HAS_LO, P_HAS_HI)


def _div_mode(d: int) -> int:
    return -2 if d == 1 else (d.bit_length() - 1 if d & (d - 1) == 0 else -1)


def conv_pool(x_l: torch.Tensor, w_l: torch.Tensor, bias: torch.Tensor | None, nb: int, h: int, w: int,
              o: int, cg: int, kh: int, kw: int, stride: tuple[int, int], pads: tuple[int, int, int, int],
              groups: int, pool: tuple[int, int], is_max: bool, pool_div: int,
              pool_clip: tuple[int | None, int | None], cfg, epi: Epilogue, flag: torch.Tensor) -> torch.Tensor:
    """Conv (planned limbs ``x_l`` [N*H*W, LA, C], packed ``w_l`` [O, LB, Kp]) with the epilogue
    ``epi``, then a non-overlapping ``pool`` (kernel = stride, no padding, floor mode) of every
    (PH x PW) window: sum (then ``round_div`` by ``pool_div``) or max, then ``pool_clip``.
    Returns int64 [N, O, Ho // PH, Wo // PW]. Host checks are the caller's (plan time)."""
    (sh, sw), (pt, pl, pb, pr), (ph, pw) = stride, pads, pool
    ho, wo = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    hp, wp = ho // ph, wo // pw
    la, lb = x_l.shape[1], w_l.shape[1]
    out = torch.empty((nb, o, hp, wp), dtype=torch.int64, device=x_l.device)
    m = nb * hp * wp * ph * pw
    if m == 0:
        return out
    og = o // groups
    k = cg * kh * kw
    grid = (triton.cdiv(m, cfg.block_m // la) * triton.cdiv(og, cfg.block_n // lb), groups)
    epi_rt, epi_cx = epi.kernel_args()
    plo, phi = pool_clip
    _conv_pool_kernel[grid](
        x_l, w_l, bias if bias is not None else out, out, flag,
        h, w, x_l.stride(0), x_l.stride(1), hp, wp, o, og, cg, kw, k, w_l.shape[2], w_l.stride(0), w_l.stride(1), m,
        sh, sw, pt, pl, *epi_rt, pool_div, 0 if plo is None else plo, 0 if phi is None else phi,
        LA=la, LB=lb, HAS_BIAS=bias is not None, CHECK=True, **epi_cx,
        PH=ph, PW=pw, IS_MAX=is_max, PDIV=_div_mode(pool_div), P_HAS_LO=plo is not None, P_HAS_HI=phi is not None,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages, **launch_options(out.device))
    return out


@triton.jit
def _conv_channel(acc, bad, x_img, w_row, c, h0, w0, m_ok, o_ok, H, W, mult, in_bound,
                  KH: tl.constexpr, KW: tl.constexpr, ACC_F64: tl.constexpr, NARROW: tl.constexpr,
                  X_FLOAT: tl.constexpr):
    """acc += the taps of input channel ``c``: x[pixel at tap] * w[o, c, tap] (zero padding).
    ``X_FLOAT``: x is the float32 model input, quantized as it is read; ``bad`` marks pixels
    whose value lies beyond ``in_bound``."""
    for r in tl.static_range(KH):
        h = h0 + r
        h_ok = m_ok & (h >= 0) & (h < H)
        for s in tl.static_range(KW):
            w = w0 + s
            ok = h_ok & (w >= 0) & (w < W)
            if X_FLOAT:
                xv, x_bad = quantize_tile(tl.load(x_img + (c * H + h) * W + w, mask=ok, other=0.0), mult, in_bound)
                bad |= x_bad
            else:
                xv = tl.load(x_img + (c * H + h) * W + w, mask=ok, other=0)
            wv = tl.load(w_row + (c * KH + r) * KW + s, mask=o_ok, other=0)
            if ACC_F64:
                acc += xv.to(tl.float64)[:, None] * wv[None, :]
            elif NARROW:
                acc += xv.to(tl.int32).to(tl.int64)[:, None] * wv.to(tl.int64)[None, :]
            else:
                acc += xv[:, None] * wv.to(tl.int64)[None, :]
    return acc, bad


@triton.jit
def _conv_dot_step(acc, bad, x_img, w_tile, k0, h0, w0, m_ok, K, OG_PAD, H, W, mult, in_bound,
                   KH: tl.constexpr, KW: tl.constexpr, X_FLOAT: tl.constexpr, PADDED: tl.constexpr,
                   BLOCK_O: tl.constexpr, DOT_K: tl.constexpr):
    """One K step of :func:`_conv_dot`: taps ``k0 .. k0 + DOT_K``. Without ``PADDED`` (no
    padding on any side) every tap of a real output pixel lies inside the image: no bounds to
    check per value."""
    KHW: tl.constexpr = KH * KW
    k = k0 + tl.arange(0, DOT_K)
    h = h0[:, None] + ((k % KHW) // KW)[None, :]
    w = w0[:, None] + (k % KW)[None, :]
    ok = m_ok[:, None] & (k < K)[None, :]
    if PADDED:
        ok = ok & (h >= 0) & (h < H) & (w >= 0) & (w < W)
    ptrs = x_img[:, None] + ((k // KHW)[None, :] * H + h) * W + w
    if X_FLOAT:
        xv, x_bad = quantize_tile(tl.load(ptrs, mask=ok, other=0.0), mult, in_bound)
        bad |= x_bad
    else:
        xv = tl.load(ptrs, mask=ok, other=0)
    wv = tl.load(w_tile + k[:, None] * OG_PAD + tl.arange(0, BLOCK_O)[None, :])
    return tl.dot(xv.to(tl.float64), wv, acc, out_dtype=tl.float64), bad


@triton.jit
def _conv_dot(acc, x_img, w_tile, h0, w0, m_ok, K, K_PAD, OG_PAD, H, W, mult, in_bound,
              KH: tl.constexpr, KW: tl.constexpr, X_FLOAT: tl.constexpr, CG_STATIC: tl.constexpr,
              PADDED: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_O: tl.constexpr, DOT_K: tl.constexpr):
    """acc += the conv's taps as float64 dots of gathered input tiles [BLOCK_P x DOT_K] with the
    packed weights' [DOT_K x BLOCK_O] tiles at ``w_tile``; (acc, pixels quantized out of bound).
    With ``CG_STATIC`` channels the K steps unroll, so each tap's channel, row and column are
    constants and the gather costs an add and a mask per value instead of divisions."""
    bad = tl.zeros((BLOCK_P, DOT_K), dtype=tl.int1)
    if CG_STATIC > 0:  # K a constant too, so the last step's padding taps mask out at compile time
        for k0 in tl.static_range(0, CG_STATIC * KH * KW, DOT_K):
            acc, bad = _conv_dot_step(acc, bad, x_img, w_tile, k0, h0, w0, m_ok, CG_STATIC * KH * KW, OG_PAD, H, W,
                                      mult, in_bound, KH, KW, X_FLOAT, PADDED, BLOCK_O, DOT_K)
    else:
        for k0 in range(0, K_PAD, DOT_K):
            acc, bad = _conv_dot_step(acc, bad, x_img, w_tile, k0, h0, w0, m_ok, K, OG_PAD, H, W, mult, in_bound,
                                      KH, KW, X_FLOAT, PADDED, BLOCK_O, DOT_K)
    return acc, tl.max(bad.to(tl.int32), axis=1) != 0


@triton.jit
def _direct_conv_kernel(x_ptr, w_ptr, bias_ptr, out_ptr, flag_ptr,
                        C, H, W, HO, WO, HP, WP, O, OG, CG, M, stride_h, stride_w, pad_t, pad_l,
                        d, lo, hi, pd, plo, phi, mult, in_bound, in_flag_ptr, K_PAD, OG_PAD,
                        KH: tl.constexpr, KW: tl.constexpr, HAS_BIAS: tl.constexpr, DIV: tl.constexpr,
                        HAS_LO: tl.constexpr, HAS_HI: tl.constexpr, NARROW: tl.constexpr, ACC_F64: tl.constexpr,
                        CG_STATIC: tl.constexpr, X_FLOAT: tl.constexpr,
                        POOL: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr, IS_MAX: tl.constexpr,
                        PDIV: tl.constexpr, P_HAS_LO: tl.constexpr, P_HAS_HI: tl.constexpr,
                        BLOCK_P: tl.constexpr, BLOCK_O: tl.constexpr, DOT_K: tl.constexpr = 0,
                        PADDED: tl.constexpr = 1, GDC: tl.constexpr = 0):
    """Exact int64 conv on the CUDA cores, for layers with few channels (where the limb GEMM's
    tensor-core tiles are mostly padding and its im2col gathers single bytes): a [BLOCK_P pixels x
    BLOCK_O channels] tile accumulates ``x * w`` over the taps in int64 (the plan bounds
    ``K * max|x| * max|w|`` below 2^63, so nothing wraps; ``NARROW``: both fit int32, so each
    product is one widening multiply), then the GEMM epilogue (bias, rescale, clamp) and, with
    POOL, the window-ordered pooling of :func:`conv_pool`. Input loads run along image rows.

    ``ACC_F64``: float64 weights and accumulator instead (one FMA per multiply-add, where int64
    takes several integer instructions); exact because the plan bounds every partial sum
    ``sum |x * w|`` below 2^53, where doubles hold integers exactly in any summation order.

    ``DOT_K`` > 0 (with ``ACC_F64``): an implicit GEMM on the FP64 tensor cores instead of one
    FMA per tap on the CUDA cores: each K step gathers a [BLOCK_P pixels x DOT_K taps] tile of the
    input (taps ``k = (c*KH + r)*KW + s``, zero outside the image) and runs one float64
    ``tl.dot`` with the weights packed by :func:`pack_dot_weight` ([groups, K_PAD, OG_PAD],
    zero-padded). The same exact sums, so the same bits.

    ``X_FLOAT``: x is the model's float32 input, quantized as it is loaded (no quantize launch);
    a value beyond ``in_bound`` sets FLAG_INPUT_RANGE in ``in_flag_ptr``."""
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    KK: tl.constexpr = PH * PW
    pid_p = tl.program_id(0)
    n_o = tl.cdiv(OG, BLOCK_O)
    g = tl.program_id(1) // n_o
    pid_o = tl.program_id(1) % n_o
    m = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    m_ok = m < M
    m = tl.where(m_ok, m, 0)
    if POOL:
        win = m // KK
        j = m % KK
        n_img = win // (HP * WP)
        ho = ((win % (HP * WP)) // WP) * PH + j // PW
        wo = (win % WP) * PW + j % PW
    else:
        n_img = m // (HO * WO)
        ho = (m % (HO * WO)) // WO
        wo = m % WO
    h0 = ho * stride_h - pad_t
    w0 = wo * stride_w - pad_l
    o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    o_ok = o < OG
    oc = g * OG + tl.where(o_ok, o, 0)
    x_img = x_ptr + (n_img.to(tl.int64) * C + g * CG) * H * W
    w_row = w_ptr + oc.to(tl.int64) * (CG * KH * KW)
    if ACC_F64:
        acc = tl.zeros((BLOCK_P, BLOCK_O), dtype=tl.float64)
    else:
        acc = tl.zeros((BLOCK_P, BLOCK_O), dtype=tl.int64)
    bad = tl.zeros((BLOCK_P,), dtype=tl.int1)
    if DOT_K > 0:
        acc, bad = _conv_dot(acc, x_img, w_ptr + g.to(tl.int64) * K_PAD * OG_PAD + pid_o * BLOCK_O, h0, w0, m_ok,
                             CG * KH * KW, K_PAD, OG_PAD, H, W, mult, in_bound, KH, KW, X_FLOAT, CG_STATIC,
                             PADDED, BLOCK_P, BLOCK_O, DOT_K)
    elif CG_STATIC > 0:  # few channels: the whole reduction unrolled, so loads run ahead of the FMAs
        for c in tl.static_range(CG_STATIC):
            acc, bad = _conv_channel(acc, bad, x_img, w_row, c, h0, w0, m_ok, o_ok, H, W, mult, in_bound,
                                     KH, KW, ACC_F64, NARROW, X_FLOAT)
    else:
        for c in range(0, CG):
            acc, bad = _conv_channel(acc, bad, x_img, w_row, c, h0, w0, m_ok, o_ok, H, W, mult, in_bound,
                                     KH, KW, ACC_F64, NARROW, X_FLOAT)
    if X_FLOAT:
        if tl.max(bad.to(tl.int32), axis=0) != 0:
            tl.atomic_or(in_flag_ptr, _INPUT_CODE)
    mask = m_ok[:, None] & o_ok[None, :]
    bias = tl.zeros((1, BLOCK_O), dtype=tl.int64)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + oc, mask=o_ok, other=0)[None, :]
    if ACC_F64:
        acc = acc.to(tl.int64)
    res = apply_epilogue(acc, bias, mask, flag_ptr, d, lo, hi, HAS_BIAS, False, DIV, HAS_LO, HAS_HI, True)
    if POOL:
        OUT_W: tl.constexpr = BLOCK_P // KK
        _store_pooled(res, out_ptr, pid_p * OUT_W, M // KK, HP, WP, O, oc, o_ok, pd, plo, phi,
                      KK, OUT_W, BLOCK_O, IS_MAX, PDIV, P_HAS_LO, P_HAS_HI)
    else:
        out_off = (n_img.to(tl.int64) * O * HO * WO + (m % (HO * WO)))[:, None] + oc.to(tl.int64)[None, :] * (HO * WO)
        tl.store(out_ptr + out_off, res, mask=mask)


@dataclass(frozen=True)
class DotWeight:
    """A direct conv's integer weights [O, C/groups, kh, kw] packed once for its tensor-core
    variant: float64 ``values`` [groups, K_pad, OG_pad] (rows ``k = (c*kh + r)*kw + s``), zero-padded
    to whole ``block_k`` x ``block_o`` tiles so the kernel loads them unmasked."""

    values: torch.Tensor
    shape: tuple[int, int, int, int]
    block_k: int
    block_o: int


def pack_dot_weight(w: torch.Tensor, groups: int, block_k: int | None = None) -> DotWeight:
    """``w`` (integers below 2^53) as a :class:`DotWeight`; ``block_k``: the K step, 16 by default
    (a float64 dot needs 16 or more; 16 beat 32 on the H100 for both LeNet-5 convs at 256 and
    1,024 samples, BENCHMARKS.md §2l). Output channels go 8 to 64 a tile: Triton compiles a
    float64 dot 8 wide (Hopper's DMMA is 8 wide), and LeNet's first conv has 6 channels, whose
    epilogue and pool a 16-wide tile would run twice over."""
    o, cg, kh, kw = w.shape
    og, k = o // groups, cg * kh * kw
    if w.numel() and int(w.abs().max().item()) >= F64_EXACT:
        raise OverflowError("pack_dot_weight: weights of 2^53 or more are not exact doubles")
    block_k = block_k or 16
    if block_k < 16 or block_k & (block_k - 1):
        raise ValueError(f"pack_dot_weight: block_k must be a power of two >= 16, got {block_k}")
    block_o = min(64, max(8, triton.next_power_of_2(og)))
    values = torch.zeros((groups, triton.cdiv(k, block_k) * block_k, triton.cdiv(og, block_o) * block_o),
                         dtype=torch.float64, device=w.device)
    values[:, :k, :og] = w.reshape(groups, og, k).transpose(1, 2).to(torch.float64)
    return DotWeight(values, tuple(w.shape), block_k, block_o)


def direct_conv(x: torch.Tensor, w32: torch.Tensor | DotWeight, bias: torch.Tensor | None, stride: tuple[int, int],
                pads: tuple[int, int, int, int], groups: int, epi: Epilogue, flag: torch.Tensor, narrow: bool,
                pool: tuple[int, int] | None = None, pool_max: bool = False, pool_div: int = 1,
                pool_clip: tuple[int | None, int | None] = (None, None), block_p: int | None = None,
                num_warps: int = 4, x_quant: tuple[int, int, torch.Tensor] | None = None) -> torch.Tensor:
    """Exact conv of int64 x [N, C, H, W] with integer weights ``w32`` [O, C/groups, kh, kw] on the
    CUDA cores (see ``_direct_conv_kernel``), the GEMM epilogue ``epi`` and optionally a following
    non-overlapping ``pool`` (as :func:`conv_pool`). Weights as float64 select the float64
    accumulator (the caller's plan bounds ``sum |x * w|`` below 2^53), as int32/int64 the int64
    one; a :class:`DotWeight` (same bound) the float64 implicit GEMM on the tensor cores.
    ``x_quant = (scale, bound, in_flag)``: x is the float32 model input, quantized in the kernel
    (values beyond ``bound`` set FLAG_INPUT_RANGE in ``in_flag``). Host checks are the caller's
    (plan time)."""
    nb, c, h, w = x.shape
    o, cg, kh, kw = w32.shape
    (sh, sw), (pt, pl, pb, pr) = stride, pads
    ho, wo = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    og = o // groups
    dot = isinstance(w32, DotWeight)
    block_o = w32.block_o if dot else min(64, max(2, triton.next_power_of_2(og)))
    if pool is not None:
        ph, pw = pool
        hp, wp = ho // ph, wo // pw
        out = torch.empty((nb, o, hp, wp), dtype=torch.int64, device=x.device)
        m = nb * hp * wp * ph * pw
    else:
        ph = pw = 1
        hp = wp = 1
        out = torch.empty((nb, o, ho, wo), dtype=torch.int64, device=x.device)
        m = nb * ho * wo
    if m == 0:
        return out
    if block_p is None:
        block_p = 128 if dot else max(32, min(256, 2048 // block_o))
    block_p = max(block_p, ph * pw, 16 if dot else 1)
    grid = (triton.cdiv(m, block_p), groups * triton.cdiv(og, block_o))
    epi_rt, epi_cx = epi.kernel_args()
    epi_cx.pop("BIAS_AFTER")
    plo, phi = pool_clip
    _direct_conv_kernel[grid](
        x.contiguous(), w32.values if dot else w32, bias if bias is not None else out, out, flag,
        c, h, w, ho, wo, hp, wp, o, og, cg, m, sh, sw, pt, pl, *epi_rt,
        pool_div, 0 if plo is None else plo, 0 if phi is None else phi,
        float(2.0 ** x_quant[0]) if x_quant else 1.0, x_quant[1] if x_quant else 0,
        x_quant[2] if x_quant else flag, *(w32.values.shape[1:] if dot else (0, 0)),
        KH=kh, KW=kw, HAS_BIAS=bias is not None, NARROW=narrow, ACC_F64=dot or w32.dtype == torch.float64,
        CG_STATIC=cg if cg * kh * kw <= UNROLL_TAPS else 0, X_FLOAT=x_quant is not None, **epi_cx,
        POOL=pool is not None, PH=ph, PW=pw, IS_MAX=pool_max, PDIV=_div_mode(pool_div),
        P_HAS_LO=plo is not None, P_HAS_HI=phi is not None, BLOCK_P=block_p, BLOCK_O=block_o,
        DOT_K=w32.block_k if dot else 0, PADDED=int(any(pads)), num_warps=num_warps,
        **launch_options(out.device))
    return out


@triton.jit
def _finalize_kernel(flag_ptr, n_flags, src_ptr, n, res_ptr, offset, WITH_FLAGS: tl.constexpr, BLOCK: tl.constexpr, GDC: tl.constexpr = 0):
    """res[offset + i] = src[i]; with WITH_FLAGS, program 0 also copies the flags to res[0:n_flags]
    and zeroes them (each forward pass then starts with clear flags, with no memset of its own)."""
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(res_ptr + offset + offs, tl.load(src_ptr + offs, mask=mask, other=0), mask=mask)
    if WITH_FLAGS:
        if pid == 0:
            for f0 in range(0, n_flags, BLOCK):
                fo = f0 + tl.arange(0, BLOCK)
                fm = fo < n_flags
                tl.store(res_ptr + fo, tl.load(flag_ptr + fo, mask=fm, other=0).to(tl.int64), mask=fm)
                tl.store(flag_ptr + fo, tl.zeros((BLOCK,), dtype=tl.int32), mask=fm)


def finalize(flags: torch.Tensor, n_flags: int, outputs: list[torch.Tensor]) -> torch.Tensor:
    """One int64 tensor ``[flags, out_0, out_1, ...]`` (the one device-to-host copy of a batch),
    the flags zeroed on the way (the next forward pass starts clear)."""
    total = n_flags + sum(o.numel() for o in outputs)
    res = torch.empty(total, dtype=torch.int64, device=flags.device)
    offset = n_flags
    block = 1024
    for i, o in enumerate(outputs):
        src = o.reshape(-1).contiguous()
        grid = (max(1, triton.cdiv(src.numel(), block)),)
        _finalize_kernel[grid](flags, n_flags, src, src.numel(), res, offset, WITH_FLAGS=i == 0, BLOCK=block,
                               **launch_options(res.device))
        offset += src.numel()
    if not outputs:
        res[:n_flags] = flags[:n_flags].to(torch.int64)
        flags.zero_()
    return res


__all__ = ["FLAG_INPUT_RANGE", "conv_pool", "direct_conv", "finalize", "pool2d", "quantize_input", "split_nchw"]
