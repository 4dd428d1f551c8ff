#!/usr/bin/env python3
"""Time vcompute's exact integer GEMM (and conv) against cuBLAS int8 and fp16 on a CUDA GPU.

For each cube size it reports, with ``triton.testing.do_bench`` (median of the timed runs):
  * ``cublas_int8``: ``torch._int_mm`` on int8 operands (the yardstick), and ``fp16`` torch.matmul;
  * ``ours_int8``: our limb GEMM kernel alone on one limb per operand (the 8-bit GEMM inside the
    exact kernel), checked bit-exact against ``torch._int_mm``;
  * ``ours_exact_LxL``: the whole ``int_matmul`` on int64 operands that need L limbs (scale 2^13
    values need 2), with its parts (range-measuring split + host sync, limb GEMM), checked exact against
    cuBLAS int8 limb products combined in int64; ``ratio`` is its time over L*L x cuBLAS int8.
TOPS count 2*M*N*K integer ops of the *output* GEMM; ``peak_frac`` is over the H100's 1979 int8
dense TOPS. ``--json`` prints one JSON document instead of the table.

``--fused`` adds the planned / fused paths (issue #9): a GEMM layer ``relu(div_round(a @ b + bias,
2^13))`` on scale-2^13 values (2x2 limbs), as the unfused kernel chain (3 launches, 2 host syncs),
fused (1 launch after the measuring split, 1 sync), planned (limbs fixed at plan time, device flag,
no sync) and planned with pre-split weights; each checked exact; cubes and MLP-like layers
(M rows x 4096 x 4096) next to cuBLAS int8 and fp16 float layers, with plain launches and with
CUDA-graph replay; conv layers and the fused elementwise chain likewise.

Usage: python scripts/bench_kernels.py [--sizes 512 1024 ...] [--json] [--sweep] [--conv] [--fused]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

# vcompute.kernels is importable once the checkout is installed (make setup, or pip install -e .)

import torch  # noqa: E402
import triton  # noqa: E402
from triton.testing import do_bench  # noqa: E402

from vcompute.kernels.activation import relu  # noqa: E402
from vcompute.kernels.epilogue import Epilogue  # noqa: E402
from vcompute.kernels.flags import new_flag  # noqa: E402
from vcompute.kernels.gemm import (  # noqa: E402
    GemmConfig,
    int_matmul,
    limb_matmul,
    pack_weight,
    split_limbs,
    split_speculative,
)
from vcompute.kernels.rescale import div_round  # noqa: E402
from vcompute.kernels.testing import int_mm_reference, ref_epilogue, torch_limbs  # noqa: E402

PEAK_INT8_TOPS = 1979.0

SWEEP_CONFIGS = [
    GemmConfig(128, 256, 128, 8, 3, 8, tma=False),
    GemmConfig(128, 256, 128, 8, 3, 8),
    GemmConfig(128, 256, 128, 8, 4, 8),
    GemmConfig(128, 256, 64, 8, 4, 8),
    GemmConfig(256, 128, 128, 8, 3, 8),
    GemmConfig(128, 128, 128, 4, 4, 8),
    GemmConfig(128, 256, 128, 8, 3, 8, persistent=True),
    GemmConfig(128, 256, 128, 8, 4, 8, persistent=True),
    GemmConfig(128, 128, 128, 8, 4, 8, persistent=True),
]


def tops(m: int, n: int, k: int, ms: float) -> float:
    return 2.0 * m * n * k / (ms * 1e-3) / 1e12


def bench(fn) -> float:
    return float(do_bench(fn, warmup=25, rep=200, return_mode="median"))


def exact(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.equal(a, b))


def uses_wgmma(cfg: GemmConfig, a_l: torch.Tensor, b_l: torch.Tensor) -> bool | None:
    """Whether the compiled limb GEMM uses Hopper wgmma (read from its PTX)."""
    from vcompute.kernels.gemm import _launch

    _, handle = _launch(a_l, b_l, None, cfg)
    try:
        return "wgmma" in handle.asm["ptx"]
    except Exception:  # noqa: BLE001 - the handle's shape differs between Triton versions
        return None


def col_major(t: torch.Tensor) -> torch.Tensor:
    """The same matrix stored column-major (cuBLAS int8's fast layout for the second operand)."""
    return t.t().contiguous().t()


def gemm_row(s: int, cfg: GemmConfig, limb_list: list[int]) -> dict:
    dev = "cuda"
    g = torch.Generator(device=dev).manual_seed(s)
    a8 = torch.randint(-128, 128, (s, s), device=dev, dtype=torch.int8, generator=g)
    b8 = torch.randint(-128, 128, (s, s), device=dev, dtype=torch.int8, generator=g)
    row: dict = {"M": s, "N": s, "K": s}
    b8c = col_major(b8)
    row["cublas_int8_rowmajor_b_ms"] = bench(lambda: torch._int_mm(a8, b8))
    t_cublas = bench(lambda: torch._int_mm(a8, b8c))
    row["cublas_int8_ms"] = t_cublas
    row["cublas_int8_tops"] = tops(s, s, s, t_cublas)
    ah, bh = a8.half(), b8.half()
    t_fp16 = bench(lambda: torch.matmul(ah, bh))
    row["fp16_ms"] = t_fp16
    row["fp16_tflops"] = tops(s, s, s, t_fp16)
    del ah, bh

    a_l = a8.view(s, 1, s).contiguous()
    b_l = b8.t().contiguous().view(s, 1, s)
    ours = limb_matmul(a_l, b_l, None, cfg)
    row["ours_int8_exact"] = exact(ours, torch._int_mm(a8, b8).to(torch.int64))
    del ours
    t_ours = bench(lambda: limb_matmul(a_l, b_l, None, cfg))
    row["ours_int8_ms"] = t_ours
    row["ours_int8_tops"] = tops(s, s, s, t_ours)
    row["ours_int8_vs_cublas"] = t_ours / t_cublas
    row["ours_int8_peak_frac"] = row["ours_int8_tops"] / PEAK_INT8_TOPS
    if s == 4096:
        row["wgmma"] = uses_wgmma(cfg, a_l, b_l)
    del a_l, b_l

    for limbs in limb_list:
        mag = {1: 127, 2: 2**13, 4: 2**24}[limbs]
        a = torch.randint(-mag, mag + 1, (s, s), device=dev, dtype=torch.int64, generator=g)
        b = torch.randint(-mag, mag + 1, (s, s), device=dev, dtype=torch.int64, generator=g)
        key = f"exact_{limbs}x{limbs}"
        got = int_matmul(a, b, config=cfg)
        row[f"{key}_exact"] = exact(got, int_mm_reference(a, b, limbs))
        del got
        t_full = bench(lambda: int_matmul(a, b, config=cfg))
        t_split = bench(lambda: split_speculative([a, b.t()]))
        a_l, b_l = split_limbs(a, limbs), split_limbs(b.t(), limbs)
        t_core = bench(lambda: limb_matmul(a_l, b_l, None, cfg))
        row[f"{key}_ms"] = t_full
        row[f"{key}_core_ms"] = t_core
        row[f"{key}_split_ms"] = t_split  # both operands, with the host sync
        row[f"{key}_tops"] = tops(s, s, s, t_full)
        row[f"{key}_ratio"] = t_full / (limbs * limbs * t_cublas)
        row[f"{key}_core_ratio"] = t_core / (limbs * limbs * t_cublas)
        del a, b, a_l, b_l
        torch.cuda.empty_cache()
    return row


def overhead(s: int, reps: int = 50) -> dict:
    """Host-side (wall-clock) cost of int_matmul's steps at a small size, GPU synchronized."""
    import time

    from vcompute.kernels.gemm import fit_limbs

    a = torch.randint(-(2**13), 2**13, (s, s), device="cuda", dtype=torch.int64)
    b = torch.randint(-(2**13), 2**13, (s, s), device="cuda", dtype=torch.int64)
    acc = {"split_sync": 0.0, "fit": 0.0, "gemm_launch": 0.0, "gemm_wait": 0.0, "whole": 0.0,
           "gemm_launch_pointer": 0.0}
    ptr = GemmConfig(tma=False)
    for i in range(reps + 5):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        (sa, sb), ((alo, ahi), (blo, bhi)), _ = split_speculative([a, b.t()])
        t1 = time.perf_counter()
        al, bl = fit_limbs(a, sa, alo, ahi), fit_limbs(b.t(), sb, blo, bhi)
        t2 = time.perf_counter()
        limb_matmul(al, bl, None)
        t3 = time.perf_counter()
        torch.cuda.synchronize()
        t4 = time.perf_counter()
        int_matmul(a, b)
        torch.cuda.synchronize()
        t5 = time.perf_counter()
        limb_matmul(al, bl, None, ptr)
        t6 = time.perf_counter()
        torch.cuda.synchronize()
        if i >= 5:
            for k, v in zip(acc, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                acc[k] += v * 1e3 / reps
    return {"size": s, **{k + "_ms": round(v, 4) for k, v in acc.items()}}


def sweep(sizes: list[int]) -> list[dict]:
    """The 8-bit core and the 2x2-limb core for each candidate config (tuning aid)."""
    out = []
    for s in sizes:
        g = torch.Generator(device="cuda").manual_seed(s)
        a8 = torch.randint(-128, 128, (s, s), device="cuda", dtype=torch.int8, generator=g)
        b8 = torch.randint(-128, 128, (s, s), device="cuda", dtype=torch.int8, generator=g)
        b8c = col_major(b8)
        t_cublas = bench(lambda: torch._int_mm(a8, b8c))
        a_l, b_l = a8.view(s, 1, s).contiguous(), b8.t().contiguous().view(s, 1, s)
        a = torch.randint(-(2**13), 2**13, (s, s), device="cuda", dtype=torch.int64, generator=g)
        b = torch.randint(-(2**13), 2**13, (s, s), device="cuda", dtype=torch.int64, generator=g)
        a2, b2 = split_limbs(a, 2), split_limbs(b.t(), 2)
        for cfg in SWEEP_CONFIGS:
            rec = {"size": s, "config": cfg.__dict__, "cublas_ms": t_cublas}
            try:
                rec["int8_exact"] = exact(limb_matmul(a_l, b_l, None, cfg), torch._int_mm(a8, b8).long())
                rec["int8_ms"] = bench(lambda: limb_matmul(a_l, b_l, None, cfg))
                rec["int8_vs_cublas"] = rec["int8_ms"] / t_cublas
                rec["limb2_ms"] = bench(lambda: limb_matmul(a2, b2, None, cfg))
                rec["limb2_vs_4cublas"] = rec["limb2_ms"] / (4 * t_cublas)
            except Exception as e:  # noqa: BLE001 - a config that does not compile is reported
                rec["error"] = f"{type(e).__name__}: {str(e)[:200]}"
            out.append(rec)
            print(json.dumps(rec), file=sys.stderr, flush=True)
    return out


def conv_rows() -> list[dict]:
    """Implicit-GEMM conv vs the same-size int8 GEMM on cuBLAS (im2col shapes), 2-limb values."""
    from vcompute.kernels.conv import ConvConfig, int_conv2d

    CONV_CONFIGS = [ConvConfig(128, 128, 64, 8, 4, 8), ConvConfig(128, 256, 64, 8, 3, 8), ConvConfig(128, 128, 128, 8, 3, 8),
                    ConvConfig(64, 128, 64, 4, 3, 8)]

    rows = []
    shapes = [  # N, C, H, W, O, k, stride, pad
        (32, 64, 56, 56, 64, 3, 1, 1),
        (32, 128, 28, 28, 128, 3, 1, 1),
        (32, 256, 14, 14, 256, 3, 1, 1),
        (8, 3, 224, 224, 64, 7, 2, 3),
    ]
    for n, c, h, w, o, k, st, p in shapes:
        g = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randint(-(2**13), 2**13, (n, c, h, w), device="cuda", dtype=torch.int64, generator=g)
        wt = torch.randint(-(2**13), 2**13, (o, c, k, k), device="cuda", dtype=torch.int64, generator=g)
        got = int_conv2d(x, wt, None, stride=(st, st), padding=(p, p))
        ho, wo = got.shape[2], got.shape[3]
        m, kk = n * ho * wo, c * k * k
        # reference: float64 conv is exact while |result| < 2^53 (here < 2^13*2^13*kk)
        ref = torch.nn.functional.conv2d(x.double(), wt.double(), stride=st, padding=p)
        rec = {"shape": [n, c, h, w, o, k, st, p], "gemm_MNK": [m, o, kk], "exact": exact(got, ref.long())}
        t = bench(lambda: int_conv2d(x, wt, None, stride=(st, st), padding=(p, p)))
        for cc in CONV_CONFIGS:
            rec[f"ms_{cc.block_m}x{cc.block_n}x{cc.block_k}w{cc.num_warps}s{cc.num_stages}"] = bench(
                lambda: int_conv2d(x, wt, None, stride=(st, st), padding=(p, p), config=cc))
        kp = (kk + 7) // 8 * 8
        a8 = torch.randint(-128, 128, (m, kp), device="cuda", dtype=torch.int8, generator=g)
        b8 = col_major(torch.randint(-128, 128, (kp, (o + 7) // 8 * 8), device="cuda", dtype=torch.int8, generator=g))
        t_cublas = bench(lambda: torch._int_mm(a8, b8))
        rec.update(ms=t, tops=tops(m, o, kk, t), cublas_int8_gemm_ms=t_cublas, ratio_vs_4x_cublas=t / (4 * t_cublas))
        rows.append(rec)
        del x, wt, got, ref, a8, b8
        torch.cuda.empty_cache()
    return rows


def bench_graph(fn) -> float | None:
    """Median ms of fn replayed from a CUDA graph (no launch overhead); None if it cannot be captured."""
    from triton.testing import do_bench_cudagraph

    try:
        return float(do_bench_cudagraph(fn, rep=100, return_mode="median"))
    except Exception as e:  # noqa: BLE001 - e.g. a host sync inside fn: recorded as not capturable
        print(f"graph capture failed: {type(e).__name__}: {str(e)[:120]}", file=sys.stderr)
        return None


def _gemm_layer_variants(a, b, bias, cfg):
    """The same exact layer relu(div_round(a @ b + bias, 2^13)) four ways (2-limb operands)."""
    pb = pack_weight(b)
    flag = new_flag("cuda")
    kw = dict(rescale_shift=13, activation="relu")
    return {
        "unfused": lambda: relu(div_round(int_matmul(a, b, bias, cfg), 2**13)),
        "fused": lambda: int_matmul(a, b, bias, cfg, **kw),
        "planned": lambda: int_matmul(a, b, bias, cfg, limbs=(2, 2), flag=flag, **kw),
        "planned_packed": lambda: int_matmul(a, pb, bias, cfg, limbs=2, flag=flag, **kw),
    }, flag


def fused_rows(sizes: list[int], cfg: GemmConfig) -> list[dict]:
    """Cubes: each exact-layer variant's time and TOPS, next to cuBLAS int8 and fp16."""
    rows = []
    for s in sizes:
        g = torch.Generator(device="cuda").manual_seed(s)
        a = torch.randint(-(2**13), 2**13, (s, s), device="cuda", dtype=torch.int64, generator=g)
        b = torch.randint(-(2**13), 2**13, (s, s), device="cuda", dtype=torch.int64, generator=g)
        bias = torch.randint(-(2**26), 2**26, (s,), device="cuda", dtype=torch.int64, generator=g)
        a8 = torch.randint(-128, 128, (s, s), device="cuda", dtype=torch.int8, generator=g)
        b8c = col_major(torch.randint(-128, 128, (s, s), device="cuda", dtype=torch.int8, generator=g))
        t_cublas = bench(lambda: torch._int_mm(a8, b8c))
        ah, bh = a8.half(), b8c.half()
        t_fp16 = bench(lambda: torch.matmul(ah, bh))
        del ah, bh
        ref = ref_epilogue(int_mm_reference(a, b, 2), bias, 2**13, False, 0, None)
        row: dict = {"M": s, "N": s, "K": s, "cublas_int8_ms": t_cublas, "fp16_ms": t_fp16}
        variants, flag = _gemm_layer_variants(a, b, bias, cfg)
        for name, fn in variants.items():
            row[f"{name}_exact"] = exact(fn(), ref)
            t = bench(fn)
            row[f"{name}_ms"] = t
            row[f"{name}_tops"] = tops(s, s, s, t)
            row[f"{name}_vs_4cublas"] = t / (4 * t_cublas)
        al, bl = split_limbs(a, 2), split_limbs(b.t(), 2)
        epi = Epilogue.make("bench", 13, False, "relu")
        row["core_fused_ms"] = bench(lambda: limb_matmul(al, bl, bias, cfg, epilogue=epi, flag=flag))
        row["core_plain_ms"] = bench(lambda: limb_matmul(al, bl, bias, cfg))
        # where the epilogue's time goes: each part alone (the same GEMM kernel, other constexprs)
        parts = {"div": (Epilogue(8192), None), "div_relu": (Epilogue(8192, lo=0), None), "check": (Epilogue(), flag)}
        for name, (e, f) in parts.items():
            row[f"core_{name}_ms"] = bench(lambda: limb_matmul(al, bl, bias, cfg, epilogue=e, flag=f))
        if s == 4096:
            from vcompute.kernels.gemm import _launch

            for name, e, f in (("plain", Epilogue(), None), ("fused", epi, flag)):
                h = _launch(al, bl, bias, cfg, e, f)[1]
                row[f"core_{name}_regs_spills"] = [getattr(h, "n_regs", None), getattr(h, "n_spills", None)]
        row["flag_clear"] = int(flag.item()) == 0
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        del a, b, a8, b8c, al, bl, ref
        torch.cuda.empty_cache()
    return rows


FUSED_SWEEP = [
    GemmConfig(),
    GemmConfig(128, 256, 128, 8, 3, 8, persistent=True),
    GemmConfig(128, 256, 128, 8, 4, 8),
    GemmConfig(128, 256, 64, 8, 4, 8),
    GemmConfig(128, 128, 128, 8, 4, 8),
    GemmConfig(128, 128, 128, 8, 4, 8, persistent=True),
    GemmConfig(256, 128, 128, 8, 3, 8),
]


def fused_sweep(sizes: list[int]) -> list[dict]:
    """The fused, checked 2x2-limb GEMM kernel (bias, rescale, relu, flag) per candidate config."""
    out = []
    epi = Epilogue.make("bench", 13, False, "relu")
    for s in sizes:
        g = torch.Generator(device="cuda").manual_seed(s)
        a = torch.randint(-(2**13), 2**13, (s, s), device="cuda", dtype=torch.int64, generator=g)
        b = torch.randint(-(2**13), 2**13, (s, s), device="cuda", dtype=torch.int64, generator=g)
        bias = torch.randint(-(2**26), 2**26, (s,), device="cuda", dtype=torch.int64, generator=g)
        al, bl = split_limbs(a, 2), split_limbs(b.t(), 2)
        flag = new_flag("cuda")
        ref = limb_matmul(al, bl, bias, GemmConfig(), epilogue=epi, flag=flag)
        for cfg in FUSED_SWEEP:
            rec = {"size": s, "config": cfg.__dict__}
            try:
                rec["exact"] = exact(limb_matmul(al, bl, bias, cfg, epilogue=epi, flag=flag), ref)
                rec["fused_ms"] = bench(lambda: limb_matmul(al, bl, bias, cfg, epilogue=epi, flag=flag))
                rec["plain_ms"] = bench(lambda: limb_matmul(al, bl, bias, cfg))
            except Exception as e:  # noqa: BLE001 - a config that does not compile is reported
                rec["error"] = f"{type(e).__name__}: {str(e)[:200]}"
            out.append(rec)
            print(json.dumps(rec), file=sys.stderr, flush=True)
        del a, b, al, bl, ref
        torch.cuda.empty_cache()
    return out


def host_us(fn, calls: int = 200) -> float:
    """Host (wall-clock) microseconds per call of fn issued back to back, one sync at the end."""
    import time

    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) * 1e6 / calls


def layer_rows(ms: list[int], k: int = 4096, n: int = 4096) -> list[dict]:
    """MLP-like layers (M rows x K x N): latency of each exact variant, plain launches and CUDA-graph
    replay, next to the fp16 float layer (torch.matmul + bias + relu) and cuBLAS int8."""
    rows = []
    for m in ms:
        g = torch.Generator(device="cuda").manual_seed(m)
        a = torch.randint(-(2**13), 2**13, (m, k), device="cuda", dtype=torch.int64, generator=g)
        b = torch.randint(-(2**13), 2**13, (k, n), device="cuda", dtype=torch.int64, generator=g)
        bias = torch.randint(-(2**26), 2**26, (n,), device="cuda", dtype=torch.int64, generator=g)
        ref = ref_epilogue(int_mm_reference(a, b, 2) if m > 16 else (a.cpu() @ b.cpu()).cuda(), bias, 2**13, False, 0, None)
        af, bf, biasf = (a.half() / 8192), (b.half() / 8192), (bias.half() / 2**26)
        float_layer = lambda: torch.relu(torch.addmm(biasf, af, bf))  # noqa: E731
        row: dict = {"M": m, "K": k, "N": n, "fp16_layer_ms": bench(float_layer), "fp16_layer_graph_ms": bench_graph(float_layer)}
        if m > 16:
            a8 = torch.randint(-128, 128, (m, k), device="cuda", dtype=torch.int8, generator=g)
            b8c = col_major(torch.randint(-128, 128, (k, n), device="cuda", dtype=torch.int8, generator=g))
            row["cublas_int8_ms"] = bench(lambda: torch._int_mm(a8, b8c))
        variants, flag = _gemm_layer_variants(a, b, bias, None)  # default_config: the rule a caller without a config gets
        for name, fn in variants.items():
            row[f"{name}_exact"] = exact(fn(), ref)
            row[f"{name}_ms"] = bench(fn)
            if name.startswith("planned"):
                row[f"{name}_graph_ms"] = bench_graph(fn)
        if m <= 16:  # the narrow default tile with pointer loads instead of TMA (no descriptor per launch)
            pb, ptr = pack_weight(b), GemmConfig(16, 64, 128, 4, 4, 1, tma=False)
            fn = lambda: int_matmul(a, pb, bias, ptr, limbs=2, flag=flag, rescale_shift=13, activation="relu")  # noqa: E731
            row["planned_packed_pointer_exact"] = exact(fn(), ref)
            row["planned_packed_pointer_ms"] = bench(fn)
            row["planned_packed_pointer_graph_ms"] = bench_graph(fn)
            row["planned_packed_pointer_host_us"] = host_us(fn)
            row["fp16_layer_host_us"] = host_us(float_layer)
            row["planned_packed_host_us"] = host_us(variants["planned_packed"])
        row["flag_clear"] = int(flag.item()) == 0
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def conv_fused_rows() -> list[dict]:
    """Conv layers relu(div_round(conv(x, w) + bias, 2^13)): unfused chain vs planned fused with packed weights."""
    from vcompute.kernels.conv import int_conv2d, pack_conv_weight

    rows = []
    for n, c, h, w, o, k, st, p in [(32, 64, 56, 56, 64, 3, 1, 1), (32, 256, 14, 14, 256, 3, 1, 1), (1, 64, 56, 56, 64, 3, 1, 1)]:
        g = torch.Generator(device="cuda").manual_seed(1)
        x = torch.randint(-(2**13), 2**13, (n, c, h, w), device="cuda", dtype=torch.int64, generator=g)
        wt = torch.randint(-(2**13), 2**13, (o, c, k, k), device="cuda", dtype=torch.int64, generator=g)
        bias = torch.randint(-(2**26), 2**26, (o,), device="cuda", dtype=torch.int64, generator=g)
        ref = torch.nn.functional.conv2d(x.double(), wt.double(), stride=st, padding=p).long()  # exact below 2^53
        ref = ref_epilogue(ref, bias[None, :, None, None], 2**13, False, 0, None)
        pw = pack_conv_weight(wt)
        flag = new_flag("cuda")
        xf, wf, bf = x.half() / 8192, wt.half() / 8192, bias.half() / 2**26
        variants = {
            "unfused": lambda: relu(div_round(int_conv2d(x, wt, bias, stride=st, padding=p), 2**13)),
            "fused": lambda: int_conv2d(x, wt, bias, stride=st, padding=p, rescale_shift=13, activation="relu"),
            "planned_packed": lambda: int_conv2d(x, pw, bias, stride=st, padding=p, limbs=(2, None), flag=flag,
                                                 rescale_shift=13, activation="relu"),
        }
        rec: dict = {"shape": [n, c, h, w, o, k, st, p],
                     "fp16_layer_ms": bench(lambda: torch.relu(torch.nn.functional.conv2d(xf, wf, bf, stride=st, padding=p)))}
        for name, fn in variants.items():
            rec[f"{name}_exact"] = exact(fn(), ref)
            rec[f"{name}_ms"] = bench(fn)
        rec["planned_packed_graph_ms"] = bench_graph(variants["planned_packed"])
        rec["flag_clear"] = int(flag.item()) == 0
        rows.append(rec)
        print(json.dumps(rec), file=sys.stderr, flush=True)
        del x, wt, ref, xf, wf
        torch.cuda.empty_cache()
    return rows


def elementwise_rows(n: int = 1 << 26) -> list[dict]:
    """Mult then RebaseScale then ReLU on n int64 elements: one fused launch vs three kernels; GB/s
    over the fused kernel's bytes (read a, b, write out: 24 bytes per element)."""
    from vcompute.kernels.elementwise import fused_elementwise, int_mul

    g = torch.Generator(device="cuda").manual_seed(3)
    a = torch.randint(-(2**20), 2**20, (n,), device="cuda", dtype=torch.int64, generator=g)
    b = torch.randint(-(2**20), 2**20, (n,), device="cuda", dtype=torch.int64, generator=g)
    ref = ref_epilogue(a * b, None, 2**13, False, 0, None)
    flag = new_flag("cuda")
    variants = {
        "unfused": lambda: relu(div_round(int_mul(a, b), 2**13)),
        "fused": lambda: fused_elementwise(a, b, "mul", rescale_shift=13, activation="relu", flag=flag),
        "torch_int64_ops": lambda: torch.relu(a * b),
        "copy_24B_per_elem": lambda: torch.add(a, b),  # a memory-bound yardstick with the same bytes
    }
    rec: dict = {"n": n}
    for name, fn in variants.items():
        if name in ("unfused", "fused"):
            rec[f"{name}_exact"] = exact(fn(), ref)
        t = bench(fn)
        rec[f"{name}_ms"] = t
        rec[f"{name}_GBps_at_24B"] = 24 * n / (t * 1e-3) / 1e9
    rec["flag_clear"] = int(flag.item()) == 0
    print(json.dumps(rec), file=sys.stderr, flush=True)
    return [rec]


def print_table(result: dict) -> None:
    """The human-readable report of a result (also from a saved --json file)."""
    meta = result["meta"]
    first = result["gemm"][0] if result["gemm"] else {}
    limbs = [int(k.split("_")[1].split("x")[0]) for k in first if k.startswith("exact_") and k.endswith("_ms") and "core" not in k and "minmax" not in k and "split" not in k]
    print(" ".join(f"{k}={v}" for k, v in meta.items()))
    print(f"{'size':>6} {'cuBLAS i8':>10} {'fp16':>8} {'ours i8':>8} {'vs cuBLAS':>9} {'peak':>6} {'exact':>5}"
          + "".join(f" | {f'{L}x{L} ms':>9} {'core':>7} {'ratio':>6} {'exact':>5}" for L in limbs))
    for r in result["gemm"]:
        line = (f"{r['M']:>6} {r['cublas_int8_tops']:>7.0f} T {r['fp16_tflops']:>6.0f} T {r['ours_int8_tops']:>6.0f} T"
                f" {r['ours_int8_vs_cublas']:>8.2f}x {r['ours_int8_peak_frac']:>6.1%} {str(r['ours_int8_exact']):>5}")
        for L in limbs:
            k = f"exact_{L}x{L}"
            line += f" | {r[k + '_ms']:>9.3f} {r[k + '_core_ms']:>7.3f} {r[k + '_ratio']:>6.2f} {str(r[k + '_exact']):>5}"
        print(line)
    print("TOPS: 2*M*N*K/time; 'vs cuBLAS': our 8-bit kernel time / torch._int_mm time; 'ratio': whole exact"
          " int_matmul time / (L*L x cuBLAS int8 time); 'core': the limb GEMM kernel alone (ms).")
    for r in result.get("conv", []):
        print("conv", json.dumps(r))
    for r in result.get("sweep", []):
        print("sweep", json.dumps(r))
    for r in result.get("overhead", []):
        print("host overhead", json.dumps(r))
    if result.get("fused"):
        print("\nExact layer relu(div_round(a @ b + bias, 2^13)), 2x2 limbs: ms (x of 4 x cuBLAS int8)")
        print(f"{'size':>6} {'cuBLAS i8':>9} {'fp16':>7} | {'unfused':>15} {'fused':>15} {'planned':>15} {'packed':>15} | {'core+epi':>8} {'core':>7} exact")
        for r in result["fused"]:
            cells = " ".join(f"{r[v + '_ms']:>7.3f} ({r[v + '_vs_4cublas']:>4.2f}x)" for v in ("unfused", "fused", "planned", "planned_packed"))
            ok = all(r[k] for k in r if k.endswith("_exact")) and r["flag_clear"]
            print(f"{r['M']:>6} {r['cublas_int8_ms']:>9.3f} {r['fp16_ms']:>7.3f} | {cells} | {r['core_fused_ms']:>8.3f} {r['core_plain_ms']:>7.3f} {ok}")
    if result.get("layers"):
        print("\nLayer latency, M rows x 4096 x 4096 (ms; graph = CUDA-graph replay)")
        print(f"{'M':>5} {'fp16 layer':>10} {'graph':>7} {'cuBLAS i8':>9} | {'unfused':>8} {'fused':>7} {'planned':>8} {'graph':>7} {'packed':>7} {'graph':>7} exact")
        fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else "-"  # noqa: E731
        for r in result["layers"]:
            ok = all(r[k] for k in r if k.endswith("_exact")) and r["flag_clear"]
            print(f"{r['M']:>5} {fmt(r['fp16_layer_ms']):>10} {fmt(r['fp16_layer_graph_ms']):>7} {fmt(r.get('cublas_int8_ms')):>9} |"
                  f" {fmt(r['unfused_ms']):>8} {fmt(r['fused_ms']):>7} {fmt(r['planned_ms']):>8} {fmt(r['planned_graph_ms']):>7}"
                  f" {fmt(r['planned_packed_ms']):>7} {fmt(r['planned_packed_graph_ms']):>7} {ok}")
    for r in result.get("conv_fused", []):
        print("conv layer", json.dumps(r))
    for r in result.get("elementwise", []):
        print("elementwise", json.dumps(r))
    for r in result.get("fused_sweep", []):
        print("fused sweep", json.dumps(r))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192])
    ap.add_argument("--limbs", type=int, nargs="+", default=[1, 2, 4], help="limb counts for the exact GEMM")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--sweep", action="store_true", help="also time the candidate tile configs")
    ap.add_argument("--conv", action="store_true", help="also time int_conv2d")
    ap.add_argument("--fused", action="store_true", help="also time the planned / fused paths (layers, conv, elementwise)")
    ap.add_argument("--skip-gemm", action="store_true", help="skip the plain exact-GEMM table")
    ap.add_argument("--config", type=int, nargs=6, metavar=("BM", "BN", "BK", "WARPS", "STAGES", "GROUP"))
    ap.add_argument("--from-json", metavar="FILE", help="print the table of a saved --json result and exit")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            print_table(json.load(f))
        return 0
    if not torch.cuda.is_available():
        print("bench_kernels: needs a CUDA GPU", file=sys.stderr)
        return 2
    cfg = GemmConfig(*args.config) if args.config else GemmConfig()
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__, "triton": triton.__version__, "python": platform.python_version(),
        "cuda": torch.version.cuda, "config": cfg.__dict__, "peak_int8_tops": PEAK_INT8_TOPS,
    }
    result: dict = {"meta": meta}
    if args.sweep:
        result["sweep"] = sweep([s for s in args.sizes if s >= 4096] or args.sizes[-1:])
    result["gemm"] = []
    for s in [] if args.skip_gemm else args.sizes:
        row = gemm_row(s, cfg, args.limbs)
        result["gemm"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    if args.conv:
        result["conv"] = conv_rows()
    if args.fused:
        result["fused"] = fused_rows([s for s in args.sizes if s >= 1024] or args.sizes, cfg)
        result["layers"] = layer_rows([1, 16, 256, 4096])
        result["conv_fused"] = conv_fused_rows()
        result["elementwise"] = elementwise_rows()
        result["fused_sweep"] = fused_sweep([s for s in args.sizes if s >= 4096][-2:])
    if not args.skip_gemm:
        result["overhead"] = [overhead(512), overhead(2048)]
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
