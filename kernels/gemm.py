"""Exact int64 matrix product on int8 tensor cores: ``int_matmul``.

EZKL's fixed-point values are wider than 8 bits (scale 2^13 and up), and ``tl.dot`` has no
int16/int32 operands, so each operand is split into signed 8-bit limbs,
``x = sum_i l_i * 256**i`` with ``l_i`` in [-128, 127], and the product is assembled from the
limb products: ``a @ b = sum_ij 256**(i+j) * (A_i @ B_j)``.

Layout trick: the limbs of each row are stored next to each other (``A'[m, i, k] = A_i[m, k]``,
``B'[n, j, k] = B_j[k, n]``), so ``A' @ B'^T`` is one plain int8 GEMM of size
``(M*LA) x K x (N*LB)`` whose every tile holds all limb products of an output tile. Each program
runs one K-loop over its tile (no split-K) with an int32 accumulator (wgmma on Hopper), then in the
epilogue shifts each limb product by ``8*(i+j)`` bits and sums them in int64, adds the bias and
stores int64. Integer accumulation has no rounding, so the bits do not depend on the tile config.

Limb splitting runs in a small Triton kernel (one read of each int64 operand, ``L`` int8 writes,
both operands in one launch) that also measures each operand's min/max with atomics. It first splits
into ``SPECULATIVE_LIMBS`` (2) limbs; after one host sync the limb count actually needed is known
(rounded up to a power of two, as Triton tile shapes must be: 3 limbs get a fourth, all-zero
one): one limb uses a strided view of the first, more than two re-split the operand.

Overflow guards (``OverflowError`` before the GEMM runs; only the range-measuring split has run):
  * int32 accumulator: each limb product is accumulated alone, ``K * 128 * 128 < 2**31``
    (K <= 131071); with one limb per operand the bound uses the operands' own magnitudes.
  * int64 result: ``K * max|a| * max|b| + max|bias| < 2**63``.
Within those bounds every intermediate is exact (int32 and int64 arithmetic wrap modulo 2^32 and
2^64, and the true values fit).

Planned path (``limbs=``): the limb counts come from bounds known at plan time, so nothing is
measured and nothing syncs. The host checks what the plan implies (the two bounds above with the
planned magnitudes); the split kernel checks every value against its planned range on the device
and ORs an error code into an int32 flag (:mod:`kernels.flags`) that the caller reads once per
forward pass. Constant operands can be split once (:func:`pack_weight`). The epilogue can also
add the bias, rescale and clip (:mod:`kernels.epilogue`), bit-identical to separate kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from vcompute.kernels._checks import (
    on_input_device,
    value_range,
    INT64_MAX,
    INT64_MIN,
    check_fits_int64,
    check_int64,
    same_device,
    to_compute,
)
from vcompute.kernels.epilogue import NO_EPILOGUE, Epilogue, apply_epilogue
from vcompute.kernels.flags import FLAG_A_RANGE, FLAG_B_RANGE, check_flag, new_flag
from vcompute.kernels.pdl import launch_options, wait_previous
from vcompute.kernels.rescale import DIV_ROUND_LIMIT

#: most 8-bit limbs an operand may have (8 limbs cover about +-0.996 * 2^63)
MAX_LIMBS = 8
#: limbs of the first, range-measuring split (EZKL scale-2^13 values within +-4.0 need 2)
SPECULATIVE_LIMBS = 2
#: the int32 accumulator bound: K * (limb magnitude)^2 must stay below this
INT32_LIMIT = 2**31


@dataclass(frozen=True)
class GemmConfig:
    """Tile configuration of the limb GEMM (explicit, never autotuned).

    ``block_m`` x ``block_n`` is the tensor-core tile of the limb matrices ``A'`` (rows
    ``m*LA + i``) and ``B'``: a program produces ``block_m // LA`` x ``block_n // LB`` outputs.
    Sizes are powers of two, ``block_m``, ``block_n`` >= 16 and ``block_k`` >= 32 (the int8 MMA's
    K step on NVIDIA GPUs); the output tile may be as small as one row. ``tma`` picks TMA tile
    loads (else pointer loads), ``persistent`` one program per SM. The default was the fastest of
    the candidates timed on H100/H200 (docs/kernel-bench-h100.txt).
    """

    block_m: int = 128
    block_n: int = 256
    block_k: int = 128
    num_warps: int = 8
    num_stages: int = 3
    group_m: int = 8
    #: load tiles with the Hopper bulk tensor copy engine (TMA descriptors); else pointer loads
    tma: bool = True
    #: persistent grid (one program per SM looping over tiles); TMA kernel only
    persistent: bool = False

    def check(self, la: int, lb: int) -> None:
        """ValueError unless the config is usable with ``la`` x ``lb`` limbs."""
        for name, least in (("block_m", 16), ("block_n", 16), ("block_k", 32)):
            v = getattr(self, name)
            if v < least or v & (v - 1):
                raise ValueError(f"GemmConfig.{name} must be a power of two >= {least}, got {v}")
        if self.block_m < la or self.block_n < lb:
            raise ValueError(f"GemmConfig block_m={self.block_m}, block_n={self.block_n} smaller than the limb counts {la}, {lb}")
        if self.num_warps < 1 or self.num_stages < 1 or self.group_m < 1:
            raise ValueError(f"GemmConfig num_warps, num_stages, group_m must be >= 1: {self}")


DEFAULT_GEMM_CONFIG = GemmConfig()
#: one-limb outputs keep the int64 output tile within this many bytes (the epilogue's layout change
#: goes through shared memory: a 128 x 256 int64 tile needs 256 KB, over Hopper's 227 KB)
MAX_OUT_TILE_BYTES = 128 * 1024


def default_config(m: int, la: int, lb: int) -> GemmConfig:
    """The tile config a call without one gets (a fixed rule, never timed; bits do not depend on it).

    DEFAULT_GEMM_CONFIG, except: few rows (``m * la <= 64``, a layer at small batch) get a narrow
    tile (16-64 x 64) so that many programs stream the weights in parallel; one-limb operands get
    block_n halved until the int64 output tile fits MAX_OUT_TILE_BYTES.
    """
    if m * la <= 64:
        return GemmConfig(block_m=max(16, triton.next_power_of_2(m * la)), block_n=64, block_k=128,
                          num_warps=4, num_stages=4, group_m=1)
    cfg = DEFAULT_GEMM_CONFIG
    block_n = cfg.block_n
    while (cfg.block_m // la) * (block_n // lb) * 8 > MAX_OUT_TILE_BYTES and block_n > 16:
        block_n //= 2
    return cfg if block_n == cfg.block_n else GemmConfig(cfg.block_m, block_n, cfg.block_k, cfg.num_warps,
                                                         cfg.num_stages, cfg.group_m, cfg.tma, cfg.persistent)


#: split-kernel modes: plain, measure the range (atomic min/max), check against planned bounds (flag)
SPLIT_PLAIN, SPLIT_RANGE, SPLIT_CHECK = 0, 1, 2


@triton.jit
def _split_tile(x_ptr, out_ptr, aux_ptr, R, C, C_PAD, stride_r, stride_c, pid_r, pid_c, lo, hi,
                CODE: tl.constexpr, L: tl.constexpr, MODE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """One [BLOCK_R, BLOCK_C] tile: out[r, i, c] = i-th signed 8-bit limb of x[r, c]; 0 for C <= c < C_PAD.

    MODE 1 (range) also folds min(x) / max(x) into aux_ptr[0] / aux_ptr[1] (int64 atomics), so the
    host learns the limb count needed from the same pass. MODE 2 (check) ORs CODE into the int32
    flag aux_ptr[0] if any x lies outside [lo, hi] (the planned limbs and bound): its limbs would
    be silently wrong, so the flag marks the result invalid, without a host sync.
    """
    rows = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (rows[:, None] < R) & (cols[None, :] < C_PAD)
    r64 = rows[:, None].to(tl.int64)
    c64 = cols[None, :].to(tl.int64)
    valid = mask & (cols[None, :] < C)
    x = tl.load(x_ptr + r64 * stride_r + c64 * stride_c, mask=valid, other=0)
    if MODE == 1:
        tl.atomic_min(aux_ptr, tl.min(tl.min(tl.where(valid, x, 9223372036854775807), axis=1), axis=0))
        tl.atomic_max(aux_ptr + 1, tl.max(tl.max(tl.where(valid, x, -9223372036854775808), axis=1), axis=0))
    if MODE == 2:
        outside = tl.max(tl.max((valid & ((x < lo) | (x > hi))).to(tl.int32), axis=1), axis=0)
        if outside != 0:
            tl.atomic_or(aux_ptr, CODE)
    base = out_ptr + r64 * (L * C_PAD) + c64
    for i in tl.static_range(L):
        d = ((x + 128) & 255) - 128  # balanced digit in [-128, 127]
        tl.store(base + i * C_PAD, d.to(tl.int8), mask=mask)
        x = (x - d) >> 8  # exact: x - d is a multiple of 256


@triton.jit
def _split_limbs_kernel(x_ptr, out_ptr, aux_ptr, R, C, C_PAD, stride_r, stride_c, lo, hi,
                        CODE: tl.constexpr, L: tl.constexpr, MODE: tl.constexpr,
                        BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, GDC: tl.constexpr = 0):
    """Limbs of one 2-D operand (grid: row tiles x column tiles)."""
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    _split_tile(x_ptr, out_ptr, aux_ptr, R, C, C_PAD, stride_r, stride_c, tl.program_id(0), tl.program_id(1),
                lo, hi, CODE, L, MODE, BLOCK_R, BLOCK_C)


@triton.jit
def _split_pair_kernel(x_ptr, out_x_ptr, R_X, C_X, CP_X, sr_x, sc_x, tiles_c_x, tiles_x, lo_x, hi_x,
                       y_ptr, out_y_ptr, R_Y, C_Y, CP_Y, sr_y, sc_y, tiles_c_y, lo_y, hi_y, aux_ptr,
                       L_X: tl.constexpr, L_Y: tl.constexpr, MODE: tl.constexpr,
                       BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, GDC: tl.constexpr = 0):
    """Limbs of two operands in one launch (saves a launch per GEMM): programs below ``tiles_x``
    split x, the rest y. Range mode: ranges into aux_ptr[0:2] and [2:4]; check mode: codes 1 (x)
    and 2 (y) into the flag aux_ptr[0]."""
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    pid = tl.program_id(0)
    if pid < tiles_x:
        _split_tile(x_ptr, out_x_ptr, aux_ptr, R_X, C_X, CP_X, sr_x, sc_x, pid // tiles_c_x, pid % tiles_c_x,
                    lo_x, hi_x, 1, L_X, MODE, BLOCK_R, BLOCK_C)
    else:
        q = pid - tiles_x
        if MODE == 1:
            y_aux = aux_ptr + 2
        else:
            y_aux = aux_ptr
        _split_tile(y_ptr, out_y_ptr, y_aux, R_Y, C_Y, CP_Y, sr_y, sc_y, q // tiles_c_y, q % tiles_c_y,
                    lo_y, hi_y, 2, L_Y, MODE, BLOCK_R, BLOCK_C)


@triton.jit
def _tile_coords(tile_id, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    """Grouped tile order: GROUP_M row-tiles in a row share B' tiles in L2."""
    num_in_group = GROUP_M * num_pid_n
    first_m = (tile_id // num_in_group) * GROUP_M
    group_size = tl.minimum(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (tile_id % num_in_group) % group_size
    pid_n = (tile_id % num_in_group) // group_size
    return pid_m, pid_n


@triton.jit
def _combine_limbs(acc, LA: tl.constexpr, LB: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """int64 [BLOCK_M // LA, BLOCK_N // LB] = sum_ij (acc rows m*LA+i, cols n*LB+j) << 8*(i+j)."""
    OUT_M: tl.constexpr = BLOCK_M // LA
    OUT_N: tl.constexpr = BLOCK_N // LB
    res = acc.to(tl.int64)
    if LB > 1:  # columns are n*LB + j
        res = tl.reshape(res, (BLOCK_M, OUT_N, LB))
        res = tl.sum(res << (8 * tl.arange(0, LB).to(tl.int64))[None, None, :], axis=2)
    if LA > 1:  # rows are m*LA + i
        res = tl.reshape(res, (OUT_M, LA, OUT_N))
        res = tl.sum(res << (8 * tl.arange(0, LA).to(tl.int64))[None, :, None], axis=1)
    return res


@triton.jit
def _combine_store(acc, bias_ptr, c_ptr, flag_ptr, pid_m, pid_n, M, N, stride_cm, stride_cn, d, lo, hi,
                   LA: tl.constexpr, LB: tl.constexpr, HAS_BIAS: tl.constexpr, BIAS_AFTER: tl.constexpr,
                   DIV: tl.constexpr, HAS_LO: tl.constexpr, HAS_HI: tl.constexpr, CHECK: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Epilogue: combine the limb products in int64, then bias / rescale / clamp (apply_epilogue),
    masked store of the c tile."""
    res = _combine_limbs(acc, LA, LB, BLOCK_M, BLOCK_N)
    offs_m = pid_m * (BLOCK_M // LA) + tl.arange(0, BLOCK_M // LA)
    offs_n = pid_n * (BLOCK_N // LB) + tl.arange(0, BLOCK_N // LB)
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    bias = tl.zeros((1, BLOCK_N // LB), dtype=tl.int64)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0)[None, :]
    res = apply_epilogue(res, bias, mask, flag_ptr, d, lo, hi, HAS_BIAS, BIAS_AFTER, DIV, HAS_LO, HAS_HI, CHECK)
    c_ptrs = c_ptr + offs_m[:, None].to(tl.int64) * stride_cm + offs_n[None, :].to(tl.int64) * stride_cn
    tl.store(c_ptrs, res, mask=mask)


@triton.jit
def _limb_gemm_kernel(a_ptr, b_ptr, bias_ptr, c_ptr, flag_ptr, M, N, K, stride_ar, stride_br, stride_cm, stride_cn,
                      d, lo, hi,
                      LA: tl.constexpr, LB: tl.constexpr, HAS_BIAS: tl.constexpr, BIAS_AFTER: tl.constexpr,
                      DIV: tl.constexpr, HAS_LO: tl.constexpr, HAS_HI: tl.constexpr, CHECK: tl.constexpr,
                      EVEN_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                      GROUP_M: tl.constexpr, GDC: tl.constexpr = 0):
    """c[M, N] (int64) = epilogue(sum_ij 256**(i+j) * (A_i @ B_j), bias), from A' [M*LA, K] and
    B' [N*LB, K] int8 (rows stride_ar / stride_br elements apart).

    Pointer loads (cp.async on GPU); one program per output tile.
    """
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    pid_m, pid_n = _tile_coords(tl.program_id(0), tl.cdiv(M, BLOCK_M // LA), tl.cdiv(N, BLOCK_N // LB), GROUP_M)
    # rows of A' / B' for this tile; wrap out-of-range rows (their outputs are masked at the store)
    rows_a = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % (M * LA)
    rows_b = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % (N * LB)
    rk = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + rows_a[:, None].to(tl.int64) * stride_ar + rk[None, :]
    b_ptrs = b_ptr + rows_b[None, :].to(tl.int64) * stride_br + rk[:, None]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        if EVEN_K:
            a = tl.load(a_ptrs)
            b = tl.load(b_ptrs)
        else:
            k_left = K - k * BLOCK_K
            a = tl.load(a_ptrs, mask=rk[None, :] < k_left, other=0)
            b = tl.load(b_ptrs, mask=rk[:, None] < k_left, other=0)
        acc = tl.dot(a, b, acc, out_dtype=tl.int32)
        a_ptrs += BLOCK_K
        b_ptrs += BLOCK_K
    _combine_store(acc, bias_ptr, c_ptr, flag_ptr, pid_m, pid_n, M, N, stride_cm, stride_cn, d, lo, hi,
                   LA, LB, HAS_BIAS, BIAS_AFTER, DIV, HAS_LO, HAS_HI, CHECK, BLOCK_M, BLOCK_N)


@triton.jit
def _limb_gemm_tma_kernel(a_desc, b_desc, bias_ptr, c_ptr, flag_ptr, M, N, K, stride_cm, stride_cn, num_progs,
                          d, lo, hi,
                          LA: tl.constexpr, LB: tl.constexpr, HAS_BIAS: tl.constexpr, BIAS_AFTER: tl.constexpr,
                          DIV: tl.constexpr, HAS_LO: tl.constexpr, HAS_HI: tl.constexpr, CHECK: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                          GROUP_M: tl.constexpr, FLATTEN: tl.constexpr, GDC: tl.constexpr = 0):
    """Same product with TMA tile loads (out-of-bounds rows/cols read as 0).

    Programs loop over output tiles ``pid, pid + num_progs, ...`` (persistent when the grid is one
    program per SM; a plain grid runs the loop once).
    """
    wait_previous(GDC)  # PDL: before any memory access (kernels.pdl)
    num_pid_m = tl.cdiv(M, BLOCK_M // LA)
    num_pid_n = tl.cdiv(N, BLOCK_N // LB)
    k_tiles = tl.cdiv(K, BLOCK_K)
    for tile_id in tl.range(tl.program_id(0), num_pid_m * num_pid_n, num_progs, flatten=FLATTEN):
        pid_m, pid_n = _tile_coords(tile_id, num_pid_m, num_pid_n, GROUP_M)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
        for ki in range(k_tiles):
            a = a_desc.load([pid_m * BLOCK_M, ki * BLOCK_K])
            b = b_desc.load([pid_n * BLOCK_N, ki * BLOCK_K])
            acc = tl.dot(a, b.T, acc, out_dtype=tl.int32)
        _combine_store(acc, bias_ptr, c_ptr, flag_ptr, pid_m, pid_n, M, N, stride_cm, stride_cn, d, lo, hi,
                       LA, LB, HAS_BIAS, BIAS_AFTER, DIV, HAS_LO, HAS_HI, CHECK, BLOCK_M, BLOCK_N)


def limb_capacity(n: int) -> tuple[int, int]:
    """The range ``[-128 * R, 127 * R]``, ``R = (256**n - 1) // 255``, that n balanced 8-bit limbs cover."""
    r = (256**n - 1) // 255
    return -128 * r, 127 * r


def limbs_needed(lo: int, hi: int) -> int:
    """Fewest signed 8-bit limbs representing every integer in [lo, hi] (at least 1).

    OverflowError past ``MAX_LIMBS``.
    """
    for n in range(1, MAX_LIMBS + 1):
        cap_lo, cap_hi = limb_capacity(n)
        if cap_lo <= lo and hi <= cap_hi:
            return n
    raise OverflowError(f"operand range [{lo}, {hi}] needs more than {MAX_LIMBS} 8-bit limbs")


def padded_limbs(n: int) -> int:
    """The limb count rounded up to a power of two (Triton tiles are powers of two)."""
    return 1 << (n - 1).bit_length()


def _padded(c: int, pad_to: int = 16) -> int:
    """C rounded up to a multiple of pad_to, at least pad_to (an empty reduction becomes zero limbs)."""
    return max(pad_to, -(-c // pad_to) * pad_to)


def _split_blocks(r: int, c_pad: int) -> tuple[int, int]:
    """Split tile: ~4K elements per program, wide when there are few rows."""
    block_r = min(32, triton.next_power_of_2(max(r, 1)))
    return block_r, min(max(128, 4096 // block_r), triton.next_power_of_2(max(c_pad, 1)))


def split_limbs(x: torch.Tensor, limbs: int, pad_to: int = 16, range_out: torch.Tensor | None = None,
                check: tuple[int, int, torch.Tensor, int] | None = None) -> torch.Tensor:
    """int8 [R, limbs, Cp] limbs of a 2-D int64 tensor (any strides) on its device.

    ``Cp`` is C rounded up to a multiple of ``pad_to`` (zero limbs in the padding) so that rows of
    the limb matrix are 16-byte aligned, as the TMA copy engine needs. Limbs past ``limbs`` are
    dropped: the caller must know the values fit, or pass ``range_out`` (int64 [2], holding
    (int64 max, int64 min) or an earlier range) to receive min(x), max(x) and check afterwards, or
    ``check=(lo, hi, flag, code)`` to have ``code`` ORed into the int32 ``flag`` on the device if
    any value lies outside [lo, hi] (no sync).
    """
    R, C = x.shape
    c_pad = _padded(C, pad_to)
    out = torch.empty((R, limbs, c_pad), dtype=torch.int8, device=x.device)
    if R == 0:
        return out
    block_r, block_c = _split_blocks(R, c_pad)
    grid = (triton.cdiv(R, block_r), triton.cdiv(c_pad, block_c))
    mode, aux, lo, hi, code = SPLIT_PLAIN, out, 0, 0, 0
    if range_out is not None:
        mode, aux = SPLIT_RANGE, range_out
    elif check is not None:
        lo, hi, aux, code = check
        mode = SPLIT_CHECK
    _split_limbs_kernel[grid](x, out, aux, R, C, c_pad, x.stride(0), x.stride(1), lo, hi,
                              CODE=code, L=limbs, MODE=mode, BLOCK_R=block_r, BLOCK_C=block_c,
                              **launch_options(out.device))
    return out


def _split_pair(x: torch.Tensor, y: torch.Tensor, lx: int, ly: int, aux: torch.Tensor, mode: int,
                x_bounds: tuple[int, int] = (0, 0), y_bounds: tuple[int, int] = (0, 0)) -> tuple[torch.Tensor, torch.Tensor]:
    """``split_limbs`` of two 2-D operands with rows in one launch: range mode (ranges into
    aux[0:2], aux[2:4]) or check mode (codes 1 / 2 into the flag ``aux`` outside the bounds)."""
    (rx, cx), (ry, cy) = x.shape, y.shape
    cpx, cpy = _padded(cx), _padded(cy)
    out_x = torch.empty((rx, lx, cpx), dtype=torch.int8, device=x.device)
    out_y = torch.empty((ry, ly, cpy), dtype=torch.int8, device=x.device)
    block_r, block_c = _split_blocks(max(rx, ry), max(cpx, cpy))
    tcx, tcy = triton.cdiv(cpx, block_c), triton.cdiv(cpy, block_c)
    tiles_x = triton.cdiv(rx, block_r) * tcx
    grid = (tiles_x + triton.cdiv(ry, block_r) * tcy,)
    _split_pair_kernel[grid](x, out_x, rx, cx, cpx, x.stride(0), x.stride(1), tcx, tiles_x, *x_bounds,
                             y, out_y, ry, cy, cpy, y.stride(0), y.stride(1), tcy, *y_bounds, aux,
                             L_X=lx, L_Y=ly, MODE=mode, BLOCK_R=block_r, BLOCK_C=block_c,
                             **launch_options(out_x.device))
    return out_x, out_y


def check_accumulator_bound(k: int, la: int, lb: int, a_max: int, b_max: int, what: str = "int_matmul") -> None:
    """OverflowError if a K-long int8 limb dot product could leave int32."""
    da = a_max if la == 1 else 128
    db = b_max if lb == 1 else 128
    if k * da * db >= INT32_LIMIT:
        raise OverflowError(
            f"{what}: K={k} with limb magnitudes {da} x {db} can reach {k * da * db} >= 2^31 in the int32 "
            f"accumulator (largest K with full 8-bit limbs is {(INT32_LIMIT - 1) // (128 * 128)}); split the reduction"
        )


@dataclass(frozen=True, eq=False)
class PackedOperand:
    """A constant operand (weights) split into 8-bit limbs once, at plan time.

    The GEMM / conv then read its int8 limbs directly instead of reading and splitting an int64
    tensor on every call (a quarter of the bytes for 2 limbs, one launch less). Made by
    :func:`pack_weight` (GEMM ``b``) and :func:`kernels.conv.pack_conv_weight`; its range is
    exact, measured when packed.
    """

    #: int8 [R, padded_limbs(n_limbs), Kp], the rows of the transposed operand (GEMM: [N, L, Kp])
    limbs: torch.Tensor
    #: the packed tensor's own shape ([K, N] for a GEMM's b, [O, C/groups, kh, kw] for a conv)
    shape: tuple[int, ...]
    #: limbs its values need (or were asked for)
    n_limbs: int
    lo: int
    hi: int

    @property
    def bound(self) -> int:
        """max |value|."""
        return max(-self.lo, self.hi)


def pack_rows(rows: torch.Tensor, shape: tuple[int, ...], limbs: int | None, what: str) -> PackedOperand:
    """Pack a 2-D [R, K] operand (rows = output columns) with the limbs its range needs (one sync:
    call at plan time); OverflowError if ``limbs`` is given and too few."""
    lo, hi = value_range(rows)
    n = limbs_needed(lo, hi)
    if limbs is not None:
        if isinstance(limbs, bool) or not isinstance(limbs, int) or not 1 <= limbs <= MAX_LIMBS:
            raise ValueError(f"{what}: limbs must be an int in [1, {MAX_LIMBS}], got {limbs!r}")
        if limbs < n:
            raise OverflowError(f"{what}: values span [{lo}, {hi}], which needs {n} limbs, not {limbs}")
        n = limbs
    return PackedOperand(split_limbs(rows, padded_limbs(n)), tuple(shape), n, lo, hi)


def pack_weight(b: torch.Tensor, limbs: int | None = None) -> PackedOperand:
    """The GEMM's constant right operand ``b`` [K, N] as limbs, once (plan time: one sync here)."""
    check_int64("b", b, 2)
    return pack_rows(to_compute(b).t(), tuple(b.shape), limbs, "pack_weight")


def _limb_plan(limbs: int | tuple[int, int | None], packed: PackedOperand | None, what: str) -> tuple[int, int]:
    """(la, lb) from the caller's plan; lb may be left to a packed operand."""
    la, lb = (limbs, None) if isinstance(limbs, int) else tuple(limbs)
    if packed is not None:
        if lb is not None and lb != packed.n_limbs:
            raise ValueError(f"{what}: planned {lb} limbs for the packed operand, which was packed with {packed.n_limbs}")
        lb = packed.n_limbs
    for name, n in (("a", la), ("b", lb)):
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_LIMBS:
            raise ValueError(f"{what}: planned limbs for {name} must be an int in [1, {MAX_LIMBS}], got {n!r}")
    return la, lb


def _planned_bound(n: int, bound: int | None, name: str, what: str) -> tuple[int, int, int]:
    """(max |v|, lo, hi) an operand of n planned limbs (and optional bound) may hold."""
    cap_lo, cap_hi = limb_capacity(n)
    if bound is None:
        return -cap_lo, cap_lo, cap_hi
    if isinstance(bound, bool) or not isinstance(bound, int) or not 0 <= bound <= -cap_lo:
        raise ValueError(f"{what}: bound for {name} must be an int in [0, {-cap_lo}] (what {n} limbs hold), got {bound!r}")
    return bound, max(-bound, cap_lo), min(bound, cap_hi)


def plan_operands(k: int, limbs: int | tuple[int, int | None], bounds: tuple[int | None, int | None] | None,
                  packed: PackedOperand | None, what: str) -> tuple[int, int, tuple[int, int], tuple[int, int]]:
    """The host's checks of a planned product (``K * max|a| * max|b| < 2^63``, the int32
    accumulator): (padded la, padded lb, a's planned (lo, hi), b's). ``packed``: b's limbs and
    range are the packed weights'."""
    la, lb = _limb_plan(limbs, packed, what)
    bx, by = (None, None) if bounds is None else tuple(bounds)
    a_max, a_lo, a_hi = _planned_bound(la, bx, "a", what)
    if packed is not None:
        b_max, b_lo, b_hi = packed.bound, packed.lo, packed.hi
    else:
        b_max, b_lo, b_hi = _planned_bound(lb, by, "b", what)
    check_fits_int64(f"{what} K={k}, planned max|a|={a_max}, max|b|={b_max}", k * a_max * b_max)
    pla, plb = padded_limbs(la), padded_limbs(lb)
    check_accumulator_bound(k, pla, plb, a_max, b_max, what)
    return pla, plb, (a_lo, a_hi), (b_lo, b_hi)


def split_planned(x: torch.Tensor, y: torch.Tensor | PackedOperand, k: int,
                  limbs: int | tuple[int, int | None], bounds: tuple[int | None, int | None] | None,
                  flag: torch.Tensor | None, what: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """Limbs of x [R, K] and y [N, K] (rows; or packed) with the limb counts fixed at plan time.

    No sync: the host checks only what the plan implies (``K * max|x| * max|y| < 2^63``, the int32
    accumulator); the split kernel checks each value against its planned limbs/bound on the device
    and ORs FLAG_A_RANGE / FLAG_B_RANGE into ``flag``. Returns (x limbs, y limbs, the flag, whether
    the flag is a fresh internal one that the caller must check itself).
    """
    packed = y if isinstance(y, PackedOperand) else None
    pla, plb, (a_lo, a_hi), (b_lo, b_hi) = plan_operands(k, limbs, bounds, packed, what)
    internal = flag is None
    if internal:
        flag = new_flag(x.device)
    if packed is not None:
        return split_limbs(x, pla, check=(a_lo, a_hi, flag, FLAG_A_RANGE)), packed.limbs, flag, internal
    if x.shape[0] == 0 or y.shape[0] == 0:
        return (split_limbs(x, pla, check=(a_lo, a_hi, flag, FLAG_A_RANGE)),
                split_limbs(y, plb, check=(b_lo, b_hi, flag, FLAG_B_RANGE)), flag, internal)
    xl, yl = _split_pair(x, y, pla, plb, flag, SPLIT_CHECK, (a_lo, a_hi), (b_lo, b_hi))
    return xl, yl, flag, internal


def check_flag_arg(flag: torch.Tensor | None, dev: torch.device, what: str) -> None:
    """ValueError unless ``flag`` is None or an int32 tensor on the kernels' device."""
    if flag is None:
        return
    if not isinstance(flag, torch.Tensor) or flag.dtype != torch.int32 or flag.numel() < 1:
        raise ValueError(f"{what}: flag must be an int32 tensor with at least one element (kernels.flags.new_flag)")
    if flag.device.type != dev.type:
        raise ValueError(f"{what}: flag is on {flag.device}, the kernels run on {dev}")


def limb_matmul(a_limbs: torch.Tensor, b_limbs: torch.Tensor, bias: torch.Tensor | None,
                config: GemmConfig | None = None, *, epilogue: Epilogue = NO_EPILOGUE,
                flag: torch.Tensor | None = None) -> torch.Tensor:
    """int64 [M, N] from limb tensors a_limbs [M, LA, K] and b_limbs [N, LB, K] (int8, K a multiple
    of 16 as ``split_limbs`` pads it; contiguous, or a one-limb slice ``t[:, :1]`` of a wider split),
    then the epilogue (device checks into ``flag`` when given).

    No host bound checks: callers (``int_matmul``, the benchmark) must have checked them.
    """
    M, la, K = a_limbs.shape
    N, lb, K2 = b_limbs.shape
    assert K == K2 and K % 16 == 0 and a_limbs.dtype == b_limbs.dtype == torch.int8
    cfg = config or default_config(M, la, lb)
    cfg.check(la, lb)
    return _launch(a_limbs, b_limbs, bias, cfg, epilogue, flag)[0]


def _limb_rows(limbs: torch.Tensor) -> torch.Tensor:
    """The [R, L, K] limb tensor as the 2-D matrix of rows r*L + i: a view (a one-limb slice of a
    wider split keeps its row stride)."""
    r, n, k = limbs.shape
    if n == 1:
        return limbs[:, 0, :]
    assert limbs.is_contiguous(), "multi-limb operands must be contiguous [R, L, K]"
    return limbs.view(r * n, k)


def _launch(a_limbs: torch.Tensor, b_limbs: torch.Tensor, bias: torch.Tensor | None, cfg: GemmConfig,
            epi: Epilogue = NO_EPILOGUE, flag: torch.Tensor | None = None):
    """Launch the limb GEMM; returns (c, the launched kernel's handle) (the benchmark reads its PTX)."""
    M, la, K = a_limbs.shape
    N, lb, _ = b_limbs.shape
    c = torch.empty((M, N), dtype=torch.int64, device=a_limbs.device)
    num_tiles = triton.cdiv(M, cfg.block_m // la) * triton.cdiv(N, cfg.block_n // lb)
    bias_arg = bias if bias is not None else c
    flag_arg = flag if flag is not None else c
    epi_rt, epi_cx = epi.kernel_args()
    common = dict(LA=la, LB=lb, HAS_BIAS=bias is not None, CHECK=flag is not None, **epi_cx,
                  BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
                  BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    a2, b2 = _limb_rows(a_limbs), _limb_rows(b_limbs)
    if cfg.tma:
        a_desc = TensorDescriptor.from_tensor(a2, [cfg.block_m, cfg.block_k])
        b_desc = TensorDescriptor.from_tensor(b2, [cfg.block_n, cfg.block_k])
        progs = min(num_tiles, _num_sms(a_limbs.device)) if cfg.persistent else num_tiles
        handle = _limb_gemm_tma_kernel[(progs,)](a_desc, b_desc, bias_arg, c, flag_arg, M, N, K, c.stride(0), c.stride(1),
                                                 progs, *epi_rt, FLATTEN=cfg.persistent, **common,
                                                 **launch_options(c.device))
    else:
        handle = _limb_gemm_kernel[(num_tiles,)](a2, b2, bias_arg, c, flag_arg, M, N, K, a2.stride(0), b2.stride(0),
                                                 c.stride(0), c.stride(1), *epi_rt,
                                                 EVEN_K=K % cfg.block_k == 0, **common, **launch_options(c.device))
    return c, handle


def _num_sms(dev: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device (4 for the CPU interpreter)."""
    if dev.type != "cuda":
        return 4
    return torch.cuda.get_device_properties(dev).multi_processor_count


@on_input_device
def int_matmul(a: torch.Tensor, b: torch.Tensor | PackedOperand, bias: torch.Tensor | None = None,
               config: GemmConfig | None = None, *,
               limbs: int | tuple[int, int | None] | None = None,
               bounds: tuple[int | None, int | None] | None = None,
               flag: torch.Tensor | None = None,
               rescale_shift: int = 0, bias_after_rescale: bool = False,
               activation: str | None = None, clip: tuple[int | None, int | None] | None = None) -> torch.Tensor:
    """Exact ``a @ b + bias`` of int64 fixed-point integers: [M, K] x [K, N] (+ [N]) -> int64 [M, N],
    with an optional fused epilogue: ``clip(div_round(a @ b + bias, 2**rescale_shift))`` (the bias
    after the rescale with ``bias_after_rescale``, as for an ONNX Gemm; ``activation="relu"`` is
    ``clip=(0, None)``), bit-identical to the unfused sequence of kernels.

    ``b`` may be a :class:`PackedOperand` (``pack_weight(b)``: weights split into limbs once).

    Adaptive path (``limbs=None``): measures the operands' ranges on the device and syncs once to
    pick the limb counts; OverflowError on the host when ``K * max|a| * max|b| + max|bias|`` could
    reach 2^63 or a limb product could leave the int32 accumulator (K > 131071 for multi-limb operands).

    Planned path (``limbs=(la, lb)``, from bounds known at plan time; ``lb`` may be None for a
    packed ``b``; ``bounds=(max|a|, max|b|)`` optionally tighter than the limbs hold): no sync.
    Values outside the plan, a wrapping bias add, and ``|x| >= 2^52`` before a rescale set codes
    in the int32 ``flag`` (kernels.flags) and the output is invalid; read the flag once after the
    whole forward pass. Without ``flag`` an internal one is checked here (one sync).

    The output is on ``a``'s device; bits are the same for every ``config`` (None: ``default_config``).
    """
    what = "int_matmul"
    check_int64("a", a, 2)
    packed = b if isinstance(b, PackedOperand) else None
    if packed is None:
        check_int64("b", b, 2)
    if bias is not None:
        check_int64("bias", bias, 1)
    epi = Epilogue.make(what, rescale_shift, bias_after_rescale, activation, clip)
    out_device = same_device(a=a, b=None if packed else b, bias=bias)
    (M, K), (K2, N) = a.shape, b.shape
    if K != K2:
        raise ValueError(f"int_matmul: inner dims differ: a is {tuple(a.shape)}, b is {tuple(b.shape)}")
    if bias is not None and bias.shape[0] != N:
        raise ValueError(f"int_matmul: bias has {bias.shape[0]} entries, expected N={N}")
    a, bias = to_compute(a), to_compute(bias)
    check_flag_arg(flag, a.device, what)
    if packed is not None and packed.limbs.device.type != a.device.type:
        raise ValueError(f"int_matmul: packed b is on {packed.limbs.device}, the kernels run on {a.device}")
    if M == 0 or N == 0:
        return torch.zeros((M, N), dtype=torch.int64, device=out_device)
    b_rows = packed if packed is not None else to_compute(b).t()  # [N, K] rows
    if limbs is not None:
        a_l, b_l, flag, internal = split_planned(a, b_rows, K, limbs, bounds, flag, what)
        out = limb_matmul(a_l, b_l, bias, config, epilogue=epi, flag=flag)
        if internal:
            check_flag(flag, what)
        return out.to(out_device)
    if bounds is not None:
        raise ValueError("int_matmul: bounds are a planned-path argument (give limbs too)")
    return _adaptive(a, b_rows, bias, K, config, epi, flag).to(out_device)


def _adaptive(a: torch.Tensor, b_rows: torch.Tensor | PackedOperand, bias: torch.Tensor | None, k: int,
              config: GemmConfig | None, epi: Epilogue, flag: torch.Tensor | None) -> torch.Tensor:
    """The measuring path: speculative split with ranges, one sync, guards on the host, GEMM."""
    M, N = a.shape[0], b_rows.shape[0] if isinstance(b_rows, torch.Tensor) else b_rows.shape[1]
    packed = b_rows if isinstance(b_rows, PackedOperand) else None
    if k == 0 and not epi.active:
        return _bias_only(M, N, bias, a.device)
    specs, ranges, bias_max = split_speculative([a] if packed else [a, b_rows], bias)
    a_lo, a_hi = ranges[0]
    b_lo, b_hi = (packed.lo, packed.hi) if packed else ranges[1]
    a_max, b_max = max(-a_lo, a_hi), max(-b_lo, b_hi)
    bound = k * a_max * b_max + bias_max
    check_fits_int64(f"int_matmul K={k}, max|a|={a_max}, max|b|={b_max}, max|bias|={bias_max}", bound)
    if (a_max == 0 or b_max == 0) and not epi.active:
        return _bias_only(M, N, bias, a.device)
    a_limbs = fit_limbs(a, specs[0], a_lo, a_hi)
    b_limbs = packed.limbs if packed else fit_limbs(b_rows, specs[1], b_lo, b_hi)
    check_accumulator_bound(k, a_limbs.shape[1], b_limbs.shape[1], a_max, b_max)
    internal = flag is None and epi.rescales and bound >= DIV_ROUND_LIMIT
    if internal:
        flag = new_flag(a.device)
    out = limb_matmul(a_limbs, b_limbs, bias, config, epilogue=epi, flag=flag)
    if internal:
        check_flag(flag, "int_matmul")
    return out


def _bias_only(m: int, n: int, bias: torch.Tensor | None, dev: torch.device) -> torch.Tensor:
    """The product with an empty or all-zero operand: the bias broadcast over the rows, or zeros."""
    out = torch.zeros((m, n), dtype=torch.int64, device=dev)
    if bias is not None:
        out += bias
    return out


_RANGE_INIT: dict[tuple[str, int], torch.Tensor] = {}


def split_speculative(xs: list[torch.Tensor], bias: torch.Tensor | None = None
                      ) -> tuple[list[torch.Tensor], list[tuple[int, int]], int]:
    """Split each 2-D operand into ``SPECULATIVE_LIMBS`` limbs while measuring its range, in one pass.

    Returns the limb tensors, each operand's (min, max) and max|bias|, read back with a single
    device-to-host sync. A limb tensor is only valid if its range fits: see :func:`fit_limbs`.
    """
    dev = xs[0].device
    key = (str(dev), len(xs))
    if key not in _RANGE_INIT:  # (max, min) pairs, kept on the device: a clone is one small copy
        _RANGE_INIT[key] = torch.tensor([INT64_MAX, INT64_MIN] * len(xs), dtype=torch.int64, device=dev)
    rng = _RANGE_INIT[key].clone()
    if len(xs) == 2 and xs[0].numel() > 0 and xs[1].numel() > 0:
        limbs = list(_split_pair(xs[0], xs[1], SPECULATIVE_LIMBS, SPECULATIVE_LIMBS, rng, SPLIT_RANGE))
    else:
        limbs = [split_limbs(x, SPECULATIVE_LIMBS, range_out=rng[2 * i : 2 * i + 2]) for i, x in enumerate(xs)]
    parts = [rng]
    if bias is not None and bias.numel() > 0:
        parts.append(torch.stack(torch.aminmax(bias)))
    vals = torch.cat(parts).tolist()
    ranges = [(0, 0) if x.numel() == 0 else (int(vals[2 * i]), int(vals[2 * i + 1])) for i, x in enumerate(xs)]
    bias_max = max(-int(vals[-2]), int(vals[-1])) if len(parts) > 1 else 0
    return limbs, ranges, bias_max


def fit_limbs(x: torch.Tensor, spec: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """The limbs of ``x`` with the padded limb count its range [lo, hi] needs: the speculative split
    itself, its first limb (a strided view) when one suffices, or a fresh split when it needs more."""
    n = padded_limbs(limbs_needed(lo, hi))
    if n == spec.shape[1]:
        return spec
    if n < spec.shape[1]:
        return spec[:, :n, :] if n == 1 else spec[:, :n, :].contiguous()
    return split_limbs(x, n)


__all__ = ["GemmConfig", "DEFAULT_GEMM_CONFIG", "PackedOperand", "int_matmul", "pack_weight", "split_limbs",
           "limbs_needed", "limb_capacity", "padded_limbs", "limb_matmul", "default_config", "check_accumulator_bound",
           "split_speculative", "split_planned", "plan_operands", "fit_limbs"]
