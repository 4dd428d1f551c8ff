"""Helpers for the kernel tests: exact equality with a message saying what differed, limb helpers,
and the input-range check every one-launch model kernel owes.

The int64 references the kernels are compared with live in :mod:`vcompute.kernels.reference`
(also the engine's CPU backend); ``int_mm_reference`` here is a second, GPU-side check for
large GEMMs through cuBLAS int8.
"""

from __future__ import annotations

from typing import Callable

import torch


def rand_int64(shape: tuple[int, ...], bound: int, seed: int) -> torch.Tensor:
    """Seeded int64 values uniform in [-bound, bound]: the kernel tests' operands."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-bound, bound + 1, shape, generator=g, dtype=torch.int64)


def activation_bounds(activation: str | None, clip: tuple[int | None, int | None] | None) -> tuple[int | None, int | None]:
    """The output range a fused epilogue's activation and clip leave: relu lifts the floor to 0."""
    lo, hi = (None, None) if clip is None else clip
    if activation == "relu":
        lo = 0 if lo is None else max(lo, 0)
    return lo, hi


def assert_same(actual: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    """AssertionError naming the first mismatching index and both values unless bit-identical."""
    actual = actual.cpu()
    expected = expected.cpu()
    prefix = f"{what}: " if what else ""
    assert actual.dtype == expected.dtype, f"{prefix}dtype {actual.dtype} != expected {expected.dtype}"
    assert actual.shape == expected.shape, f"{prefix}shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
    diff = actual != expected
    if bool(diff.any()):
        idx = tuple(int(i) for i in diff.nonzero()[0])
        raise AssertionError(
            f"{prefix}{int(diff.sum())} of {diff.numel()} values differ; first at index {idx}: "
            f"got {int(actual[idx])}, expected {int(expected[idx])}"
        )


def torch_limbs(x: torch.Tensor, n: int) -> list[torch.Tensor]:
    """Signed 8-bit limbs of an int64 tensor with plain torch ops (independent of the kernels)."""
    out = []
    for _ in range(n):
        d = ((x + 128) & 255) - 128
        out.append(d.to(torch.int8))
        x = (x - d) >> 8
    assert bool((x == 0).all()), "value needs more limbs"
    return out


def int_mm_reference(a: torch.Tensor, b: torch.Tensor, limbs: int) -> torch.Tensor:
    """Exact a @ b on the GPU via cuBLAS int8 (``torch._int_mm``) per limb pair, combined in int64.

    Needs M > 16 and K, N multiples of 8 (cuBLAS), ``K * 2**14 < 2**31`` and an int64 result.
    """
    al, bl = torch_limbs(a, limbs), torch_limbs(b, limbs)
    c = torch.zeros((a.shape[0], b.shape[1]), dtype=torch.int64, device=a.device)
    for i, ai in enumerate(al):
        for j, bj in enumerate(bl):
            c += torch._int_mm(ai, bj).to(torch.int64) << (8 * (i + j))
    return c


def ref_div_round(x: torch.Tensor, d: int) -> torch.Tensor:
    """EZKL's division with plain torch int64 ops: ``sign(x) * floor(|x| / d + 1/2)`` (ties away from zero),
    on x's device."""
    ax = x.abs()
    q = ax // d
    q += (2 * (ax - q * d) >= d).to(torch.int64)
    return torch.where(x < 0, -q, q)


def ref_epilogue(x: torch.Tensor, bias: torch.Tensor | None = None, divisor: int = 1, bias_after: bool = False,
                 lo: int | None = None, hi: int | None = None) -> torch.Tensor:
    """The unfused epilogue with plain torch ops on x's device: ``clamp(div_round(x + bias, divisor)
    [+ bias], lo, hi)``; ``bias`` must already broadcast against ``x``."""
    if bias is not None and not bias_after:
        x = x + bias.to(x.device)
    if divisor > 1:
        x = ref_div_round(x, divisor)
    if bias is not None and bias_after:
        x = x + bias.to(x.device)
    if lo is not None:
        x = x.clamp(min=lo)
    if hi is not None:
        x = x.clamp(max=hi)
    return x


def assert_input_range_flag(run: Callable[[torch.Tensor, int, int], torch.Tensor], x: torch.Tensor,
                            cell: tuple[int, int]) -> None:
    """A one-launch model kernel (``run(x, scale, bound)`` -> its int64 result, flags first) must
    raise FLAG_INPUT_RANGE in flag 0 for one input beyond its bound (3.0 at scale 8 is 768 > 512)
    and for an infinite one of either sign. ``x`` is the float32 batch, zero at ``cell``."""
    from vcompute.kernels.flags import FLAG_INPUT_RANGE

    x = x.clone()
    x[cell] = 3.0
    res = run(x, 8, 512)
    assert int(res[0]) & FLAG_INPUT_RANGE, f"flags {res[:2].tolist()}: no FLAG_INPUT_RANGE for an input beyond its bound"
    for inf in (float("inf"), float("-inf")):
        x[cell] = inf
        res = run(x, 8, 2**20)
        assert int(res[0]) & FLAG_INPUT_RANGE, f"an input of {inf} did not raise FLAG_INPUT_RANGE"
