"""Verify a proof directory's proof with its Halo2 verifier contract on an EVM chain.

Why record deployments: deploying the verifier costs ~3 M gas, so one deployed for the same
verification key on the same chain is reused. Chain ids do not identify a chain instance (every
fresh Anvil is 31337 and forgets its state), so a recorded address is trusted only while the code
there is still exactly the verifier's runtime bytecode.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from web3 import Web3
from web3.exceptions import ContractLogicError

from vcompute.evm.chain import session
from vcompute.errors import ProofError, UsageError
from vcompute.evm.verifier import atomic_write_bytes, build_verifier

DEPLOYMENTS_NAME = "deployments.json"
PROOF_DIR_FILES = {"settings": "settings.json", "vk": "vk.key", "proof": "proof.json"}


@dataclass(frozen=True)
class ProofDir:
    """The files of a `vcompute prove` output that on-chain verification needs."""

    root: Path
    settings: Path
    vk: Path
    proof: Path
    srs: Path

    @classmethod
    def open(cls, root: Path, srs: Path | None = None) -> "ProofDir":
        """Check the folder and locate the SRS (`srs`, else summary.json's); UsageError if incomplete."""
        root = Path(root)
        if not root.is_dir():
            raise UsageError(f"proof directory not found: {root}")
        paths = {k: root / name for k, name in PROOF_DIR_FILES.items()}
        missing = [p.name for p in paths.values() if not p.is_file()]
        if missing:
            raise UsageError(f"{root} is not a complete proof directory: missing {', '.join(missing)}")
        return cls(root=root, srs=Path(srs) if srs else _srs_from_summary(root), **paths)


def read_summary(root: Path) -> dict:
    """summary.json of a proof dir ({} when absent); invalid JSON is a UsageError."""
    path = root / "summary.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UsageError(f"{path} is not valid JSON") from None
    return data if isinstance(data, dict) else {}


def _srs_from_summary(root: Path) -> Path:
    """The SRS the proof was made with: summary.json "srs" is a path or {"path", "development"}.

    A development SRS that left the cache is made again (`vcompute prove` does the same)."""
    summary = read_summary(root)
    value = summary.get("srs")
    record = value if isinstance(value, dict) else {"path": value}
    path = Path(record["path"]) if record.get("path") else None
    if path is not None and not path.is_absolute():
        path = root / path
    if (path is None or not path.is_file()) and record.get("development") and summary.get("logrows"):
        from vcompute.zk.srs import dev_srs

        return dev_srs(int(summary["logrows"])).path
    if path is None:
        raise UsageError(f"no SRS recorded in {root / 'summary.json'}: pass --srs FILE")
    if not path.is_file():
        raise UsageError(f"the SRS recorded for {root} is missing: {path} (pass --srs FILE)")
    return path


@dataclass
class OnchainResult:
    """What `verify --onchain` reports."""

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

    @property
    def verify_gas(self) -> int | None:
        """Short alias of verification_gas (vcompute bench reads this name)."""
        return self.verification_gas

    def to_dict(self) -> dict:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the CLI's table."""
        deploy = "n/a" if self.deploy_gas is None else f"{self.deploy_gas:,}"
        return [
            ("result", "valid" if self.valid else "rejected"),
            ("reason", self.reason),
            ("verifier address", self.verifier_address),
            ("deploy gas", deploy + (" (reused deployment)" if self.reused_verifier else "")),
            ("verification gas", "n/a" if self.verification_gas is None else f"{self.verification_gas:,}"),
            ("verifier size", f"{self.deployed_size:,} bytes deployed (EIP-170 limit 24,576)"),
            ("chain", f"id {self.chain_id} at {self.rpc_url}"),
        ]


# --- deployments.json ---------------------------------------------------------------------------


def load_deployments(root: Path) -> dict:
    """{chain id: {"verifiers": {vk sha256: entry}, ...}}; a damaged file counts as empty."""
    path = Path(root) / DEPLOYMENTS_NAME
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def record_deployment(root: Path, chain_id: int, section: str, key: str, entry: dict) -> None:
    """Add one entry under chain id / section / key and rewrite the file atomically."""
    data = load_deployments(root)
    data.setdefault(str(chain_id), {}).setdefault(section, {})[key] = entry
    atomic_write_bytes(Path(root) / DEPLOYMENTS_NAME, (json.dumps(data, indent=2) + "\n").encode())


def code_matches(w3: Web3, address: str, deployed_bytecode: str) -> bool:
    """True when `address` holds exactly this runtime code (not just any code: Anvil reuses addresses)."""
    code = bytes(w3.eth.get_code(Web3.to_checksum_address(address)))
    return code == bytes.fromhex(deployed_bytecode.removeprefix("0x"))


# --- deploying and calling ----------------------------------------------------------------------


def deploy(w3: Web3, abi: list, bytecode: str, *args) -> tuple[str, int, str]:
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


def ensure_verifier(w3: Web3, root: Path, artifact: dict) -> tuple[str, int | None, bool]:
    """Reuse the recorded verifier for this vk on this chain, or deploy one; (address, gas, reused)."""
    chain_id = int(w3.eth.chain_id)
    vk_key = artifact["vk_sha256"]
    entry = load_deployments(root).get(str(chain_id), {}).get("verifiers", {}).get(vk_key)
    if entry and code_matches(w3, entry["address"], artifact["deployed_bytecode"]):
        return entry["address"], entry.get("deploy_gas"), True
    address, gas, tx = deploy(w3, artifact["abi"], artifact["bytecode"])
    record_deployment(root, chain_id, "verifiers", vk_key, {"address": address, "deploy_gas": gas, "tx": tx})
    return address, gas, False


def call_verifier(w3: Web3, address: str, calldata: bytes) -> tuple[bool, str, int | None]:
    """eth_call verifyProof; (valid, reason, gas a transaction would use). Revert or false = rejected."""
    tx = {"to": Web3.to_checksum_address(address), "data": calldata, "from": w3.eth.default_account}
    try:
        out = bytes(w3.eth.call(tx))
    except ContractLogicError as exc:
        detail = exc.message if getattr(exc, "message", None) else str(exc)
        return False, f"verifyProof reverted ({detail})", None
    if len(out) != 32 or int.from_bytes(out, "big") != 1:
        return False, f"verifyProof returned {'false' if out == bytes(32) else '0x' + out.hex()}", None
    return True, "verifyProof returned true", int(w3.eth.estimate_gas(tx))


def verify_on(w3: Web3, rpc_url: str, proof_dir: ProofDir) -> OnchainResult:
    """Build (or reuse) the verifier, deploy (or reuse) it on w3's chain and check the proof."""
    summary = build_verifier(proof_dir.root, proof_dir.vk, proof_dir.settings, proof_dir.srs, proof_dir.proof)
    artifact = json.loads(Path(summary["verifier_json"]).read_text())
    address, deploy_gas, reused = ensure_verifier(w3, proof_dir.root, artifact)
    valid, reason, gas = call_verifier(w3, address, Path(summary["calldata"]).read_bytes())
    return OnchainResult(
        valid=valid,
        reason=reason,
        verifier_address=address,
        chain_id=int(w3.eth.chain_id),
        rpc_url=rpc_url,
        deploy_gas=deploy_gas,
        reused_verifier=reused,
        verification_gas=gas,
        deployed_size=summary["deployed_size"],
        calldata_size=summary["calldata_size"],
    )


def verify_onchain(
    proof_dir: Path, rpc_url: str | None = None, private_key: str | None = None, srs: Path | None = None
) -> OnchainResult:
    """`vcompute verify DIR --onchain`: on rpc_url, or on a fresh Anvil started and stopped here."""
    pd = ProofDir.open(proof_dir, srs)
    with session(rpc_url, private_key) as (w3, url):
        return verify_on(w3, url, pd)
