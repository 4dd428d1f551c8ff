"""Exact integer GEMM in float64, for the small layers of a planned engine (#9).

The limb GEMM (:mod:`kernels.gemm`) splits int64 operands into int8 limbs for the tensor cores:
right for large layers, but a small model's layers (K and N of a few hundred) leave its tiles
mostly padding, and the split is a launch of its own. Float64 is exact for them instead: integers
below 2^53 are exact doubles, and so is every product and partial sum of a dot product as long as
``sum_k |a_mk * b_kn| < 2^53``, whatever the order of summation and whether or not a multiply and
add are fused. So the bits never depend on the tiles, and one launch reads the int64 activations,
multiplies and adds in float64 and applies the GEMM epilogue of :mod:`kernels.epilogue` (bias,
rescale, clamp) to the converted integers.

Two ways to multiply, picked by :class:`F64Config` (same bits: exact sums do not depend on the
order): rank-1 FMA updates on the CUDA cores, one k at a time, which pay for a short reduction
(an MLP's 8 -> 16 -> 4 on the H100: 3.4 µs against 10.5 µs per layer for split + limb GEMM at
1024 rows) and are latency-bound for a long one (LeNet's 400 -> 120: 208 µs against 19 µs); or a
float64 ``tl.dot`` per K step, which Triton (3.6 and later) compiles to ``DMMA`` on Hopper: the
FP64 tensor cores. (BENCHMARKS.md §2a once read a failed probe of it as "no float64 dot in Triton
3.6": the probe had left ``out_dtype`` at float32 for a float64 accumulator.)

The caller supplies the bound: ``a_bound`` on ``|a|`` and the weights fix the rest. The host
refuses a plan whose ``a_bound * max column L1 norm of b`` reaches 2^53; at run time a value of
``a`` beyond ``a_bound`` sets ``FLAG_A_RANGE`` in the device flag instead of giving wrong bits
(no host sync: :mod:`kernels.flags`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from vcompute.kernels._checks import F64_EXACT, check_int64
from vcompute.kernels.epilogue import Epilogue, apply_epilogue
from vcompute.kernels.flags import FLAG_A_RANGE, FLAG_INPUT_RANGE, Handover, publish_flags
from vcompute.kernels.pdl import launch_options, wait_previous
from vcompute.kernels.quantize import quantize_tile

_A_CODE: tl.constexpr = tl.constexpr(FLAG_A_RANGE)
_INPUT_CODE: tl.constexpr = tl.constexpr(FLAG_INPUT_RANGE)


@triton.jit
def _load_a(ptrs, mask, mult, a_bound, A_FLOAT: tl.constexpr):
    """(a as float64, where it is out of bound): the int64 activations, or with ``A_FLOAT`` the
    float32 model input quantized as EZKL does; a tile of any shape (a column or a K step)."""
    if A_FLOAT:
        a, bad = quantize_tile(tl.load(ptrs, mask=mask, other=0.0), mult, a_bound)
    else:
        a = tl.load(ptrs, mask=mask, other=0)
        bad = (a > a_bound) | (a < -a_bound)
    return a.to(tl.float64), bad


@triton.jit
def _f64_gemm_kernel(a_ptr, b_ptr, bias_ptr, c_ptr, flag_ptr, M, N, K,
                     stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn, a_bound, d, lo, hi,
                     mult, in_flag_ptr, ticket_ptr, flags_ptr, n_flags, res_ptr,
                     HAS_BIAS: tl.constexpr, BIAS_AFTER: tl.constexpr, DIV: tl.constexpr,
                     HAS_LO: tl.constexpr, HAS_HI: tl.constexpr, A_FLOAT: tl.constexpr, PUBLISH: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_F: tl.constexpr,
                     BLOCK_K: tl.constexpr = 0, GDC: tl.constexpr = 0):
    """c = epilogue(a @ b): int64 a [M, K] (|a| <= a_bound, else FLAG_A_RANGE), float64 b [K, N]
    holding integers, float64 products and sums (exact below 2^53), int64 c [M, N].

    ``A_FLOAT``: a is the float32 model input, quantized here (times ``mult``, EZKL's rounding);
    out of bound is FLAG_INPUT_RANGE in ``in_flag_ptr``. ``PUBLISH``: the pass's last kernel
    (``kernels.flags.publish_flags`` into ``res_ptr``). ``BLOCK_K`` > 0: the products run as a
    float64 ``tl.dot`` over K steps of ``BLOCK_K`` (DMMA, the FP64 tensor cores on Hopper), else
    as one rank-1 FMA update per k on the CUDA cores; exact either way (sums below 2^53)."""
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    rm = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float64)
    bad = tl.zeros((BLOCK_M,), dtype=tl.int1)
    a_row = a_ptr + rm * stride_am
    b_col = b_ptr + rn * stride_bn
    if BLOCK_K > 0:  # tensor cores: one float64 dot per K step
        rk = tl.arange(0, BLOCK_K)
        bad2 = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.int1)
        for k0 in range(0, K, BLOCK_K):
            kk = k0 + rk
            a, a_bad = _load_a(a_row[:, None] + kk[None, :] * stride_ak, m_ok[:, None] & (kk < K)[None, :],
                               mult, a_bound, A_FLOAT)
            bad2 |= a_bad
            b = tl.load(b_col[None, :] + kk[:, None] * stride_bk, mask=(kk < K)[:, None] & n_ok[None, :], other=0.0)
            acc = tl.dot(a, b, acc, out_dtype=tl.float64)
        bad = tl.max(bad2.to(tl.int32), axis=1) != 0
    else:
        for k in range(0, K):  # one rank-1 update per k: FMAs on the CUDA cores
            a, a_bad = _load_a(a_row + k * stride_ak, m_ok, mult, a_bound, A_FLOAT)
            bad |= a_bad
            b = tl.load(b_col + k * stride_bk, mask=n_ok, other=0.0)
            acc += a[:, None] * b[None, :]
    if tl.max(bad.to(tl.int32), axis=0) != 0:
        if A_FLOAT:
            tl.atomic_or(in_flag_ptr, _INPUT_CODE)
        else:
            tl.atomic_or(flag_ptr, _A_CODE)
    res = acc.to(tl.int64)
    mask = m_ok[:, None] & n_ok[None, :]
    bias = tl.zeros((1, BLOCK_N), dtype=tl.int64)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + rn, mask=n_ok, other=0)[None, :]
    res = apply_epilogue(res, bias, mask, flag_ptr, d, lo, hi, HAS_BIAS, BIAS_AFTER, DIV, HAS_LO, HAS_HI, True)
    tl.store(c_ptr + rm[:, None] * stride_cm + rn[None, :] * stride_cn, res, mask=mask)
    if PUBLISH:
        publish_flags(ticket_ptr, flags_ptr, n_flags, res_ptr, BLOCK_F)


@dataclass(frozen=True)
class F64Config:
    """Explicit tiles of the float64 GEMM (bits never depend on them). ``block_k`` 0: rank-1
    FMA updates on the CUDA cores; 16 or more: a float64 ``tl.dot`` per K step of that size (the
    FP64 tensor cores), which needs ``block_m`` and ``block_n`` of 16 or more."""

    block_m: int = 64
    block_n: int = 64
    num_warps: int = 4
    block_k: int = 0

    def check(self) -> None:
        least = 16 if self.block_k else 2
        for name in ("block_m", "block_n"):
            v = getattr(self, name)
            if v < least or v & (v - 1):
                raise ValueError(f"F64Config.{name} must be a power of two >= {least}"
                                 f"{' (a tl.dot tile)' if self.block_k else ''}, got {v}")
        if self.block_k and (self.block_k < 16 or self.block_k & (self.block_k - 1)):
            raise ValueError(f"F64Config.block_k must be 0 (FMA) or a power of two >= 16, got {self.block_k}")


#: the rule aims at this many programs (two per SM of an H100) before it widens tiles
_TARGET_PROGRAMS = 264


def f64_config(m: int, n: int, k: int, dot: bool = False) -> F64Config:
    """N rounded up to a power of two (8..64, 16..64 for ``dot``) per tile; then the widest row
    block (16..128) that still gives every SM work, since each program runs the whole K loop.
    ``dot``: the tensor-core variant, K steps of 16 (K <= 16) or 32."""
    block_n = min(64, max(16 if dot else 8, triton.next_power_of_2(n)))
    tiles_n = triton.cdiv(n, block_n)
    block_m = 128
    while block_m > 16 and triton.cdiv(m, block_m) * tiles_n < _TARGET_PROGRAMS:
        block_m //= 2
    cells = block_m * block_n
    return F64Config(block_m, block_n, 4 if cells >= 2048 else 2 if cells >= 512 else 1,
                     (16 if k <= 16 else 32) if dot else 0)


@dataclass(frozen=True)
class F64Weight:
    """A constant integer weight [K, N] as float64 on the device, with the column L1 bound that
    decides whether an input bound keeps the product exact."""

    values: torch.Tensor
    col_l1: int

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.values.shape)


def pack_weight_f64(w: torch.Tensor) -> F64Weight:
    """An int64 weight [K, N] for :func:`f64_matmul` (every |w| must be below 2^53)."""
    check_int64("w", w, 2)
    col = int(w.abs().sum(dim=0).max().item()) if w.numel() else 0
    if w.numel() and int(w.abs().max().item()) >= F64_EXACT:
        raise OverflowError("f64_matmul: weights of 2^53 or more are not exact doubles")
    return F64Weight(w.to(torch.float64).contiguous(), col)


def f64_exact(a_bound: int, w: F64Weight) -> bool:
    """Whether every dot product with ``|a| <= a_bound`` stays below 2^53 (exact in float64)."""
    return a_bound * w.col_l1 < F64_EXACT


def check_f64_bound(a_bound: int, w: F64Weight, what: str = "f64_matmul") -> None:
    """OverflowError unless every dot product stays below 2^53 for ``|a| <= a_bound``."""
    if a_bound < 0:
        raise ValueError(f"{what}: a_bound must be >= 0, got {a_bound}")
    if not f64_exact(a_bound, w):
        raise OverflowError(f"{what}: a bound {a_bound} x column L1 norm {w.col_l1} reaches 2^53, "
                            "where float64 sums stop being exact; use the limb GEMM (int_matmul)")


def f64_matmul(a: torch.Tensor, w: F64Weight, a_bound: int, flag: torch.Tensor,
               bias: torch.Tensor | None = None, epilogue: Epilogue | None = None,
               config: F64Config | None = None, *, a_scale: int | None = None,
               in_flag: torch.Tensor | None = None, out: torch.Tensor | None = None,
               handover: Handover | None = None) -> torch.Tensor:
    """``epilogue(a @ w)`` exactly, for int64 ``a`` [M, K] with ``|a| <= a_bound`` (values beyond
    it set FLAG_A_RANGE in ``flag``, an int32 device tensor) and a packed weight; int64 [M, N].

    No host sync: the bound is checked against the weight here, the values on the device.
    ``a_scale``: ``a`` is instead a float32 model input, quantized in the kernel at that scale
    (EZKL's rounding), values beyond ``a_bound`` setting FLAG_INPUT_RANGE in ``in_flag``.
    ``out``: an int64 [M, N] tensor to write (e.g. a view into a pass's result); ``handover``:
    this is the pass's last kernel, which hands the flags to its result (:class:`Handover`)."""
    if a_scale is None:
        check_int64("a", a, 2)
    elif a.dtype != torch.float32 or a.dim() != 2 or in_flag is None:
        raise ValueError("f64_matmul: with a_scale, a must be a float32 matrix and in_flag given")
    k, n = w.shape
    if a.shape[1] != k:
        raise ValueError(f"f64_matmul: a is {tuple(a.shape)}, weight is {k}x{n}")
    if a.device != w.values.device or flag.device != a.device:
        raise ValueError("f64_matmul: a, the weight and flag must be on one device")
    if bias is not None:
        check_int64("bias", bias, 1)
        if bias.numel() != n:
            raise ValueError(f"f64_matmul: bias has {bias.numel()} values for {n} columns")
    check_f64_bound(a_bound, w)
    m = a.shape[0]
    if out is None:
        out = torch.empty((m, n), dtype=torch.int64, device=a.device)
    elif out.dtype != torch.int64 or tuple(out.shape) != (m, n):
        raise ValueError(f"f64_matmul: out must be int64 {(m, n)}, got {out.dtype} {tuple(out.shape)}")
    if (m == 0 or n == 0) and handover is None:
        return out
    cfg = config or f64_config(m, n, k)
    cfg.check()
    epi = epilogue or Epilogue()
    epi_rt, epi_cx = epi.kernel_args()
    hand_rt, hand_cx = (handover or Handover.none(flag)).kernel_args()
    grid = (max(1, triton.cdiv(m, cfg.block_m)), max(1, triton.cdiv(n, cfg.block_n)))
    _f64_gemm_kernel[grid](
        a, w.values, bias if bias is not None else out, out, flag, m, n, k,
        a.stride(0), a.stride(1), w.values.stride(0), w.values.stride(1), out.stride(0), out.stride(1),
        int(a_bound), *epi_rt, float(2.0 ** (a_scale or 0)), in_flag if in_flag is not None else flag, *hand_rt,
        HAS_BIAS=bias is not None, **epi_cx, A_FLOAT=a_scale is not None, **hand_cx,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, num_warps=cfg.num_warps,
        **launch_options(out.device))
    return out


__all__ = ["F64Config", "F64Weight", "F64_EXACT", "check_f64_bound", "f64_exact", "f64_config", "f64_matmul", "pack_weight_f64"]
