"""2-D max and sum pooling on int64 fixed-point integers: ``max_pool2d``, ``sum_pool2d``.

Average pooling is ``sum_pool2d`` then :func:`kernels.rescale.div_round` by the window size
(kept apart so the engine can match EZKL's own rule). Max pooling pads with the int64 minimum, so
a padded cell never wins (padding must be smaller than the kernel, so every window holds a real
cell); sum pooling pads with 0. One program computes ``BLOCK`` outputs and loops over the (unrolled) window.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import (
    on_input_device,
    DEFAULT_BLOCK_CONFIG,
    BlockConfig,
    check_fits_int64,
    check_int64,
    max_abs,
    pool2d_geometry,
    to_compute,
)


@triton.jit
def window_reduce(x_ptr, offs, mask, H, W, HO, WO, stride_h, stride_w, pad_t, pad_l,
                  KH: tl.constexpr, KW: tl.constexpr, IS_MAX: tl.constexpr, ZERO_PAD: tl.constexpr,
                  BLOCK: tl.constexpr):
    """Max or sum over the window of each output cell ``offs`` (p * HO * WO + ho * WO + wo, planes
    p of [H, W]). A window cell outside the image reads 0 with ``ZERO_PAD`` (EZKL's pools pad with
    zeros, max too: the engine's) and is skipped otherwise (this module's max_pool2d)."""
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
            if IS_MAX:
                if ZERO_PAD:
                    v = tl.load(base + h * W + w, mask=ok, other=0)
                else:
                    v = tl.load(base + h * W + w, mask=ok, other=-9223372036854775808)
                acc = tl.maximum(acc, v)
            else:
                acc += tl.load(base + h * W + w, mask=ok, other=0)
    return acc


@triton.jit
def _pool2d_kernel(x_ptr, out_ptr, total, H, W, HO, WO, stride_h, stride_w, pad_t, pad_l,
                   KH: tl.constexpr, KW: tl.constexpr, IS_MAX: tl.constexpr, BLOCK: tl.constexpr):
    """out[p, ho, wo] = max / sum over the window of x[p, ho*sh - pt + r, wo*sw - pl + s] (p = n*C + c)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    acc = window_reduce(x_ptr, offs, mask, H, W, HO, WO, stride_h, stride_w, pad_t, pad_l, KH, KW, IS_MAX, False,
                        BLOCK)
    tl.store(out_ptr + offs, acc, mask=mask)


@on_input_device
def _pool(x: torch.Tensor, kernel, stride, padding, is_max: bool, config: BlockConfig | None) -> torch.Tensor:
    name = "max_pool2d" if is_max else "sum_pool2d"
    check_int64("x", x, 4)
    geo = pool2d_geometry(name, x.shape, kernel, stride, padding)
    (kh, kw), (sh, sw), (pt, pl, _, _), (ho, wo) = geo.kernel, geo.stride, geo.padding, geo.out
    nb, c, h, w = x.shape
    out_device = x.device
    x = to_compute(x)
    if not is_max:
        check_fits_int64(f"{name} window {kh}x{kw}, max|x|={max_abs(x)}", kh * kw * max_abs(x))
    out = torch.empty((nb, c, ho, wo), dtype=torch.int64, device=x.device)
    if out.numel() == 0:
        return out.to(out_device)
    cfg = config or DEFAULT_BLOCK_CONFIG
    cfg.check()
    _pool2d_kernel[(triton.cdiv(out.numel(), cfg.block),)](
        x, out, out.numel(), h, w, ho, wo, sh, sw, pt, pl,
        KH=kh, KW=kw, IS_MAX=is_max, BLOCK=cfg.block, num_warps=cfg.num_warps)
    return out.to(out_device)


def max_pool2d(x: torch.Tensor, kernel: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
               padding: int | tuple[int, ...] = 0, config: BlockConfig | None = None) -> torch.Tensor:
    """Max over each window of x [N, C, H, W] -> int64 [N, C, Ho, Wo] (floor output size, no dilation).

    ``stride`` defaults to the kernel; ``padding`` is an int, (h, w) or (top, left, bottom, right),
    padded cells hold the int64 minimum.
    """
    return _pool(x, kernel, stride, padding, True, config)


def sum_pool2d(x: torch.Tensor, kernel: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
               padding: int | tuple[int, ...] = 0, config: BlockConfig | None = None) -> torch.Tensor:
    """Exact sum over each window of x [N, C, H, W] -> int64 [N, C, Ho, Wo]; padded cells are 0.

    OverflowError if ``kh * kw * max|x|`` could reach 2^63. Average pooling: ``div_round(sum, kh*kw)``.
    """
    return _pool(x, kernel, stride, padding, False, config)


__all__ = ["max_pool2d", "sum_pool2d"]
