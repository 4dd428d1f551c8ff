"""The exactness check: the Triton engine's output integers must equal the witness's, bit for bit.

This is what ``prove`` promises. A model the engine cannot run gets ``engine_exact: null``
with the op named (the proof still runs); a mismatch is a failure (exit 1), never a warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vcompute.errors import ProofError


def check(model: Path, inputs: list[np.ndarray], settings: dict[str, Any], witness_fixed: list[list[int]]) -> dict[str, Any]:
    """Run the engine and compare; returns the summary fields ``engine_exact`` and friends."""
    from vcompute.engine.graph import UnsupportedOpError
    from vcompute.engine.run import run_fixed
    from vcompute.engine.witness import compare

    try:
        result = run_fixed(model, inputs, settings)
    except UnsupportedOpError as exc:
        return {"engine_exact": None, "engine_reason": f"unsupported op: {exc}"}
    exact, mismatch = compare(result.outputs_fixed, witness_fixed)
    if not exact:
        raise ProofError(f"engine output is not bit-identical to the proven witness: {mismatch}")
    return {
        "engine_exact": True,
        "engine_device": result.device,
        "engine_time_ms": result.time_ms,
        "engine_ops": result.ops,
    }
