"""The InferenceRegistry contract: deploy it, register models, attest proofs, look results up.

Why a registry on top of the verifier: `verifyProof` only answers yes or no to whoever calls it. The
registry makes the answer durable and public: it calls the model's verifier itself and, only if
the proof holds, records which model produced which public inputs and outputs (their keccak), who
submitted it and in which block, so anyone can later look the result up instead of re-verifying.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_abi import decode
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError

from vcompute.evm.chain import session
from vcompute.errors import ProofError, UsageError
from vcompute.evm.onchain import (
    ProofDir,
    code_matches,
    deploy,
    ensure_verifier,
    load_deployments,
    read_summary,
    record_deployment,
)
from vcompute.evm.solc import compile_file, contracts_dir
from vcompute.evm.verifier import build_verifier, decode_calldata, sha256_file

CONTRACT = "InferenceRegistry"


def registry_artifact() -> dict:
    """Compiled InferenceRegistry (abi, bytecode), from the solc cache after the first time."""
    artifact, _ = compile_file(contracts_dir() / f"{CONTRACT}.sol", CONTRACT)
    return artifact


def instances_hash(instances: list[int]) -> bytes:
    """keccak256(abi.encodePacked(uint256[])): the registry's digest of inputs and outputs."""
    return keccak(b"".join(int(x).to_bytes(32, "big") for x in instances))


def attestation_id(model_id: int, instances: list[int]) -> bytes:
    """keccak256(abi.encode(modelId, instancesHash)), as the contract computes it."""
    return keccak(model_id.to_bytes(32, "big") + instances_hash(instances))


def _error_selectors(abi: list) -> dict[bytes, tuple[str, list[str]]]:
    out = {}
    for item in abi:
        if item.get("type") == "error":
            types = [i["type"] for i in item["inputs"]]
            out[keccak(text=f"{item['name']}({','.join(types)})")[:4]] = (item["name"], types)
    return out


def describe_revert(abi: list, exc: ContractLogicError) -> tuple[str, list]:
    """(error name, args) of a custom-error revert, e.g. ("AlreadyAttested", [id])."""
    data = exc.data if isinstance(exc.data, str) else ""
    raw = bytes.fromhex(data.removeprefix("0x")) if data.startswith("0x") else b""
    known = _error_selectors(abi)
    if len(raw) >= 4 and raw[:4] in known:
        name, types = known[raw[:4]]
        values = decode(types, raw[4:])
        return name, [Web3.to_checksum_address(v) if t == "address" else v for t, v in zip(types, values)]
    return (exc.message or "reverted"), []


@dataclass
class AttestResult:
    """What `vcompute attest` reports. status: attested, already-attested or rejected."""

    status: str
    reason: str
    attestation_id: str
    model_id: int
    registry_address: str
    verifier_address: str
    instances_hash: str
    chain_id: int
    submitter: str | None = None
    block_number: int | None = None
    tx_hash: str | None = None
    gas_used: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the CLI's table."""
        rows = [
            ("status", self.status),
            ("reason", self.reason),
            ("attestation id", self.attestation_id),
            ("model id", str(self.model_id)),
            ("registry", self.registry_address),
            ("verifier", self.verifier_address),
            ("instances hash", self.instances_hash),
            ("chain id", str(self.chain_id)),
        ]
        optional = [("submitter", self.submitter), ("block", self.block_number), ("transaction", self.tx_hash)]
        rows += [(k, str(v)) for k, v in optional if v is not None]
        if self.gas_used is not None:
            rows.append(("gas used", f"{self.gas_used:,}"))
        return rows


class Registry:
    """A deployed InferenceRegistry, called from w3's default account."""

    def __init__(self, w3: Web3, address: str, abi: list | None = None):
        self.w3 = w3
        self.abi = abi or registry_artifact()["abi"]
        self.address = Web3.to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=self.abi)

    @classmethod
    def deploy(cls, w3: Web3) -> tuple["Registry", int]:
        """Deploy a new registry; returns (registry, deploy gas)."""
        art = registry_artifact()
        address, gas, _ = deploy(w3, art["abi"], art["bytecode"])
        return cls(w3, address, art["abi"]), gas

    def _transact(self, fn) -> dict:
        tx_hash = fn.transact()  # estimates gas first, so a revert raises here, before sending
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            raise ProofError(f"transaction {tx_hash.to_0x_hex()} failed")
        return receipt

    def register_model(self, verifier: str, vk_digest: bytes, onnx_hash: bytes) -> int:
        """Register a verifier; returns the new model id (from the ModelRegistered event)."""
        fn = self.contract.functions.registerModel(Web3.to_checksum_address(verifier), vk_digest, onnx_hash)
        try:
            receipt = self._transact(fn)
        except ContractLogicError as exc:
            name, args = describe_revert(self.abi, exc)
            raise ProofError(f"registerModel reverted: {name}{tuple(args) if args else ''}") from None
        events = self.contract.events.ModelRegistered().process_receipt(receipt)
        return int(events[0]["args"]["modelId"])

    def model(self, model_id: int) -> dict | None:
        """The registered model (verifier, vkDigest, onnxHash, registrant), or None if unknown."""
        try:
            m = self.contract.functions.getModel(model_id).call()
        except ContractLogicError:
            return None
        return {"verifier": m[0], "vk_digest": m[1], "onnx_hash": m[2], "registrant": m[3]}

    def lookup(self, att_id: bytes) -> dict | None:
        """The attestation with this id, or None when nothing is recorded under it."""
        if not self.contract.functions.isAttested(att_id).call():
            return None
        a = self.contract.functions.getAttestation(att_id).call()
        return {
            "model_id": a[0],
            "instances_hash": "0x" + bytes(a[1]).hex(),
            "proof_hash": "0x" + bytes(a[2]).hex(),
            "submitter": a[3],
            "block_number": a[4],
        }

    def attest(self, model_id: int, proof: bytes, instances: list[int]) -> AttestResult:
        """Submit a proof; a rejected or duplicate one comes back as a status, not an exception."""
        att_id = attestation_id(model_id, instances)
        base = {
            "attestation_id": "0x" + att_id.hex(),
            "model_id": model_id,
            "registry_address": self.address,
            "verifier_address": "",
            "instances_hash": "0x" + instances_hash(instances).hex(),
            "chain_id": int(self.w3.eth.chain_id),
        }
        model = self.model(model_id)
        if model is None:
            raise UsageError(f"model {model_id} is not registered in the registry at {self.address}")
        base["verifier_address"] = model["verifier"]
        try:
            receipt = self._transact(self.contract.functions.attest(model_id, proof, instances))
        except ContractLogicError as exc:
            name, _ = describe_revert(self.abi, exc)
            if name == "AlreadyAttested":
                return self._existing(att_id, base)
            return AttestResult(status="rejected", reason=name, **base)
        return AttestResult(
            status="attested",
            reason="proof valid; attestation recorded",
            submitter=receipt["from"],
            block_number=int(receipt["blockNumber"]),
            tx_hash=receipt["transactionHash"].to_0x_hex(),
            gas_used=int(receipt["gasUsed"]),
            **base,
        )

    def _existing(self, att_id: bytes, base: dict) -> AttestResult:
        record = self.lookup(att_id) or {}
        return AttestResult(
            status="already-attested",
            reason="AlreadyAttested: this model's result with these instances is already recorded",
            submitter=record.get("submitter"),
            block_number=record.get("block_number"),
            **base,
        )


# --- the `vcompute attest` flow -------------------------------------------------------------------


def ensure_registry(w3: Web3, root: Path, address: str | None = None) -> Registry:
    """The registry at `address`, else the one recorded for this chain, else a newly deployed one."""
    art = registry_artifact()
    chain_id = int(w3.eth.chain_id)
    if address:
        if not Web3.is_address(address):
            raise UsageError(f"--registry must be a 20-byte hex address, got {address!r}")
        if not code_matches(w3, address, art["deployed_bytecode"]):
            raise UsageError(f"no InferenceRegistry (this version) is deployed at {address}")
        return Registry(w3, address, art["abi"])
    entry = load_deployments(root).get(str(chain_id), {}).get("registry", {}).get(CONTRACT)
    if entry and code_matches(w3, entry["address"], art["deployed_bytecode"]):
        return Registry(w3, entry["address"], art["abi"])
    registry, gas = Registry.deploy(w3)
    record_deployment(root, chain_id, "registry", CONTRACT, {"address": registry.address, "deploy_gas": gas})
    return registry


def model_digests(pd: ProofDir) -> tuple[bytes, bytes]:
    """(vkDigest, onnxHash) to register: sha256 of vk.key and of the ONNX model.

    The ONNX hash is summary.json's model.sha256 (what `vcompute prove` records); without one, the
    model.onnx beside the proof, else the compiled circuit, which EZKL derives from the model."""
    recorded = read_summary(pd.root).get("model")
    if isinstance(recorded, dict) and isinstance(recorded.get("sha256"), str):
        onnx_hash = bytes.fromhex(recorded["sha256"])
    else:
        model = next(p for p in (pd.root / "model.onnx", pd.root / "model.compiled", pd.vk) if p.is_file())
        onnx_hash = bytes.fromhex(sha256_file(model))
    return bytes.fromhex(sha256_file(pd.vk)), onnx_hash


def ensure_model(registry: Registry, root: Path, verifier: str, vk_digest: bytes, onnx_hash: bytes) -> int:
    """Reuse the model id recorded for this verifier in this registry, or register it."""
    key = f"{registry.address}:{verifier}"
    chain_id = int(registry.w3.eth.chain_id)
    recorded = load_deployments(root).get(str(chain_id), {}).get("models", {}).get(key)
    if recorded:
        model = registry.model(int(recorded["model_id"]))
        if model and model["verifier"] == Web3.to_checksum_address(verifier):
            return int(recorded["model_id"])
    model_id = registry.register_model(verifier, vk_digest, onnx_hash)
    record_deployment(root, chain_id, "models", key, {"model_id": model_id})
    return model_id


def attest_proof_dir(
    proof_dir: Path,
    rpc_url: str | None = None,
    private_key: str | None = None,
    registry_address: str | None = None,
    srs: Path | None = None,
) -> AttestResult:
    """`vcompute attest DIR`: verifier and registry deployed or reused, model registered, proof attested."""
    pd = ProofDir.open(proof_dir, srs)
    with session(rpc_url, private_key) as (w3, rpc_url):
        summary = build_verifier(pd.root, pd.vk, pd.settings, pd.srs, pd.proof)
        artifact = json.loads(Path(summary["verifier_json"]).read_text())
        verifier, _, _ = ensure_verifier(w3, pd.root, artifact)
        registry = ensure_registry(w3, pd.root, registry_address)
        model_id = ensure_model(registry, pd.root, verifier, *model_digests(pd))
        proof, instances = decode_calldata(Path(summary["calldata"]).read_bytes())
        return registry.attest(model_id, proof, instances)
