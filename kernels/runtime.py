"""Where the kernels run: the CUDA GPU when there is one, else Triton's CPU interpreter.

Imported first by :mod:`kernels` (before anything imports triton) because Triton reads
``TRITON_INTERPRET`` when it is imported: without a GPU we turn the interpreter on, which runs
every ``@triton.jit`` kernel on the CPU with numpy, bit-identical for integer work.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available() and "TRITON_INTERPRET" not in os.environ:
    os.environ["TRITON_INTERPRET"] = "1"


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (no GPU code is compiled)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def device() -> torch.device:
    """The torch device kernels run on: ``cuda`` unless Triton interprets on the CPU."""
    if torch.cuda.is_available() and not interpreting():
        return torch.device("cuda")
    return torch.device("cpu")
