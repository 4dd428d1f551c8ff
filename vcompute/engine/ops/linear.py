"""MatMul and Gemm -> EZKL's EINSUM (tract turns Gemm into an einsum plus an Add of the bias).

Batched, a constant weight matrix is shared by every sample: the samples' rows are stacked into
one GEMM (``B*rows x K @ K x N``). Products of two runtime tensors (attention's ``Q @ K^T``)
run one GEMM per sample and matrix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..ir import UnsupportedOpError
from ._batch import align
from .registry import OnnxNode, ezkl_op, lowers, sum_scales

if TYPE_CHECKING:
    from ..backends import Backend
    from ..graph import Lowerer
    from ..quantize import Step


@lowers("Gemm")
def lower_gemm(lw: Lowerer, n: OnnxNode) -> None:
    """tract's Gemm (``onnx/src/ops/math/gemm.rs``): ``EinSum(A, B)`` (transA/transB are the
    equation), then ``Mul(alpha)`` if alpha != 1, then ``Add(beta * C)`` if beta != 0 and C is
    given -- a constant C is folded with beta in f32 into one constant, a runtime C is
    ``Mul(C, beta)`` like any Mul. So the einsum is rebased before alpha and C apply."""
    a, ins, out = n.attrs, n.ins, n.out
    if all(i in lw.consts for i in ins[:2]):
        raise UnsupportedOpError("Gemm", "both operands constant")
    alpha = np.float32(a.get("alpha", 1.0))
    beta = np.float32(a.get("beta", 1.0))

    def operand(name: str, trans: bool, hint: str) -> str:
        if name in lw.consts:  # hummingbird's trees multiply a constant by the input
            v = lw.consts[name]
            return lw.const(v.T if trans else v, hint)
        r = lw.ref(name)
        if trans:
            rs = lw.shapes[r]
            r = lw.new("transpose", [r], (rs[1], rs[0]), "Gemm", perm=(1, 0))
        return r

    x = operand(ins[0], bool(a.get("transA", 0)), "gemm_a")
    b = operand(ins[1], bool(a.get("transB", 0)), "gemm_w")
    kdim = lw.shapes[b][0]
    m = int(np.prod(lw.shapes[x])) // kdim
    mm_shape = (m, lw.shapes[b][1])
    has_c = len(ins) > 2 and ins[2] and beta != 0
    last = alpha == 1.0 and not has_c
    mm = lw.new("einsum", [x, b], mm_shape, "Gemm", name=out if last else None)
    if alpha != 1.0:
        tmp = out if not has_c else f"__gemm_alpha_{lw.counter}"
        lw.mul_const(mm, np.array(alpha), tmp, "Gemm")
        mm = tmp
    if not has_c:
        return
    if ins[2] in lw.consts:
        cv = lw.consts[ins[2]].astype(np.float32)
        c = lw.const(cv if beta == 1.0 else beta * cv, "gemm_b")
    else:
        c = lw.ref(ins[2])
        if beta != 1.0:
            tmp = f"__gemm_beta_{lw.counter}"
            lw.mul_const(c, np.array(beta), tmp, "Gemm")
            c = tmp
    lw.new("add", [mm, c], np.broadcast_shapes(mm_shape, lw.shapes[c]), "Gemm", name=out)


@lowers("MatMul")
def lower_matmul(lw: Lowerer, n: OnnxNode) -> None:
    if all(i in lw.consts for i in n.ins):
        raise UnsupportedOpError("MatMul", "both operands constant")
    x = lw.input_ref(n.ins[0], "matmul_a")
    b = lw.input_ref(n.ins[1], "matmul_w")
    sa, sb = lw.shapes[x], lw.shapes[b]
    if len(sa) < 2 or len(sb) < 2:
        raise UnsupportedOpError("MatMul", "1-D operand")
    batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    lw.new("einsum", [x, b], (*batch, sa[-2], sb[-1]), "MatMul", name=n.out)


@ezkl_op("einsum", scale=sum_scales)
def run_einsum(be: Backend, step: Step, args: list[torch.Tensor]) -> torch.Tensor:
    """``a @ b`` for ``a`` (B, ..., M, K) and ``b`` (B or 1, ..., K, N)."""
    a, b = args
    nb = max(a.shape[0], b.shape[0])
    out_shape = (nb, *step.node.shape)
    k = b.shape[-2]
    if b.dim() == 3 and b.shape[0] == 1:  # one matrix for every row of every sample
        return be.int_matmul(a.reshape(-1, k).contiguous(), b[0].contiguous()).reshape(out_shape)
    if b.dim() == 3:  # a matrix per sample
        outs = [be.int_matmul(a[min(i, a.shape[0] - 1)].reshape(-1, k).contiguous(),
                              b[min(i, b.shape[0] - 1)].contiguous()) for i in range(nb)]
        return torch.stack(outs).reshape(out_shape)
    # stacked matrices: broadcast the (non-sample) stack dims, then a GEMM per matrix
    rank = max(a.dim(), b.dim())
    a, b = align(a, rank), align(b, rank)
    stack = torch.broadcast_shapes(a.shape[1:-2], b.shape[1:-2])
    p = int(np.prod(stack)) if stack else 1
    a_ = a.expand(a.shape[0], *stack, *a.shape[-2:]).reshape(a.shape[0], p, *a.shape[-2:])
    b_ = b.expand(b.shape[0], *stack, *b.shape[-2:]).reshape(b.shape[0], p, *b.shape[-2:])
    m = a.shape[-2]
    if b_.shape[0] == 1:  # shared across samples: stack the samples' rows
        outs = [be.int_matmul(a_[:, j].reshape(-1, k).contiguous(), b_[0, j].contiguous())
                .reshape(a_.shape[0], m, -1) for j in range(p)]
        return torch.stack(outs, dim=1).reshape(out_shape)
    a_, b_ = a_.expand(nb, *a_.shape[1:]), b_.expand(nb, *b_.shape[1:])
    outs = [be.int_matmul(a_[i, j].contiguous(), b_[i, j].contiguous())
            for i in range(nb) for j in range(p)]
    return torch.stack(outs).reshape(out_shape)
