"""Checks EZKL's witness generation makes, shared by the op families.

EZKL range-checks many intermediate values while it lays out the circuit; a value out of range
makes ``gen_witness`` fail, so the engine refuses the same inputs (UnsupportedOpError) instead of
returning integers no witness holds (docs/ezkl-semantics.md, "Refusals"):

* decomposition (``tensor/ops.rs::get_rep``): ``|v| <= decomp_base^decomp_legs - 1`` for the
  difference of every comparison, the input of Sign/Abs/ReLU, every rebase quotient...;
* boolean range checks (``layouts.rs::boolean_identity``): Where's mask and the operands of
  And/Or/Not/Xor must be 0 or 1;
* a rebase by ``d >= 2^28`` (``layouts.rs::div`` -> ``diff_less_than``) also decomposes the
  remainder ``r`` and ``d - r``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..ir import UnsupportedOpError

DECOMP_BASE = 16384  # RunArgs defaults (src/lib.rs)
DECOMP_LEGS = 2


def decomp_limit(run_args: dict[str, Any], base: int | None = None) -> int:
    """The largest ``|v|`` EZKL can decompose: ``base^legs - 1`` (base: ``decomp_base``)."""
    b = int(base if base is not None else run_args.get("decomp_base") or DECOMP_BASE)
    return b ** int(run_args.get("decomp_legs") or DECOMP_LEGS) - 1


def check_range(x: torch.Tensor, limit: int, op: str, what: str) -> None:
    """Refuse when some ``|x| > limit`` (EZKL's decomposition fails there)."""
    if x.numel() and int(x.abs().max()) > limit:
        raise UnsupportedOpError(op, f"EZKL's witness generation fails: {what} exceeds "
                                     f"{limit} in absolute value")


def check_bool(x: torch.Tensor, op: str, what: str) -> None:
    """Refuse when ``x`` is not 0/1 (EZKL's boolean range check fails, even in UNSAFE mode)."""
    if x.numel() and bool(((x != 0) & (x != 1)).any()):
        raise UnsupportedOpError(op, f"EZKL's witness generation fails: {what} is not 0/1")


def check_rebase(x: torch.Tensor, y: torch.Tensor, divisor: int, limit: int, op: str) -> None:
    """``layouts.rs::div`` checks ``y``, the remainder ``r = |x - y d|`` and ``d - r``; only a
    divisor above the limit can fail the last two (``r < d``)."""
    if divisor <= limit:
        return
    r = (x - y * divisor).abs()
    check_range(y, limit, op, "a rebase quotient")
    check_range(divisor - r, limit, op, f"a rebase by 2^{divisor.bit_length() - 1}: d - remainder")


def per_sample(args: list[torch.Tensor], fn) -> torch.Tensor:
    """``fn(*sample_args)`` for every sample of the batch, stacked (constants have batch 1)."""
    nb = max(int(a.shape[0]) for a in args)
    return torch.stack([fn(*[a[min(b, a.shape[0] - 1)] for a in args]) for b in range(nb)])
