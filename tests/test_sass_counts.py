"""scripts/sass_counts.py: a kernel compiled for Hopper on a machine without a GPU, read back as
SASS (Triton's bundled ptxas and nvdisasm): the direct conv's float64 FMAs, one per tap, output
channel and pixel of a thread; its tensor-core variant's float64 dots as DMMA, the FP64 tensor
cores; and the rule that an unnamed argument is a 32-bit integer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "sass_counts.py"


def _direct_conv_sass(*consts: str) -> tuple[dict[str, int], str]:
    """(SASS opcode counts, output) of the direct conv compiled for sm_90 with these constexprs."""
    # a process of its own: this one may have imported the kernels under Triton's interpreter
    args = [sys.executable, str(SCRIPT), "vcompute.engine.fast_kernels:_direct_conv_kernel",
            "--ptr", "x_ptr=i64", "w_ptr=fp64", "bias_ptr=i64", "out_ptr=i64", "flag_ptr=i32", "in_flag_ptr=i32",
            "--scalar", "mult=fp32", "d=i64", "lo=i64", "hi=i64", "pd=i64", "plo=i64", "phi=i64", "in_bound=i64",
            "--const", "HAS_BIAS=1", "DIV=1", "HAS_LO=0", "HAS_HI=0", "NARROW=0", "ACC_F64=1", "X_FLOAT=0",
            "IS_MAX=0", "P_HAS_LO=0", "P_HAS_HI=0", *consts, "--top", "400"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"sass_counts failed:\n{run.stderr[-2000:]}"
    out = run.stdout
    return {line.split()[1]: int(line.split()[0]) for line in out.splitlines() if line.startswith("  ")}, out


def test_direct_conv_compiles_for_hopper_and_counts_its_fmas():
    counts, out = _direct_conv_sass("KH=3", "KW=3", "CG_STATIC=2", "POOL=0", "PH=1", "PW=1", "PDIV=-2",
                                    "BLOCK_P=32", "BLOCK_O=4")
    # 2 channels x 9 taps, each a [32 pixels x 4 channels] tile over 128 threads: one FMA a thread
    assert counts.get("DFMA") == 18, f"expected 18 DFMA per thread, got {counts.get('DFMA')}:\n{out}"
    assert "REG:" in out and "#blocked" in out


def test_direct_conv_dot_runs_on_the_fp64_tensor_cores():
    """DOT_K: LeNet-5's conv2 (6 channels x 5 x 5 = 150 taps, 5 K steps of 32) as float64 dots:
    DMMA and no DFMA."""
    counts, out = _direct_conv_sass("KH=5", "KW=5", "CG_STATIC=6", "POOL=1", "PH=2", "PW=2", "PDIV=1",
                                    "BLOCK_P=128", "BLOCK_O=16", "DOT_K=32")
    dmma = sum(v for k, v in counts.items() if k.startswith("DMMA"))
    assert dmma > 0 and "DFMA" not in counts, f"expected DMMA and no DFMA:\n{out}"
    assert "#mma" in out and "#blocked" in out
