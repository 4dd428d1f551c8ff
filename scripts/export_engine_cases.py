"""Export tests/test_engine.py's cases as selfcheck cases, with extra samples for batch checks.

    python scripts/export_engine_cases.py OUT_DIR [--samples 16] [--only mlp cnn ...]   # needs ezkl
    python -m vcompute.engine.selfcheck run OUT_DIR --device cuda:0 --batch 1 2 3 7 16   # no ezkl

Each case folder gets the model, EZKL's calibrated settings, the first sample's input and
witness, and batch.json (every sample and its witness outputs): the GPU host then checks the
kernels, batched, against EZKL without having EZKL installed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str] | None = None) -> int:
    import ezkl
    import numpy as np
    import torch

    from test_engine import CASES, _prepare  # the cases live with the tests

    from vcompute.engine.selfcheck import write_batch

    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--only", nargs="+", default=None)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.only or list(CASES):
            factory, shapes, mode, *kw = CASES[name]
            onnx_path, data_path, settings_path, wit = _prepare(
                Path(tmp), name, factory, shapes, mode, export_kwargs=kw[0] if kw else None)
            dst = a.out / name
            dst.mkdir(parents=True, exist_ok=True)
            for f in (onnx_path, data_path, settings_path, wit):
                shutil.copy(f, dst / f.name)
            first = json.loads(data_path.read_text())["input_data"]
            g = torch.Generator().manual_seed(sum(map(ord, name)))
            samples = [first] + [
                [(torch.round((torch.rand(np.shape(x), generator=g) * 2 - 1) * 1e6) / 1e6)
                 .reshape(-1).tolist() for x in first] for _ in range(a.samples - 1)]
            compiled = str(onnx_path.parent / "model.compiled")
            write_batch(dst, samples, lambda d, w: ezkl.gen_witness(d, compiled, w))
            print(f"exported {dst}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
