"""Build the EVM verifier of a proof: EZKL's Halo2 Solidity contract, its bytecode and the calldata.

Why not EZKL alone: `ezkl.create_evm_verifier` writes the Solidity and then tries to download solc
to make the ABI, which cannot work offline. We keep its .sol and compile it with the pinned solcjs
(vcompute.evm.solc). Every file is written to a temp name and renamed, so a crash never leaves a torn
artifact that a later run would trust.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from pathlib import Path

from vcompute.errors import ProofError, UsageError
from vcompute.evm.solc import EIP170_LIMIT, compile_contract, solc_version

VERIFIER_CONTRACT = "Halo2Verifier"
SOL_NAME = "Verifier.sol"
JSON_NAME = "Verifier.json"
CALLDATA_NAME = "calldata.bin"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temp_beside(path: Path) -> Path:
    """A new temp file next to path, with the permissions a plain open() would give (not 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename, so readers see old or new, never half."""
    tmp = _temp_beside(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def check_code_size(deployed_size: int) -> None:
    """EIP-170: chains refuse to deploy runtime code over 24,576 bytes; say so before we try."""
    if deployed_size > EIP170_LIMIT:
        raise UsageError(
            f"the Halo2 verifier is {deployed_size:,} bytes deployed, over the EIP-170 limit of "
            f"{EIP170_LIMIT:,} bytes: prove a smaller model or one with fewer logrows, or use EZKL's "
            "reusable verifier (create_evm_verifier(reusable=True) with a separate VK artifact)"
        )


def _require(paths: dict[str, Path]) -> None:
    missing = [f"{what} ({p})" for what, p in paths.items() if not Path(p).is_file()]
    if missing:
        raise UsageError("missing input for the verifier: " + ", ".join(missing))


async def _create_evm_verifier(vk: Path, settings: Path, sol: Path, abi: Path, srs: Path) -> None:
    import ezkl

    await ezkl.create_evm_verifier(str(vk), str(settings), str(sol), str(abi), str(srs), False)


def generate_solidity(vk: Path, settings: Path, srs: Path, sol_out: Path) -> None:
    """Have EZKL render the verifier to sol_out; its offline ABI step fails after the .sol is written."""
    tmp_sol = _temp_beside(sol_out)
    tmp_abi = tmp_sol.with_name(tmp_sol.name + ".abi")
    error: Exception | None = None
    try:
        try:
            asyncio.run(_create_evm_verifier(vk, settings, tmp_sol, tmp_abi, srs))
        except Exception as exc:  # expected: EZKL's svm download of solc fails offline
            error = exc
        text = tmp_sol.read_text() if tmp_sol.is_file() else ""
        if f"contract {VERIFIER_CONTRACT}" not in text or "function verifyProof" not in text:
            raise ProofError(f"EZKL did not write a Halo2 verifier: {error or 'empty output'}")
        os.replace(tmp_sol, sol_out)
    finally:
        tmp_sol.unlink(missing_ok=True)
        tmp_abi.unlink(missing_ok=True)


def encode_calldata(proof: Path, out: Path) -> int:
    """calldata.bin = the verifyProof(bytes,uint256[]) call, selector included; returns its size."""
    import ezkl

    tmp = _temp_beside(out)
    try:
        data = bytes(ezkl.encode_evm_calldata(str(proof), str(tmp), None))
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ProofError(f"cannot encode calldata from {proof}: {exc}") from None
    os.replace(tmp, out)
    return len(data)


def _load_cached(json_path: Path, sol_path: Path, key: dict) -> dict | None:
    """The recorded artifact when it was built from the same vk, settings and compiler."""
    if not (json_path.is_file() and sol_path.is_file()):
        return None
    try:
        art = json.loads(json_path.read_text())
    except json.JSONDecodeError:
        return None
    same = all(art.get(k) == v for k, v in key.items())
    return art if same and art.get("sol_sha256") == sha256_file(sol_path) else None


def build_verifier(out_dir: Path, vk: Path, settings: Path, srs: Path, proof: Path) -> dict:
    """Write Verifier.sol, Verifier.json (abi, bytecode, sizes) and calldata.bin into out_dir.

    Returns a summary: paths, sizes, and whether the verifier came from a previous build.
    """
    out_dir, vk, settings, srs, proof = map(Path, (out_dir, vk, settings, srs, proof))
    _require({"verification key": vk, "settings": settings, "SRS": srs, "proof": proof})
    out_dir.mkdir(parents=True, exist_ok=True)
    sol_path, json_path, calldata_path = out_dir / SOL_NAME, out_dir / JSON_NAME, out_dir / CALLDATA_NAME
    key = {
        "vk_sha256": sha256_file(vk),
        "settings_sha256": sha256_file(settings),
        "solc_version": solc_version(),
    }
    art = _load_cached(json_path, sol_path, key)
    cache_hit = art is not None
    if art is None:
        generate_solidity(vk, settings, srs, sol_path)
        compiled, cache_hit = compile_contract(sol_path.read_text(), VERIFIER_CONTRACT, filename=SOL_NAME)
        art = {**key, "sol_sha256": sha256_file(sol_path), **compiled}
        atomic_write_bytes(json_path, json.dumps(art, indent=1).encode())
    check_code_size(art["deployed_size"])
    calldata_size = encode_calldata(proof, calldata_path)
    return {
        "verifier_sol": str(sol_path),
        "verifier_json": str(json_path),
        "calldata": str(calldata_path),
        "contract": VERIFIER_CONTRACT,
        "deployed_size": art["deployed_size"],
        "initcode_size": (len(art["bytecode"]) - 2) // 2,
        "eip170_limit": EIP170_LIMIT,
        "calldata_size": calldata_size,
        "vk_sha256": key["vk_sha256"],
        "solc_version": key["solc_version"],
        "cache_hit": cache_hit,
        "cached": cache_hit,  # the name vcompute.zk.pipeline's stage records use
    }


def decode_calldata(calldata: bytes) -> tuple[bytes, list[int]]:
    """Split verifyProof calldata into (proof bytes, instances), e.g. to pass them to the registry."""
    from eth_abi import decode

    if len(calldata) < 4:
        raise ProofError("calldata is too short to be a verifyProof call")
    proof, instances = decode(["bytes", "uint256[]"], calldata[4:])
    return bytes(proof), list(instances)


def encode_verify_call(proof: bytes, instances: list[int]) -> bytes:
    """The inverse of decode_calldata: verifyProof(bytes,uint256[]) calldata."""
    from eth_abi import encode
    from eth_utils import keccak

    return keccak(text="verifyProof(bytes,uint256[])")[:4] + encode(["bytes", "uint256[]"], [proof, instances])
