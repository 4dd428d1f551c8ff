"""The exactness check: the Triton engine's output integers must equal the witness's, bit for bit.

This is what ``prove`` promises. A model the engine cannot run gets ``engine_exact: null``
with the op named (the proof still runs); a mismatch is a failure (exit 1), never a warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vcompute.errors import ProofError


def first_mismatch(engine: list[list[int]], witness: list[list[int]]) -> str | None:
    """Describe the first place two output lists differ, or None when identical."""
    if len(engine) != len(witness):
        return f"engine gave {len(engine)} outputs, the witness holds {len(witness)}"
    for t, (e_row, w_row) in enumerate(zip(engine, witness)):
        if len(e_row) != len(w_row):
            return f"output {t}: engine gave {len(e_row)} values, the witness holds {len(w_row)}"
        for i, (e, w) in enumerate(zip(e_row, w_row)):
            if e != w:
                return f"output {t}[{i}]: engine {e} != witness {w}"
    return None


def check(model: Path, inputs: list[np.ndarray], settings: dict[str, Any], witness_fixed: list[list[int]]) -> dict[str, Any]:
    """Run the engine and compare; returns the summary fields ``engine_exact`` and friends."""
    from vcompute.engine.graph import UnsupportedOpError
    from vcompute.engine.run import run_fixed

    try:
        result = run_fixed(model, inputs, settings)
    except UnsupportedOpError as exc:
        return {"engine_exact": None, "engine_reason": f"unsupported op: {exc}"}
    mismatch = first_mismatch(result.outputs_fixed, witness_fixed)
    if mismatch:
        raise ProofError(f"engine output is not bit-identical to the proven witness: {mismatch}")
    return {
        "engine_exact": True,
        "engine_device": result.device,
        "engine_time_ms": result.time_ms,
        "engine_ops": result.ops,
    }
