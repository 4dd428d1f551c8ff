"""Shared, session-scoped fixtures for the on-chain tests (solc, chain, onchain, registry).

Loaded by `` in those test modules, so the expensive parts
(two real EZKL proofs, ~30 s on 2 cores, and one Anvil) are made once per session.

Two models with the same shape and different weights: A and B. Their proofs have the same number
of instances, so "A's proof sent to B's verifier" is a real mismatch test, not a shape error.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import pytest

from vcompute.evm.chain import LocalChain, start_anvil


def _export_mlp(work: Path, seed: int) -> tuple[Path, Path]:
    """A tiny 8->16->4 MLP with seeded weights as ONNX, and one input for it."""
    import torch

    work.mkdir(parents=True)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    x = torch.randn(1, 8)
    onnx_path, inp = work / "model.onnx", work / "input.json"
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but is what EZKL reads
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, x, str(onnx_path), dynamo=False, opset_version=17, input_names=["x"], output_names=["y"])
    inp.write_text(json.dumps({"input_data": [x.flatten().tolist()]}))
    return onnx_path, inp


def _make_proof_dir(root: Path, name: str, seed: int) -> Path:
    """Model `name`'s proof dir, made by `vcompute prove` (pipeline.prove)."""
    from vcompute.zk.pipeline import ProveRequest, prove

    onnx_path, inp = _export_mlp(root / f"{name}-model", seed)
    out = root / name
    prove(ProveRequest(model=onnx_path, out=out, input=inp, engine=False))
    return out


@pytest.fixture(scope="session")
def chain_cache(request, tmp_path_factory) -> Path:
    """The suite's private VCOMPUTE_CACHE (tests/conftest.py's)."""
    return request.getfixturevalue("vcompute_cache")


@pytest.fixture(scope="session")
def proof_dirs(request, tmp_path_factory, chain_cache) -> dict[str, Path]:
    """Proof dirs of models A and B, private to these tests (tests that write use copies).

    A is the bundled circuits/mlp, proved once for the whole suite by tests/conftest.py's `proved`
    (copied here, so what we record in it never leaks into other tests); B has other weights."""
    root = tmp_path_factory.mktemp("proofs")
    shutil.copytree(request.getfixturevalue("proved")("mlp"), root / "A")
    return {"A": root / "A", "B": _make_proof_dir(root, "B", 1)}


@pytest.fixture()
def fresh_proof_dir(proof_dirs, tmp_path):
    """copy("A") -> a private copy of model A's proof dir, safe to tamper with."""

    def copy(name: str = "A") -> Path:
        dst = tmp_path / f"proof-{name}"
        shutil.copytree(proof_dirs[name], dst)
        return dst

    return copy


@pytest.fixture(scope="session")
def anvil(chain_cache) -> LocalChain:
    """One Anvil for the session, on a free loopback port."""
    with start_anvil() as chain:
        yield chain


def run_cli(*args: str, timeout: float = 180) -> "subprocess.CompletedProcess[str]":
    """Run `vcompute ARGS` in a subprocess (the CLI writes to duplicated fds, which only a real
    process captures), with this session's VCOMPUTE_CACHE."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "vcompute.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def swap_proof(proof_dir: Path, other: Path) -> Path:
    """Put another model's proof (and calldata inputs) into proof_dir: a proof its verifier must reject."""
    shutil.copy(other / "proof.json", proof_dir / "proof.json")
    return proof_dir
