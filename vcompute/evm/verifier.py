"""The EVM verifier of a verifying key: EZKL's Halo2 Solidity contract, compiled by our pinned solc.

Why not EZKL alone: ``ezkl.create_evm_verifier`` writes the Solidity and then tries to download solc
to make the ABI, which cannot work offline. We keep its .sol and compile it with the pinned solcjs
(:mod:`vcompute.evm.solc`).

Trust: the contract that ``verify --onchain`` and ``attest`` deploy or reuse is always generated
here from ``vk.key`` and settings.json and compiled here; bytecode found in a proof dir is never
used. Builds are cached by what determines them (hashes of vk, settings and the SRS's verifier
points; the solc and EZKL versions). ``prove`` also writes the contract into the out dir, in
Hardhat's artifact format with the calldata beside it, for Solidity projects to use.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from vcompute.artifacts import atomic_path, sha256_file, sha256_json
from vcompute.cache import entry_dir, get_or_build
from vcompute.errors import ProofError, UsageError, first_line
from vcompute.evm.solc import EIP170_LIMIT, compile_contract, solc_version
from vcompute.zk import ezkl_call
from vcompute.zk.srs import verifier_srs

VERIFIER_CONTRACT = "Halo2Verifier"
SOL_NAME = "Verifier.sol"
JSON_NAME = "Verifier.json"
CALLDATA_NAME = "calldata.bin"
CALLDATA_HEX_NAME = "calldata.hex"
#: the files write_outputs puts into a proof dir
OUTPUT_NAMES = (SOL_NAME, JSON_NAME, CALLDATA_NAME, CALLDATA_HEX_NAME)


def check_code_size(deployed_size: int) -> None:
    """EIP-170: chains refuse to deploy runtime code over 24,576 bytes; say so before we try."""
    if deployed_size > EIP170_LIMIT:
        raise UsageError(
            f"the Halo2 verifier is {deployed_size:,} bytes deployed, over the EIP-170 limit of "
            f"{EIP170_LIMIT:,} bytes: prove a smaller model or one with fewer logrows"
        )


def generate_solidity(vk: Path, settings: Path, srs: Path, sol_out: Path, reusable: bool = False) -> None:
    """Have EZKL render the verifier to ``sol_out``; its offline ABI step fails after the .sol is written.

    ``reusable``: EZKL's ``Halo2VerifierReusable`` (one contract for many circuits, each passing
    its verifying-key artifact, see :mod:`vcompute.evm.reusable`) instead of ``Halo2Verifier``."""
    import ezkl

    abi = sol_out.with_name(sol_out.name + ".abi")
    contract = "Halo2VerifierReusable" if reusable else VERIFIER_CONTRACT
    error: Exception | None = None
    try:
        ezkl_call.call(ezkl.create_evm_verifier, str(vk), str(settings), str(sol_out), str(abi), str(srs), reusable)
    except ezkl_call.EzklError as exc:  # expected: EZKL's download of solc (svm) fails offline
        error = exc
    text = sol_out.read_text() if sol_out.is_file() else ""
    if f"contract {contract}" not in text or "function verifyProof" not in text:
        raise ProofError(f"EZKL did not write a {contract}: {first_line(error) if error else 'empty output'}")


def verifier_artifact(vk: Path, settings: Path, srs: Path, reusable: bool = False) -> dict[str, Any]:
    """The compiled verifier for this vk and settings: {abi, bytecode, deployed_bytecode, ...}.

    ``srs`` may be the full SRS or the verifier part a proof dir ships: the contract embeds only
    the verifier points, so both give the same contract (and the same cache entry).
    ``reusable``: EZKL's ``Halo2VerifierReusable`` instead (:mod:`vcompute.evm.reusable`)."""
    srs_points = sha256_json(verifier_srs(srs).hex())
    what = {
        "vk": sha256_file(vk), "settings": sha256_file(settings), "srs_points": srs_points,
        "solc": solc_version(), "ezkl": ezkl_call.version(),
    }
    if reusable:
        what["reusable"] = True  # only then, so the single verifier's cache keys stay as they were
    key = sha256_json(what)
    contract = "Halo2VerifierReusable" if reusable else VERIFIER_CONTRACT
    sol_name = "VerifierReusable.sol" if reusable else SOL_NAME

    def build(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="vcompute-srs-") as work:
            points = Path(work) / "verifier.srs"
            points.write_bytes(verifier_srs(srs))
            generate_solidity(vk, settings, points, tmp / sol_name, reusable=reusable)
        (tmp / (sol_name + ".abi")).unlink(missing_ok=True)
        compiled, _ = compile_contract((tmp / sol_name).read_text(), contract, filename=sol_name)
        (tmp / "artifact.json").write_text(json.dumps({**compiled, "vk_sha256": sha256_file(vk)}))

    entry, cached = get_or_build(entry_dir("verifiers", key), build)
    art = json.loads((entry / "artifact.json").read_text())
    return {**art, "sol_path": str(entry / sol_name), "sol_name": sol_name, "cached": cached, "key": key}


def calldata(proof: Path) -> bytes:
    """``verifyProof(bytes, uint256[])`` calldata, selector included, from proof.json's bytes and instances."""
    import ezkl

    with tempfile.TemporaryDirectory(prefix="vcompute-calldata-") as work:
        try:
            return bytes(ezkl_call.call(ezkl.encode_evm_calldata, str(proof), str(Path(work) / "calldata.bin"), None))
        except ezkl_call.EzklError as exc:
            raise ProofError(f"proof rejected: cannot encode calldata from {proof.name} ({first_line(exc)})") from None


def hardhat_artifact(art: dict[str, Any]) -> dict[str, Any]:
    """Hardhat's artifact format (hh-sol-artifact-1), which Hardhat, ethers and Foundry scripts read."""
    return {
        "_format": "hh-sol-artifact-1",
        "contractName": art.get("contract", VERIFIER_CONTRACT),
        "sourceName": art.get("sol_name", SOL_NAME),
        "abi": art["abi"],
        "bytecode": art["bytecode"],
        "deployedBytecode": art["deployed_bytecode"],
        "linkReferences": {},
        "deployedLinkReferences": {},
    }


def verifier_files(art: dict[str, Any], data: bytes, names: tuple[str, str, str, str]) -> dict[str, bytes]:
    """{name: content} of a compiled verifier's .sol, its Hardhat artifact, the calldata and its
    hex, under ``names`` (sol, json, calldata, calldata hex): the single verifier's and the
    reusable one's files are made alike."""
    sol, art_json, calldata, calldata_hex = names
    return {
        sol: Path(art["sol_path"]).read_bytes(),
        art_json: (json.dumps(hardhat_artifact(art), indent=1) + "\n").encode(),
        calldata: data,
        calldata_hex: ("0x" + data.hex() + "\n").encode(),
    }


def write_files(out_dir: Path, files: dict[str, bytes]) -> None:
    """Each file written to a temp path, then renamed: never half-written."""
    for name, content in files.items():
        with atomic_path(out_dir / name) as tmp:
            tmp.write_bytes(content)


def write_outputs(out_dir: Path, art: dict[str, Any], data: bytes) -> dict[str, Any]:
    """Write Verifier.sol, Verifier.json (Hardhat artifact), calldata.bin and calldata.hex into ``out_dir``."""
    write_files(out_dir, verifier_files(art, data, (SOL_NAME, JSON_NAME, CALLDATA_NAME, CALLDATA_HEX_NAME)))
    return {
        "verifier_sol": SOL_NAME,
        "verifier_json": JSON_NAME,
        "calldata": CALLDATA_NAME,
        "calldata_hex": CALLDATA_HEX_NAME,
        **contract_record("single", VERIFIER_CONTRACT, art, data),
    }


def contract_record(kind: str, contract: str, art: dict[str, Any], data: bytes) -> dict[str, Any]:
    """What the summary says of a compiled verifier (either kind): sizes against EIP-170, solc, cache."""
    return {
        "verifier": kind,
        "contract": contract,
        "deployed_size": art["deployed_size"],
        "initcode_size": (len(art["bytecode"]) - 2) // 2,
        "eip170_limit": EIP170_LIMIT,
        "fits_eip170": art["deployed_size"] <= EIP170_LIMIT,
        "calldata_size": len(data),
        "solc_version": solc_version(),
        "cached": art["cached"],
    }


def decode_calldata(data: bytes) -> tuple[bytes, list[int]]:
    """Split verifyProof calldata into (proof bytes, instances), e.g. to pass them to the registry."""
    from eth_abi import decode

    if len(data) < 4:
        raise ProofError("calldata is too short to be a verifyProof call")
    proof, instances = decode(["bytes", "uint256[]"], data[4:])
    return bytes(proof), list(instances)


def encode_verify_call(proof: bytes, instances: list[int]) -> bytes:
    """The inverse of decode_calldata: verifyProof(bytes,uint256[]) calldata."""
    from eth_abi import encode
    from eth_utils import keccak

    return keccak(text="verifyProof(bytes,uint256[])")[:4] + encode(["bytes", "uint256[]"], [proof, instances])
