"""EZKL's reusable Halo2 verifier: one contract per chain, one verifying-key artifact (VKA) per model.

Why: a circuit's own verifier (``Halo2Verifier``) embeds its verifying key, so it grows with the
circuit's columns and lookup tables; past 24,576 bytes of runtime code (EIP-170) a chain that
enforces the limit refuses to deploy it. ``Halo2VerifierReusable`` (about 10.9 KB, the same
contract for every circuit vcompute has built) takes the key as an argument instead: the VKA, a
list of 32-byte words that EZKL derives from ``vk.key``, settings.json and the SRS's verifier
points (``ezkl.create_evm_vka``; its file is a little-endian u64 word count, then the words).

The contract (EZKL 23.0.5; ``templates/Halo2VerifierReusable.sol`` of zkonduit/ezkl-verifier):

* ``registerVka(bytes32[] vka) returns (bytes32 digest)``: digest = keccak256 of the concatenated
  words; sets ``registeredVkas[digest] = true`` (a ``mapping(bytes32 => bool)`` in storage slot
  0, with no getter). Anyone may register any VKA; registering it again changes nothing.
* ``verifyProof(bytes proof, uint256[] instances, bytes32[] vka)``: reverts ``"VKA not
  registered"`` unless the VKA's digest is registered, reverts with empty data on a bad proof,
  and otherwise returns raw words, *not* ABI-encoded: 1, the VKA's digest, ``32 * n``, then the
  ``n`` instances rescaled to 18 decimals.

Trust: the contract accepts a proof for *any* registered VKA, so a proof of model B with model B's
VKA passes. Whoever relies on the answer must require the returned digest to be the one of the
model it expects: ``verify --onchain`` compares it with the digest of the VKA it generated here
from ``vk.key`` (a VKA in a proof dir is never read), and InferenceRegistry with the digest
registered for the model. The contract itself is generated and compiled here, like the single one.
"""

from __future__ import annotations

import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vcompute.artifacts import sha256_file, sha256_json
from vcompute.cache import entry_dir, get_or_build
from vcompute.errors import ProofError, first_line
from vcompute.evm import verifier
from vcompute.evm.solc import EIP170_LIMIT
from vcompute.zk import ezkl_call
from vcompute.zk.srs import verifier_srs

CONTRACT = "Halo2VerifierReusable"
SOL_NAME = "VerifierReusable.sol"
JSON_NAME = "VerifierReusable.json"
VKA_NAME = "vka.bytes"
VKA_DIGEST_NAME = "vka.digest"
CALLDATA_NAME = "calldata_reusable.bin"
CALLDATA_HEX_NAME = "calldata_reusable.hex"
#: the files write_outputs puts into a proof dir
OUTPUT_NAMES = (SOL_NAME, JSON_NAME, VKA_NAME, VKA_DIGEST_NAME, CALLDATA_NAME, CALLDATA_HEX_NAME)
#: decimals the contract rescales instances to (EZKL's default; part of the VKA's last word)
DECIMALS = 18
#: a bound on what a VKA file may hold (the models seen have 157 to 273 words)
MAX_WORDS = 1 << 16

SINGLE, REUSABLE = "single", "reusable"


def _selector(signature: str) -> bytes:
    from eth_utils import keccak

    return keccak(text=signature)[:4]


SELECTOR_VERIFY = _selector("verifyProof(bytes,uint256[],bytes32[])")  # 0x3409fc9f
SELECTOR_REGISTER = _selector("registerVka(bytes32[])")  # 0xdc8b4094


# --- the VKA ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vka:
    """A model's verifying-key artifact: its words and their keccak256 digest."""

    words: tuple[bytes, ...]
    cached: bool = False

    @property
    def digest(self) -> bytes:
        from eth_utils import keccak

        return keccak(b"".join(self.words))

    @property
    def digest_hex(self) -> str:
        return "0x" + self.digest.hex()

    def to_bytes(self) -> bytes:
        """The file format EZKL writes (bincode of ``Vec<[u8; 32]>``)."""
        return struct.pack("<Q", len(self.words)) + b"".join(self.words)


def parse_vka(raw: bytes) -> tuple[bytes, ...]:
    """Words of a VKA file: a little-endian u64 count, then exactly that many 32-byte words."""
    if len(raw) < 8:
        raise ProofError("the VKA EZKL wrote is too short")
    (count,) = struct.unpack_from("<Q", raw, 0)
    if not 0 < count <= MAX_WORDS or len(raw) != 8 + 32 * count:
        raise ProofError(f"the VKA EZKL wrote is malformed ({len(raw)} bytes for {count} words)")
    return tuple(raw[8 + 32 * i : 8 + 32 * (i + 1)] for i in range(count))


def vka(vk: Path, settings: Path, srs: Path) -> Vka:
    """The VKA of this vk and settings, made here by EZKL (cached by what determines it).

    ``srs`` may be the full SRS or the dir's 516-byte verifier points: the VKA holds only G1[0]
    and the two G2 points, so both give the same words (checked with EZKL 23.0.5)."""
    import ezkl

    points = verifier_srs(srs)
    key = sha256_json({
        "vk": sha256_file(vk), "settings": sha256_file(settings), "srs_points": sha256_json(points.hex()),
        "decimals": DECIMALS, "ezkl": ezkl_call.version(),
    })

    def build(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="vcompute-srs-") as work:
            srs_file = Path(work) / "verifier.srs"
            srs_file.write_bytes(points)
            try:
                ezkl_call.call(ezkl.create_evm_vka, str(vk), str(settings), str(tmp / VKA_NAME), str(srs_file), DECIMALS)
            except ezkl_call.EzklError as exc:
                raise ProofError(f"EZKL could not make the verifying-key artifact: {first_line(exc)}") from None
        parse_vka((tmp / VKA_NAME).read_bytes())

    entry, cached = get_or_build(entry_dir("vkas", key), build)
    return Vka(parse_vka((entry / VKA_NAME).read_bytes()), cached)


# --- which verifier --------------------------------------------------------------------------------


def choose(single: dict[str, Any], requested: bool) -> tuple[str, str]:
    """(SINGLE or REUSABLE, why), from the single verifier compiled here and what was asked.

    The single verifier is used when it fits EIP-170 and the reusable one was not asked for."""
    size = single["deployed_size"]
    if size > EIP170_LIMIT:
        return REUSABLE, (f"the single-model verifier is {size:,} bytes deployed, over EIP-170's {EIP170_LIMIT:,}")
    if requested:
        return REUSABLE, "requested (--reusable-verifier)"
    return SINGLE, f"the single-model verifier fits EIP-170 ({size:,} of {EIP170_LIMIT:,} bytes)"


def artifact(vk: Path, settings: Path, srs: Path) -> dict[str, Any]:
    """The compiled ``Halo2VerifierReusable`` (cached like the single verifier; see verifier.py)."""
    art = verifier.verifier_artifact(vk, settings, srs, reusable=True)
    verifier.check_code_size(art["deployed_size"])
    return art


# --- calldata and the return value -----------------------------------------------------------------


def register_calldata(words: tuple[bytes, ...] | list[bytes]) -> bytes:
    """``registerVka(bytes32[])`` calldata."""
    from eth_abi import encode

    return SELECTOR_REGISTER + encode(["bytes32[]"], [list(words)])


def verify_calldata(proof: bytes, instances: list[int], words: tuple[bytes, ...] | list[bytes]) -> bytes:
    """``verifyProof(bytes, uint256[], bytes32[])`` calldata: byte for byte what
    ``ezkl.encode_evm_calldata(proof, out, vka_path)`` writes (tested)."""
    from eth_abi import encode

    return SELECTOR_VERIFY + encode(["bytes", "uint256[]", "bytes32[]"], [proof, list(instances), list(words)])


def decode_verify_calldata(data: bytes) -> tuple[bytes, list[int], list[bytes]]:
    """The inverse of verify_calldata: (proof, instances, VKA words)."""
    from eth_abi import decode

    if data[:4] != SELECTOR_VERIFY:
        raise ProofError("not a reusable verifyProof call")
    proof, instances, words = decode(["bytes", "uint256[]", "bytes32[]"], data[4:])
    return bytes(proof), list(instances), [bytes(w) for w in words]


@dataclass(frozen=True)
class VerifyReturn:
    """What the reusable verifyProof returned: success word, VKA digest, rescaled instances."""

    success: int
    digest: bytes
    rescaled: list[int]


def decode_return(ret: bytes) -> VerifyReturn | None:
    """Read the contract's raw return words (1, digest, 32*n, n int256); None if it has another shape."""
    if len(ret) < 96 or len(ret) % 32:
        return None
    words = [ret[i : i + 32] for i in range(0, len(ret), 32)]
    if int.from_bytes(words[2], "big") != 32 * (len(words) - 3):
        return None
    return VerifyReturn(
        success=int.from_bytes(words[0], "big"),
        digest=words[1],
        rescaled=[int.from_bytes(w, "big", signed=True) for w in words[3:]],
    )


def registration_slot(digest: bytes) -> bytes:
    """The storage slot of ``registeredVkas[digest]`` (the mapping is in slot 0): read it to see
    whether a VKA is registered, since the contract has no getter."""
    from eth_utils import keccak

    return keccak(digest + bytes(32))


# --- the proof dir's files ----------------------------------------------------------------------


def write_outputs(out_dir: Path, art: dict[str, Any], the_vka: Vka, data: bytes) -> dict[str, Any]:
    """Write the reusable verifier's .sol and Hardhat artifact, the VKA, its digest and the calldata."""
    files = verifier.verifier_files(art, data, (SOL_NAME, JSON_NAME, CALLDATA_NAME, CALLDATA_HEX_NAME))
    files[VKA_NAME] = the_vka.to_bytes()
    files[VKA_DIGEST_NAME] = (the_vka.digest_hex + "\n").encode()
    verifier.write_files(out_dir, files)
    return {
        "verifier_sol": SOL_NAME,
        "verifier_json": JSON_NAME,
        "vka": VKA_NAME,
        "vka_digest_file": VKA_DIGEST_NAME,
        "vka_digest": the_vka.digest_hex,
        "vka_words": len(the_vka.words),
        "vka_decimals": DECIMALS,
        "calldata": CALLDATA_NAME,
        "calldata_hex": CALLDATA_HEX_NAME,
        **verifier.contract_record(REUSABLE, CONTRACT, art, data),
    }
