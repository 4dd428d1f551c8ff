"""Integer backends: the kernels' int64 API (``int_matmul``, ``int_conv2d``, ``div_round``,
``int_add/int_sub/int_mul``, ``relu``, ``table_lookup``, ``max_pool2d``, ``sum_pool2d``) on
which :mod:`vcompute.engine.ops` executes a plan.

* :class:`TritonBackend` (``"triton"``): the Triton kernels in ``kernels/``, on the GPU, or in
  Triton's CPU interpreter without one (slow: for tests of the kernels themselves).
* :class:`TorchBackend` (``"torch"``): exact int64 torch on the CPU, the same functions the
  kernel tests use as their reference (:mod:`vcompute.kernels.reference`). CUDA has no int64
  matmul, so it always runs on the CPU. Overflow is refused (OverflowError) with the kernels'
  bounds, never wrapped.

:func:`resolve` picks one: ``None`` means Triton on a CUDA device, the torch backend otherwise.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import torch


class Backend(Protocol):
    """The integer primitives an op executes on (the kernels' int64 API)."""

    def describe(self) -> str: ...
    def int_matmul(self, a: torch.Tensor, b: torch.Tensor,
                   bias: torch.Tensor | None = None) -> torch.Tensor: ...
    def int_conv2d(self, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, stride,
                   padding, dilation=(1, 1), groups: int = 1) -> torch.Tensor: ...
    def div_round(self, x: torch.Tensor, divisor: int) -> torch.Tensor: ...
    def int_add(self, a: torch.Tensor, b: torch.Tensor, a_shift: int = 0,
                b_shift: int = 0) -> torch.Tensor: ...
    def int_sub(self, a: torch.Tensor, b: torch.Tensor, a_shift: int = 0,
                b_shift: int = 0) -> torch.Tensor: ...
    def int_mul(self, a: torch.Tensor, b: torch.Tensor, a_shift: int = 0,
                b_shift: int = 0) -> torch.Tensor: ...
    def relu(self, x: torch.Tensor) -> torch.Tensor: ...
    def table_lookup(self, x: torch.Tensor, table: torch.Tensor, offset: int) -> torch.Tensor: ...
    def max_pool2d(self, x: torch.Tensor, kernel, stride, padding=(0, 0)) -> torch.Tensor: ...
    def sum_pool2d(self, x: torch.Tensor, kernel, stride, padding=(0, 0)) -> torch.Tensor: ...


class TritonBackend:
    """The Triton kernels in ``kernels/`` (the GPU path, or Triton's interpreter on CPU)."""

    name = "triton"

    def __init__(self, device: str) -> None:
        try:
            from vcompute.kernels import runtime  # noqa: F401  (sets TRITON_INTERPRET=1 without a GPU)
        except ImportError as e:  # never fall back silently
            raise RuntimeError(f"Triton kernels are not available ({e})") from e
        self.device = torch.device(device)
        self._mods: dict[str, Any] = {}
        self._described: str | None = None

    def _k(self, module: str):
        """The kernel module ``kernels.<module>``; a missing kernel is an error, not a fallback."""
        if module not in self._mods:
            try:
                self._mods[module] = importlib.import_module(f"vcompute.kernels.{module}")
            except ImportError as e:
                raise RuntimeError(
                    f"Triton kernel module kernels.{module} is not available ({e}); the engine "
                    "does not fall back to another implementation (backend='torch' runs the "
                    "exact int64 torch backend)"
                ) from e
        return self._mods[module]

    def describe(self) -> str:
        """Where the kernels run (asked of the driver once: every batch's result carries it)."""
        if self._described is None:
            self._described = (f"{self.device} {torch.cuda.get_device_name(self.device)}" if self.device.type == "cuda"
                               else f"{self.device} (triton interpreter)")
        return self._described

    def int_matmul(self, a, b, bias=None):
        return self._k("gemm").int_matmul(a.contiguous(), b.contiguous(), bias)

    def int_conv2d(self, x, w, bias, stride, padding, dilation=(1, 1), groups=1):
        return self._k("conv").int_conv2d(x.contiguous(), w.contiguous(), bias, tuple(stride),
                                          tuple(padding), tuple(dilation), groups)

    def div_round(self, x, divisor):
        return self._k("rescale").div_round(x.contiguous(), int(divisor))

    def int_add(self, a, b, a_shift=0, b_shift=0):
        return self._k("elementwise").int_add(a.contiguous(), b.contiguous(), a_shift=a_shift,
                                              b_shift=b_shift)

    def int_sub(self, a, b, a_shift=0, b_shift=0):
        return self._k("elementwise").int_sub(a.contiguous(), b.contiguous(), a_shift=a_shift,
                                              b_shift=b_shift)

    def int_mul(self, a, b, a_shift=0, b_shift=0):
        return self._k("elementwise").int_mul(a.contiguous(), b.contiguous(), a_shift=a_shift,
                                              b_shift=b_shift)

    def relu(self, x):
        return self._k("activation").relu(x.contiguous())

    def table_lookup(self, x, table, offset):
        return self._k("lookup").table_lookup(x.contiguous(), table.contiguous(), offset)

    def max_pool2d(self, x, kernel, stride, padding=(0, 0)):
        return self._k("pool").max_pool2d(x.contiguous(), tuple(kernel), tuple(stride),
                                          tuple(padding))

    def sum_pool2d(self, x, kernel, stride, padding=(0, 0)):
        return self._k("pool").sum_pool2d(x.contiguous(), tuple(kernel), tuple(stride),
                                          tuple(padding))


class TorchBackend:
    """Exact int64 torch on the CPU: :mod:`vcompute.kernels.reference`, the kernels' contract
    in plain torch (the default backend on a machine without a GPU). Its GEMMs and convs take the
    reference's float64 product wherever every partial sum stays below 2^53 (exact in any order,
    and BLAS-fast: LeNet-5's batch of 256 runs several times faster than in int64)."""

    name = "torch"

    def __init__(self, device: str = "cpu") -> None:
        from vcompute.kernels import reference

        self.device = torch.device("cpu")  # CUDA has no int64 matmul
        self._ref = reference

    def describe(self) -> str:
        return "cpu (exact int64 torch)"

    def int_matmul(self, a, b, bias=None):
        return self._ref.int_matmul(a, b, bias, f64=True)

    def int_conv2d(self, x, w, bias, stride, padding, dilation=(1, 1), groups=1):
        return self._ref.int_conv2d(x, w, bias, tuple(stride), tuple(padding), tuple(dilation),
                                    groups, f64=True)

    def div_round(self, x, divisor):
        return self._ref.div_round(x, int(divisor))

    def int_add(self, a, b, a_shift=0, b_shift=0):
        return self._ref.int_add(a, b, a_shift, b_shift)

    def int_sub(self, a, b, a_shift=0, b_shift=0):
        return self._ref.int_sub(a, b, a_shift, b_shift)

    def int_mul(self, a, b, a_shift=0, b_shift=0):
        return self._ref.int_mul(a, b, a_shift, b_shift)

    def relu(self, x):
        return self._ref.relu(x)

    def table_lookup(self, x, table, offset):
        return self._ref.table_lookup(x, table, offset)

    def max_pool2d(self, x, kernel, stride, padding=(0, 0)):
        return self._ref.max_pool2d(x, tuple(kernel), tuple(stride), tuple(padding))

    def sum_pool2d(self, x, kernel, stride, padding=(0, 0)):
        return self._ref.sum_pool2d(x, tuple(kernel), tuple(stride), tuple(padding))


#: backend names accepted by ``run_fixed``; "reference" is the former name of "torch"
BACKENDS = ("triton", "torch", "reference")


def default_backend(device: str) -> str:
    """Triton where it compiles (a CUDA device), the exact int64 torch backend elsewhere."""
    return "triton" if torch.device(device).type == "cuda" else "torch"


def resolve(backend: str | Backend | None, device: str) -> tuple[Backend, str]:
    """``(backend object, device it computes on)`` for a name, ``None`` or a backend object."""
    if backend is None:
        backend = default_backend(device)
    if not isinstance(backend, str):  # a backend object with the kernels' API (tests, debugging)
        return backend, device
    if backend in ("torch", "reference"):
        return TorchBackend(), "cpu"
    if backend == "triton":
        return TritonBackend(device), device
    raise ValueError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
