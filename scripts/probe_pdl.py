"""How much programmatic dependent launch (kernels.pdl) saves between kernels, on its own.

Ten dependent launches of a tiny elementwise kernel, each reading what the one before wrote,
captured in one CUDA graph and replayed under ``triton.testing.do_bench``: launched plain, with
``launch_pdl`` and a ``gdc_wait`` first ("wait"), and with ``gdc_launch_dependents`` after the
wait too ("early"). The result must be the same in every mode. Needs a Hopper or later GPU.

    python scripts/probe_pdl.py [--sizes 4096 262144 4194304] [--kernels 10]
(BENCHMARKS.md §2f.)
"""

from __future__ import annotations

import argparse

import torch
import triton
import triton.language as tl
from triton.testing import do_bench

from vcompute.kernels.pdl import wait_previous

BLOCK = 1024


@triton.jit
def _step(x_ptr, y_ptr, n, GDC: tl.constexpr, BLOCK: tl.constexpr):
    """y = 3x + 1: each launch depends on the one before it."""
    wait_previous(GDC)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=mask) * 3 + 1, mask=mask)


def _chain(bufs: list[torch.Tensor], n: int, gdc: int, kernels: int) -> None:
    extra = {"launch_pdl": True} if gdc else {}
    for i in range(kernels):
        _step[(triton.cdiv(n, BLOCK),)](bufs[i % 2], bufs[(i + 1) % 2], n, GDC=gdc, BLOCK=BLOCK, **extra)


def probe(n: int, gdc: int, kernels: int) -> tuple[float, bool]:
    """(µs per replay of the captured chain, whether it computed the chain's value)."""
    x = torch.arange(n, device="cuda", dtype=torch.int64)
    bufs = [x.clone(), torch.empty_like(x)]
    stream = torch.cuda.Stream()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream):
        _chain(bufs, n, gdc, kernels)  # compile and warm up outside the capture
        torch.cuda.synchronize()
        with torch.cuda.graph(graph, stream=stream):
            _chain(bufs, n, gdc, kernels)
    torch.cuda.synchronize()
    bufs[0].copy_(x)
    graph.replay()
    torch.cuda.synchronize()
    want = x.clone()
    for _ in range(kernels):
        want = want * 3 + 1
    ok = torch.equal(bufs[kernels % 2], want)
    return do_bench(graph.replay, warmup=50, rep=300) * 1000, ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1 << 12, 1 << 18, 1 << 22])
    ap.add_argument("--kernels", type=int, default=10)
    a = ap.parse_args(argv)
    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 9:
        print("probe_pdl: needs a Hopper or later CUDA GPU")
        return 2
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__)
    for n in a.sizes:
        for gdc, mode in enumerate(("off", "wait", "early")):
            us, ok = probe(n, gdc, a.kernels)
            print(f"n={n} pdl={mode}: {us:.2f} us per {a.kernels}-kernel replay, exact={ok}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
