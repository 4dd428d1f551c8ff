#!/usr/bin/env python3
"""Float64 products on the FP64 tensor cores (``tl.dot``) against one FMA at a time, per layer.

The engine's exact float64 paths (the direct conv of ``vcompute.engine.fast_kernels`` and the
GEMM of ``kernels/gemm_f64.py``) multiply either with FMAs on the CUDA cores or with a float64
``tl.dot`` (``DMMA`` on Hopper). This times both on LeNet-5's layers, at the engine's bounds
(inputs below 2^14, weights below 2^13, scale 2^13, relu and a 2x2 average pool after each conv),
and each GEMM also on its int8 limbs (planned split + limb GEMM, the engine's other choice). Every
variant's output is checked identical to the first one's; a difference fails the run.

Each variant gets two cells: ``triton.testing.do_bench`` (median, the host's launch included,
which for the limb path's Python is most of it) and ``do_bench_cudagraph`` (median of calls
replayed in a CUDA graph, as the engine runs them: the device's time). With ``--device cpu``
(Triton's interpreter; for the tests) it checks the same outputs and its times mean nothing.

``--gemms KxN ...`` times dense layers of other shapes after LeNet-5's (where the int8 limbs
overtake float64 dots: ``vcompute.engine.compiled.F64_DOT_GEMM_MAX``); ``--layers`` picks layers.

Usage: python scripts/bench_f64_dot.py [--batches 256 1024] [--gemms 512x512] [--layers fc1 ...]
       [--json FILE] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if "--device" in sys.argv and sys.argv[sys.argv.index("--device") + 1:][:1] == ["cpu"]:
    os.environ["TRITON_INTERPRET"] = "1"  # before triton loads

import torch
import triton
from triton.testing import do_bench, do_bench_cudagraph

from vcompute.engine.compiled import TilePolicy
from vcompute.engine.fast_kernels import direct_conv, pack_dot_weight
from vcompute.kernels.epilogue import Epilogue
from vcompute.kernels.flags import new_flag
from vcompute.kernels.gemm import int_matmul, limbs_needed, pack_weight, padded_limbs
from vcompute.kernels.gemm_f64 import F64Config, f64_config, f64_matmul, pack_weight_f64

X_BOUND, W_BOUND, SHIFT = 2**14, 2**13, 13
#: LeNet-5's convs: (name, C, H, W, O, k, pad)
CONVS = [("conv1", 1, 28, 28, 6, 5, 2), ("conv2", 6, 14, 14, 16, 5, 0)]
#: LeNet-5's dense layers: (name, K, N)
GEMMS = [("fc1", 400, 120), ("fc2", 120, 84), ("fc3", 84, 10)]
DEV = "cuda"


def _rand(shape, bound, gen):
    return torch.randint(-bound + 1, bound, shape, dtype=torch.int64, generator=gen).to(DEV)


def _time_us(fn) -> dict:
    """{"us": do_bench's median, "graph_us": do_bench_cudagraph's} on a GPU (a call that cannot be
    captured records why instead); on the CPU one call (the interpreter's pace, for the record)."""
    if DEV != "cuda":
        t0 = time.perf_counter()
        fn()
        return {"us": (time.perf_counter() - t0) * 1e6}
    out = {"us": do_bench(fn, warmup=50, rep=300) * 1e3}
    try:
        out["graph_us"] = do_bench_cudagraph(fn, rep=100, return_mode="median") * 1e3
    except Exception as e:  # recorded, not fatal: the launch-included cell stands
        out["graph_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    return out


def conv_variants(nb: int, spec, gen) -> list[tuple[str, object]]:
    """(label, thunk) per conv variant: FMA at its rule's block, dot at several tiles."""
    _, c, h, w, o, k, pad = spec
    x = _rand((nb, c, h, w), X_BOUND, gen)
    wt = _rand((o, c, k, k), W_BOUND, gen)
    bias = _rand((o,), 2**20, gen)
    epi = Epilogue.make("conv", SHIFT, False, None, (0, None))
    flag = new_flag(DEV)
    pools = dict(pool=(2, 2), pool_max=False, pool_div=4, pool_clip=(None, None))
    w64 = wt.to(torch.float64).contiguous()

    def run(wq, **kw):
        return lambda: direct_conv(x, wq, bias, (1, 1), (pad, pad, pad, pad), 1, epi, flag, False, **pools, **kw)

    out = [("fma (rule)", run(w64))]
    for block_k in (16, 32):
        dw = pack_dot_weight(wt, 1, block_k)
        for block_p, warps in ((64, 4), (128, 4), (128, 8), (256, 8)):
            out.append((f"dot k{block_k} p{block_p} w{warps}", run(dw, block_p=block_p, num_warps=warps)))
    return out


def gemm_variants(m: int, spec, gen) -> list[tuple[str, object]]:
    """(label, thunk) per GEMM variant: limbs (split + limb GEMM), FMA, dot at several tiles."""
    _, k, n = spec
    a = _rand((m, k), X_BOUND, gen)
    w = _rand((k, n), W_BOUND, gen)
    bias = _rand((n,), 2**20, gen)
    epi = Epilogue.make("gemm", SHIFT, True, None, (0, None))
    flag = new_flag(DEV)
    packed, wf = pack_weight(w), pack_weight_f64(w)
    la = limbs_needed(-X_BOUND, X_BOUND)
    cfg = TilePolicy().gemm_config(m, padded_limbs(la), packed.limbs.shape[1], n)
    out = [("limbs (split + GEMM)", lambda: int_matmul(a, packed, bias, cfg, limbs=la, bounds=(X_BOUND, None),
                                                       flag=flag, rescale_shift=SHIFT, bias_after_rescale=True,
                                                       clip=(0, None)))]
    for label, c in [("fma (rule)", f64_config(m, n, k)), ("dot (rule)", f64_config(m, n, k, dot=True)),
                     ("dot", F64Config(16, 16, 1, 32)), ("dot", F64Config(32, 32, 2, 32)),
                     ("dot", F64Config(64, 64, 4, 32)), ("dot", F64Config(64, 128, 4, 16)),
                     ("dot", F64Config(128, 64, 8, 32))]:
        out.append((f"{label} {c.block_m}x{c.block_n} k{c.block_k} w{c.num_warps}",
                    lambda c=c: f64_matmul(a, wf, X_BOUND, flag, bias, epi, c)))
    return out


def measure(variants) -> list[dict]:
    """Time each variant; every output must equal the first's."""
    rows, first, first_label = [], None, None
    for label, fn in variants:
        try:
            y = fn()
            if DEV == "cuda":
                torch.cuda.synchronize()
        except Exception as e:  # a tile the compiler refuses: recorded, not fatal
            rows.append({"variant": label, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"})
            continue
        if first is None:
            first, first_label = y.clone(), label
        elif not torch.equal(y, first):
            raise SystemExit(f"bench_f64_dot: {label} differs from {first_label}")
        rows.append({"variant": label, **_time_us(fn)})
    return rows


def _print_layer(layer: dict) -> None:
    """One layer's rows as they are measured (a run cut short keeps what it printed)."""
    print(f"{layer['layer']} x {layer['samples']} samples (every output identical)")
    for r in layer["rows"]:
        if "us" not in r:
            print(f"  {r['variant']:<40} {r['error']}")
            continue
        graph = f"{r['graph_us']:>9.2f}" if "graph_us" in r else r.get("graph_error", "")
        print(f"  {r['variant']:<40} {r['us']:>9.2f} {graph}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--gemms", nargs="*", default=[], metavar="KxN",
                    help="dense layers of these shapes too (K inputs, N outputs)")
    ap.add_argument("--layers", nargs="*", default=None, help="only these layers (conv1 ... fc3, KxN)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                    help="cpu: Triton's interpreter, to check the outputs (times mean nothing)")
    args = ap.parse_args(argv)
    global DEV
    DEV = args.device
    if DEV == "cuda" and not torch.cuda.is_available():
        print("bench_f64_dot: no CUDA GPU here (--device cpu checks the outputs on Triton's interpreter)",
              file=sys.stderr)
        return 2
    try:
        extra = [(g, *map(int, g.lower().split("x"))) for g in args.gemms]
    except ValueError:
        print(f"bench_f64_dot: --gemms takes KxN shapes, e.g. 512x256 (got {' '.join(args.gemms)})", file=sys.stderr)
        return 2
    gen = torch.Generator().manual_seed(0)
    report = {"device": torch.cuda.get_device_name() if DEV == "cuda" else "cpu (Triton interpreter)",
              "torch": torch.__version__, "triton": triton.__version__, "layers": []}
    print(f"{report['device']}, torch {report['torch']}, triton {report['triton']}; µs per call, medians: "
          "do_bench (launch included) and do_bench_cudagraph (graph replay)")
    for nb in args.batches:
        layers = [(spec, conv_variants) for spec in CONVS] + [(spec, gemm_variants) for spec in GEMMS + extra]
        for spec, variants in layers:
            if args.layers is None or spec[0] in args.layers:
                layer = {"layer": spec[0], "samples": nb, "rows": measure(variants(nb, spec, gen))}
                report["layers"].append(layer)
                _print_layer(layer)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
