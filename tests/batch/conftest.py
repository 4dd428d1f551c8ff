"""Fixtures for ``prove --inputs`` (issue #12): a small batch of the bundled MLP, proved once.

Every proof here is a real EZKL proof on the bundled circuits/mlp; batches are 3–4 inputs. The
batch made by ``batch_dir`` (4 inputs, one of them bad) is shared by the tests that only read it;
tests that write work on copies (``shutil.copytree`` copies files, never the shared hard links).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MLP = ROOT / "circuits" / "mlp" / "model.onnx"
BASE = json.loads((ROOT / "circuits" / "mlp" / "input.json").read_text())["input_data"][0]


def good_inputs(n: int = 3) -> list[dict]:
    """n distinct inputs in the range of the bundled one (so one calibration covers them all)."""
    return [{"input_data": [[round(v * (1 - 0.1 * i), 6) for v in BASE]]} for i in range(n)]


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def cli(*args: str, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    """The real command line, in a subprocess."""
    return subprocess.run([sys.executable, "-m", "vcompute.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200", **(env or {})})


@pytest.fixture(scope="session")
def batch_inputs(tmp_path_factory) -> Path:
    """inputs.jsonl: three good inputs and, third, one with 2 values where the MLP takes 8."""
    good = good_inputs(3)
    records = [good[0], good[1], {"input_data": [[0.1, 0.2]]}, good[2]]
    return write_jsonl(tmp_path_factory.mktemp("batch-inputs") / "inputs.jsonl", records)


@pytest.fixture(scope="session")
def batch_run(tmp_path_factory, batch_inputs, vcompute_cache) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``vcompute prove MLP --inputs inputs.jsonl --out DIR --workers 2``, run once: (DIR, the process)."""
    out = tmp_path_factory.mktemp("batch") / "out"
    proc = cli("prove", MLP, "--inputs", batch_inputs, "--out", out, "--workers", "2")
    return out, proc


@pytest.fixture(scope="session")
def batch_dir(batch_run) -> Path:
    out, proc = batch_run
    assert (out / "batch.json").exists(), proc.stderr[-3000:]
    return out


@pytest.fixture()
def batch_copy(batch_dir, tmp_path) -> Path:
    dest = tmp_path / "batch"
    shutil.copytree(batch_dir, dest)
    return dest
