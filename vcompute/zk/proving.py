"""Witness, proof and local verification: the three EZKL calls that run for every input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ezkl

from vcompute.engine.witness import felt_to_int
from vcompute.errors import ProofError, UsageError, first_line
from vcompute.zk import ezkl_call


def witness(input_path: Path, compiled: Path, out: Path, vk: Path, srs: Path, log: Path | None = None) -> dict[str, Any]:
    """Run the quantized model inside EZKL and write the witness; an input the circuit cannot hold is a usage error."""
    try:
        ezkl_call.call(ezkl.gen_witness, str(input_path), str(compiled), str(out), str(vk), str(srs), log=log)
    except ezkl_call.EzklError as exc:
        raise UsageError(
            f"EZKL could not run this input through the calibrated circuit ({first_line(exc)}); if the input is"
            " outside the range it was calibrated on, pass --calibration-data with representative samples"
        ) from None
    return json.loads(out.read_text())


def prove(witness_path: Path, compiled: Path, pk: Path, out: Path, srs: Path, log: Path | None = None) -> None:
    """Make the proof."""
    try:
        ezkl_call.call(ezkl.prove, str(witness_path), str(compiled), str(pk), str(out), str(srs), log=log)
    except ezkl_call.EzklError as exc:
        raise ProofError(f"proving failed: {first_line(exc)}") from None


def verify(proof_path: Path, settings: Path, vk: Path, srs: Path, log: Path | None = None) -> None:
    """Verify locally; raise ``ProofError`` if EZKL rejects the proof (the files exist and are checked)."""
    for path, what in ((proof_path, "proof"), (settings, "settings"), (vk, "verifying key"), (srs, "SRS")):
        if not path.is_file():
            raise UsageError(f"{what} not found: {path}")
    try:
        ok = ezkl_call.call(ezkl.verify, str(proof_path), str(settings), str(vk), str(srs), log=log)
    except ezkl_call.EzklError as exc:
        # Every file exists, so one EZKL cannot load is corrupt: a rejection.
        raise ProofError(f"proof rejected: {first_line(exc)}") from None
    if not ok:
        raise ProofError("proof rejected by the verifier")


def felts_to_ints(felts: list[list[str]]) -> list[list[int]]:
    """Field elements (hex, little-endian) to signed integers: p - x reads as -x."""
    return [[felt_to_int(f) for f in row] for row in felts]
