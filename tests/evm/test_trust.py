"""On-chain attacks (issue #8): bytecode, calldata and records in a proof dir are never trusted."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from vcompute.errors import ProofError
from vcompute.evm.onchain import verify_onchain
from vcompute.evm.registry import attest_proof_dir

STUB_TRUE = "0x600160005260206000f3"  # runtime code that returns 1 for any call


def _plant_stub_and_forge(pd: Path) -> None:
    """The reported attack: an always-true verifier in Verifier.json, random proof bytes."""
    art = json.loads((pd / "Verifier.json").read_text())
    art["bytecode"] = "0x600a600c600039600a6000f3" + STUB_TRUE[2:]  # initcode returning the stub
    art["deployedBytecode"] = STUB_TRUE
    (pd / "Verifier.json").write_text(json.dumps(art))
    proof = json.loads((pd / "proof.json").read_text())
    forged = list(os.urandom(len(proof["proof"])))
    proof["proof"], proof["hex_proof"] = forged, "0x" + bytes(forged).hex()
    (pd / "proof.json").write_text(json.dumps(proof))
    (pd / "calldata.bin").write_bytes(b"\x00" * 100)


def test_stub_verifier_in_the_dir_is_never_deployed(fresh_proof_dir, anvil):
    pd = fresh_proof_dir("A")
    _plant_stub_and_forge(pd)
    result = verify_onchain(pd, anvil.url)
    assert not result.valid, "a forged proof passed with the dir's stub verifier"
    assert result.deployed_size > 1000, "the deployed verifier is not EZKL's"


def test_stub_verifier_and_forged_proof_are_not_attested(fresh_proof_dir, anvil):
    pd = fresh_proof_dir("A")
    _plant_stub_and_forge(pd)
    with pytest.raises(ProofError):
        attest_proof_dir(pd, anvil.url)


def test_onchain_verify_of_a_read_only_dir_writes_nothing(fresh_proof_dir, anvil):
    pd = fresh_proof_dir("A")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in pd.iterdir()}
    for p in [pd, *pd.iterdir()]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        assert verify_onchain(pd, anvil.url).valid
    finally:
        pd.chmod(0o755)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in pd.iterdir()} == before


def test_copies_of_a_proof_dir_register_one_model(fresh_proof_dir, anvil, tmp_path):
    import shutil

    first = fresh_proof_dir("A")
    second = tmp_path / "copy"
    shutil.copytree(first, second)
    a = attest_proof_dir(first, anvil.url)
    b = attest_proof_dir(second, anvil.url)
    assert a.model_id == b.model_id, "a copy of the same proof dir registered a second model"
    assert b.status == "already-attested"


def test_a_rejected_proof_registers_nothing(fresh_proof_dir, proof_dirs, anvil):
    from vcompute.evm.chain import connect
    from vcompute.evm.registry import ensure_registry

    w3 = connect(anvil.url)
    registry = ensure_registry(w3)
    count = registry.contract.functions.modelCount().call()
    pd = fresh_proof_dir("B")
    proof = json.loads((pd / "proof.json").read_text())
    proof["proof"][100] ^= 1
    proof["hex_proof"] = "0x" + bytes(proof["proof"]).hex()
    (pd / "proof.json").write_text(json.dumps(proof))
    with pytest.raises(ProofError):
        attest_proof_dir(pd, anvil.url)
    assert registry.contract.functions.modelCount().call() == count
