"""Triton kernels for EZKL's fixed-point arithmetic.

Each module holds one ``@triton.jit`` kernel and its thin host wrapper (shape checks and launch).
Without a GPU, :mod:`kernels.runtime` turns on Triton's CPU interpreter before triton is imported.
"""
