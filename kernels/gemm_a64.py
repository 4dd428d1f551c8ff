"""The planned limb GEMM with its int64 left operand split inside the kernel: ``a64_matmul``.

``kernels.gemm``'s planned path runs two launches per layer: a split kernel writes the
activation's 8-bit limbs (checking each value against its planned range), then the GEMM reads
them. For a layer of a few hundred rows both are far shorter than their launch and the gap
between them, so here the GEMM loads the int64 activation tile itself and splits it in
registers: one launch per layer.

The limbs are the same balanced base-256 digits ``d_i`` in [-128, 127] the split kernel writes
(the representation is unique). With ``C = 128 * (1 + 256 + ... + 256^(L-1))``, ``y = x + C``
has the unsigned base-256 digits ``d_i + 128``, so ``d_i = ((y >> 8i) & 255) - 128``: one add, then
a shift and a mask per limb, all limbs at once; taken modulo 2^64, so ``y`` may wrap for 8 limbs.
A zero (a masked cell) gives zero limbs. A value outside the planned range ``[lo, hi]`` sets
FLAG_A_RANGE, as the split kernel's check does, so the output of that pass is never used.

The right operand is a :class:`kernels.gemm.PackedOperand` (weights split once, at plan time);
the product, its limb combination and the epilogue are the limb GEMM's
(:func:`kernels.gemm._combine_store`), so the bits equal ``int_matmul``'s for every tile config.
"""

from __future__ import annotations

from vcompute.kernels import runtime  # noqa: F401,I001  (first: sets TRITON_INTERPRET before triton loads)

import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import check_int64
from vcompute.kernels.epilogue import Epilogue, report
from vcompute.kernels.flags import FLAG_A_RANGE
from vcompute.kernels.gemm import (GemmConfig, PackedOperand, _combine_store, _limb_rows, _tile_coords,
                                   check_flag_arg, default_config, plan_operands)
from vcompute.kernels.pdl import launch_options, wait_previous

_A_CODE: tl.constexpr = tl.constexpr(FLAG_A_RANGE)


@triton.jit
def _a64_gemm_kernel(a_ptr, b_ptr, bias_ptr, c_ptr, flag_ptr, M, N, K, stride_am, stride_ak, stride_br,
                     stride_cm, stride_cn, a_lo, a_hi, d, lo, hi,
                     LA: tl.constexpr, LB: tl.constexpr, HAS_BIAS: tl.constexpr, BIAS_AFTER: tl.constexpr,
                     DIV: tl.constexpr, HAS_LO: tl.constexpr, HAS_HI: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                     GROUP_M: tl.constexpr, GDC: tl.constexpr = 0):
    """c[M, N] = epilogue(a @ b) from int64 a [M, K] and B' [N*LB, K_pad] int8: each K step loads
    a [BLOCK_M // LA, BLOCK_K] int64 tile, checks it against [a_lo, a_hi] and expands it to the
    [BLOCK_M, BLOCK_K] limb tile (row m*LA + i: limb i of row m) the limb GEMM's dot takes."""
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    OUT_M: tl.constexpr = BLOCK_M // LA
    pid_m, pid_n = _tile_coords(tl.program_id(0), tl.cdiv(M, OUT_M), tl.cdiv(N, BLOCK_N // LB), GROUP_M)
    rm = pid_m * OUT_M + tl.arange(0, OUT_M)
    m_ok = rm < M
    rows_b = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % (N * LB)
    rk = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + rm[:, None].to(tl.int64) * stride_am + rk[None, :].to(tl.int64) * stride_ak
    b_ptrs = b_ptr + rows_b[None, :].to(tl.int64) * stride_br + rk[:, None]
    # C = 128 * (256^LA - 1) / 255 as int64 bits (wraps for LA = 8, as the digits allow)
    digits = 8 * tl.arange(0, LA).to(tl.int64)
    offset = tl.sum(tl.full((LA,), 128, tl.int64) << digits, axis=0)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    outside = tl.zeros((OUT_M, BLOCK_K), dtype=tl.int32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_ok = rk < K - k * BLOCK_K
        a = tl.load(a_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0)
        outside |= ((a < a_lo) | (a > a_hi)).to(tl.int32)
        y = a + offset
        limbs = ((y[:, None, :] >> digits[None, :, None]) & 255) - 128
        a8 = tl.reshape(limbs, (BLOCK_M, BLOCK_K)).to(tl.int8)
        b = tl.load(b_ptrs, mask=k_ok[:, None], other=0)
        acc = tl.dot(a8, b, acc, out_dtype=tl.int32)
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K
    report(tl.where(outside != 0, _A_CODE, 0), m_ok[:, None], flag_ptr)
    _combine_store(acc, bias_ptr, c_ptr, flag_ptr, pid_m, pid_n, M, N, stride_cm, stride_cn, d, lo, hi,
                   LA, LB, HAS_BIAS, BIAS_AFTER, DIV, HAS_LO, HAS_HI, True, BLOCK_M, BLOCK_N)


def a64_matmul(a: torch.Tensor, b: PackedOperand, bias: torch.Tensor | None, limbs: int, a_bound: int,
               flag: torch.Tensor, epilogue: Epilogue, config: GemmConfig | None = None) -> torch.Tensor:
    """``epilogue(a @ b)`` (int64 [M, N]) of int64 ``a`` [M, K], planned to hold ``limbs`` limbs
    and ``|a| <= a_bound``, and packed weights ``b``: ``int_matmul``'s planned path in one launch.

    Like it (the same :func:`kernels.gemm.plan_operands`), the host checks what the plan implies
    (the int64 result and the int32 accumulator), and values outside the plan set codes in the
    int32 ``flag`` (read once after the pass). The bits equal ``int_matmul(a, b, bias, limbs=limbs, bounds=(a_bound, None), flag=flag, ...)`` for
    every ``config`` (None: the limb GEMM's rule; its ``tma``/``persistent`` do not apply here).
    """
    what = "a64_matmul"
    check_int64("a", a, 2)
    if bias is not None:
        check_int64("bias", bias, 1)
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2:
        raise ValueError(f"{what}: inner dims differ: a is {tuple(a.shape)}, b is {tuple(b.shape)}")
    check_flag_arg(flag, a.device, what)
    if flag is None:
        raise ValueError(f"{what}: give a flag (kernels.flags.new_flag): the planned path reports there")
    la, lb, (a_lo, a_hi), _ = plan_operands(k, limbs, (a_bound, None), b, what)
    c = torch.empty((m, n), dtype=torch.int64, device=a.device)
    if m == 0 or n == 0:
        return c
    cfg = config or default_config(m, la, lb)
    cfg.check(la, lb)
    b2 = _limb_rows(b.limbs)
    epi_rt, epi_cx = epilogue.kernel_args()
    grid = (triton.cdiv(m, cfg.block_m // la) * triton.cdiv(n, cfg.block_n // lb),)
    _a64_gemm_kernel[grid](
        a, b2, bias if bias is not None else c, c, flag, m, n, k, a.stride(0), a.stride(1), b2.stride(0),
        c.stride(0), c.stride(1), a_lo, a_hi, *epi_rt, LA=la, LB=lb, HAS_BIAS=bias is not None, **epi_cx,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages, **launch_options(c.device))
    return c


__all__ = ["a64_matmul"]
