"""Fixed-point inference engine: runs ONNX models in EZKL's integer arithmetic on Triton.

Public API: :func:`run_fixed` (-> :class:`EngineResult`), :func:`witness_outputs`,
:func:`compare`, :class:`UnsupportedOpError`. See docs/ezkl-semantics.md for the rules.
"""

from .graph import UnsupportedOpError
from .run import EngineResult, ScaleMismatchError, run_fixed
from .witness import compare, witness_outputs

__all__ = [
    "EngineResult",
    "ScaleMismatchError",
    "UnsupportedOpError",
    "compare",
    "run_fixed",
    "witness_outputs",
]
