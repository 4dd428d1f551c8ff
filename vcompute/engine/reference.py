"""Reference primitives: plain torch int64, for tests and debugging only.

Same signatures and semantics as the Triton kernels in ``kernels/`` (int64 in, int64 out), so
``vcompute.engine.ops`` can run on either. The shipped engine runs on the kernels
(:class:`vcompute.engine.ops.TritonBackend`); this backend is only used when a caller asks for
``backend="reference"`` explicitly. Nothing here touches floating point.
"""

from __future__ import annotations

import torch


def _i64(t: torch.Tensor) -> torch.Tensor:
    if t.dtype != torch.int64:
        raise TypeError(f"expected int64, got {t.dtype}")
    return t


class ReferenceBackend:
    name = "reference"

    def __init__(self, device: str = "cpu") -> None:
        self.device = torch.device(device)

    def describe(self) -> str:
        return f"{self.device} (torch int64 reference)"

    # GEMM: a[M,K] @ b[K,N] (+ bias[N]), exact int64.
    def int_matmul(self, a, b, bias=None):
        out = _i64(a) @ _i64(b)
        if bias is not None:
            out = out + _i64(bias)
        return out

    # 2-D convolution, NCHW / OIHW, zero padding (top, left, bottom, right) or (h, w), exact.
    def int_conv2d(self, x, w, bias, stride, padding, dilation=(1, 1), groups=1):
        if tuple(dilation) != (1, 1):
            raise NotImplementedError("dilation")
        if len(padding) == 2:
            padding = (padding[0], padding[1], padding[0], padding[1])
        t, l, b, r = padding
        x = torch.nn.functional.pad(_i64(x), (l, r, t, b))
        kh, kw = w.shape[2], w.shape[3]
        patches = x.unfold(2, kh, stride[0]).unfold(3, kw, stride[1])  # N,C,OH,OW,kh,kw
        n, c, oh, ow = patches.shape[:4]
        cg = c // groups
        og = w.shape[0] // groups
        outs = []
        for g in range(groups):
            p = patches[:, g * cg:(g + 1) * cg]
            wg = _i64(w)[g * og:(g + 1) * og]
            outs.append(torch.einsum("nchwij,ocij->nohw", p, wg))
        out = torch.cat(outs, dim=1)
        if bias is not None:
            out = out + _i64(bias).view(1, -1, 1, 1)
        return out

    # round(x / d), halves away from zero (EZKL's const_div).
    def div_round(self, x, divisor):
        d = int(divisor)
        x = _i64(x)
        q = torch.div(2 * x.abs() + d, 2 * d, rounding_mode="floor")  # floor(|x|/d + 1/2)
        return torch.where(x < 0, -q, q)

    def int_add(self, a, b, a_shift=0, b_shift=0):
        return (_i64(a) << a_shift) + (_i64(b) << b_shift)

    def int_sub(self, a, b, a_shift=0, b_shift=0):
        return (_i64(a) << a_shift) - (_i64(b) << b_shift)

    def int_mul(self, a, b, a_shift=0, b_shift=0):
        return (_i64(a) << a_shift) * (_i64(b) << b_shift)

    def relu(self, x):
        return torch.clamp(_i64(x), min=0)

    def table_lookup(self, x, table, offset):
        """``table[x - offset]``: ``offset`` is the input value of ``table[0]``."""
        return _i64(table)[_i64(x) - offset]

    def max_pool2d(self, x, kernel, stride, padding=(0, 0)):
        ph, pw = padding
        x = torch.nn.functional.pad(_i64(x), (pw, pw, ph, ph))
        p = x.unfold(2, kernel[0], stride[0]).unfold(3, kernel[1], stride[1])
        return p.amax(dim=(-1, -2))

    def sum_pool2d(self, x, kernel, stride, padding=(0, 0)):
        ph, pw = padding
        x = torch.nn.functional.pad(_i64(x), (pw, pw, ph, ph))
        p = x.unfold(2, kernel[0], stride[0]).unfold(3, kernel[1], stride[1])
        return p.sum(dim=(-1, -2))
