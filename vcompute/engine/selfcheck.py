"""Check the engine against EZKL witnesses, case by case (handy on a GPU host without EZKL).

A *case* is a folder holding ``model.onnx``, ``input.json``, ``settings.json`` and
``witness.json`` (EZKL's own files), and optionally ``batch.json``: more samples and each one's
witness outputs (``{"samples": [input_data, ...], "witness_outputs": [[[int]]...]}``). Two
steps, so the second can run where EZKL is absent:

    python -m vcompute.engine.selfcheck export CASES_DIR circuits/mlp circuits/cnn ... [--samples 16]
                                             [--draw perturb|uniform]
        # for each folder with model.onnx + input.json: calibrate, compile, witness (needs ezkl);
        # with --samples, that many samples (near the input, or uniform in [-1, 1)) and their
        # witnesses go to batch.json
    python -m vcompute.engine.selfcheck run CASES_DIR [--device cuda:0] [--backend triton|torch]
                                          [--batch 1 2 3 7 16]
        # run_fixed on every case, compare with the witness; with --batch, also run_fixed_batch
        # at each size over batch.json's samples: every sample must equal its own witness and
        # its batch-1 run. Exit 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from .run import run_fixed, run_fixed_batch
from .witness import compare, witness_outputs


def export(out: Path, sources: list[Path], samples: int = 0, draw: str = "perturb") -> None:
    import ezkl

    for src in sources:
        dst = out / src.name
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "model.onnx", dst / "model.onnx")
        shutil.copy(src / "input.json", dst / "input.json")
        m, d, s = (str(dst / f) for f in ("model.onnx", "input.json", "settings.json"))
        compiled = str(dst / "model.compiled")
        ezkl.gen_settings(m, s)
        ezkl.calibrate_settings(d, m, s, "resources")
        ezkl.compile_circuit(m, compiled, s)
        ezkl.gen_witness(d, compiled, str(dst / "witness.json"))
        if samples:
            first = json.loads((dst / "input.json").read_text())["input_data"]
            pick = perturbed if draw == "perturb" else uniform
            write_batch(dst, pick(first, samples), lambda data, w: ezkl.gen_witness(data, compiled, w))
        print(f"exported {dst}")


def perturbed(input_data: list, n: int, seed: int = 0) -> list[list]:
    """``n`` distinct samples near ``input_data`` (the first is ``input_data`` itself)."""
    rng = np.random.default_rng(seed)
    out = [input_data]
    for _ in range(n - 1):
        out.append([(np.asarray(x, dtype=np.float64) + rng.uniform(-0.05, 0.05, np.shape(x)))
                    .tolist() for x in input_data])
    return out


def uniform(input_data: list, n: int, seed: int = 0) -> list[list]:
    """``input_data`` itself, then ``n - 1`` samples drawn uniformly from [-1, 1) (6 decimals):
    the bundled models' sample distribution."""
    rng = np.random.default_rng(seed)
    return [input_data] + [[np.round(rng.uniform(-1.0, 1.0, np.shape(x)), 6).tolist() for x in input_data]
                           for _ in range(n - 1)]


def write_batch(case: Path, samples: list[list], gen_witness) -> None:
    """Witness every sample with ``gen_witness(data_path, witness_path)``; write batch.json."""
    outs = []
    for i, sample in enumerate(samples):
        data, wit = case / f"input_{i}.json", case / f"witness_{i}.json"
        data.write_text(json.dumps({"input_data": sample}))
        gen_witness(str(data), str(wit))
        outs.append(witness_outputs(wit))
        data.unlink()
        wit.unlink()
    (case / "batch.json").write_text(json.dumps({"samples": samples, "witness_outputs": outs}))


def check_batches(case: Path, settings: dict, sizes: list[int], device: str | None,
                  backend: str | None) -> str | None:
    """None if every batch of every size gives each sample its witness and batch-1 bits."""
    b = json.loads((case / "batch.json").read_text())
    samples = [[np.array(x) for x in s] for s in b["samples"]]
    witness = b["witness_outputs"]
    single = [run_fixed(case / "model.onnx", s, settings, device, backend=backend).outputs_fixed
              for s in samples]
    for size in sizes:
        for start in range(0, len(samples) - size + 1, max(size, 1)):
            idx = list(range(start, start + size))
            r = run_fixed_batch(case / "model.onnx", [samples[i] for i in idx], settings, device,
                                backend=backend)
            for pos, i in enumerate(idx):
                for what, want in (("witness", witness[i]), ("batch-1 run", single[i])):
                    ok, where = compare(r.outputs_fixed[pos], want)
                    if not ok:
                        return f"batch {size}, sample {i}: vs its {what}: {where}"
    return None


def run(cases: Path, device: str | None, backend: str | None, sizes: list[int] | None = None) -> int:
    bad = 0
    for d in sorted(p for p in cases.iterdir() if (p / "witness.json").exists()):
        settings = json.loads((d / "settings.json").read_text())
        data = json.loads((d / "input.json").read_text())["input_data"]
        try:
            r = run_fixed(d / "model.onnx", [np.array(x) for x in data], settings, device,
                          backend=backend)
            ok, where = compare(r.outputs_fixed, witness_outputs(d / "witness.json"))
            msg = f"{'exact' if ok else 'MISMATCH ' + str(where)}"
            if ok and sizes and (d / "batch.json").exists():
                where = check_batches(d, settings, sizes, device, backend)
                ok = where is None
                msg = f"exact, batches {sizes} exact" if ok else f"MISMATCH {where}"
            print(f"{d.name}: {msg} ({r.time_ms:.1f} ms on {r.device}; ops {r.ops})")
        except Exception as e:  # report and go on with the next case
            ok = False
            print(f"{d.name}: ERROR {type(e).__name__}: {e}")
        bad += not ok
    print("all exact" if not bad else f"{bad} case(s) failed")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vcompute.engine.selfcheck")
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("out", type=Path)
    e.add_argument("sources", type=Path, nargs="+")
    e.add_argument("--samples", type=int, default=0, help="also witness this many samples")
    e.add_argument("--draw", choices=["perturb", "uniform"], default="perturb",
                   help="the extra samples: near the input (perturb) or uniform in [-1, 1)")
    r = sub.add_parser("run")
    r.add_argument("cases", type=Path)
    r.add_argument("--device", default=None)
    r.add_argument("--backend", default=None, choices=["triton", "torch", "reference"],
                   help="default: triton on a CUDA device, the exact int64 torch backend on the CPU")
    r.add_argument("--batch", type=int, nargs="+", default=None,
                   help="batch sizes to check over each case's batch.json samples")
    a = ap.parse_args(argv)
    if a.cmd == "export":
        export(a.out, a.sources, a.samples, a.draw)
        return 0
    return run(a.cases, a.device, a.backend, a.batch)


if __name__ == "__main__":
    sys.exit(main())
