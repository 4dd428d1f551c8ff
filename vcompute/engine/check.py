"""The exactness check: the engine's output integers must equal the witness's, bit for bit.

This is what ``prove`` promises. A mismatch is a failure (exit 1), never a warning. A model the
engine cannot run (an op it does not support, a scale it disagrees on, an overflow bound, a
lookup outside its table, or an internal error) gets ``engine_exact: null`` with the reason: the
proof does not depend on the engine, so it still completes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from vcompute.errors import ProofError, first_line

log = logging.getLogger(__name__)


def check(model: Path | Any, inputs: list[np.ndarray], settings: dict[str, Any], witness_fixed: list[list[int]],
          model_key: str | None = None) -> dict[str, Any]:
    """Run the engine and compare; returns the summary fields ``engine_exact`` and friends.

    ``model`` is a path or the already-loaded ModelProto (with ``model_key``, e.g. its sha256)."""
    from vcompute.engine.graph import UnsupportedOpError
    from vcompute.engine.run import run_fixed
    from vcompute.engine.witness import compare

    try:
        result = run_fixed(model, inputs, settings, model_key=model_key)
    except UnsupportedOpError as exc:
        return {"engine_exact": None, "engine_reason": f"unsupported op: {exc}"}
    except Exception as exc:  # noqa: BLE001  the engine is optional to a proof: record why, go on
        log.debug("engine failed", exc_info=True)
        return {"engine_exact": None, "engine_reason": f"engine error: {type(exc).__name__}: {first_line(exc)}"}
    exact, mismatch = compare(result.outputs_fixed, witness_fixed)
    if not exact:
        raise ProofError(f"engine output is not bit-identical to the proven witness: {mismatch}")
    return {
        "engine_exact": True,
        "engine_device": result.device,
        "engine_time_ms": result.time_ms,
        "engine_ops": result.ops,
    }
