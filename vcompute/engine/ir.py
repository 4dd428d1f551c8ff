"""The lowered graph's data types, shared by lowering (:mod:`.graph`), the op registry
(:mod:`.ops`) and scale planning (:mod:`.quantize`); kept apart so none of them imports another
just for a type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vcompute.errors import UsageError


class UnsupportedOpError(UsageError):
    """The model uses an op (or an op variant) the fixed-point engine cannot run exactly."""

    def __init__(self, op_type: str, detail: str = "") -> None:
        self.op_type = op_type
        msg = f"unsupported op: {op_type}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


@dataclass
class Node:
    """One op of the lowered graph, in EZKL's vocabulary.

    ``op`` is ``input``, ``const`` or the name of an EZKL op registered in :mod:`.ops`
    (``einsum``, ``conv``, ``add``, ``relu``, ``lookup``, ``view`` (a layout change tract
    absorbs: no EZKL node), ...). ``shape`` is the batch-1 shape EZKL's circuit has.
    """

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    onnx_op: str = ""
    shape: tuple[int, ...] = ()


@dataclass
class Graph:
    nodes: dict[str, Node]  # in topological order (dict keeps insertion order)
    inputs: list[str]
    outputs: list[str]

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes.values() if name in n.inputs]
