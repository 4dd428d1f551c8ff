"""Session fixtures shared by the suite: one cache, and the bundled models proved once.

Proving is the slow part (seconds per model on 2 cores; the first SRS and keys longer), so
each bundled model is proved once per session and tests that tamper work on copies.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CIRCUITS = ROOT / "circuits"
BUNDLED = ("mlp", "cnn")

# The Ctrl-C tests send SIGINT to the processes they start. A suite launched in the background
# from a script (`make test &`, nohup) inherits SIGINT ignored, and an ignored signal stays
# ignored in every child: Python would then never raise KeyboardInterrupt there. Handling it
# here (as an interactive run would) gives the children the default disposition back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def vcompute_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache private to this test session (set through the environment, as a user would)."""
    cache = Path(os.environ.get("VCOMPUTE_TEST_CACHE") or tmp_path_factory.mktemp("cache"))
    os.environ["VCOMPUTE_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def proved(tmp_path_factory: pytest.TempPathFactory, vcompute_cache: Path):
    """``proved("mlp")`` -> the out dir of a finished prove of that bundled model (made once)."""
    from vcompute.zk import pipeline
    done: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in done:
            out = tmp_path_factory.mktemp(f"proved-{name}")
            pipeline.prove(
                pipeline.ProveRequest(model=CIRCUITS / name / "model.onnx", input=CIRCUITS / name / "input.json", out=out)
            )
            done[name] = out
        return done[name]

    return get


@pytest.fixture
def proof_copy(proved, tmp_path: Path):
    """``proof_copy("mlp")`` -> a private copy of a proved out dir, safe to tamper with."""

    def get(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(proved(name), dest)
        return dest

    return get


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``vcompute`` command line in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "vcompute.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        timeout=600,
    )


@pytest.fixture
def cli():
    return run_cli
