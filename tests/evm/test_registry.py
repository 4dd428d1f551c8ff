"""InferenceRegistry on a real Anvil: valid proofs recorded once, invalid ones and duplicates refused."""

from __future__ import annotations

import json

import pytest
from web3.exceptions import ContractLogicError

from vcompute.errors import ProofError
from vcompute.evm.chain import connect, use_sender
from vcompute.evm.onchain import ensure_verifier, prepare
from vcompute.evm.registry import Registry, attest_proof_dir, attestation_id, describe_revert, instances_hash
from vcompute.evm.verifier import decode_calldata


@pytest.fixture()
def w3(anvil):
    w3 = connect(anvil.url)
    use_sender(w3)
    return w3


@pytest.fixture()
def models(w3, proof_dirs):
    """A new registry with models A and B registered: {name: (model id, proof, instances)}."""
    registry, _ = Registry.deploy(w3)
    out = {}
    for name, root in proof_dirs.items():
        prep = prepare(root)
        verifier, _, _ = ensure_verifier(w3, prep.artifact)
        model_id = registry.register_model(verifier, bytes(32), bytes(32))
        out[name] = (model_id, *decode_calldata(prep.calldata))
    return registry, out


def _revert_of(registry: Registry, fn) -> tuple[str, list]:
    """The custom error a call reverts with, e.g. ("AlreadyAttested", [id])."""
    with pytest.raises(ContractLogicError) as info:
        fn.call()
    return describe_revert(registry.abi, info.value)


def test_valid_proof_is_recorded_and_can_be_looked_up(models, anvil):
    registry, m = models
    model_id, proof, instances = m["A"]
    result = registry.attest(model_id, proof, instances)
    assert result.status == "attested", f"valid proof not attested: {result.reason}"
    att_id = attestation_id(model_id, instances)
    assert result.attestation_id == "0x" + att_id.hex()
    assert registry.contract.functions.attestationIdOf(model_id, instances_hash(instances)).call() == att_id
    record = registry.lookup(att_id)
    expected = {
        "model_id": model_id,
        "instances_hash": "0x" + instances_hash(instances).hex(),
        "submitter": anvil.accounts[0],
        "block_number": result.block_number,
    }
    assert {k: record[k] for k in expected} == expected
    logs = registry.contract.events.Attested().get_logs(from_block=result.block_number)
    assert [log["args"]["attestationId"] for log in logs] == [att_id]


def test_invalid_proofs_are_rejected_and_not_recorded(models):
    registry, m = models
    model_a, proof, instances = m["A"]
    flipped = bytearray(proof)
    flipped[len(proof) // 2] ^= 1
    changed = [instances[0] + 1, *instances[1:]]
    model_b, proof_b, instances_b = m["B"]
    cases = {
        "flipped proof byte": (model_a, bytes(flipped), instances),
        "changed instance": (model_a, proof, changed),
        "model B's proof for model A": (model_a, proof_b, instances_b),
        "model A's proof for model B": (model_b, proof, instances),
    }
    for what, (model_id, p, inst) in cases.items():
        result = registry.attest(model_id, p, inst)
        assert (result.status, result.reason) == ("rejected", "InvalidProof"), f"{what}: {result}"
        assert registry.lookup(attestation_id(model_id, inst)) is None, f"{what} was recorded"
        assert _revert_of(registry, registry.contract.functions.attest(model_id, p, inst)) == ("InvalidProof", [])


def test_the_same_attestation_twice_is_refused(models):
    registry, m = models
    model_id, proof, instances = m["A"]
    assert registry.attest(model_id, proof, instances).status == "attested"
    att_id = attestation_id(model_id, instances)
    name, args = _revert_of(registry, registry.contract.functions.attest(model_id, proof, instances))
    assert (name, args) == ("AlreadyAttested", [att_id])
    again = registry.attest(model_id, proof, instances)
    assert again.status == "already-attested" and again.tx_hash is None, again


def test_unknown_model_and_non_contract_verifier_revert(models, anvil):
    registry, m = models
    _, proof, instances = m["A"]
    assert _revert_of(registry, registry.contract.functions.attest(99, proof, instances)) == ("UnknownModel", [99])
    eoa = anvil.accounts[7]
    assert _revert_of(registry, registry.contract.functions.registerModel(eoa, bytes(32), bytes(32))) == (
        "NotAContract",
        [eoa],
    )
    with pytest.raises(ProofError, match="NotAContract"):
        registry.register_model(eoa, bytes(32), bytes(32))


def test_attest_proof_dir_end_to_end_reuses_registry_and_model(fresh_proof_dir, anvil):
    pd = fresh_proof_dir("A")
    first = attest_proof_dir(pd, anvil.url)
    assert first.status == "attested", first
    second = attest_proof_dir(pd, anvil.url)
    assert second.status == "already-attested", second
    assert (second.registry_address, second.model_id) == (first.registry_address, first.model_id)
    model = Registry(connect(anvil.url), first.registry_address).model(first.model_id)
    import hashlib

    vk_sha256 = hashlib.sha256((pd / "vk.key").read_bytes()).hexdigest()
    assert model["vk_digest"].hex() == vk_sha256, "registered vkDigest is not sha256(vk.key)"
    assert model["verifier"] == first.verifier_address


def test_cli_attest_records_then_reports_duplicate_and_rejects_a_foreign_proof(fresh_proof_dir, proof_dirs):
    from tests.evm.conftest import run_cli, swap_proof
    from vcompute.evm.chain import start_anvil

    pd = fresh_proof_dir("A")
    with start_anvil() as anvil:  # a chain where this result is not recorded yet
        _attest_cli_cases(pd, proof_dirs, anvil, run_cli, swap_proof)


def _attest_cli_cases(pd, proof_dirs, anvil, run_cli, swap_proof):
    first = run_cli("attest", str(pd), "--rpc-url", anvil.url, "--json")
    assert first.returncode == 0, first.stderr[-800:]
    assert json.loads(first.stdout)["status"] == "attested"
    again = run_cli("attest", str(pd), "--rpc-url", anvil.url)
    assert again.returncode == 0 and "already-attested" in again.stdout, again.stdout + again.stderr[-500:]
    bad = run_cli("attest", str(swap_proof(pd, proof_dirs["B"])), "--rpc-url", anvil.url, "--json")
    assert bad.returncode == 1, f"exit {bad.returncode}: {bad.stdout}{bad.stderr[-500:]}"
    assert json.loads(bad.stdout)["status"] == "rejected"


def test_registry_address_is_checked(fresh_proof_dir, anvil):
    from vcompute.errors import UsageError

    pd = fresh_proof_dir("A")
    with pytest.raises(UsageError, match="20-byte hex address"):
        attest_proof_dir(pd, anvil.url, registry_address="0x5F")
    with pytest.raises(UsageError, match="no InferenceRegistry"):
        attest_proof_dir(pd, anvil.url, registry_address=anvil.accounts[4])
