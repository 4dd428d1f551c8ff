"""Helpers for batched execution: every runtime value carries a leading batch axis.

The lowered graph and its plan are batch 1 (EZKL's circuit is); execution puts ``B`` samples in
front of every node's shape: a node of shape ``s`` holds a ``(B, *s)`` tensor, and a constant a
``(1, *s)`` one, shared by every sample. Node attributes (axes, perms) refer to ``s``: add one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from ..backends import Backend


def batch_of(args: list[torch.Tensor]) -> int:
    """The batch size of an op's arguments (constants have batch 1)."""
    return max(int(a.shape[0]) for a in args)


def align(t: torch.Tensor, rank: int) -> torch.Tensor:
    """Insert unit axes right after the batch axis so ``t`` has ``rank`` dims: numpy's
    right-aligned broadcasting then never pairs a value's axis with the batch axis."""
    missing = rank - t.dim()
    if missing <= 0:
        return t
    return t.reshape(t.shape[0], *([1] * missing), *t.shape[1:])


def aligned(args: list[torch.Tensor], shape: tuple[int, ...]) -> list[torch.Tensor]:
    """All args aligned to a node of (batch-1) shape ``shape``."""
    return [align(a, len(shape) + 1) for a in args]


def expand_to(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``t`` broadcast to the full batched ``shape`` (contiguous)."""
    t = align(t, len(shape))
    return t.expand(*shape).contiguous() if tuple(t.shape) != tuple(shape) else t


def images(x: torch.Tensor) -> torch.Tensor:
    """``(B, N, C, H, W)`` as the ``(B*N, C, H, W)`` batch of images the 2-D kernels take."""
    return x.reshape(-1, *x.shape[2:])


def reduce_max(be: Backend, x: torch.Tensor, axes: list[int], out_shape) -> torch.Tensor:
    """Max over ``axes`` (axes of ``x`` itself) as one pooling window per kept position."""
    keep = [i for i in range(x.dim()) if i not in axes]
    xt = x.permute(*keep, *axes).contiguous()
    k = int(np.prod([x.shape[i] for i in axes])) if axes else 1
    m = xt.numel() // k
    return be.max_pool2d(xt.reshape(1, 1, m, k), (1, k), (1, k), (0, 0)).reshape(out_shape)


def reduce_sum(be: Backend, x: torch.Tensor, axes: list[int], out_shape) -> torch.Tensor:
    """Exact sum over ``axes`` (axes of ``x`` itself) as one GEMM with a ones column."""
    keep = [i for i in range(x.dim()) if i not in axes]
    xt = x.permute(*keep, *axes).contiguous()
    k = int(np.prod([x.shape[i] for i in axes])) if axes else 1
    ones = torch.ones((k, 1), dtype=torch.int64, device=x.device)
    return be.int_matmul(xt.reshape(-1, k), ones).reshape(out_shape)


def batched_axes(axes) -> list[int]:
    """A node's axes (of its batch-1 shape) as axes of the batched tensor."""
    return [int(a) + 1 for a in axes]
