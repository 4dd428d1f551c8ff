"""vcompute: verifiable GPU inference.

    import vcompute
    result = vcompute.prove("model.onnx", input=x)          # x: a file, an array, a tensor
    vcompute.verify(result.out)                              # raises vcompute.ProofError if invalid
    vcompute.verify_onchain(result.out)                      # on a temporary local Anvil
    vcompute.infer("model.onnx", x).outputs_fixed            # the integers the proof attests
    vcompute.prove_batch("model.onnx", "inputs.jsonl", "out/") # many inputs, proofs in parallel
    engine = vcompute.load("model.onnx", "settings.json")    # load once (GPU: CUDA graphs) ...
    engine.infer(batch).outputs_fixed                        # ... every sample's integers, many calls

The data flows one way: ``cli`` -> ``api`` -> pipeline stages (``zk``) -> EZKL / ``engine`` /
chain (``evm``). Heavy modules (EZKL, torch, web3) load on first use, not on ``import vcompute``.
"""

from __future__ import annotations

from typing import Any

from vcompute.errors import ProofError, UsageError, VcomputeError

__version__ = "0.2.0"

_API = ("prove", "verify", "verify_onchain", "attest", "infer", "infer_batch", "load", "export", "ProveResult",
        "InferResult", "BatchInferResult", "prove_batch", "verify_batch", "attest_batch", "BatchProveResult")

__all__ = ["__version__", "ProofError", "UsageError", "VcomputeError", "Engine", *_API]


def __getattr__(name: str) -> Any:
    """Load the API lazily: ``import vcompute`` stays fast and loads no EZKL or torch."""
    if name in _API:
        from vcompute import api

        return getattr(api, name)
    if name == "Engine":
        from vcompute.engine.engine import Engine

        return Engine
    raise AttributeError(f"module 'vcompute' has no attribute {name!r}")
