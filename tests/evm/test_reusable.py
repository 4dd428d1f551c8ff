"""EZKL's reusable verifier (issue #10): one Halo2VerifierReusable per chain, one VKA per model, and
the digest it returns checked, so a proof of model B never counts as model A.

Real EZKL proofs (the bundled MLP as model A, the same shape with other weights as model B), the
pinned solc and real Anvils on loopback; each test that deploys starts its own Anvil, so what it
measures (first deployment, first registration) does not depend on the order tests run in.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from eth_utils import keccak
from web3.exceptions import ContractLogicError

from vcompute.evm import reusable as rv
from vcompute.evm.chain import connect, start_anvil, use_sender
from vcompute.evm.onchain import (
    call_reusable_verifier, ensure_reusable_verifier, ensure_vka, prepare, verify_onchain, vka_registered,
)
from vcompute.evm.registry import Registry, attest_proof_dir, describe_revert
from vcompute.evm.solc import EIP170_LIMIT
from vcompute.evm.verifier import decode_calldata

ROOT = Path(__file__).resolve().parents[2]


def _w3(url: str):
    w3 = connect(url)
    use_sender(w3)
    return w3


def _setup(w3, proof_dirs, names=("A", "B")) -> tuple[str, dict]:
    """The reusable verifier on w3's chain with each model's VKA registered: (address, {name: Prepared})."""
    preps = {n: prepare(proof_dirs[n], reusable=True) for n in names}
    address, _, _ = ensure_reusable_verifier(w3, preps[names[0]].reusable_artifact)
    for prep in preps.values():
        ensure_vka(w3, address, prep.vka)
    return address, preps


# --- offline: the contract, the VKA, the calldata ---------------------------------------------------


def test_vka_and_contract_are_made_here_cached_and_calldata_matches_ezkl(proof_dirs, tmp_path):
    import ezkl

    a, b = proof_dirs["A"], proof_dirs["B"]
    first = rv.vka(a / "vk.key", a / "settings.json", a / "kzg.verifier.srs")
    again = rv.vka(a / "vk.key", a / "settings.json", a / "kzg.verifier.srs")
    assert again.cached and again.words == first.words and len(first.words) > 100
    assert first.digest == keccak(b"".join(first.words)), "the digest is keccak256 of the concatenated words"
    other = rv.vka(b / "vk.key", b / "settings.json", b / "kzg.verifier.srs")
    assert other.digest != first.digest, "two models must have two VKAs"

    art_a = rv.artifact(a / "vk.key", a / "settings.json", a / "kzg.verifier.srs")
    art_b = rv.artifact(b / "vk.key", b / "settings.json", b / "kzg.verifier.srs")
    assert art_a["contract"] == rv.CONTRACT and 5_000 < art_a["deployed_size"] <= EIP170_LIMIT
    assert art_a["deployed_bytecode"] == art_b["deployed_bytecode"], "one reusable contract serves both models"

    vka_file = tmp_path / "vka.bytes"
    vka_file.write_bytes(first.to_bytes())
    assert rv.parse_vka(vka_file.read_bytes()) == first.words
    ezkl_data = bytes(ezkl.encode_evm_calldata(str(a / "proof.json"), str(tmp_path / "cd.bin"), str(vka_file)))
    prep = prepare(a, reusable=True)
    assert prep.reusable_calldata == ezkl_data, "our reusable calldata differs from EZKL's encoding"
    proof, instances, words = rv.decode_verify_calldata(prep.reusable_calldata)
    assert (proof, instances) == decode_calldata(prep.calldata) and tuple(words) == first.words

    for bad in (b"", b"\x01" + bytes(7), first.to_bytes()[:-1], (10**6).to_bytes(8, "little") + bytes(64)):
        with pytest.raises(Exception, match="VKA"):
            rv.parse_vka(bad)


def test_prove_with_reusable_verifier_writes_the_reusable_artifacts(tmp_path, cli):
    out = tmp_path / "mlp-reusable"
    mlp = ROOT / "circuits" / "mlp"
    proc = cli("prove", mlp / "model.onnx", "--input", mlp / "input.json", "--out", out, "--reusable-verifier", "--no-engine", "--json")
    assert proc.returncode == 0, proc.stderr[-1500:]
    summary = json.loads(proc.stdout)
    evm = summary["evm"]
    assert (evm["verifier"], evm["reason"], evm["contract"]) == ("reusable", "requested (--reusable-verifier)", rv.CONTRACT)
    assert evm["fits_eip170"] and 0 < evm["single_deployed_size"] <= EIP170_LIMIT and summary["warnings"] == []
    assert not (out / "Verifier.sol").exists() and not (out / "calldata.bin").exists(), "the single verifier was written too"

    expected = rv.vka(out / "vk.key", out / "settings.json", out / "kzg.verifier.srs")
    assert (out / rv.VKA_NAME).read_bytes() == expected.to_bytes()
    assert (out / rv.VKA_DIGEST_NAME).read_text().strip() == expected.digest_hex == evm["vka_digest"]
    art = json.loads((out / rv.JSON_NAME).read_text())
    assert (art["_format"], art["contractName"], art["sourceName"]) == ("hh-sol-artifact-1", rv.CONTRACT, rv.SOL_NAME)
    assert {i.get("name") for i in art["abi"]} >= {"registerVka", "verifyProof"}
    proof, instances, words = rv.decode_verify_calldata((out / rv.CALLDATA_NAME).read_bytes())
    p = json.loads((out / "proof.json").read_text())
    assert proof == bytes(p["proof"]) and tuple(words) == expected.words and len(instances) == 12
    assert (out / rv.CALLDATA_HEX_NAME).read_text().strip() == "0x" + (out / rv.CALLDATA_NAME).read_bytes().hex()

    from vcompute.zk.pipeline import _is_proof_dir_of

    assert _is_proof_dir_of(out, summary["model"]["sha256"]), "a reusable proof dir must be replaceable by a new prove"
    refused = cli("prove", mlp / "model.onnx", "--out", tmp_path / "x", "--reusable-verifier", "--no-evm")
    assert refused.returncode == 2 and "--no-evm" in refused.stderr


def test_oversize_single_verifier_switches_to_the_reusable_one(proof_dirs, tmp_path, monkeypatch):
    """The automatic choice, with the limit lowered below the MLP's single verifier (13.4 KB) but
    above the reusable one (10.9 KB): prove writes the reusable artifacts without a warning, and
    on-chain verification takes the reusable verifier without being asked."""
    from vcompute.zk import pipeline

    monkeypatch.setattr(rv, "EIP170_LIMIT", 12_000)
    staging = tmp_path / "staging"
    shutil.copytree(proof_dirs["A"], staging)
    for name in ("Verifier.sol", "Verifier.json", "calldata.bin", "calldata.hex"):
        (staging / name).unlink()
    stages = pipeline.Stages(pipeline._no_progress)
    evm = pipeline._build_evm(stages, staging, staging / "kzg.verifier.srs")
    assert stages.warnings == [], stages.warnings
    assert evm["verifier"] == "reusable" and evm["requested_reusable"] is False
    assert "over EIP-170" in evm["reason"] and evm["single_deployed_size"] > 12_000
    assert (staging / rv.VKA_NAME).is_file() and not (staging / "Verifier.sol").exists()

    prep = prepare(proof_dirs["A"])
    assert prep.is_reusable and "over EIP-170" in prep.reason
    monkeypatch.undo()
    assert not prepare(proof_dirs["A"]).is_reusable, "within the limit, the single verifier stays the default"


# --- on a chain -------------------------------------------------------------------------------------


def test_deployed_once_per_chain_and_each_vka_registered_once(proof_dirs):
    with start_anvil() as chain:
        a1 = verify_onchain(proof_dirs["A"], chain.url, reusable=True)
        a2 = verify_onchain(proof_dirs["A"], chain.url, reusable=True)
        b1 = verify_onchain(proof_dirs["B"], chain.url, reusable=True)
        w3 = _w3(chain.url)
        prep_a = prepare(proof_dirs["A"], reusable=True)
        # registerVka is idempotent on-chain: again succeeds and leaves the VKA registered
        receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
            {"from": w3.eth.default_account, "to": a1.verifier_address, "data": rv.register_calldata(prep_a.vka.words)}))
        assert receipt["status"] == 1 and vka_registered(w3, a1.verifier_address, prep_a.vka.digest)
        unregistered = keccak(b"not a vka")
        assert not vka_registered(w3, a1.verifier_address, unregistered)
    for r in (a1, a2, b1):
        assert r.valid and r.verifier_kind == "reusable", r.reason
        assert r.outputs_fixed == json.loads((proof_dirs["A" if r is not b1 else "B"] / "summary.json").read_text())["outputs_fixed"]
    assert (a1.reused_verifier, a1.reused_registration) == (False, False)
    assert 1_000_000 < a1.deploy_gas < 5_000_000 and 50_000 < a1.register_gas < 1_000_000
    assert 100_000 < a1.verification_gas < 3_000_000
    assert (a2.reused_verifier, a2.reused_registration) == (True, True)
    assert (a2.deploy_gas, a2.register_gas) == (a1.deploy_gas, a1.register_gas), "reuse reports the recorded gas"
    assert b1.verifier_address == a1.verifier_address and b1.reused_verifier, "model B must share the deployment"
    assert b1.reused_registration is False and b1.vka_digest != a1.vka_digest
    assert a1.deployed_size < a1.single_deployed_size
    assert a1.vka_digest == prep_a.vka.digest_hex


def test_flipped_byte_changed_instance_and_unregistered_vka_are_rejected(proof_dirs):
    with start_anvil() as chain:
        w3 = _w3(chain.url)
        address, preps = _setup(w3, proof_dirs, ("A",))
        prep = preps["A"]
        proof, instances, words = rv.decode_verify_calldata(prep.reusable_calldata)
        assert call_reusable_verifier(w3, address, prep.reusable_calldata, prep.vka.digest)[0]
        for position in (0, len(proof) // 2, len(proof) - 1):
            tampered = bytearray(proof)
            tampered[position] ^= 0x01
            valid, reason, _ = call_reusable_verifier(w3, address, rv.verify_calldata(bytes(tampered), instances, words), prep.vka.digest)
            assert not valid and "reverted" in reason, f"byte {position} flipped was accepted ({reason})"
        changed = [instances[0] + 1, *instances[1:]]
        assert not call_reusable_verifier(w3, address, rv.verify_calldata(proof, changed, words), prep.vka.digest)[0]
        other = prepare(proof_dirs["B"], reusable=True)  # B's VKA, never registered on this chain
        valid, reason, _ = call_reusable_verifier(w3, address, other.reusable_calldata, other.vka.digest)
        assert not valid and "VKA not registered" in reason, reason


def test_a_proof_of_model_b_never_verifies_as_model_a(proof_dirs, fresh_proof_dir, cli):
    with start_anvil() as chain:
        w3 = _w3(chain.url)
        address, preps = _setup(w3, proof_dirs)
        a, b = preps["A"], preps["B"]
        proof_b, instances_b, _ = rv.decode_verify_calldata(b.reusable_calldata)
        # B's proof with A's VKA: the contract rejects it
        valid, reason, _ = call_reusable_verifier(w3, address, rv.verify_calldata(proof_b, instances_b, a.vka.words), a.vka.digest)
        assert not valid and "reverted" in reason, reason
        # B's proof with B's (registered) VKA: the contract accepts it; the digest check refuses it as A
        assert call_reusable_verifier(w3, address, b.reusable_calldata, b.vka.digest)[0]
        valid, reason, _ = call_reusable_verifier(w3, address, b.reusable_calldata, a.vka.digest)
        assert not valid and "not this model's" in reason, reason
        # the CLI: model A's dir holding model B's proof, through the reusable verifier
        from tests.evm.conftest import swap_proof

        pd = swap_proof(fresh_proof_dir("A"), proof_dirs["B"])
        for name in ("summary.json", "witness.json", "input.json"):  # else the dir is refused before the chain
            (pd / name).unlink()
        proc = cli("verify", pd, "--rpc-url", chain.url, "--reusable-verifier", "--json")
        assert proc.returncode == 1, f"exit {proc.returncode}: {proc.stdout}{proc.stderr[-800:]}"
        assert json.loads(proc.stdout)["valid"] is False


def test_files_in_the_dir_are_never_used(fresh_proof_dir, proof_dirs):
    """A stub contract in VerifierReusable.json and model B's VKA in vka.bytes change nothing:
    the contract and the VKA are generated here from vk.key."""
    pd = fresh_proof_dir("A")
    stub = "0x600160005260206000f3"
    (pd / rv.JSON_NAME).write_text(json.dumps({"abi": [], "bytecode": "0x600a600c600039600a6000f3" + stub[2:], "deployedBytecode": stub}))
    b = prepare(proof_dirs["B"], reusable=True).vka
    (pd / rv.VKA_NAME).write_bytes(b.to_bytes())
    (pd / rv.VKA_DIGEST_NAME).write_text(b.digest_hex + "\n")
    with start_anvil() as chain:
        good = verify_onchain(pd, chain.url, reusable=True)
        assert good.valid and good.vka_digest != b.digest_hex and good.deployed_size > 5_000
        proof = json.loads((pd / "proof.json").read_text())
        forged = list(os.urandom(len(proof["proof"])))
        proof["proof"], proof["hex_proof"] = forged, "0x" + bytes(forged).hex()
        (pd / "proof.json").write_text(json.dumps(proof))
        assert not verify_onchain(pd, chain.url, reusable=True).valid


# --- InferenceRegistry ------------------------------------------------------------------------------


def _revert(registry: Registry, fn) -> tuple[str, list]:
    with pytest.raises(ContractLogicError) as info:
        fn.call()
    return describe_revert(registry.abi, info.value)


def test_registry_binds_a_model_to_its_vka_digest(proof_dirs):
    with start_anvil() as chain:
        w3 = _w3(chain.url)
        address, preps = _setup(w3, proof_dirs)
        a, b = preps["A"], preps["B"]
        registry, _ = Registry.deploy(w3)
        id_a = registry.register_reusable_model(address, a.vka.digest, bytes(32), bytes(32))
        id_b = registry.register_reusable_model(address, b.vka.digest, bytes(32), bytes(32))
        assert id_a != id_b and registry.register_reusable_model(address, a.vka.digest, bytes(32), bytes(32)) == id_a
        assert registry.model(id_a)["vka_digest"] == a.vka.digest
        proof_a, inst_a, _ = rv.decode_verify_calldata(a.reusable_calldata)
        proof_b, inst_b, _ = rv.decode_verify_calldata(b.reusable_calldata)
        flipped = bytearray(proof_a)
        flipped[len(flipped) // 2] ^= 1
        fn = registry.contract.functions
        cases = {
            "B's proof with B's VKA for model A": (fn.attestWithVka(id_a, proof_b, inst_b, list(b.vka.words)), ("WrongVka", [id_a, b.vka.digest])),
            "B's proof with A's VKA for model A": (fn.attestWithVka(id_a, proof_b, inst_b, list(a.vka.words)), ("InvalidProof", [])),
            "flipped byte": (fn.attestWithVka(id_a, bytes(flipped), inst_a, list(a.vka.words)), ("InvalidProof", [])),
            "attest without the VKA": (fn.attest(id_a, proof_a, inst_a), ("WrongVerifierKind", [id_a])),
            "zero VKA digest": (fn.registerReusableModel(address, bytes(32), bytes(32), bytes(32)), ("ZeroVkaDigest", [])),
        }
        for what, (call, expected) in cases.items():
            assert _revert(registry, call) == expected, what
        rejected = registry.attest(id_a, proof_b, inst_b, b.vka.words)
        assert (rejected.status, rejected.reason) == ("rejected", "WrongVka")
        ok = registry.attest(id_a, proof_a, inst_a, a.vka.words)
        assert ok.status == "attested", ok
        assert registry.attest(id_b, proof_b, inst_b, b.vka.words).status == "attested"
        assert registry.attest(id_a, proof_a, inst_a, a.vka.words).status == "already-attested"
        single_verifier = prepare(proof_dirs["A"])
        from vcompute.evm.onchain import ensure_verifier

        single_address, _, _ = ensure_verifier(w3, single_verifier.artifact)
        id_single = registry.register_model(single_address, bytes(32), bytes(32))
        assert _revert(registry, fn.attestWithVka(id_single, proof_a, inst_a, list(a.vka.words))) == ("WrongVerifierKind", [id_single])


def test_attest_through_the_reusable_verifier(fresh_proof_dir, cli):
    pd = fresh_proof_dir("A")
    with start_anvil() as chain:
        first = attest_proof_dir(pd, chain.url, reusable=True)
        assert first.status == "attested", first
        w3 = _w3(chain.url)
        model = Registry(w3, first.registry_address).model(first.model_id)
        expected = prepare(pd, reusable=True).vka.digest
        assert model["vka_digest"] == expected and model["verifier"] == first.verifier_address
        assert "0x" + bytes(w3.eth.get_code(first.verifier_address)).hex() == prepare(pd, reusable=True).reusable_artifact["deployed_bytecode"]
        again = cli("attest", pd, "--rpc-url", chain.url, "--reusable-verifier", "--json")
        assert again.returncode == 0, again.stderr[-800:]
        assert json.loads(again.stdout)["status"] == "already-attested"


def test_bench_gas_reports_both_verifiers(proof_dirs):
    from vcompute.bench.run import bench_gas

    gas = bench_gas(proof_dirs["A"], None)
    r = gas["reusable"]
    assert gas["valid"] is True and r["valid"] is True
    assert gas["deploy"] > r["deploy"] > 1_000_000, "the reusable contract is the smaller one for the MLP"
    assert 50_000 < r["register_vka"] < 1_000_000 and r["verify"] > gas["verify"] > 100_000
    assert r["calldata_bytes"] > gas["calldata_bytes"], "the VKA travels with every reusable verification"
