"""Witness, proof and local verification: the three EZKL calls that run for every input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ezkl

from vcompute.zk import ezkl_call
from vcompute.engine.witness import felt_to_int
from vcompute.errors import ProofError, UsageError


def witness(input_path: Path, compiled: Path, out: Path, vk: Path, srs: Path, log: Path | None = None) -> dict[str, Any]:
    """Run the quantized model inside EZKL and write the witness; an input the circuit cannot hold is a usage error."""
    try:
        ezkl_call.call(ezkl.gen_witness, str(input_path), str(compiled), str(out), str(vk), str(srs), log=log)
    except ezkl_call.EzklError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsageError(
            f"EZKL could not run this input through the calibrated circuit ({first}); if the input is outside the"
            " range it was calibrated on, pass --calibration-data or --no-cache"
        ) from None
    return json.loads(out.read_text())


def prove(witness_path: Path, compiled: Path, pk: Path, out: Path, srs: Path, log: Path | None = None) -> None:
    """Make the proof."""
    try:
        ezkl_call.call(ezkl.prove, str(witness_path), str(compiled), str(pk), str(out), str(srs), log=log)
    except ezkl_call.EzklError as exc:
        raise ProofError(f"proving failed: {str(exc).strip().splitlines()[0]}") from None


def load_proof(path: Path) -> dict[str, Any]:
    """Read proof.json; a corrupt one is a rejected proof (exit 1), a missing one a usage error."""
    if not path.exists():
        raise UsageError(f"proof not found: {path}")
    try:
        proof = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProofError(f"proof rejected: {path} is corrupt ({exc})") from None
    if not isinstance(proof, dict) or not isinstance(proof.get("proof"), list):
        raise ProofError(f"proof rejected: {path} has no proof bytes")
    return proof


def check_hex_matches(proof: dict[str, Any]) -> None:
    """``ezkl.verify`` reads ``proof`` but calldata uses ``hex_proof``: they must agree."""
    hex_proof = proof.get("hex_proof")
    if hex_proof is None:
        return
    try:
        as_bytes = bytes(proof["proof"])
    except (TypeError, ValueError):
        raise ProofError("proof rejected: proof bytes are malformed") from None
    if hex_proof.removeprefix("0x").lower() != as_bytes.hex():
        raise ProofError("proof rejected: hex_proof differs from the proof bytes")


def verify(proof_path: Path, settings: Path, vk: Path, srs: Path, log: Path | None = None) -> None:
    """Verify locally; raise ``ProofError`` if EZKL rejects the proof."""
    check_hex_matches(load_proof(proof_path))
    for path, what in ((settings, "settings"), (vk, "verifying key"), (srs, "SRS")):
        if not path.exists():
            raise UsageError(f"{what} not found: {path}")
    try:
        ok = ezkl_call.call(ezkl.verify, str(proof_path), str(settings), str(vk), str(srs), log=log)
    except ezkl_call.EzklError as exc:
        # Every file exists (checked above), so one EZKL cannot load is corrupt: a rejection.
        raise ProofError(f"proof rejected: {str(exc).strip().splitlines()[0]}") from None
    if not ok:
        raise ProofError("proof rejected by the verifier")


def felts_to_ints(felts: list[list[str]]) -> list[list[int]]:
    """Field elements (hex, little-endian) to signed integers: p - x reads as -x."""
    return [[felt_to_int(f) for f in row] for row in felts]


def proof_outputs(proof: dict[str, Any], n_outputs: int) -> list[int]:
    """The public outputs a proof attests, as signed integers: the last ``n_outputs`` instances."""
    instances = [f for row in proof.get("instances", []) for f in row]
    return [felt_to_int(f) for f in instances[len(instances) - n_outputs :]] if n_outputs else []
