"""Fixed-point inference engine: runs ONNX models in EZKL's integer arithmetic, batched.

Public API: :func:`run_fixed` (one sample -> :class:`EngineResult`), :func:`run_fixed_batch`
(N samples as one computation -> :class:`BatchResult`), :func:`witness_outputs`,
:func:`compare`, :class:`UnsupportedOpError`. See docs/ezkl-semantics.md for the rules.

Layout: :mod:`.graph` lowers ONNX to EZKL's ops (generic walk, folding, tract's absorption
rules), :mod:`.ops` holds one module per op family (its lowering, scale rule and execution,
registered together), :mod:`.quantize` assigns scales and rebases, :mod:`.backends` runs the
integer primitives (Triton kernels, or exact int64 torch on the CPU), :mod:`.run` is the entry.
"""

from .graph import UnsupportedOpError
from .run import BatchResult, EngineResult, ScaleMismatchError, run_fixed, run_fixed_batch
from .witness import compare, witness_outputs

__all__ = [
    "BatchResult",
    "EngineResult",
    "ScaleMismatchError",
    "UnsupportedOpError",
    "compare",
    "run_fixed",
    "run_fixed_batch",
    "witness_outputs",
]
