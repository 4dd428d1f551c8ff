"""A proof verified by its Halo2 verifier contract on a real local chain; tampered proofs rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vcompute.errors import UsageError
from vcompute.evm.chain import connect, start_anvil, start_hardhat, use_sender
from vcompute.evm.onchain import call_verifier, ensure_verifier, prepare, verify_on, verify_onchain
from vcompute.evm.verifier import decode_calldata, encode_verify_call


def _verifier(w3, proof_dir: Path) -> tuple[str, bytes]:
    """Deploy (or reuse) proof_dir's verifier on w3's chain; returns (address, its calldata)."""
    prep = prepare(proof_dir)
    address, _, _ = ensure_verifier(w3, prep.artifact)
    return address, prep.calldata


@pytest.fixture()
def w3(anvil):
    w3 = connect(anvil.url)
    use_sender(w3)
    return w3


def test_valid_proof_on_a_fresh_anvil_started_and_stopped_for_it(fresh_proof_dir):
    pd = fresh_proof_dir("A")
    result = verify_onchain(pd)
    assert result.valid, f"valid proof rejected on-chain: {result.reason}"
    assert result.chain_id == 31337 and result.reused_verifier is False
    assert 1_000_000 < result.deploy_gas < 10_000_000, f"deploy gas {result.deploy_gas}"
    assert 100_000 < result.verification_gas < 3_000_000, f"verification gas {result.verification_gas}"
    assert not (pd / "deployments.json").exists(), "verification must not write into the proof dir"
    assert result.outputs_fixed == json.loads((pd / "summary.json").read_text())["outputs_fixed"]
    with pytest.raises(UsageError, match="cannot reach"):
        connect(result.rpc_url, timeout=2)  # the Anvil it started is gone


def test_verifier_is_reused_on_the_same_chain_and_redeployed_after_a_restart(fresh_proof_dir, anvil):
    pd = fresh_proof_dir("A")
    first = verify_onchain(pd, anvil.url)
    second = verify_onchain(pd, anvil.url)
    assert first.valid and second.valid
    assert (first.reused_verifier, second.reused_verifier) == (False, True)
    assert second.verifier_address == first.verifier_address
    assert second.deploy_gas == first.deploy_gas, "a reused deployment reports the recorded deploy gas"
    with start_anvil() as restarted:  # same chain id, empty state: the record must not be trusted
        third = verify_onchain(pd, restarted.url)
    assert third.valid and third.reused_verifier is False, "deployed code vanished but was reused"


def test_private_key_sender(fresh_proof_dir, anvil):
    result = verify_onchain(fresh_proof_dir("A"), anvil.url, private_key=anvil.private_keys[3])
    assert result.valid, result.reason


def test_one_flipped_proof_byte_is_rejected(proof_dirs, w3):
    address, calldata = _verifier(w3, proof_dirs["A"])
    proof, instances = decode_calldata(calldata)
    for position in (0, len(proof) // 2, len(proof) - 1):
        tampered = bytearray(proof)
        tampered[position] ^= 0x01
        valid, reason, _ = call_verifier(w3, address, encode_verify_call(bytes(tampered), instances))
        assert not valid, f"proof with byte {position} flipped was accepted ({reason})"


def test_one_changed_instance_is_rejected(proof_dirs, w3):
    address, calldata = _verifier(w3, proof_dirs["A"])
    proof, instances = decode_calldata(calldata)
    for index in (0, len(instances) - 1):  # the first input and the last output
        changed = list(instances)
        changed[index] = (changed[index] + 1) % (2**256)
        valid, reason, _ = call_verifier(w3, address, encode_verify_call(proof, changed))
        assert not valid, f"instance {index} changed {instances[index]} -> {changed[index]} was accepted ({reason})"


def test_proof_of_model_a_is_rejected_by_model_b_verifier(proof_dirs, w3):
    address_a, calldata_a = _verifier(w3, proof_dirs["A"])
    address_b, calldata_b = _verifier(w3, proof_dirs["B"])
    assert address_a != address_b
    assert call_verifier(w3, address_b, calldata_b)[0], "model B's own proof must pass its verifier"
    valid, reason, _ = call_verifier(w3, address_b, calldata_a)
    assert not valid, f"model A's proof accepted by model B's verifier ({reason})"


def test_call_verifier_on_an_address_without_code_is_rejected(proof_dirs, w3, anvil):
    _, calldata = _verifier(w3, proof_dirs["A"])
    valid, reason, gas = call_verifier(w3, anvil.accounts[5], calldata)
    assert (valid, gas) == (False, None), reason


def test_valid_proof_on_a_hardhat_node(fresh_proof_dir):
    pd = fresh_proof_dir("A")
    with start_hardhat() as node:
        w3 = connect(node.url)
        use_sender(w3)
        result = verify_on(w3, node.url, prepare(pd))
    assert result.valid, f"hardhat node rejected a valid proof: {result.reason}"
    assert result.verification_gas and result.deploy_gas


def test_incomplete_proof_dir_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="missing proof.json, settings.json, vk.key"):
        verify_onchain(tmp_path)
    with pytest.raises(UsageError, match="not found"):
        verify_onchain(tmp_path / "nope")


def test_unreachable_rpc_is_exit_2(fresh_proof_dir):
    from vcompute.evm.chain import free_port

    with pytest.raises(UsageError) as info:
        verify_onchain(fresh_proof_dir("A"), f"http://127.0.0.1:{free_port()}")
    assert info.value.exit_code == 2 and "cannot reach a chain" in str(info.value)


# --- the CLI: `vcompute verify DIR --onchain` -----------------------------------------------------


def test_cli_verify_onchain_json_valid(fresh_proof_dir, anvil):
    from tests.evm.conftest import run_cli

    proc = run_cli("verify", str(fresh_proof_dir("A")), "--onchain", "--rpc-url", anvil.url, "--json")
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-800:]}"
    result = json.loads(proc.stdout)
    assert result["valid"] is True and result["verification_gas"] > 0 and result["deploy_gas"] > 0, result


def test_cli_verify_onchain_table_and_rejected_exit_1(fresh_proof_dir, proof_dirs, anvil):
    from tests.evm.conftest import run_cli, swap_proof

    pd = fresh_proof_dir("A")
    ok = run_cli("verify", str(pd), "--rpc-url", anvil.url)
    assert ok.returncode == 0, ok.stderr[-800:]
    for label in ("valid", "verifier address", "deploy gas", "verification gas"):
        assert label in ok.stdout, f"{label!r} missing from the table:\n{ok.stdout}"
    bad = run_cli("verify", str(swap_proof(pd, proof_dirs["B"])), "--onchain", "--rpc-url", anvil.url, "--json")
    assert bad.returncode == 1, f"model B's proof with model A's verifier: exit {bad.returncode}, {bad.stdout}{bad.stderr[-500:]}"
    assert json.loads(bad.stdout)["valid"] is False


def test_cli_verify_onchain_unreachable_chain_exit_2(fresh_proof_dir):
    from tests.evm.conftest import run_cli

    from vcompute.evm.chain import free_port

    url = f"http://127.0.0.1:{free_port()}"
    proc = run_cli("verify", str(fresh_proof_dir("A")), "--onchain", "--rpc-url", url)
    assert proc.returncode == 2, f"exit {proc.returncode}: {proc.stderr}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "cannot reach a chain" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) <= 2, f"expected one (wrapped) error line, got:\n{proc.stderr}"


def test_unfunded_private_key_is_one_clear_usage_error(fresh_proof_dir):
    with start_anvil() as fresh:  # a new chain: the verifier must be deployed, which costs gas
        with pytest.raises(UsageError, match="refused the request: Insufficient funds"):
            verify_onchain(fresh_proof_dir("A"), fresh.url, private_key="0x" + "11" * 32)
