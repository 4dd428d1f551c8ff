"""docs/example.py, the notebook-style example, runs as a new user runs it (issue #13).

Twice, each in a subprocess and a fresh working dir: as a plain script, and inside a running
asyncio event loop, the way a Jupyter kernel runs cells (EZKL's async calls must still work).
The example asserts its own results (the proof verifies locally and on a local Anvil, and the
engine's integers equal the proof's); here it must exit 0 and get to its last cell.

The event-loop run shares the suite's SRS files, circuits and keys but not its Solidity
verifiers, so EZKL's async call (create_evm_verifier) runs inside the loop. Each run takes about
20-50 s on 2 cores (more when the machine is shared).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

EXAMPLE = ROOT / "docs" / "example.py"
DONE = "done: proven, verified locally and on-chain, and reproduced by the engine"

# Cells of a Jupyter notebook run synchronously inside the kernel's running event loop.
IN_EVENT_LOOP = """
import asyncio, runpy, sys

async def main():
    loop = asyncio.get_running_loop()
    runpy.run_path(sys.argv[1], run_name="__main__")
    assert loop.is_running()
    print("ran inside a running event loop")

asyncio.run(main())
"""


def _run(args: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VCOMPUTE_CACHE": str(cache), "COLUMNS": "200"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _check(proc: subprocess.CompletedProcess[str], cwd: Path) -> dict:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert DONE in proc.stdout, proc.stdout[-3000:]
    proof = cwd / "vcompute-example" / "proof"
    for name in ("proof.json", "vk.key", "Verifier.json", "calldata.hex", "summary.json"):
        assert (proof / name).is_file(), f"{name} missing from the example's proof dir"
    return json.loads((proof / "summary.json").read_text())


def test_the_example_runs_as_a_script(vcompute_cache, tmp_path):
    _check(_run([str(EXAMPLE)], tmp_path, vcompute_cache), tmp_path)


def test_the_example_runs_inside_a_running_event_loop(vcompute_cache, tmp_path):
    # The suite's cache, but without its Solidity verifiers: the one EZKL call that is async
    # (create_evm_verifier) must run inside the loop. SRS, circuits and keys are shared (the
    # script test made this model's already): slow to make, and made through the same calls.
    cache = tmp_path / "cache"
    cache.mkdir()
    for kind in ("srs", "circuits", "keys", "bindings", "solc"):
        if (vcompute_cache / kind).is_dir():
            (cache / kind).symlink_to(vcompute_cache / kind, target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir()
    proc = _run(["-c", IN_EVENT_LOOP, str(EXAMPLE)], work, cache)
    summary = _check(proc, work)
    assert "ran inside a running event loop" in proc.stdout
    cached = {stage["name"]: stage["cached"] for stage in summary["stages"]}
    assert cached["evm verifier"] is False, cached
