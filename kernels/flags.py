"""Device-side error flags for the planned (sync-free) kernel paths: ``ErrorFlags``.

A planned call (limb counts fixed at plan time) cannot stop on the host when a value breaks its
plan without a device-to-host sync per op. Instead each kernel ORs an error code into an int32
flag on the device (atomically) and computes on; the caller reads all flags once, after the whole
forward pass, with :meth:`ErrorFlags.check`, which raises OverflowError naming the op and what
went wrong. An output computed under a raised flag is invalid (wrong bits), and so is everything
computed from it. Here: the codes, the host-side helpers, :func:`publish_flags`, the device helper
with which the last kernel of a pass of several launches hands the flags to the host in its
result, and the *flag words* of a pass that is one launch (:func:`store_flag_words`,
:func:`or_flag_words`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcompute.kernels import runtime  # noqa: F401,I001  (first: sets TRITON_INTERPRET before triton loads)

import torch
import triton
import triton.language as tl

from vcompute.kernels.runtime import device as kernels_device

#: operand a (gemm) / x (conv) / the first elementwise operand lies outside its planned limbs or bound
FLAG_A_RANGE = 1
#: operand b (gemm) / w (conv) / the second elementwise operand lies outside its planned limbs or bound
FLAG_B_RANGE = 2
#: an int64 addition (the bias, or an elementwise add/sub) wrapped
FLAG_ADD_OVERFLOW = 4
#: a value to be rescaled reached |x| >= 2^52, where EZKL's f64 division stops being exact
FLAG_RESCALE_LIMIT = 8
#: an elementwise shift or product could leave int64 (|a * b| >= 2^62 is refused, as the host guards do)
FLAG_MUL_OVERFLOW = 16
#: a model input lies outside the bound the plan was made for (or is not finite)
FLAG_INPUT_RANGE = 1 << 10

_MEANINGS = {
    FLAG_A_RANGE: "the first operand (a / x) has a value outside its planned limb count or bound",
    FLAG_B_RANGE: "the second operand (b / w) has a value outside its planned limb count or bound",
    FLAG_ADD_OVERFLOW: "an int64 addition (bias or elementwise add/sub) overflowed",
    FLAG_RESCALE_LIMIT: "a value reached |x| >= 2^52 before a rescale (EZKL's f64 division is not exact there)",
    FLAG_MUL_OVERFLOW: "an elementwise shift or product could leave int64",
    FLAG_INPUT_RANGE: "a model input lies outside the bound the plan was made for (or is not finite)",
}


def describe_flag(code: int) -> str:
    """The conditions an error code holds, in words ('' for 0)."""
    parts = [text for bit, text in _MEANINGS.items() if code & bit]
    rest = code & ~sum(_MEANINGS)
    if rest:
        parts.append(f"unknown code bits {rest:#x}")
    return "; ".join(parts)


@triton.jit
def publish_flags(ticket_ptr, flag_ptr, n_flags, res_ptr, BLOCK_F: tl.constexpr):
    """Called by every program of a pass's last kernel once its own flag atomics are done: the last
    program to arrive copies the ``n_flags`` int32 flags into ``res_ptr[0:n_flags]`` as int64 and
    zeroes them and the int32 ticket, so the next pass (a CUDA-graph replay) starts clear with no
    finalize launch of its own. The ticket's atomic is acquire-release: every other program's
    flag atomics precede its arrival, so the last one reads them all; it reads and zeroes each
    flag with one atomic exchange."""
    n_prog = tl.num_programs(0) * tl.num_programs(1) * tl.num_programs(2)
    arrived = tl.atomic_add(ticket_ptr, 1)
    if arrived == n_prog - 1:
        for f0 in range(0, n_flags, BLOCK_F):
            fo = f0 + tl.arange(0, BLOCK_F)
            fm = fo < n_flags
            v = tl.atomic_xchg(flag_ptr + fo, tl.zeros((BLOCK_F,), dtype=tl.int32), mask=fm)
            tl.store(res_ptr + fo, v.to(tl.int64), mask=fm)
        tl.atomic_xchg(ticket_ptr, 0)


@triton.jit
def store_flag_words(res_ptr, in_code, code):
    """A one-launch pass's flags, without atomics: program ``p`` stores its two codes (the model
    input's, then its layers') as int64 at ``res_ptr[2p]`` and ``res_ptr[2p + 1]``, plain stores
    that every program makes, so the words need no zeroing before a pass and no program waits on
    another's. The host ORs them (:func:`or_flag_words`) when it reads the result. With the layer
    scalars as constexprs, this took the dense chain's kernel from 4.8 to 2.5 µs on the H100 (the
    hand-over ticket's round trips; BENCHMARKS.md §2e)."""
    pid = tl.program_id(0).to(tl.int64)
    tl.store(res_ptr + 2 * pid, in_code.to(tl.int64))
    tl.store(res_ptr + 2 * pid + 1, code.to(tl.int64))


def or_flag_words(words: np.ndarray | torch.Tensor, n_flags: int) -> np.ndarray:
    """The ``n_flags`` flags of a pass from its flag words (``n_flags`` per program, program-major:
    :func:`store_flag_words`), ORed over the programs, as int64 on the host."""
    w = words.cpu().numpy() if isinstance(words, torch.Tensor) else np.asarray(words)
    if w.size % n_flags:
        raise ValueError(f"or_flag_words: {w.size} words are not whole rows of {n_flags} flags")
    return np.bitwise_or.reduce(np.asarray(w, dtype=np.int64).reshape(-1, n_flags), axis=0)


@dataclass(frozen=True)
class Handover:
    """What the last kernel of a pass needs to hand the flags over (:func:`publish_flags`): the
    int32 ``ticket`` (zero between passes), the pass's int32 ``flags``, how many, and the int64
    ``res`` whose first ``n_flags`` entries receive them."""

    ticket: torch.Tensor
    flags: torch.Tensor
    n_flags: int
    res: torch.Tensor

    @classmethod
    def none(cls, like: torch.Tensor) -> "Handover":
        """Placeholder arguments for a kernel that does not publish (``PUBLISH`` off)."""
        return cls(like, like, 0, like)

    def kernel_args(self) -> tuple[tuple, dict]:
        """((ticket, flags, n_flags, res) runtime args, constexprs) for a kernel with PUBLISH."""
        return ((self.ticket, self.flags, self.n_flags, self.res),
                dict(PUBLISH=self.n_flags > 0, BLOCK_F=max(2, triton.next_power_of_2(max(1, self.n_flags)))))


def new_flag(device: torch.device | str | None = None) -> torch.Tensor:
    """A single zeroed int32 flag (what the kernels' ``flag=`` argument takes) on ``device``,
    by default the device the kernels run on."""
    return torch.zeros(1, dtype=torch.int32, device=device or kernels_device())


def check_flag(flag: torch.Tensor, what: str = "kernel") -> None:
    """Read one flag (a device-to-host sync) and raise OverflowError if any code is set."""
    code = int(flag.reshape(-1)[0].item())
    if code:
        raise OverflowError(f"{what}: {describe_flag(code)} (flag {code:#x}); its output is invalid")


class ErrorFlags:
    """One int32 flag per op of a forward pass, in one device tensor, read back with one sync.

    The flags live on ``device``, by default the device the kernels run on.
    ``slot(name)`` hands out a 1-element view for a kernel's ``flag=`` argument (the same name
    gets the same slot); ``check()`` copies all flags to the host once and raises OverflowError
    naming every op whose flag is set; ``reset()`` zeroes them on the device (no sync), e.g.
    before the next forward pass or a CUDA-graph replay.
    """

    def __init__(self, device: torch.device | str | None = None, capacity: int = 256) -> None:
        if capacity < 1:
            raise ValueError(f"ErrorFlags capacity must be >= 1, got {capacity}")
        self.tensor = torch.zeros(capacity, dtype=torch.int32, device=device or kernels_device())
        self.names: list[str] = []

    def slot(self, name: str) -> torch.Tensor:
        """The flag of op ``name`` (a view into the shared tensor)."""
        if name in self.names:
            i = self.names.index(name)
        else:
            if len(self.names) == self.tensor.numel():
                raise ValueError(f"ErrorFlags: all {self.tensor.numel()} slots are used; make it with a larger capacity")
            i = len(self.names)
            self.names.append(name)
        return self.tensor[i : i + 1]

    def reset(self) -> None:
        """Zero every flag (on the device, no sync)."""
        self.tensor.zero_()

    def codes(self) -> dict[str, int]:
        """{op name: error code} for every op whose flag is set (one device-to-host copy)."""
        vals = self.tensor[: len(self.names)].tolist()
        return {name: int(v) for name, v in zip(self.names, vals) if v}

    def check(self) -> None:
        """OverflowError listing each flagged op and its conditions, if any flag is set."""
        bad = self.codes()
        if bad:
            lines = "\n".join(f"  {name}: {describe_flag(code)} (flag {code:#x})" for name, code in bad.items())
            raise OverflowError(
                f"{len(bad)} op(s) broke their planned bounds; their outputs and everything computed from them are "
                f"invalid (re-plan with more limbs or wider bounds):\n{lines}"
            )


__all__ = ["ErrorFlags", "new_flag", "check_flag", "describe_flag", "FLAG_A_RANGE", "FLAG_B_RANGE",
           "FLAG_ADD_OVERFLOW", "FLAG_RESCALE_LIMIT", "FLAG_MUL_OVERFLOW", "FLAG_INPUT_RANGE", "Handover", "or_flag_words",
           "publish_flags", "store_flag_words"]
