"""What a Triton kernel compiles to on a GPU, read on a machine without one.

Compiles one ``@triton.jit`` kernel for an NVIDIA target with Triton's bundled ``ptxas`` and
prints the TTGIR layouts it chose, its registers, shared and local (spill) memory, and its SASS
instructions by opcode; ``--loops`` adds the opcode mix of each loop body. Enough to see, without
a device, whether a tile's accumulator is re-laid out through shared memory every step
(``BAR.SYNC``/``LDS``), whether it spills (``STL``/``LDL``) and how many loads feed each FMA
(BENCHMARKS.md §2f). The instruction mix is this Triton's: the GPU host's may differ in detail.

    python scripts/sass_counts.py vcompute.engine.fast_kernels:_direct_conv_kernel \\
        --ptr x_ptr=i64 w_ptr=fp64 bias_ptr=i64 out_ptr=i64 flag_ptr=i32 in_flag_ptr=i32 \\
        --scalar mult=fp32 d=i64 lo=i64 hi=i64 pd=i64 plo=i64 phi=i64 in_bound=i64 \\
        --const KH=5 KW=5 HAS_BIAS=1 DIV=1 HAS_LO=1 HAS_HI=0 NARROW=0 ACC_F64=1 CG_STATIC=6 \\
                X_FLOAT=0 POOL=1 PH=2 PW=2 IS_MAX=0 PDIV=1 P_HAS_LO=0 P_HAS_HI=0 BLOCK_P=128 BLOCK_O=16

Arguments not named are 32-bit integers; a constexpr with a default may be left out.
"""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "0"  # compile, whatever the package would choose without a GPU
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import argparse  # noqa: E402
import collections  # noqa: E402
import importlib  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

_OP = re.compile(r"^\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)")


def _pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"sass_counts: expected NAME=VALUE, got {item!r}")
        out[name] = value
    return out


def compile_kernel(target: str, ptrs: dict, scalars: dict, consts: dict, warps: int, arch: int):
    """``module:function`` compiled for ``sm_<arch>`` with the given argument types."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    module, _, name = target.partition(":")
    fn = getattr(importlib.import_module(module), name)  # a JITFunction
    sig, cx = {}, {}
    for i, arg in enumerate(fn.arg_names):
        if arg in consts:
            sig[arg], cx[arg] = "constexpr", int(consts[arg])
        elif fn.params[i].is_constexpr:
            sig[arg], cx[arg] = "constexpr", fn.params[i].default
        elif arg in ptrs:
            sig[arg] = "*" + ptrs[arg]
        else:
            sig[arg] = scalars.get(arg, "i32")
    return triton.compile(ASTSource(fn, sig, cx), target=GPUTarget("cuda", arch, 32), options={"num_warps": warps})


def sass_of(kernel) -> tuple[str, str]:
    """(the SASS listing, the resource usage line) of a compiled kernel, by the bundled tools."""
    import triton

    tools = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        sass = subprocess.run([os.path.join(tools, "nvdisasm"), "-c", f.name], capture_output=True, text=True, check=True).stdout
        usage = subprocess.run([os.path.join(tools, "cuobjdump"), "--dump-resource-usage", f.name],
                               capture_output=True, text=True, check=True).stdout
    return sass, " ".join(re.findall(r"(?:REG|SHARED|LOCAL):\d+", usage))


def loop_bodies(sass: str) -> list[collections.Counter]:
    """Opcode counts of each backward branch's body (a loop)."""
    lines = sass.splitlines()
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := re.match(r"\s*\.L_x_(\d+):", line))}
    bodies = []
    for i, line in enumerate(lines):
        m = re.search(r"BRA\b.*\.L_x_(\d+)", line)
        if m and labels.get(m.group(1), i) < i:
            ops = [m2.group(1) for x in lines[labels[m.group(1)]:i + 1] if (m2 := _OP.match(x))]
            if len(ops) > 1:
                bodies.append(collections.Counter(ops))
    return bodies


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("kernel", help="module:function of a @triton.jit kernel")
    ap.add_argument("--ptr", nargs="*", default=[], help="pointer arguments: NAME=ELEMENT_TYPE (i64, fp64, i8, ...)")
    ap.add_argument("--scalar", nargs="*", default=[], help="scalar arguments other than i32: NAME=TYPE")
    ap.add_argument("--const", nargs="*", default=[], help="constexpr arguments: NAME=INT")
    ap.add_argument("--warps", type=int, default=4)
    ap.add_argument("--arch", type=int, default=90, help="compute capability x10 (default 90: Hopper)")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--loops", action="store_true", help="also the opcode mix of each loop body")
    a = ap.parse_args(argv)
    kernel = compile_kernel(a.kernel, _pairs(a.ptr), _pairs(a.scalar), _pairs(a.const), a.warps, a.arch)
    for line in kernel.asm["ttgir"].splitlines():
        if line.startswith(("#blocked", "#mma", "#shared", "#linear")):
            print(line[:200])
    sass, usage = sass_of(kernel)
    ops = collections.Counter(m.group(1) for line in sass.splitlines() if (m := _OP.match(line)))
    print(f"{sum(ops.values())} SASS instructions, {usage}")
    for op, n in ops.most_common(a.top):
        print(f"  {n:7d} {op}")
    if a.loops:
        for body in loop_bodies(sass):
            print(f"loop of {sum(body.values())}:", ", ".join(f"{op} {n}" for op, n in body.most_common(10)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
