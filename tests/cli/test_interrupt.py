"""Ctrl-C during a long EZKL call (issue #8): exit 130, "interrupted", the cache intact, no out dir.

EZKL holds the GIL for a whole call (measured: a Python thread stalls during ezkl.prove), so the
interrupt is acted on when the running call returns, not mid-call: the bound below is that call."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import CIRCUITS


def test_ctrl_c_during_setup_exits_130_promptly_and_publishes_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {**os.environ, "VCOMPUTE_CACHE": str(cache), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vcompute.cli", "prove", str(CIRCUITS / "cnn" / "model.onnx"), "-i",
         str(CIRCUITS / "cnn" / "input.json"), "-o", str(tmp_path / "out"), "--no-evm", "--no-engine"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not any("✓ srs" in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.2)
        assert any("✓ srs" in line for line in lines), "prove never reached setup"
        time.sleep(0.5)  # setup (keys for a fresh cache) is running now
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=5)
    text = "".join(lines)
    assert code == 130, f"exit {code}, wanted 130:\n{text}"
    assert "interrupted" in text and "Traceback" not in text and "SystemError" not in text, text
    assert waited < 120, f"took {waited:.1f} s to stop after Ctrl-C"
    assert not list(cache.glob("keys/*/MANIFEST.json")), "a key entry was published by an interrupted setup"
    assert not (tmp_path / "out").exists(), "an interrupted prove left an out dir"
