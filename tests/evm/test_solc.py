"""The pinned solcjs compiles our contracts and EZKL's verifier, with a content-hash cache."""

from __future__ import annotations

import json
import pytest

from vcompute.errors import ProofError, UsageError
from vcompute.evm.solc import EIP170_LIMIT, compile_contract, compile_file, contracts_dir, solc_version
from vcompute.evm.verifier import check_code_size, decode_calldata, encode_verify_call



REGISTRY_SOL = contracts_dir() / "InferenceRegistry.sol"


def test_pinned_version_is_the_locked_one():
    lock = json.loads((contracts_dir() / "package-lock.json").read_text())
    locked = lock["packages"]["node_modules/solc"]["version"]
    assert solc_version().startswith(locked + "+"), f"solcjs says {solc_version()}, lock pins {locked}"


def test_registry_compiles_and_second_compile_is_cached(chain_cache):
    first, hit1 = compile_file(REGISTRY_SOL, "InferenceRegistry")
    second, hit2 = compile_file(REGISTRY_SOL, "InferenceRegistry")
    names = {item.get("name") for item in first["abi"]}
    for expected in ("registerModel", "attest", "getAttestation", "InvalidProof", "AlreadyAttested", "UnknownModel"):
        assert expected in names, f"{expected} missing from the registry ABI: {sorted(n for n in names if n)}"
    assert 0 < first["deployed_size"] < EIP170_LIMIT
    assert hit2 is True, "the second compile of the same source should come from the cache"
    assert second == first, "a cached compile must return the same artifact"


def test_compile_error_is_one_clear_proof_error(chain_cache):
    with pytest.raises(ProofError, match=r"^Solidity compilation failed: Broken.sol:1: DeclarationError: Undeclared identifier\.$"):
        compile_contract("contract C { function f() public { x = 1; } }", "C", filename="Broken.sol")


def test_missing_contract_name_says_what_was_found(chain_cache):
    with pytest.raises(ProofError, match=r"'Nope' not found.*InferenceRegistry"):
        compile_file(REGISTRY_SOL, "Nope")


def test_without_npm_ci_the_error_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("VCOMPUTE_CONTRACTS", str(tmp_path))
    with pytest.raises(UsageError, match="npm ci"):
        compile_contract("contract C {}", "C")


def test_eip170_limit_is_checked_at_the_boundary():
    check_code_size(EIP170_LIMIT)  # exactly at the limit deploys
    with pytest.raises(UsageError, match="EIP-170.*24,576"):
        check_code_size(EIP170_LIMIT + 1)


def test_verifier_is_built_from_the_vk_cached_and_written_as_a_hardhat_artifact(fresh_proof_dir, tmp_path):
    from vcompute.evm.verifier import calldata, verifier_artifact, write_outputs

    pd = fresh_proof_dir("A")
    first = verifier_artifact(pd / "vk.key", pd / "settings.json", pd / "kzg.verifier.srs")
    again = verifier_artifact(pd / "vk.key", pd / "settings.json", pd / "kzg.verifier.srs")
    assert (first["cached"], again["cached"]) == (False, True) or again["cached"], "second build must hit the cache"
    assert first["deployed_bytecode"] == again["deployed_bytecode"]
    assert 1_000 < first["deployed_size"] <= EIP170_LIMIT, f"deployed size {first['deployed_size']}"
    out = tmp_path / "verifier-out"
    data = calldata(pd / "proof.json")
    write_outputs(out, first, data)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["Verifier.json", "Verifier.sol", "calldata.bin", "calldata.hex"], f"unexpected files (temp left?): {files}"
    art = json.loads((out / "Verifier.json").read_text())
    assert art["_format"] == "hh-sol-artifact-1" and art["contractName"] == "Halo2Verifier"
    assert art["deployedBytecode"] == first["deployed_bytecode"] and any(i.get("name") == "verifyProof" for i in art["abi"])
    proof, instances = decode_calldata((out / "calldata.bin").read_bytes())
    assert len(instances) == 12, f"8 inputs + 4 outputs expected as instances, got {len(instances)}"
    assert (out / "calldata.hex").read_text().strip() == "0x" + data.hex()
    assert data.startswith(encode_verify_call(proof, instances))
