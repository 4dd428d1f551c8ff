"""Read EZKL witness outputs and compare them with the engine's, integer for integer."""

from __future__ import annotations

import json
from pathlib import Path

# BN254 scalar field modulus (EZKL's Fr): field elements above p/2 stand for negatives.
P = 21888242871839275222246405745257275088548364400416034343698204186575808495617


def felt_to_int(felt: str) -> int:
    """A witness field element (hex, little-endian bytes as EZKL writes it, or decimal)."""
    if isinstance(felt, int):
        v = felt
    else:
        h = felt[2:] if felt.startswith("0x") else felt
        if len(h) == 64:
            # EZKL serializes Fr as its 32-byte little-endian representation in hex
            v = int.from_bytes(bytes.fromhex(h), "little")
        else:
            v = int(felt)
    return v - P if v > P // 2 else v


def witness_outputs(witness_path: Path | str) -> list[list[int]]:
    """The witness's model outputs as signed integers, one flat list per output."""
    w = json.loads(Path(witness_path).read_text())
    return [[felt_to_int(f) for f in out] for out in w["outputs"]]


def compare(engine: list[list[int]], witness: list[list[int]]) -> tuple[bool, str | None]:
    """``(exact, first_mismatch)``: ``first_mismatch`` names the output, index and values."""
    if len(engine) != len(witness):
        return False, f"{len(engine)} engine outputs vs {len(witness)} witness outputs"
    for k, (e, w) in enumerate(zip(engine, witness)):
        if len(e) != len(w):
            return False, f"output {k}: {len(e)} engine values vs {len(w)} in the witness"
        for i, (a, b) in enumerate(zip(e, w)):
            if a != b:
                return False, f"output {k} index {i}: engine {a} != witness {b}"
    return True, None
