"""A proof with a private input and a hashed output, through the chain.

Its only public instance is the Poseidon hash of the outputs. Both verifiers (the single-model
one and EZKL's reusable one with this model's VKA) must accept it and reject a changed hash,
nothing may be reported as a proven output, and the registry records the keccak of the proof's
own instances. Real EZKL proof, pinned solc, one Anvil on loopback started and stopped here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vcompute.evm import reusable as rv
from vcompute.evm.chain import connect, start_anvil, use_sender
from vcompute.evm.onchain import call_reusable_verifier, call_verifier, prepare, verify_onchain
from vcompute.evm.registry import attest_proof_dir, instances_hash
from vcompute.evm.verifier import decode_calldata, encode_verify_call

CIRCUITS = Path(__file__).resolve().parents[2] / "circuits"


@pytest.fixture(scope="module")
def hashed_dir(tmp_path_factory, vcompute_cache) -> Path:
    """The bundled MLP proved with input private and output hashed (EVM artifacts included)."""
    from vcompute.zk import circuit, pipeline

    out = tmp_path_factory.mktemp("hashed") / "proof"
    options = circuit.CircuitOptions(input_visibility="private", output_visibility="hashed")
    pipeline.prove(pipeline.ProveRequest(
        model=CIRCUITS / "mlp" / "model.onnx", input=CIRCUITS / "mlp" / "input.json", out=out, options=options,
    ))
    return out


def test_hashed_output_proof_verifies_on_both_verifiers_and_attests(hashed_dir: Path) -> None:
    single, reusable = prepare(hashed_dir), prepare(hashed_dir, reusable=True)
    proof, instances = decode_calldata(single.calldata)
    assert len(instances) == 1, f"private input + hashed output should leave one public instance, not {len(instances)}"
    assert single.outputs is None and single.outputs_fixed is None, "a hashed output must not be reported as proven"
    assert rv.decode_verify_calldata(reusable.reusable_calldata)[:2] == (proof, instances)

    with start_anvil() as chain:
        w3 = connect(chain.url)
        use_sender(w3)
        for kind in (False, True):
            result = verify_onchain(hashed_dir, chain.url, reusable=kind)
            assert result.valid, f"{result.verifier_kind} verifier rejected a valid hashed-output proof: {result.reason}"
            assert result.outputs is None and result.outputs_fixed is None

        changed = [(instances[0] + 1) % (2**256)]
        one = verify_onchain(hashed_dir, chain.url)
        valid, reason, _ = call_verifier(w3, one.verifier_address, encode_verify_call(proof, changed))
        assert not valid, f"single verifier accepted a changed output hash ({reason})"
        many = verify_onchain(hashed_dir, chain.url, reusable=True)
        words = reusable.vka.words
        valid, reason, _ = call_reusable_verifier(
            w3, many.verifier_address, rv.verify_calldata(proof, changed, words), reusable.vka.digest)
        assert not valid, f"reusable verifier accepted a changed output hash ({reason})"

        for kind in (False, True):
            attested = attest_proof_dir(hashed_dir, chain.url, reusable=kind)
            assert attested.status == "attested", attested.reason
            assert attested.instances_hash == "0x" + instances_hash(instances).hex(), "the record must hash the proof's own instances"
