"""Check the engine against EZKL witnesses, case by case (handy on a GPU host without EZKL).

A *case* is a folder holding ``model.onnx``, ``input.json``, ``settings.json`` and
``witness.json`` (EZKL's own files). Two steps, so the second can run where EZKL is absent:

    python -m vcompute.engine.selfcheck export CASES_DIR circuits/mlp circuits/cnn ...
        # for each folder with model.onnx + input.json: calibrate, compile, witness (needs ezkl)
    python -m vcompute.engine.selfcheck run CASES_DIR [--device cuda:0] [--backend triton]
        # run_fixed on every case, compare with the witness; exit 1 on any mismatch
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from .run import run_fixed
from .witness import compare, witness_outputs


def export(out: Path, sources: list[Path]) -> None:
    import ezkl

    for src in sources:
        dst = out / src.name
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "model.onnx", dst / "model.onnx")
        shutil.copy(src / "input.json", dst / "input.json")
        m, d, s = (str(dst / f) for f in ("model.onnx", "input.json", "settings.json"))
        ezkl.gen_settings(m, s)
        ezkl.calibrate_settings(d, m, s, "resources")
        ezkl.compile_circuit(m, str(dst / "model.compiled"), s)
        ezkl.gen_witness(d, str(dst / "model.compiled"), str(dst / "witness.json"))
        print(f"exported {dst}")


def run(cases: Path, device: str | None, backend: str) -> int:
    bad = 0
    for d in sorted(p for p in cases.iterdir() if (p / "witness.json").exists()):
        settings = json.loads((d / "settings.json").read_text())
        data = json.loads((d / "input.json").read_text())["input_data"]
        try:
            r = run_fixed(d / "model.onnx", [np.array(x) for x in data], settings, device,
                          backend=backend)
            ok, where = compare(r.outputs_fixed, witness_outputs(d / "witness.json"))
            print(f"{d.name}: {'exact' if ok else 'MISMATCH ' + str(where)} "
                  f"({r.time_ms:.1f} ms on {r.device}; ops {r.ops})")
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
    r = sub.add_parser("run")
    r.add_argument("cases", type=Path)
    r.add_argument("--device", default=None)
    r.add_argument("--backend", default="triton", choices=["triton", "reference"])
    a = ap.parse_args(argv)
    if a.cmd == "export":
        export(a.out, a.sources)
        return 0
    return run(a.cases, a.device, a.backend)


if __name__ == "__main__":
    sys.exit(main())
