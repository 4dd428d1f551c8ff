"""CLI options and the one-line errors of issues #8 and #13, through the real `vcompute` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CIRCUITS


def _one_error_line(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert proc.returncode == code, f"exit {proc.returncode}, wanted {code}: {proc.stderr[-600:]}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], f"wanted one line naming {needle!r}, got:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr


def test_version_names_every_pinned_tool(cli) -> None:
    proc = cli("--version")
    assert proc.returncode == 0, proc.stderr
    for tool in ("vcompute", "ezkl", "torch", "triton", "solc", "anvil"):
        assert any(line.startswith(tool) for line in proc.stdout.splitlines()), f"{tool} missing from --version:\n{proc.stdout}"
    assert "23.0.5" in proc.stdout and "0.8.37" in proc.stdout


def test_choices_are_checked_by_the_parser(cli) -> None:
    proc = cli("prove", str(CIRCUITS / "mlp" / "model.onnx"), "--target", "speed")
    assert proc.returncode == 2 and "speed" in proc.stderr, proc.stderr


@pytest.mark.parametrize("port", ["70000", "-1", "0"])
def test_chain_port_out_of_range(cli, port: str) -> None:
    start = time.monotonic()
    _one_error_line(cli("chain", "--port", port), 2, "--port must be in 1..65535")
    assert time.monotonic() - start < 20, "a bad port must be refused at once"


def test_chain_sigterm_cleans_up_its_temp_dir(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "COLUMNS": "200"}
    from vcompute.evm.chain import free_port

    proc = subprocess.Popen([sys.executable, "-m", "vcompute.cli", "chain", "--port", str(free_port())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "listening" not in proc.stdout.readline():
            assert proc.poll() is None, proc.stderr.read()
        assert list(tmp_path.glob("vcompute-anvil-*")), "anvil's temp dir should exist while it runs"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(tmp_path.glob("vcompute-anvil-*")), "SIGTERM left the temp dir behind"


def test_infer_bad_device_and_missing_gpu(cli) -> None:
    model = str(CIRCUITS / "mlp" / "model.onnx")
    _one_error_line(cli("infer", model, "--device", "bogus"), 2, "not a torch device")
    import torch

    if not torch.cuda.is_available():
        _one_error_line(cli("infer", model, "--device", "cuda:0"), 2, "no such CUDA device")


def test_infer_binary_settings_and_huge_input(cli, proved, tmp_path: Path) -> None:
    model = str(CIRCUITS / "mlp" / "model.onnx")
    binary = tmp_path / "settings.json"
    binary.write_bytes(os.urandom(256))
    _one_error_line(cli("infer", model, "--settings", str(binary)), 2, "settings")
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"input_data": [[1e30] * 8]}))
    proc = cli("infer", model, "-i", str(huge), "--settings", str(proved("mlp") / "settings.json"))
    _one_error_line(proc, 2, "")


def test_infer_refuses_settings_of_another_model(cli, proved) -> None:
    proc = cli("infer", str(CIRCUITS / "mlp" / "model.onnx"), "--settings", str(proved("cnn") / "settings.json"))
    _one_error_line(proc, 2, "was made for")


def test_errors_are_not_wrapped_for_scripts(cli, tmp_path: Path) -> None:
    missing = tmp_path / ("a-rather-long-directory-name-" * 4) / "model.onnx"
    proc = subprocess.run([sys.executable, "-m", "vcompute.cli", "prove", str(missing)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "40"}, timeout=120)
    _one_error_line(proc, 2, str(missing))


def test_quiet_and_verbose_flags(cli, proved) -> None:
    out = str(proved("mlp"))
    quiet = cli("-q", "verify", out)
    assert quiet.returncode == 0 and "warning" not in quiet.stderr, quiet.stderr
    assert cli("-v", "verify", out).returncode == 0


def test_options_visibilities_scales_calibration_and_verify_srs(cli, tmp_path: Path, vcompute_cache: Path) -> None:
    """One prove exercising the options nothing else runs: private input, hashed output, a fixed
    scale, a logrows cap, target accuracy and calibration data; then verify with --srs."""
    calibration = tmp_path / "calibration.json"
    samples = [[0.1 * ((i * 7 + j) % 11 - 5) for j in range(8)] for i in range(4)]
    calibration.write_text(json.dumps({"input_data": [[v for s in samples for v in s]]}))
    out = tmp_path / "out"
    proc = cli("prove", str(CIRCUITS / "mlp" / "model.onnx"), "-i", str(CIRCUITS / "mlp" / "input.json"), "-o", str(out),
               "--input-visibility", "private", "--output-visibility", "hashed", "--scales", "10",
               "--max-logrows", "16", "--target", "accuracy", "--calibration-data", str(calibration), "--no-evm", "--json")
    assert proc.returncode == 0, proc.stderr[-800:]
    summary = json.loads(proc.stdout)
    assert summary["scales"]["input"] == 10 and summary["logrows"] <= 16, summary["scales"]
    assert summary["calibration"]["data_sha256"], "the calibration file must be recorded"
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["run_args"]["input_visibility"], str(settings["run_args"]["output_visibility"])) != ("Public", "Public")
    verified = cli("verify", str(out), "--json")
    assert verified.returncode == 0, verified.stderr[-600:]
    result = json.loads(verified.stdout)
    assert result["visibility"] == {"input": "private", "output": "hashed", "param": "fixed"}
    assert result["outputs"] is None and result["inputs"] is None, "nothing private or hashed may be reported as proven values"
    srs = next(vcompute_cache.glob(f"srs/dev-k{summary['logrows']}/kzg.srs"))
    with_srs = cli("verify", str(out), "--srs", str(srs), "--json")
    assert with_srs.returncode == 0 and json.loads(with_srs.stdout)["model_bound"] is True, with_srs.stderr[-600:]


def test_wheel_ships_the_contracts(tmp_path: Path) -> None:
    """A wheel install keeps every EVM feature: the Solidity sources and npm pins are package data."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(root)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-800:]
    import zipfile

    names = zipfile.ZipFile(next(tmp_path.glob("vcompute-*.whl"))).namelist()
    for needed in ("vcompute/evm/contracts/InferenceRegistry.sol", "vcompute/evm/contracts/package-lock.json",
                   "vcompute/kernels/gemm.py", "vcompute/engine/ops/registry.py"):
        assert needed in names, f"{needed} missing from the wheel"
    assert not any("node_modules" in n for n in names)
