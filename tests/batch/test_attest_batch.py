"""`vcompute attest DIR` on a batch dir: InferenceRegistry.attestBatch on a real Anvil (loopback, stopped here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.batch.conftest import cli
from vcompute.evm.chain import connect, start_anvil, use_sender
from vcompute.evm.onchain import ensure_verifier, prepare
from vcompute.evm.registry import Registry, attestation_id
from vcompute.evm.verifier import decode_calldata


@pytest.fixture(scope="module")
def anvil(vcompute_cache):
    with start_anvil() as chain:
        yield chain


def test_batch_attest_records_every_valid_proof_once(batch_dir: Path, anvil) -> None:
    proc = cli("attest", batch_dir, "--rpc-url", anvil.url, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["counts"] == {"attested": 3, "already-attested": 0, "rejected": 0, "skipped": 1}
    assert result["gas"]["transactions"] == 1 and result["gas"]["per_attestation"] > 0
    rows = {r["name"]: r for r in result["proofs"]}
    assert rows["0002"]["status"] == "skipped"
    w3 = connect(anvil.url)
    registry = Registry(w3, result["registry_address"])
    for name in ("0000", "0001", "0003"):
        _, instances = decode_calldata((batch_dir / name / "calldata.bin").read_bytes())
        att = attestation_id(result["model_id"], instances)
        assert rows[name]["attestation_id"] == "0x" + att.hex() and rows[name]["status"] == "attested"
        record = registry.lookup(att)
        assert record and record["block_number"] == rows[name]["block_number"]
    assert len({rows[n]["tx_hash"] for n in ("0000", "0001", "0003")}) == 1  # one attestBatch transaction

    again = cli("attest", batch_dir, "--rpc-url", anvil.url, "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["counts"] == {"attested": 0, "already-attested": 3, "rejected": 0, "skipped": 1}


def test_batch_attest_leaves_out_a_bad_proof(batch_copy: Path, anvil) -> None:
    proof = json.loads((batch_copy / "0001" / "proof.json").read_text())
    proof["proof"][300] ^= 1
    proof["hex_proof"] = "0x" + bytes(proof["proof"]).hex()
    (batch_copy / "0001" / "proof.json").write_text(json.dumps(proof))
    # a fresh registry, so the fixture's attestations do not count as already recorded
    w3 = connect(anvil.url)
    use_sender(w3)
    registry, _ = Registry.deploy(w3)
    proc = cli("attest", batch_copy, "--rpc-url", anvil.url, "--registry", registry.address, "--json")
    assert proc.returncode == 1, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    rows = {r["name"]: r for r in result["proofs"]}
    assert rows["0001"]["status"] == "rejected" and "local verification" in rows["0001"]["reason"]
    assert rows["0000"]["status"] == rows["0003"]["status"] == "attested"


def test_gas_per_attestation_single_vs_batch(batch_dir: Path, anvil) -> None:
    """Same three proofs: three attest() transactions against one attestBatch() (fresh registry, so storage is cold in both)."""
    w3 = connect(anvil.url)
    use_sender(w3)
    proofs = []
    for name in ("0000", "0001", "0003"):
        prep = prepare(batch_dir / name)
        proofs.append(decode_calldata(prep.calldata))
    verifier, _, _ = ensure_verifier(w3, prep.artifact)
    single_registry, _ = Registry.deploy(w3)
    single_model = single_registry.register_model(verifier, bytes(32), bytes(32))
    singles = [single_registry.attest(single_model, p, i).gas_used for p, i in proofs]
    batch_registry, _ = Registry.deploy(w3)
    batch_model = batch_registry.register_model(verifier, bytes(32), bytes(32))
    receipt = batch_registry.attest_batch(batch_model, [p for p, _ in proofs], [i for _, i in proofs])
    per_batch = int(receipt["gasUsed"]) / len(proofs)
    per_single = sum(singles) / len(singles)
    one = batch_registry.attest_batch(batch_model, [proofs[0][0]], [proofs[0][1]])  # already recorded: verified, not stored
    numbers = {"single_attest_gas": singles, "single_mean": per_single, "batch_of": len(proofs),
               "batch_total": int(receipt["gasUsed"]), "batch_per_attestation": per_batch,
               "saving": 1 - per_batch / per_single, "batch_of_one_already_recorded": int(one["gasUsed"])}
    print("gas:", json.dumps(numbers))
    if os.environ.get("VCOMPUTE_GAS_OUT"):
        Path(os.environ["VCOMPUTE_GAS_OUT"]).write_text(json.dumps(numbers, indent=2))
    assert per_batch < per_single


def test_attest_batch_refuses_a_reusable_verifier_model(batch_dir: Path, anvil) -> None:
    """attestBatch calls verifyProof(proof, instances): a reusable-verifier model must go through attestWithVka."""
    from vcompute.errors import ProofError

    w3 = connect(anvil.url)
    use_sender(w3)
    prep = prepare(batch_dir / "0000")
    verifier, _, _ = ensure_verifier(w3, prep.artifact)
    registry, _ = Registry.deploy(w3)
    model_id = registry.register_reusable_model(verifier, b"\x01" * 32, bytes(32), bytes(32))
    proof, instances = decode_calldata(prep.calldata)
    with pytest.raises(ProofError, match="WrongVerifierKind"):
        registry.attest_batch(model_id, [proof], [instances])
    single = registry.register_model(verifier, bytes(32), bytes(32))
    with pytest.raises(ProofError, match="LengthMismatch"):
        registry.attest_batch(single, [proof], [instances, instances])
    flipped = bytearray(proof)
    flipped[len(proof) // 2] ^= 1
    with pytest.raises(ProofError, match=r"InvalidProofAt\(1,?\)"):
        registry.attest_batch(single, [proof, bytes(flipped)], [instances, instances])
    assert not registry.lookup(attestation_id(single, instances))  # all or nothing
