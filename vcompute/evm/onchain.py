"""Verify a proof dir's proof with its Halo2 verifier contract on an EVM chain.

Trust: the contract deployed (or reused) is generated and compiled here from ``vk.key`` and
settings.json (:func:`vcompute.evm.verifier.verifier_artifact`); a reused deployment counts only
while the code at its address is exactly that contract's runtime bytecode. The calldata is
encoded from proof.json. The outputs reported are decoded from the proof's instances, as in
local verification. Nothing is written into the proof dir: deployments are recorded in the cache.

Which contract: the circuit's own ``Halo2Verifier``, unless its compiled size (recomputed here,
never read from the dir) exceeds EIP-170 or the caller asks for EZKL's reusable verifier. Then
``Halo2VerifierReusable`` is deployed once per chain, the model's VKA (generated here from vk.key,
settings and the SRS) is registered once, and the proof is valid only if the contract accepts it
*and* returns this VKA's digest (:mod:`vcompute.evm.reusable`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from filelock import FileLock
from web3 import Web3
from web3.exceptions import ContractLogicError

from vcompute.cache import cache_root
from vcompute.errors import ProofError
from vcompute.evm import reusable as rv
from vcompute.evm.chain import session
from vcompute.evm.verifier import calldata, decode_calldata, verifier_artifact
from vcompute.zk.proofdir import ProofDir, check_consistent, decode_instances, proof_bytes
from vcompute.zk.verify import choose_srs


@dataclass
class OnchainResult:
    """What ``verify --onchain`` reports."""

    valid: bool
    reason: str
    verifier_address: str
    chain_id: int
    rpc_url: str
    deploy_gas: int | None
    reused_verifier: bool
    verification_gas: int | None
    deployed_size: int
    calldata_size: int
    outputs: list[list[float]] | None = None
    outputs_fixed: list[list[int]] | None = None
    cast_call: str = ""
    warnings: list[str] = field(default_factory=list)
    #: "single" (the circuit's Halo2Verifier) or "reusable" (Halo2VerifierReusable + the model's VKA)
    verifier_kind: str = rv.SINGLE
    verifier_reason: str = ""
    #: the single-model verifier's compiled size (EIP-170 decides the kind)
    single_deployed_size: int | None = None
    #: reusable only: the VKA's digest (the returned one must equal it), its registration gas
    vka_digest: str | None = None
    register_gas: int | None = None
    reused_registration: bool | None = None

    @property
    def verify_gas(self) -> int | None:
        """Short alias of verification_gas (vcompute bench reads this name)."""
        return self.verification_gas

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the CLI's table."""
        deploy = "n/a" if self.deploy_gas is None else f"{self.deploy_gas:,}"
        rows = [
            ("result", "valid" if self.valid else "rejected"),
            ("reason", self.reason),
            ("verifier", f"{self.verifier_kind}: {self.verifier_reason}" if self.verifier_reason else self.verifier_kind),
            ("verifier address", self.verifier_address),
            ("deploy gas", deploy + (" (reused deployment)" if self.reused_verifier else "")),
        ]
        if self.verifier_kind == rv.REUSABLE:
            register = "n/a" if self.register_gas is None else f"{self.register_gas:,}"
            rows += [
                ("VKA digest", str(self.vka_digest)),
                ("VKA registration gas", register + (" (registered before)" if self.reused_registration else "")),
            ]
        rows += [
            ("verification gas", "n/a" if self.verification_gas is None else f"{self.verification_gas:,}"),
            ("verifier size", f"{self.deployed_size:,} bytes deployed (EIP-170 limit 24,576)"),
            ("chain", f"id {self.chain_id} at {self.rpc_url}"),
        ]
        if self.valid and self.outputs is not None:
            rows.append(("outputs (from the proof)", json.dumps(self.outputs)))
        rows.append(("same check with cast", self.cast_call))
        return rows


# --- deployments, recorded in the cache -------------------------------------------------------------


def _deployments_path() -> Path:
    return cache_root() / "deployments.json"


def _chain_key(w3: Web3) -> str:
    """A chain instance: its id and genesis hash (every fresh Anvil is 31337, with its own genesis)."""
    genesis = w3.eth.get_block(0)["hash"]
    return f"{int(w3.eth.chain_id)}:{bytes(genesis).hex()}"


def load_deployments() -> dict[str, Any]:
    """{chain key: {section: {key: entry}}}; a damaged file counts as empty (addresses are re-checked anyway)."""
    try:
        data = json.loads(_deployments_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recorded(w3: Web3, section: str, key: str) -> dict[str, Any] | None:
    entry = load_deployments().get(_chain_key(w3), {}).get(section, {}).get(key)
    return entry if isinstance(entry, dict) else None


def record_deployment(w3: Web3, section: str, key: str, entry: dict[str, Any]) -> None:
    """Add one entry under chain / section / key, under a file lock, written atomically."""
    from vcompute.artifacts import write_json

    path = _deployments_path()
    with FileLock(str(path) + ".lock"):
        data = load_deployments()
        data.setdefault(_chain_key(w3), {}).setdefault(section, {})[key] = entry
        write_json(path, data)


def code_matches(w3: Web3, address: str, deployed_bytecode: str) -> bool:
    """True when ``address`` holds exactly this runtime code (not just any code: Anvil reuses addresses)."""
    code = bytes(w3.eth.get_code(Web3.to_checksum_address(address)))
    return code == bytes.fromhex(deployed_bytecode.removeprefix("0x"))


# --- deploying and calling ----------------------------------------------------------------------


def deploy(w3: Web3, abi: list, bytecode: str, *args: Any) -> tuple[str, int, str]:
    """Deploy a contract from w3's default account; returns (address, gas used, tx hash)."""
    contract = w3.eth.contract(abi=abi, bytecode=bytecode)
    try:
        tx_hash = contract.constructor(*args).transact()
    except ContractLogicError as exc:
        raise ProofError(f"deployment reverted: {exc}") from None
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise ProofError(f"deployment failed in transaction {tx_hash.to_0x_hex()}")
    return receipt["contractAddress"], int(receipt["gasUsed"]), tx_hash.to_0x_hex()


def _ensure_deployed(w3: Web3, section: str, key: str, artifact: dict[str, Any]) -> tuple[str, int | None, bool]:
    entry = recorded(w3, section, key)
    if entry and code_matches(w3, entry["address"], artifact["deployed_bytecode"]):
        return entry["address"], entry.get("deploy_gas"), True
    address, gas, tx = deploy(w3, artifact["abi"], artifact["bytecode"])
    record_deployment(w3, section, key, {"address": address, "deploy_gas": gas, "tx": tx})
    return address, gas, False


def ensure_verifier(w3: Web3, artifact: dict[str, Any]) -> tuple[str, int | None, bool]:
    """Reuse the recorded verifier for this artifact on this chain, or deploy it; (address, gas, reused)."""
    return _ensure_deployed(w3, "verifiers", artifact["key"], artifact)


def ensure_reusable_verifier(w3: Web3, artifact: dict[str, Any]) -> tuple[str, int | None, bool]:
    """The chain's Halo2VerifierReusable with exactly this runtime code, deployed if there is none.

    Recorded by the hash of its runtime code, not by model: every model whose reusable verifier
    compiles to the same bytes shares one deployment (address, gas, reused)."""
    key = sha256(bytes.fromhex(artifact["deployed_bytecode"].removeprefix("0x"))).hexdigest()
    return _ensure_deployed(w3, "reusable_verifiers", key, artifact)


def vka_registered(w3: Web3, address: str, digest: bytes) -> bool:
    """Whether the reusable verifier at ``address`` has this VKA digest registered (its storage says so)."""
    value = bytes(w3.eth.get_storage_at(Web3.to_checksum_address(address), rv.registration_slot(digest)))
    return int.from_bytes(value, "big") != 0


def ensure_vka(w3: Web3, address: str, vka: rv.Vka) -> tuple[int | None, bool]:
    """Register the model's VKA with the reusable verifier at ``address`` unless the chain already
    has it; (registration gas, registered before). The chain's storage decides, the cache only
    remembers the gas. ``registerVka`` is permissionless and idempotent, so a race is harmless."""
    key = f"{Web3.to_checksum_address(address)}:{vka.digest_hex}"
    if vka_registered(w3, address, vka.digest):
        entry = recorded(w3, "vkas", key)
        return (entry.get("register_gas") if entry else None), True
    tx = {"from": w3.eth.default_account, "to": Web3.to_checksum_address(address), "data": rv.register_calldata(vka.words)}
    try:
        tx_hash = w3.eth.send_transaction(tx)
    except ContractLogicError as exc:
        raise ProofError(f"registerVka reverted: {exc}") from None
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1 or not vka_registered(w3, address, vka.digest):
        raise ProofError(f"registering the VKA failed in transaction {tx_hash.to_0x_hex()}")
    gas = int(receipt["gasUsed"])
    record_deployment(w3, "vkas", key, {"register_gas": gas, "tx": tx_hash.to_0x_hex(), "words": len(vka.words)})
    return gas, False


def _eth_call(w3: Web3, address: str, data: bytes) -> tuple[dict[str, Any], bytes | None, str]:
    """eth_call ``data`` on ``address``: (the tx, its return data or None on a revert, why it reverted)."""
    tx = {"to": Web3.to_checksum_address(address), "data": data, "from": w3.eth.default_account}
    try:
        return tx, bytes(w3.eth.call(tx)), ""
    except ContractLogicError as exc:
        detail = exc.message if getattr(exc, "message", None) else str(exc)
        return tx, None, f"verifyProof reverted ({detail})"


def call_verifier(w3: Web3, address: str, data: bytes) -> tuple[bool, str, int | None]:
    """eth_call verifyProof; (valid, reason, gas a transaction would use). Revert or false = rejected."""
    tx, out, reverted = _eth_call(w3, address, data)
    if out is None:
        return False, reverted, None
    if len(out) != 32 or int.from_bytes(out, "big") != 1:
        return False, f"verifyProof returned {'false' if out == bytes(32) else '0x' + out.hex()}", None
    return True, "verifyProof returned true", int(w3.eth.estimate_gas(tx))


def call_reusable_verifier(w3: Web3, address: str, data: bytes, expected_digest: bytes) -> tuple[bool, str, int | None]:
    """eth_call the reusable verifyProof; valid only if it returns success *and* ``expected_digest``.

    The contract accepts a proof for any registered VKA: a digest other than this model's means
    the call verified some other model's proof, which is a rejection here."""
    tx, out, reverted = _eth_call(w3, address, data)
    if out is None:
        return False, reverted, None
    ret = rv.decode_return(out)
    if ret is None or ret.success != 1:
        return False, f"verifyProof returned {'0x' + out[:96].hex() if out else 'nothing'}, not success", None
    if ret.digest != expected_digest:
        return False, f"verifyProof accepted it for VKA digest 0x{ret.digest.hex()}, not this model's 0x{expected_digest.hex()}", None
    return True, "verifyProof returned success and this model's VKA digest", int(w3.eth.estimate_gas(tx))


def cast_call_line(address: str, rpc_url: str, data: bytes, vka_digest: str | None = None) -> str:
    """The equivalent Foundry command, for a user who wants to check with their own tools."""
    if vka_digest:
        return (f"cast call {address} 0x{data.hex()[:16]}… --rpc-url {rpc_url}  (full calldata: {rv.CALLDATA_HEX_NAME};"
                f" valid when it prints 0x…01 followed by the VKA digest {vka_digest})")
    return f"cast call {address} 0x{data.hex()[:16]}… --rpc-url {rpc_url}  (full calldata: calldata.hex; prints 0x…01 when valid)"


@dataclass
class Prepared:
    """A proof dir read and checked for the chain: the contract to use and the call to make."""

    proof_dir: ProofDir
    artifact: dict[str, Any]
    calldata: bytes
    outputs: list[list[float]] | None
    outputs_fixed: list[list[int]] | None
    kind: str = rv.SINGLE
    reason: str = ""
    #: reusable only: the Halo2VerifierReusable artifact, the model's VKA and the verifyProof calldata
    reusable_artifact: dict[str, Any] | None = None
    vka: rv.Vka | None = None
    reusable_calldata: bytes | None = None

    @property
    def is_reusable(self) -> bool:
        return self.kind == rv.REUSABLE


def prepare(proof_dir: Path, srs: Path | None = None, reusable: bool = False) -> Prepared:
    """Open the dir, decode its claims from the proof, and build the verifier from its vk and settings.

    The kind of verifier is decided from the single verifier compiled here (EIP-170) and
    ``reusable``; for the reusable one the VKA is generated here too."""
    pd = ProofDir.open(proof_dir)
    choice = choose_srs(pd, srs)
    proof_bytes(pd.proof)
    claims = decode_instances(pd.proof, pd.layout)
    check_consistent(pd, claims)
    artifact = verifier_artifact(pd.vk_path, pd.settings_path, choice.path)
    data = calldata(pd.proof_path)
    prep = Prepared(pd, artifact, data, claims.outputs, claims.outputs_fixed)
    prep.kind, prep.reason = rv.choose(artifact, reusable)
    if prep.is_reusable:
        prep.reusable_artifact = rv.artifact(pd.vk_path, pd.settings_path, choice.path)
        prep.vka = rv.vka(pd.vk_path, pd.settings_path, choice.path)
        prep.reusable_calldata = rv.verify_calldata(*decode_calldata(data), prep.vka.words)
    return prep


def verify_on(w3: Web3, rpc_url: str, prep: Prepared) -> OnchainResult:
    """Deploy (or reuse) the verifier on w3's chain and check the proof there.

    Reusable: deploy (or reuse) Halo2VerifierReusable, register the VKA unless the chain has it,
    and require the returned digest to be this VKA's."""
    register_gas = reused_registration = vka_digest = None
    if prep.is_reusable:
        assert prep.reusable_artifact is not None and prep.vka is not None and prep.reusable_calldata is not None
        address, deploy_gas, reused = ensure_reusable_verifier(w3, prep.reusable_artifact)
        register_gas, reused_registration = ensure_vka(w3, address, prep.vka)
        valid, reason, gas = call_reusable_verifier(w3, address, prep.reusable_calldata, prep.vka.digest)
        data, deployed, vka_digest = prep.reusable_calldata, prep.reusable_artifact["deployed_size"], prep.vka.digest_hex
    else:
        address, deploy_gas, reused = ensure_verifier(w3, prep.artifact)
        valid, reason, gas = call_verifier(w3, address, prep.calldata)
        data, deployed = prep.calldata, prep.artifact["deployed_size"]
    return OnchainResult(
        valid=valid,
        reason=reason,
        verifier_address=address,
        chain_id=int(w3.eth.chain_id),
        rpc_url=rpc_url,
        deploy_gas=deploy_gas,
        reused_verifier=reused,
        verification_gas=gas,
        deployed_size=deployed,
        calldata_size=len(data),
        outputs=prep.outputs if valid else None,
        outputs_fixed=prep.outputs_fixed if valid else None,
        cast_call=cast_call_line(address, rpc_url, data, vka_digest),
        verifier_kind=prep.kind,
        verifier_reason=prep.reason,
        single_deployed_size=prep.artifact["deployed_size"],
        vka_digest=vka_digest,
        register_gas=register_gas,
        reused_registration=reused_registration,
    )


def verify_onchain(
    proof_dir: Path | str, rpc_url: str | None = None, private_key: str | None = None, srs: Path | str | None = None,
    reusable: bool = False,
) -> OnchainResult:
    """``vcompute verify DIR --onchain``: on rpc_url, or on a fresh Anvil started and stopped here.

    ``reusable``: through EZKL's reusable verifier even when the single one fits EIP-170."""
    prep = prepare(Path(proof_dir), Path(srs) if srs else None, reusable)
    with session(rpc_url, private_key) as (w3, url):
        return verify_on(w3, url, prep)
