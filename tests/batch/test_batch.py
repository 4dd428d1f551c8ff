"""``vcompute prove MODEL --inputs SOURCE``: real proofs of the bundled MLP, a bad input, resume, batch verify."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.batch.conftest import MLP, cli, good_inputs, write_jsonl


def _record(folder: Path) -> dict:
    return json.loads((folder / "batch.json").read_text())


def test_batch_with_one_bad_input(batch_run) -> None:
    out, proc = batch_run
    assert proc.returncode == 3, proc.stderr[-3000:]  # 3: some inputs refused as bad, the others proven
    record = _record(out)
    status = {e["name"]: e["status"] for e in record["inputs"]}
    assert status == {"0000": "proven", "0001": "proven", "0002": "failed", "0003": "proven"}
    bad = record["inputs"][2]
    assert bad["error"]["kind"] == "usage" and "has 2 values" in bad["error"]["message"], bad
    assert "0002" in proc.stderr and "has 2 values" in proc.stderr  # said on the terminal too
    assert record["counts"] == {"total": 4, "proven": 3, "skipped": 0, "failed": 1, "pending": 0}
    assert record["exit_code"] == 3 and record["interrupted"] is False
    # calibration on the batch's own good inputs, said and kept
    assert record["calibration"]["source"] == "inputs" and record["calibration"]["inputs"] == ["0000", "0001", "0003"]
    assert (out / "calibration.json").is_file() and "calibration:" in proc.stderr
    # the engine ran once over the three inputs and matched every witness
    assert record["engine"]["mode"] == "one pass" and record["engine"]["batch"] == 3
    for e in record["inputs"]:
        if e["status"] == "proven":
            assert e["engine_exact"] is True and e["prove_seconds"] > 0 and e["seconds"] >= e["prove_seconds"]
    # two worker processes, one rayon thread each (2 cores on the test machine; never more than cores)
    workers = record["workers"]
    assert workers["backend"] == "processes" and workers["count"] == 2
    assert workers["count"] * workers["rayon_threads"] <= max(2, os.cpu_count() or 1)
    assert {w["rayon_threads"] for w in workers["workers"]} == {str(workers["rayon_threads"])}
    assert not (out / "0002").exists()
    assert not [p for p in out.iterdir() if ".staging-" in p.name or p.name.startswith(".work-")]


def test_each_proof_dir_is_a_normal_proof_dir(batch_dir) -> None:
    """Every input's dir verifies on its own, with the model bound, and holds what `prove` writes."""
    summary = json.loads((batch_dir / "0001" / "summary.json").read_text())
    assert summary["verified"] and summary["engine_exact"] is True and summary["batch"]["name"] == "0001"
    assert summary["engine_batch"] == 3
    proc = cli("verify", batch_dir / "0001", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["valid"] and result["model_bound"] and result["outputs_fixed"] == summary["outputs_fixed"]
    for name in ("input.json", "proof.json", "witness.json", "vk.key", "model.onnx", "settings.json",
                 "Verifier.sol", "Verifier.json", "calldata.bin"):
        assert (batch_dir / "0001" / name).is_file(), name
    # files common to all inputs are hard links to one copy, not 3 copies
    assert (batch_dir / "0001" / "vk.key").stat().st_ino == (batch_dir / "0003" / "vk.key").stat().st_ino
    assert (batch_dir / "0001" / "proof.json").stat().st_nlink == 1
    inputs = [json.loads((batch_dir / n / "input.json").read_text()) for n in ("0000", "0001", "0003")]
    assert inputs == [good_inputs(3)[i] for i in range(3)]


def test_batch_verify_lists_every_proof(batch_dir) -> None:
    proc = cli("verify", batch_dir, "--json", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["valid"], result["invalid"], result["not_proven"]) == (3, 0, 1)
    rows = {r["name"]: r for r in result["proofs"]}
    assert rows["0002"]["result"] == "not proven" and "has 2 values" in rows["0002"]["reason"]
    assert all(rows[n]["model_bound"] for n in ("0000", "0001", "0003"))
    table = cli("verify", batch_dir)
    assert table.returncode == 0 and "3 valid, 0 invalid, 1 not proven" in table.stdout


def test_batch_verify_fails_on_one_bad_proof(batch_copy) -> None:
    proof = json.loads((batch_copy / "0003" / "proof.json").read_text())
    proof["proof"][200] ^= 1
    proof["hex_proof"] = "0x" + bytes(proof["proof"]).hex()
    (batch_copy / "0003" / "proof.json").write_text(json.dumps(proof))
    (batch_copy / "0001" / "proof.json").unlink()  # a listed proof whose dir lost its proof
    proc = cli("verify", batch_copy, "--json")
    assert proc.returncode == 1, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)["proofs"]}
    assert rows["0000"]["result"] == "valid"
    assert rows["0003"]["result"] == "invalid" and "rejected" in rows["0003"]["reason"]
    assert rows["0001"]["result"] == "invalid" and "holds no proof" in rows["0001"]["reason"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" not in f.read()
    except OSError:
        return False


def test_resume_after_kill(tmp_path: Path, batch_dir) -> None:
    """Kill a run (SIGKILL, no cleanup) once its first proof landed; the rerun proves only the rest."""
    source = write_jsonl(tmp_path / "inputs.jsonl", good_inputs(3))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "vcompute.cli", "prove", str(MLP), "--inputs", str(source), "--out", str(out),
                             "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while not (out / "0000" / "summary.json").exists():
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no proof landed within 600 s"
            time.sleep(0.2)
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: its worker must die with it
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (out / "0002").exists(), "the run finished before it was killed"
    record = _record(out)
    workers = [w["pid"] for w in record.get("workers", {}).get("workers", [])]
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workers and not any(_alive(pid) for pid in workers), "a worker outlived its killed driver"

    again = cli("prove", MLP, "--inputs", source, "--out", out, "--workers", "1")
    assert again.returncode == 0, again.stderr[-3000:]
    record = _record(out)
    status = {e["name"]: e["status"] for e in record["inputs"]}
    assert status["0000"] == "skipped" and status["0002"] == "proven", status
    assert record["calibration"]["source"] == "kept"
    assert not [p for p in out.iterdir() if ".staging-" in p.name or p.name.startswith(".work-")]
    verified = cli("verify", out, "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["valid"] == 3, verified.stderr


def test_out_dir_of_something_else_is_refused(tmp_path: Path, batch_inputs) -> None:
    out = tmp_path / "occupied"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    proc = cli("prove", MLP, "--inputs", batch_inputs, "--out", out)
    assert proc.returncode == 2 and "not a batch of this model" in proc.stderr
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_batch_options_need_inputs(tmp_path: Path, batch_inputs) -> None:
    proc = cli("prove", MLP, "--workers", "2")
    assert proc.returncode == 2 and "--inputs" in proc.stderr
    proc = cli("prove", MLP, "--inputs", batch_inputs, "--input", batch_inputs)
    assert proc.returncode == 2 and "do not go together" in proc.stderr
    proc = cli("prove", MLP, "--inputs", tmp_path / "missing.jsonl")
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_no_readable_input_is_a_usage_error(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "bad.jsonl", [{"input_data": [[1.0]]}, {"nope": 1}])
    proc = cli("prove", MLP, "--inputs", source, "--out", tmp_path / "out")
    assert proc.returncode == 2 and "no input could be read" in proc.stderr


def test_api_takes_an_array_of_samples(tmp_path: Path, batch_dir) -> None:
    """vcompute.prove_batch with a numpy array (leading sample axis); the circuit is cached from the fixture."""
    import vcompute

    samples = np.asarray([g["input_data"][0] for g in good_inputs(3)])[:1]  # one sample: one proof
    result = vcompute.prove_batch(MLP, samples, tmp_path / "out", workers=1,
                                  calibration_data=batch_dir / "calibration.json")
    assert result.exit_code == 0 and result.counts["proven"] == 1, result.entries
    assert result.record["calibration"]["source"] == "--calibration-data"
    # the fixture's proof of the same input under the same circuit gives the same outputs
    ours = json.loads((tmp_path / "out" / "0000" / "summary.json").read_text())
    theirs = json.loads((batch_dir / "0000" / "summary.json").read_text())
    assert ours["vk_sha256"] == theirs["vk_sha256"] and ours["outputs_fixed"] == theirs["outputs_fixed"]
