"""The InferenceRegistry contract: deploy it, register models, attest proofs, look results up.

Why a registry on top of the verifier: `verifyProof` only answers yes or no to whoever calls it. The
registry makes the answer durable and public: it calls the model's verifier itself and, only if
the proof holds, records which model produced which public inputs and outputs (their keccak), who
submitted it and in which block, so anyone can later look the result up instead of re-verifying.

A model verified by EZKL's reusable verifier is registered with its VKA digest and attested with
``attestWithVka``: the registry passes the VKA to the verifier and requires it to return that
digest, since the reusable verifier accepts a proof for any VKA registered with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_abi import decode
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError

from vcompute.errors import ProofError, UsageError
from vcompute.evm.chain import session
from vcompute.evm.onchain import call_verifier, code_matches, deploy, ensure_verifier, prepare, record_deployment, recorded, verify_on
from vcompute.evm.solc import compile_file, contracts_dir
from vcompute.evm.verifier import decode_calldata

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
        return int(events[0]["args"]["modelId"]) if events else self.model_id_of(verifier, vk_digest, onnx_hash)

    def model(self, model_id: int) -> dict | None:
        """The registered model (verifier, vkDigest, onnxHash, registrant), or None if unknown."""
        try:
            m = self.contract.functions.getModel(model_id).call()
        except ContractLogicError:
            return None
        return {"verifier": m[0], "code_hash": m[1], "vk_digest": m[2], "onnx_hash": m[3], "registrant": m[4], "vka_digest": m[5]}

    def model_id_of(self, verifier: str, vk_digest: bytes, onnx_hash: bytes) -> int:
        """The id this (verifier, vk digest, ONNX hash) is registered under, or 0."""
        return int(self.contract.functions.modelIdOf(Web3.to_checksum_address(verifier), vk_digest, onnx_hash).call())

    def register_reusable_model(self, verifier: str, vka_digest: bytes, vk_digest: bytes, onnx_hash: bytes) -> int:
        """Register a model of the reusable verifier at ``verifier`` with its VKA digest; returns the model id."""
        fn = self.contract.functions.registerReusableModel(Web3.to_checksum_address(verifier), vka_digest, vk_digest, onnx_hash)
        try:
            receipt = self._transact(fn)
        except ContractLogicError as exc:
            name, args = describe_revert(self.abi, exc)
            raise ProofError(f"registerReusableModel reverted: {name}{tuple(args) if args else ''}") from None
        events = self.contract.events.ReusableModelRegistered().process_receipt(receipt)
        if events:
            return int(events[0]["args"]["modelId"])
        return self.reusable_model_id_of(verifier, vka_digest, vk_digest, onnx_hash)

    def reusable_model_id_of(self, verifier: str, vka_digest: bytes, vk_digest: bytes, onnx_hash: bytes) -> int:
        """The id this (reusable verifier, VKA digest, vk digest, ONNX hash) is registered under, or 0."""
        fn = self.contract.functions.reusableModelIdOf(Web3.to_checksum_address(verifier), vka_digest, vk_digest, onnx_hash)
        return int(fn.call())

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

    def attest(self, model_id: int, proof: bytes, instances: list[int], vka: list[bytes] | tuple[bytes, ...] | None = None) -> AttestResult:
        """Submit a proof; a rejected or duplicate one comes back as a status, not an exception.

        ``vka``: the model's VKA words, for a model of the reusable verifier (``attestWithVka``)."""
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
        if vka is None:
            fn = self.contract.functions.attest(model_id, proof, instances)
        else:
            fn = self.contract.functions.attestWithVka(model_id, proof, instances, list(vka))
        try:
            receipt = self._transact(fn)
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

    def attest_batch(self, model_id: int, proofs: list[bytes], instances: list[list[int]]) -> dict:
        """``attestBatch``: several proofs of one model in one transaction; the receipt (reverts raise ProofError)."""
        fn = self.contract.functions.attestBatch(model_id, proofs, instances)
        try:
            return self._transact(fn)
        except ContractLogicError as exc:
            name, args = describe_revert(self.abi, exc)
            raise ProofError(f"attestBatch reverted: {name}{tuple(args) if args else ''}") from None

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


def ensure_registry(w3: Web3, address: str | None = None) -> Registry:
    """The registry at ``address``, else the one recorded for this chain, else a newly deployed one."""
    art = registry_artifact()
    if address:
        if not Web3.is_address(address):
            raise UsageError(f"--registry must be a 20-byte hex address, got {address!r}")
        if not code_matches(w3, address, art["deployed_bytecode"]):
            raise UsageError(f"no InferenceRegistry (this version) is deployed at {address}")
        return Registry(w3, address, art["abi"])
    entry = recorded(w3, "registry", CONTRACT)
    if entry and code_matches(w3, entry["address"], art["deployed_bytecode"]):
        return Registry(w3, entry["address"], art["abi"])
    registry, gas = Registry.deploy(w3)
    record_deployment(w3, "registry", CONTRACT, {"address": registry.address, "deploy_gas": gas})
    return registry


def ensure_model(registry: Registry, verifier: str, vk_digest: bytes, onnx_hash: bytes, vka_digest: bytes | None = None) -> int:
    """The model id of (verifier, vk digest, ONNX hash) in this registry, registered if new.

    ``vka_digest``: a model of the reusable verifier, registered with its VKA digest. A recorded id
    is used only if the registry says it is bound to this verifier, with its code (and this VKA)."""
    if vka_digest is None:
        model_id = registry.model_id_of(verifier, vk_digest, onnx_hash)
        if model_id == 0:
            model_id = registry.register_model(verifier, vk_digest, onnx_hash)
    else:
        model_id = registry.reusable_model_id_of(verifier, vka_digest, vk_digest, onnx_hash)
        if model_id == 0:
            model_id = registry.register_reusable_model(verifier, vka_digest, vk_digest, onnx_hash)
    model = registry.model(model_id)
    code_hash = bytes(registry.w3.eth.get_code(Web3.to_checksum_address(verifier)))
    if (
        model is None
        or model["verifier"] != Web3.to_checksum_address(verifier)
        or bytes(model["code_hash"]) != keccak(code_hash)
        or bytes(model["vk_digest"]) != vk_digest
        or bytes(model["vka_digest"]) != (vka_digest or bytes(32))
    ):
        raise ProofError(f"model {model_id} in the registry is not bound to this verifier: refusing to attest")
    return model_id


def attest_proof_dir(
    proof_dir: Path | str,
    rpc_url: str | None = None,
    private_key: str | None = None,
    registry_address: str | None = None,
    srs: Path | str | None = None,
    reusable: bool = False,
) -> AttestResult:
    """``vcompute attest DIR``: verify locally (model bound to the vk), then on-chain, then record.

    Order matters: the proof is checked on the chain before anything is registered, so a rejected
    proof leaves no trace; the ONNX hash recorded is the one recomputed from model.onnx. Through
    the reusable verifier (and the VKA generated here) when the single verifier would exceed
    EIP-170, or when ``reusable`` asks for it."""
    from vcompute.zk.verify import verify

    local = verify(Path(proof_dir), Path(srs) if srs else None, require_model=True)
    prep = prepare(Path(proof_dir), Path(srs) if srs else None, reusable)
    vk_digest = bytes.fromhex(local.vk_sha256)
    onnx_hash = bytes.fromhex(local.model_sha256 or "")
    proof, instances = decode_calldata(prep.calldata)
    with session(rpc_url, private_key) as (w3, rpc_url):
        registry = ensure_registry(w3, registry_address)
        check = verify_on(w3, rpc_url, prep)  # deploys or reuses the verifier (and registers the VKA)
        if not check.valid:
            return AttestResult(
                status="rejected", reason=check.reason, attestation_id="0x" + bytes(32).hex(), model_id=0,
                registry_address=registry.address, verifier_address=check.verifier_address,
                instances_hash="0x" + instances_hash(instances).hex(), chain_id=int(w3.eth.chain_id),
            )
        vka = prep.vka if prep.is_reusable else None
        model_id = ensure_model(registry, check.verifier_address, vk_digest, onnx_hash, vka.digest if vka else None)
        return registry.attest(model_id, proof, instances, vka.words if vka else None)


# --- a batch dir (`vcompute attest DIR` where DIR holds batch.json) --------------------------------

#: proofs per attestBatch transaction (about 0.66 M gas each for the MLP, 10.5 M for 16: well under a 30 M block)
BATCH_CHUNK = 16


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def attest_batch_dir(
    folder: Path | str,
    rpc_url: str | None = None,
    private_key: str | None = None,
    registry_address: str | None = None,
    srs: Path | str | None = None,
    workers: int | None = None,
    chunk: int = BATCH_CHUNK,
) -> dict:
    """``vcompute attest DIR`` on a batch dir: every proof verified locally (in parallel, model
    bound), then each on the chain (eth_call), then recorded with ``attestBatch``, ``chunk`` at a time.
    Proofs whose single verifier would not fit EIP-170 go through EZKL's reusable verifier, one
    ``attestWithVka`` each (attestBatch takes single-model verifiers only).

    A proof rejected anywhere is reported and left out; a result already recorded (earlier, or
    the same result twice in this batch) is reported as such and not sent again."""
    from vcompute.zk.batch import verify_batch

    folder = Path(folder)
    srs_path = Path(srs) if srs else None
    local = verify_batch(folder, srs_path, workers, require_model=True)
    rows: list[dict] = []
    groups: dict[str, dict] = {}
    reusable: list[tuple[dict, Any]] = []  # proofs whose verifier needs EZKL's reusable verifier
    for r in local["proofs"]:
        if r["result"] == "not proven":
            rows.append({"name": r["name"], "status": "skipped", "reason": r["reason"]})
        elif r["result"] == "invalid":
            rows.append({"name": r["name"], "status": "rejected", "reason": f"local verification: {r['reason']}"})
        else:
            prep = prepare(folder / r["name"], srs_path)
            if prep.is_reusable:
                reusable.append((r, prep))
                continue
            proof, instances = decode_calldata(prep.calldata)
            group = groups.setdefault(prep.artifact["key"], {"artifact": prep.artifact, "vk": r["vk_sha256"],
                                                             "onnx": r["model_sha256"], "items": []})
            group["items"].append({"name": r["name"], "calldata": prep.calldata, "proof": proof, "instances": instances})
    gas_total, transactions, attested = 0, 0, 0
    with session(rpc_url, private_key) as (w3, rpc_url):
        registry = ensure_registry(w3, registry_address)
        model_ids = []
        for r, prep in reusable:  # one attestWithVka each: attestBatch takes single-model verifiers only
            check = verify_on(w3, rpc_url, prep)
            proof, instances = decode_calldata(prep.calldata)
            if not check.valid:
                rows.append({"name": r["name"], "status": "rejected", "reason": f"on-chain: {check.reason}"})
                continue
            model_id = ensure_model(registry, check.verifier_address, bytes.fromhex(r["vk_sha256"]),
                                    bytes.fromhex(r["model_sha256"]), prep.vka.digest)
            if model_id not in model_ids:
                model_ids.append(model_id)
            one = registry.attest(model_id, proof, instances, prep.vka.words)
            rows.append({"name": r["name"], **one.to_dict()})
            if one.status == "attested" and one.gas_used:
                gas_total, transactions, attested = gas_total + one.gas_used, transactions + 1, attested + 1
        for group in groups.values():
            verifier, _, _ = ensure_verifier(w3, group["artifact"])
            model_id = ensure_model(registry, verifier, bytes.fromhex(group["vk"]), bytes.fromhex(group["onnx"]))
            model_ids.append(model_id)
            todo, seen = [], {}
            for item in group["items"]:
                valid, reason, _ = call_verifier(w3, verifier, item["calldata"])
                att = attestation_id(model_id, item["instances"])
                row = {"name": item["name"], "attestation_id": "0x" + att.hex(), "model_id": model_id, "verifier_address": verifier}
                if not valid:
                    rows.append({**row, "status": "rejected", "reason": f"on-chain: {reason}"})
                elif att in seen:
                    rows.append({**row, "status": "already-attested", "reason": f"the same result as {seen[att]} (same instances)"})
                elif registry.contract.functions.isAttested(att).call():
                    rows.append({**row, "status": "already-attested", "reason": "already recorded"})
                else:
                    seen[att] = item["name"]
                    todo.append((row, item))
            for part in _chunks(todo, max(1, chunk)):
                receipt = registry.attest_batch(model_id, [it["proof"] for _, it in part], [it["instances"] for _, it in part])
                gas = int(receipt["gasUsed"])
                gas_total, transactions, attested = gas_total + gas, transactions + 1, attested + len(part)
                for row, _ in part:
                    rows.append({**row, "status": "attested", "reason": "proof valid; attestation recorded",
                                 "tx_hash": receipt["transactionHash"].to_0x_hex(), "block_number": int(receipt["blockNumber"]),
                                 "gas_share": gas // len(part), "submitter": receipt["from"]})
        chain_id = int(w3.eth.chain_id)
    rows.sort(key=lambda r: r["name"])
    counts = {k: sum(1 for r in rows if r["status"] == k) for k in ("attested", "already-attested", "rejected", "skipped")}
    return {
        "dir": str(folder), "registry_address": registry.address, "chain_id": chain_id,
        "model_id": model_ids[0] if len(model_ids) == 1 else model_ids, "counts": counts,
        "gas": {"transactions": transactions, "total": gas_total,
                "per_attestation": gas_total / attested if attested else 0} if transactions else None,
        "warnings": local["warnings"], "proofs": rows,
    }
