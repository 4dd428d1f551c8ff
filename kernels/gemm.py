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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from vcompute.kernels._checks import (
    on_input_device,
    INT64_MAX,
    INT64_MIN,
    check_fits_int64,
    check_int64,
    same_device,
    to_compute,
)

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


@triton.jit
def _split_tile(x_ptr, out_ptr, range_ptr, R, C, C_PAD, stride_r, stride_c, pid_r, pid_c,
                L: tl.constexpr, WITH_RANGE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """One [BLOCK_R, BLOCK_C] tile: out[r, i, c] = i-th signed 8-bit limb of x[r, c]; 0 for C <= c < C_PAD.

    With WITH_RANGE, also folds min(x) / max(x) into range_ptr[0] / range_ptr[1] (atomics), so the
    host learns the limb count actually needed from the same pass.
    """
    rows = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (rows[:, None] < R) & (cols[None, :] < C_PAD)
    r64 = rows[:, None].to(tl.int64)
    c64 = cols[None, :].to(tl.int64)
    valid = mask & (cols[None, :] < C)
    x = tl.load(x_ptr + r64 * stride_r + c64 * stride_c, mask=valid, other=0)
    if WITH_RANGE:
        tl.atomic_min(range_ptr, tl.min(tl.min(tl.where(valid, x, 9223372036854775807), axis=1), axis=0))
        tl.atomic_max(range_ptr + 1, tl.max(tl.max(tl.where(valid, x, -9223372036854775808), axis=1), axis=0))
    base = out_ptr + r64 * (L * C_PAD) + c64
    for i in tl.static_range(L):
        d = ((x + 128) & 255) - 128  # balanced digit in [-128, 127]
        tl.store(base + i * C_PAD, d.to(tl.int8), mask=mask)
        x = (x - d) >> 8  # exact: x - d is a multiple of 256


@triton.jit
def _split_limbs_kernel(x_ptr, out_ptr, range_ptr, R, C, C_PAD, stride_r, stride_c,
                        L: tl.constexpr, WITH_RANGE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """Limbs of one 2-D operand (grid: row tiles x column tiles)."""
    _split_tile(x_ptr, out_ptr, range_ptr, R, C, C_PAD, stride_r, stride_c, tl.program_id(0), tl.program_id(1),
                L, WITH_RANGE, BLOCK_R, BLOCK_C)


@triton.jit
def _split_pair_kernel(x_ptr, out_x_ptr, R_X, C_X, CP_X, sr_x, sc_x, tiles_c_x, tiles_x,
                       y_ptr, out_y_ptr, R_Y, C_Y, CP_Y, sr_y, sc_y, tiles_c_y, range_ptr,
                       L: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """Limbs and ranges of two operands in one launch (saves a launch per GEMM): programs below
    ``tiles_x`` split x (range into range_ptr[0:2]), the rest split y (range_ptr[2:4])."""
    pid = tl.program_id(0)
    if pid < tiles_x:
        _split_tile(x_ptr, out_x_ptr, range_ptr, R_X, C_X, CP_X, sr_x, sc_x, pid // tiles_c_x, pid % tiles_c_x,
                    L, True, BLOCK_R, BLOCK_C)
    else:
        q = pid - tiles_x
        _split_tile(y_ptr, out_y_ptr, range_ptr + 2, R_Y, C_Y, CP_Y, sr_y, sc_y, q // tiles_c_y, q % tiles_c_y,
                    L, True, BLOCK_R, BLOCK_C)


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
def _combine_store(acc, bias_ptr, c_ptr, pid_m, pid_n, M, N, stride_cm, stride_cn,
                   LA: tl.constexpr, LB: tl.constexpr, HAS_BIAS: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Epilogue: combine the limb products in int64, add the bias, masked store of the c tile."""
    res = _combine_limbs(acc, LA, LB, BLOCK_M, BLOCK_N)
    offs_m = pid_m * (BLOCK_M // LA) + tl.arange(0, BLOCK_M // LA)
    offs_n = pid_n * (BLOCK_N // LB) + tl.arange(0, BLOCK_N // LB)
    if HAS_BIAS:
        res += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0)[None, :]
    c_ptrs = c_ptr + offs_m[:, None].to(tl.int64) * stride_cm + offs_n[None, :].to(tl.int64) * stride_cn
    tl.store(c_ptrs, res, mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


@triton.jit
def _limb_gemm_kernel(a_ptr, b_ptr, bias_ptr, c_ptr, M, N, K, stride_ar, stride_br, stride_cm, stride_cn,
                      LA: tl.constexpr, LB: tl.constexpr, HAS_BIAS: tl.constexpr, EVEN_K: tl.constexpr,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                      GROUP_M: tl.constexpr):
    """c[M, N] (int64) = sum_ij 256**(i+j) * (A_i @ B_j) + bias, from A' [M*LA, K] and B' [N*LB, K] int8
    (rows stride_ar / stride_br elements apart).

    Pointer loads (cp.async on GPU); one program per output tile.
    """
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
    _combine_store(acc, bias_ptr, c_ptr, pid_m, pid_n, M, N, stride_cm, stride_cn, LA, LB, HAS_BIAS, BLOCK_M, BLOCK_N)


@triton.jit
def _limb_gemm_tma_kernel(a_desc, b_desc, bias_ptr, c_ptr, M, N, K, stride_cm, stride_cn, num_progs,
                          LA: tl.constexpr, LB: tl.constexpr, HAS_BIAS: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                          GROUP_M: tl.constexpr, FLATTEN: tl.constexpr):
    """Same product with TMA tile loads (out-of-bounds rows/cols read as 0).

    Programs loop over output tiles ``pid, pid + num_progs, ...`` (persistent when the grid is one
    program per SM; a plain grid runs the loop once).
    """
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
        _combine_store(acc, bias_ptr, c_ptr, pid_m, pid_n, M, N, stride_cm, stride_cn, LA, LB, HAS_BIAS, BLOCK_M, BLOCK_N)


def limbs_needed(lo: int, hi: int) -> int:
    """Fewest signed 8-bit limbs representing every integer in [lo, hi] (at least 1).

    ``L`` balanced limbs cover exactly ``[-128 * R, 127 * R]`` with ``R = (256**L - 1) // 255``.
    OverflowError past ``MAX_LIMBS``.
    """
    for n in range(1, MAX_LIMBS + 1):
        r = (256**n - 1) // 255
        if -128 * r <= lo and hi <= 127 * r:
            return n
    raise OverflowError(f"operand range [{lo}, {hi}] needs more than {MAX_LIMBS} 8-bit limbs")


def padded_limbs(n: int) -> int:
    """The limb count rounded up to a power of two (Triton tiles are powers of two)."""
    return 1 << (n - 1).bit_length()


def _padded(c: int, pad_to: int = 16) -> int:
    return -(-c // pad_to) * pad_to


def _split_blocks(r: int, c_pad: int) -> tuple[int, int]:
    """Split tile: ~4K elements per program, wide when there are few rows."""
    block_r = min(32, triton.next_power_of_2(max(r, 1)))
    return block_r, min(max(128, 4096 // block_r), triton.next_power_of_2(max(c_pad, 1)))


def split_limbs(x: torch.Tensor, limbs: int, pad_to: int = 16, range_out: torch.Tensor | None = None) -> torch.Tensor:
    """int8 [R, limbs, Cp] limbs of a 2-D int64 tensor (any strides) on its device.

    ``Cp`` is C rounded up to a multiple of ``pad_to`` (zero limbs in the padding) so that rows of
    the limb matrix are 16-byte aligned, as the TMA copy engine needs. Limbs past ``limbs`` are
    dropped: the caller must know the values fit, or pass ``range_out`` (int64 [2], holding
    (int64 max, int64 min) or an earlier range) to receive min(x), max(x) and check afterwards.
    """
    R, C = x.shape
    c_pad = _padded(C, pad_to)
    out = torch.empty((R, limbs, c_pad), dtype=torch.int8, device=x.device)
    if R == 0 or c_pad == 0:
        return out
    block_r, block_c = _split_blocks(R, c_pad)
    grid = (triton.cdiv(R, block_r), triton.cdiv(c_pad, block_c))
    _split_limbs_kernel[grid](x, out, range_out if range_out is not None else out, R, C, c_pad, x.stride(0), x.stride(1),
                              L=limbs, WITH_RANGE=range_out is not None, BLOCK_R=block_r, BLOCK_C=block_c)
    return out


def _split_pair(x: torch.Tensor, y: torch.Tensor, limbs: int, range_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``split_limbs`` of two non-empty 2-D operands in one launch; ranges into range_out[0:2], [2:4]."""
    (rx, cx), (ry, cy) = x.shape, y.shape
    cpx, cpy = _padded(cx), _padded(cy)
    out_x = torch.empty((rx, limbs, cpx), dtype=torch.int8, device=x.device)
    out_y = torch.empty((ry, limbs, cpy), dtype=torch.int8, device=x.device)
    block_r, block_c = _split_blocks(max(rx, ry), max(cpx, cpy))
    tcx, tcy = triton.cdiv(cpx, block_c), triton.cdiv(cpy, block_c)
    tiles_x = triton.cdiv(rx, block_r) * tcx
    grid = (tiles_x + triton.cdiv(ry, block_r) * tcy,)
    _split_pair_kernel[grid](x, out_x, rx, cx, cpx, x.stride(0), x.stride(1), tcx, tiles_x,
                             y, out_y, ry, cy, cpy, y.stride(0), y.stride(1), tcy, range_out,
                             L=limbs, BLOCK_R=block_r, BLOCK_C=block_c)
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


def limb_matmul(a_limbs: torch.Tensor, b_limbs: torch.Tensor, bias: torch.Tensor | None,
                config: GemmConfig | None = None) -> torch.Tensor:
    """int64 [M, N] from limb tensors a_limbs [M, LA, K] and b_limbs [N, LB, K] (int8, K a multiple
    of 16 as ``split_limbs`` pads it; contiguous, or a one-limb slice ``t[:, :1]`` of a wider split).

    No bound checks: callers (``int_matmul``, the benchmark) must have checked them.
    """
    M, la, K = a_limbs.shape
    N, lb, K2 = b_limbs.shape
    assert K == K2 and K % 16 == 0 and a_limbs.dtype == b_limbs.dtype == torch.int8
    cfg = config or DEFAULT_GEMM_CONFIG
    cfg.check(la, lb)
    return _launch(a_limbs, b_limbs, bias, cfg)[0]


def _limb_rows(limbs: torch.Tensor) -> torch.Tensor:
    """The [R, L, K] limb tensor as the 2-D matrix of rows r*L + i: a view (a one-limb slice of a
    wider split keeps its row stride)."""
    r, n, k = limbs.shape
    if n == 1:
        return limbs[:, 0, :]
    assert limbs.is_contiguous(), "multi-limb operands must be contiguous [R, L, K]"
    return limbs.view(r * n, k)


def _launch(a_limbs: torch.Tensor, b_limbs: torch.Tensor, bias: torch.Tensor | None, cfg: GemmConfig):
    """Launch the limb GEMM; returns (c, the launched kernel's handle) (the benchmark reads its PTX)."""
    M, la, K = a_limbs.shape
    N, lb, _ = b_limbs.shape
    c = torch.empty((M, N), dtype=torch.int64, device=a_limbs.device)
    num_tiles = triton.cdiv(M, cfg.block_m // la) * triton.cdiv(N, cfg.block_n // lb)
    bias_arg = bias if bias is not None else c
    common = dict(LA=la, LB=lb, HAS_BIAS=bias is not None, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
                  BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    a2, b2 = _limb_rows(a_limbs), _limb_rows(b_limbs)
    if cfg.tma:
        a_desc = TensorDescriptor.from_tensor(a2, [cfg.block_m, cfg.block_k])
        b_desc = TensorDescriptor.from_tensor(b2, [cfg.block_n, cfg.block_k])
        progs = min(num_tiles, _num_sms(a_limbs.device)) if cfg.persistent else num_tiles
        handle = _limb_gemm_tma_kernel[(progs,)](a_desc, b_desc, bias_arg, c, M, N, K, c.stride(0), c.stride(1), progs,
                                        FLATTEN=cfg.persistent, **common)
    else:
        handle = _limb_gemm_kernel[(num_tiles,)](a2, b2, bias_arg, c, M, N, K, a2.stride(0), b2.stride(0),
                                                 c.stride(0), c.stride(1),
                                        EVEN_K=K % cfg.block_k == 0, **common)
    return c, handle


def _num_sms(dev: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device (4 for the CPU interpreter)."""
    if dev.type != "cuda":
        return 4
    return torch.cuda.get_device_properties(dev).multi_processor_count


@on_input_device
def int_matmul(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None,
               config: GemmConfig | None = None) -> torch.Tensor:
    """Exact ``a @ b + bias`` of int64 fixed-point integers: [M, K] x [K, N] (+ [N]) -> int64 [M, N].

    Raises OverflowError when ``K * max|a| * max|b| + max|bias|`` could reach 2^63 or a limb
    product could leave the int32 accumulator (K > 131071 for multi-limb operands).
    The output is on ``a``'s device; bits are the same for every ``config``.
    """
    check_int64("a", a, 2)
    check_int64("b", b, 2)
    if bias is not None:
        check_int64("bias", bias, 1)
    out_device = same_device(a=a, b=b, bias=bias)
    (M, K), (K2, N) = a.shape, b.shape
    if K != K2:
        raise ValueError(f"int_matmul: inner dims differ: a is {tuple(a.shape)}, b is {tuple(b.shape)}")
    if bias is not None and bias.shape[0] != N:
        raise ValueError(f"int_matmul: bias has {bias.shape[0]} entries, expected N={N}")
    a, b, bias = to_compute(a), to_compute(b), to_compute(bias)
    if M == 0 or N == 0 or K == 0:
        return _bias_only(M, N, bias, a.device).to(out_device)
    (a_spec, b_spec), ((a_lo, a_hi), (b_lo, b_hi)), bias_max = split_speculative([a, b.t()], bias)
    a_max, b_max = max(-a_lo, a_hi), max(-b_lo, b_hi)
    check_fits_int64(f"int_matmul K={K}, max|a|={a_max}, max|b|={b_max}, max|bias|={bias_max}",
                     K * a_max * b_max + bias_max)
    if a_max == 0 or b_max == 0:
        return _bias_only(M, N, bias, a.device).to(out_device)
    a_limbs = fit_limbs(a, a_spec, a_lo, a_hi)
    b_limbs = fit_limbs(b.t(), b_spec, b_lo, b_hi)
    check_accumulator_bound(K, a_limbs.shape[1], b_limbs.shape[1], a_max, b_max)
    return limb_matmul(a_limbs, b_limbs, bias, config).to(out_device)


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
        limbs = list(_split_pair(xs[0], xs[1], SPECULATIVE_LIMBS, rng))
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


__all__ = ["GemmConfig", "DEFAULT_GEMM_CONFIG", "int_matmul", "split_limbs", "limbs_needed",
           "padded_limbs", "limb_matmul", "check_accumulator_bound", "split_speculative", "fit_limbs"]
