"""The engine's ops: one module per op family, each registering its lowerings and executions.

Every non-private module of this package is a *family* (``linear``, ``conv``, ``elementwise``,
``activation``, ``nonlinear``, ``pool``, ``reduce``, ``shape``, ``softmax``, ``norm``): it
registers, in one place, how its ONNX op types are lowered to EZKL's ops and how those EZKL ops
are scaled and executed (:mod:`.registry`). Families are imported automatically, so a new op
touches one file. :func:`run_step` executes one planned step, batched, on a backend with the
kernels' int64 API (:mod:`vcompute.engine.backends`), and applies EZKL's RebaseScale.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

import torch

from ..backends import TorchBackend, TritonBackend
from . import registry
from ._ezkl import check_rebase, decomp_limit
from ._tables import _TABLES, MAX_TABLE, _dense_table, lookup_values
from .registry import EZKL_OPS, LOWERINGS, EzklOp, Lowering, OnnxNode, ScaleCtx, ezkl_op, lowers

if TYPE_CHECKING:
    from ..backends import Backend
    from ..quantize import Step

for _m in pkgutil.iter_modules(__path__):
    if not _m.name.startswith("_") and _m.name != "registry":
        importlib.import_module(f"{__name__}.{_m.name}")


def run_step(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    """One planned step on ``be``: the op (args and result carry a leading batch axis), then
    EZKL's ``RebaseScale`` division when the plan asks for it (refused, as EZKL refuses it,
    when a divisor beyond the decomposition limit meets an exact quotient:
    ``_ezkl.check_rebase``)."""
    y = registry.ezkl(step.node).run(be, step, args)
    if step.rebase_div is not None:
        x = y
        y = be.div_round(x, step.rebase_div)
        limit = step.extra.get("decomp_limit", decomp_limit({}))
        if step.rebase_div > limit:
            check_rebase(x, y, step.rebase_div, limit, step.node.onnx_op or step.node.op)
    return y


__all__ = [
    "EZKL_OPS", "LOWERINGS", "MAX_TABLE", "EzklOp", "Lowering", "OnnxNode", "ScaleCtx",
    "TorchBackend", "TritonBackend", "ezkl_op", "lookup_values", "lowers", "registry",
    "run_step", "_TABLES", "_dense_table",
]
