"""Exact int64 2-D (and 1-D) convolution as an implicit GEMM on int8 limbs: ``int_conv2d``.

Same scheme as :mod:`kernels.gemm`: input and weights are split into signed 8-bit limbs (the
input in NHWC order, ``[N*H*W, LA, C]``; the weights as ``[O, LB, kh*kw*C/groups]`` with the
reduction index ``k = (r*kw + s)*C/groups + c``), and each program gathers its im2col tile on the
fly (rows ``pixel*LA + i``; zero outside the image, which is the zero padding), runs one K-loop of
int8 ``tl.dot`` with int32 accumulation, then combines the limb products in int64, adds the bias
and stores NCHW int64. Groups run as the grid's second axis.

Overflow guards as for the GEMM with ``K = C/groups * kh * kw``: the int32 accumulator
(``K * 128 * 128 < 2**31`` for multi-limb operands) and the int64 result
(``K * max|x| * max|w| + max|bias| < 2**63``), else OverflowError.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import (
    check_fits_int64, check_int64, conv2d_geometry, on_input_device, pair, same_device, to_compute,
)
from vcompute.kernels.epilogue import NO_EPILOGUE, Epilogue, apply_epilogue
from vcompute.kernels.flags import check_flag, new_flag
from vcompute.kernels.gemm import (
    PackedOperand,
    _combine_limbs,
    _tile_coords,
    check_accumulator_bound,
    check_flag_arg,
    fit_limbs,
    pack_rows,
    split_planned,
    split_speculative,
)
from vcompute.kernels.pdl import launch_options, wait_previous
from vcompute.kernels.rescale import DIV_ROUND_LIMIT


@dataclass(frozen=True)
class ConvConfig:
    """Tile configuration of the implicit-GEMM conv (explicit, never autotuned).

    ``block_m`` x ``block_n`` is the tensor-core tile over (pixel, limb) rows and (channel, limb)
    columns: a program produces ``block_m // LA`` pixels x ``block_n // LB`` output channels.
    Powers of two, ``block_m``, ``block_n`` >= 16, ``block_k`` >= 32 (the int8 MMA's K step).
    The default suits Hopper.
    """

    block_m: int = 128
    block_n: int = 128
    block_k: int = 64
    num_warps: int = 8
    num_stages: int = 3
    group_m: int = 8

    def check(self, la: int, lb: int) -> None:
        """ValueError unless the config is usable with ``la`` x ``lb`` limbs."""
        for name, least in (("block_m", 16), ("block_n", 16), ("block_k", 32)):
            v = getattr(self, name)
            if v < least or v & (v - 1):
                raise ValueError(f"ConvConfig.{name} must be a power of two >= {least}, got {v}")
        if self.block_m < la or self.block_n < lb:
            raise ValueError(f"ConvConfig block_m={self.block_m}, block_n={self.block_n} smaller than the limb counts {la}, {lb}")


DEFAULT_CONV_CONFIG = ConvConfig()


@triton.jit
def _conv_limb_kernel(x_ptr, w_ptr, bias_ptr, out_ptr, flag_ptr,
                      H, W, stride_xp, stride_xl, HO, WO, O, OG, CG, KW, K, K_PAD, stride_wo, stride_wl, M,
                      stride_h, stride_w, pad_t, pad_l, dil_h, dil_w, d, lo, hi,
                      LA: tl.constexpr, LB: tl.constexpr, HAS_BIAS: tl.constexpr, BIAS_AFTER: tl.constexpr,
                      DIV: tl.constexpr, HAS_LO: tl.constexpr, HAS_HI: tl.constexpr, CHECK: tl.constexpr,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                      GROUP_M: tl.constexpr, GDC: tl.constexpr = 0):
    """out[n, g*OG+o, ho, wo] = epilogue(sum_{r,s,c} x[n, g*CG+c, ho*sh-pt+r*dh, wo*sw-pl+s*dw] * w[g*OG+o, c, r, s], bias)."""
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    OUT_M: tl.constexpr = BLOCK_M // LA
    OUT_N: tl.constexpr = BLOCK_N // LB
    g = tl.program_id(1)
    pid_m, pid_n = _tile_coords(tl.program_id(0), tl.cdiv(M, OUT_M), tl.cdiv(OG, OUT_N), GROUP_M)

    # A rows: output pixel m = (n, ho, wo) and input limb i
    ra = tl.arange(0, BLOCK_M)
    m = pid_m * OUT_M + ra // LA
    m_ok = m < M
    m = tl.where(m_ok, m, 0)
    n_img = m // (HO * WO)
    ho = (m % (HO * WO)) // WO
    wo = m % WO
    h0 = ho * stride_h - pad_t
    w0 = wo * stride_w - pad_l
    a_row = (ra % LA).to(tl.int64) * stride_xl + g * CG  # limb plane and group's first channel
    img = n_img.to(tl.int64) * H

    # B rows: output channel o of group g and weight limb j
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
        h = h0[:, None] + ((rs // KW) * dil_h)[None, :]
        w = w0[:, None] + ((rs % KW) * dil_w)[None, :]
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
    mm = tl.where(offs_m < M, offs_m, 0)
    out_off = ((mm // (HO * WO)).to(tl.int64) * O * HO * WO + (mm % (HO * WO)))[:, None] \
        + (g * OG + offs_o).to(tl.int64)[None, :] * (HO * WO)
    tl.store(out_ptr + out_off, res, mask=mask)


def pack_conv_weight(w: torch.Tensor, limbs: int | None = None) -> PackedOperand:
    """The conv's constant weights w [O, C/groups, kh, kw] as limbs [O, LB, Kp], once (plan time:
    one sync here), in the reduction order the kernel reads (``k = (r*kw + s)*C/groups + c``)."""
    check_int64("w", w, 4)
    o, cg, kh, kw = w.shape
    w2 = to_compute(w).permute(0, 2, 3, 1).reshape(o, cg * kh * kw)
    return pack_rows(w2, tuple(w.shape), limbs, "pack_conv_weight")


@on_input_device
def int_conv2d(x: torch.Tensor, w: torch.Tensor | PackedOperand, bias: torch.Tensor | None = None,
               stride: int | tuple[int, int] = (1, 1), padding: int | tuple[int, ...] = (0, 0, 0, 0),
               dilation: int | tuple[int, int] = (1, 1), groups: int = 1,
               config: ConvConfig | None = None, *,
               limbs: int | tuple[int, int | None] | None = None,
               bounds: tuple[int | None, int | None] | None = None,
               flag: torch.Tensor | None = None,
               rescale_shift: int = 0, bias_after_rescale: bool = False,
               activation: str | None = None, clip: tuple[int | None, int | None] | None = None) -> torch.Tensor:
    """Exact conv of int64 fixed-point integers: x [N, C, H, W], w [O, C/groups, kh, kw] -> int64 [N, O, Ho, Wo],
    with the fused epilogue of :func:`kernels.gemm.int_matmul` (bias before the rescale, as EZKL's
    CONV: ``clip(div_round(conv + bias, 2**rescale_shift))``), bit-identical to the unfused kernels.

    ``padding`` is (top, left, bottom, right), a pair (h, w) or an int; padded cells are 0.
    ``w`` may be a :class:`PackedOperand` from :func:`pack_conv_weight`.
    Adaptive path (``limbs=None``): OverflowError when ``K * max|x| * max|w| + max|bias|``
    (K = C/groups*kh*kw) could reach 2^63 or a limb product could leave int32 (K > 131071 for
    multi-limb operands). Planned path (``limbs=(lx, lw)``, ``bounds``, ``flag``): no sync, device
    checks into ``flag``, as for ``int_matmul``.
    """
    what = "int_conv2d"
    check_int64("x", x, 4)
    packed = w if isinstance(w, PackedOperand) else None
    if packed is None:
        check_int64("w", w, 4)
    elif len(packed.shape) != 4:
        raise ValueError(f"int_conv2d: packed w has shape {packed.shape}; pack it with pack_conv_weight")
    if bias is not None:
        check_int64("bias", bias, 1)
    epi = Epilogue.make(what, rescale_shift, bias_after_rescale, activation, clip)
    out_device = same_device(x=x, w=None if packed else w, bias=bias)
    (nb, c, h, wd), (o, cg, kh, kw) = x.shape, tuple(w.shape)
    geo = conv2d_geometry(x.shape, w.shape, bias, stride, padding, dilation, groups)
    (sh, sw), (dh, dw), (pt, pl, _, _), (ho, wo) = geo.stride, geo.dilation, geo.padding, geo.out
    x, bias = to_compute(x), to_compute(bias)
    check_flag_arg(flag, x.device, what)
    if packed is not None and packed.limbs.device.type != x.device.type:
        raise ValueError(f"int_conv2d: packed w is on {packed.limbs.device}, the kernels run on {x.device}")
    k = cg * kh * kw
    if nb == 0:
        return torch.zeros((0, o, ho, wo), dtype=torch.int64, device=out_device)
    x2 = x.permute(0, 2, 3, 1).reshape(nb * h * wd, c)  # NHWC pixels x channels
    w2 = packed if packed is not None else to_compute(w).permute(0, 2, 3, 1).reshape(o, k)  # k = (r*kw + s)*C/groups + c
    internal = False
    if limbs is not None:
        x_l, w_l, flag, internal = split_planned(x2, w2, k, limbs, bounds, flag, what)
    else:
        if bounds is not None:
            raise ValueError("int_conv2d: bounds are a planned-path argument (give limbs too)")
        specs, ranges, bias_max = split_speculative([x2] if packed else [x2, w2], bias)
        (x_lo, x_hi), (w_lo, w_hi) = ranges[0], ((packed.lo, packed.hi) if packed else ranges[1])
        x_max, w_max = max(-x_lo, x_hi), max(-w_lo, w_hi)
        bound = k * x_max * w_max + bias_max
        check_fits_int64(f"int_conv2d K={k}, max|x|={x_max}, max|w|={w_max}, max|bias|={bias_max}", bound)
        if (x_max == 0 or w_max == 0) and not epi.active:
            out = torch.zeros((nb, o, ho, wo), dtype=torch.int64, device=x.device)
            if bias is not None:
                out += bias[None, :, None, None]
            return out.to(out_device)
        x_l = fit_limbs(x2, specs[0], x_lo, x_hi)  # [N*H*W, LA, Cp]
        w_l = packed.limbs if packed else fit_limbs(w2, specs[1], w_lo, w_hi)  # [O, LB, Kp]
        check_accumulator_bound(k, x_l.shape[1], w_l.shape[1], x_max, w_max, what)
        internal = flag is None and epi.rescales and bound >= DIV_ROUND_LIMIT
        if internal:
            flag = new_flag(x.device)
    out = _launch_conv(x_l, w_l, bias, (nb, h, wd, o, ho, wo, cg, kw, k), (sh, sw, pt, pl, dh, dw), groups,
                       config or DEFAULT_CONV_CONFIG, epi, flag)
    if internal:
        check_flag(flag, what)
    return out.to(out_device)


def _launch_conv(x_l: torch.Tensor, w_l: torch.Tensor, bias: torch.Tensor | None, dims: tuple, geom: tuple,
                 groups: int, cfg: ConvConfig, epi: Epilogue = NO_EPILOGUE, flag: torch.Tensor | None = None) -> torch.Tensor:
    """Launch the implicit-GEMM conv on limb tensors x_l [N*H*W, LA, Cp], w_l [O, LB, Kp]."""
    nb, h, wd, o, ho, wo, cg, kw, k = dims
    sh, sw, pt, pl, dh, dw = geom
    la, lb = x_l.shape[1], w_l.shape[1]
    cfg.check(la, lb)
    out = torch.empty((nb, o, ho, wo), dtype=torch.int64, device=x_l.device)
    m = nb * ho * wo
    og = o // groups
    grid = (triton.cdiv(m, cfg.block_m // la) * triton.cdiv(og, cfg.block_n // lb), groups)
    epi_rt, epi_cx = epi.kernel_args()
    _conv_limb_kernel[grid](
        x_l, w_l, bias if bias is not None else out, out, flag if flag is not None else out,
        h, wd, x_l.stride(0), x_l.stride(1), ho, wo, o, og, cg, kw, k, w_l.shape[2], w_l.stride(0), w_l.stride(1), m,
        sh, sw, pt, pl, dh, dw, *epi_rt,
        LA=la, LB=lb, HAS_BIAS=bias is not None, CHECK=flag is not None, **epi_cx,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
        BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
        **launch_options(out.device),
    )
    return out


def int_conv1d(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None,
               stride: int = 1, padding: int | tuple[int, int] = 0, dilation: int = 1, groups: int = 1,
               config: ConvConfig | None = None, **fused) -> torch.Tensor:
    """Exact 1-D conv: x [N, C, L], w [O, C/groups, k] -> int64 [N, O, Lo]; padding is (left, right) or an int.

    Runs :func:`int_conv2d` with a height of 1; ``fused`` takes its keyword-only arguments
    (limbs, bounds, flag, rescale_shift, bias_after_rescale, activation, clip).
    """
    check_int64("x", x, 3)
    check_int64("w", w, 3)
    p_lo, p_hi = pair(padding, "padding")
    if isinstance(stride, (tuple, list)) or isinstance(dilation, (tuple, list)):
        raise ValueError("int_conv1d: stride and dilation are single ints")
    out = int_conv2d(x.unsqueeze(2), w.unsqueeze(2), bias, stride=(1, stride), padding=(0, p_lo, 0, p_hi),
                     dilation=(1, dilation), groups=groups, config=config, **fused)
    return out.squeeze(2)


__all__ = ["ConvConfig", "DEFAULT_CONV_CONFIG", "int_conv2d", "int_conv1d", "pack_conv_weight"]
