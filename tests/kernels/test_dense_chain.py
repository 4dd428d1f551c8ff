"""dense_chain: the one-launch MLP equals the layer-by-layer int64 reference bit for bit, over odd
widths, depths, batch sizes and every block size; every program writes its flag words (no
zeroing needed) and a flag raised by any one program reaches the pass's flags; values beyond a
bound raise the right flag; the host refuses what float64 cannot hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vcompute.kernels as kernels
from vcompute.engine.fixedpoint import quantize_input as ref_quantize
from vcompute.kernels.dense_chain import (CHAIN_MAX_WIDTH, N_FLAGS, DenseLayer, chain_block_m, dense_chain, flag_words,
                                          pack_dense_chain)
from vcompute.kernels.flags import FLAG_A_RANGE, FLAG_INPUT_RANGE, or_flag_words
from vcompute.kernels.reference import int_matmul as ref_matmul
from vcompute.kernels.testing import assert_input_range_flag, assert_same, rand_int64, ref_epilogue

DEV = kernels.device()


def _layers(widths, seed, shift=13, a_bound=2**30):
    out = []
    for i, (k, n) in enumerate(zip(widths, widths[1:])):
        last = i == len(widths) - 2
        clip = (None, None) if last else [(0, None), (-(2**12), 2**12), (None, 5000)][i % 3]
        bias = None if i % 2 else rand_int64((n,), 2**18, seed + 50 + i)
        out.append(DenseLayer(rand_int64((k, n), 2**13, seed + i), bias, shift if i != 1 else 7, *clip, a_bound))
    return out


def _reference(x: torch.Tensor, layers, scale: int) -> torch.Tensor:
    h = torch.from_numpy(ref_quantize(x.numpy().astype(np.float32), scale))
    for ly in layers:
        bias = None if ly.bias is None else ly.bias[None, :]
        h = ref_epilogue(ref_matmul(h, ly.weight), bias, 1 << ly.shift, True, ly.lo, ly.hi)
    return h


def _run(x, layers, scale, bound, block_m=None):
    """(cat(the pass's N_FLAGS flags, its outputs), N_FLAGS), from a result poisoned beforehand:
    every flag word must have been written."""
    chain = pack_dense_chain([DenseLayer(ly.weight.to(DEV), None if ly.bias is None else ly.bias.to(DEV),
                                         ly.shift, ly.lo, ly.hi, ly.a_bound) for ly in layers])
    m = x.shape[0]
    words = flag_words(m, chain, block_m)
    assert words == N_FLAGS * -(-m // (block_m or chain_block_m(m, chain.width)))
    res = torch.full((words + m * chain.widths[-1],), -99, dtype=torch.int64, device=DEV)
    assert dense_chain(x.to(DEV), chain, scale, bound, block_m=block_m, out=res) is res
    res = res.cpu()
    assert not bool((res[:words] == -99).any()), f"unwritten flag words: {res[:words].tolist()}"
    return torch.cat([torch.from_numpy(or_flag_words(res[:words], N_FLAGS)), res[words:]]), N_FLAGS


@pytest.mark.parametrize("block_m", [1, 4, None])
@pytest.mark.parametrize("m,widths", [(1, [8, 16, 4]), (37, [5, 13, 7, 3]), (130, [3, 32, 1]), (9, [31, 2, 17, 9, 6])])
def test_matches_layer_by_layer_reference(m, widths, block_m):
    g = torch.Generator().manual_seed(m)
    x = (torch.rand((m, widths[0]), generator=g) * 4 - 2).to(torch.float32)
    x[0, 0] = 0.5 / 2**13  # an exact tie at the input's rounding
    layers = _layers(widths, m)
    res, n_flags = _run(x, layers, 13, 2**16, block_m)
    assert res[:n_flags].tolist() == [0] * n_flags, f"flags raised: {res[:n_flags].tolist()}"
    assert_same(res[n_flags:].reshape(m, widths[-1]), _reference(x, layers, 13),
                f"dense_chain widths {widths} batch {m} block_m {block_m}")


def test_input_beyond_its_bound_flags_inputs_and_infinite_too():
    layers = _layers([4, 6, 2], 3)
    assert_input_range_flag(lambda x, scale, bound: _run(x, layers, scale, bound)[0],
                            torch.zeros((10, 4), dtype=torch.float32), (7, 2))


def test_hidden_value_beyond_its_bound_flags_the_chain():
    layers = _layers([4, 6, 2], 5, a_bound=2**30)
    tight = DenseLayer(layers[1].weight, layers[1].bias, layers[1].shift, layers[1].lo, layers[1].hi, 0)
    x = torch.full((3, 4), 1.0, dtype=torch.float32)
    res, _ = _run(x, [layers[0], tight], 13, 2**16)
    hidden = _reference(x, layers[:1], 13)
    assert bool((hidden != 0).any()), "test set-up: the hidden layer is all zero"
    assert int(res[1]) & FLAG_A_RANGE and int(res[0]) == 0, f"flags {res[:2].tolist()}: the chain's should hold FLAG_A_RANGE"


@pytest.mark.parametrize("block_m", [1, 4])
def test_a_flag_in_any_one_program_reaches_the_pass(block_m):
    """One bad sample, in the first, a middle or the last program, raises the pass's input flag."""
    layers = _layers([4, 6, 2], 9)
    for bad in (0, 21, 36):
        x = torch.zeros((37, 4), dtype=torch.float32)
        x[bad, 1] = 3.0  # 768 at scale 8, beyond the bound 512
        res, _ = _run(x, layers, 8, 512, block_m)
        assert int(res[0]) & FLAG_INPUT_RANGE and int(res[1]) == 0, \
            f"sample {bad} of 37, block_m {block_m}: flags {res[:2].tolist()}"


def test_a_fresh_result_is_allocated_and_a_wrong_one_refused():
    chain = pack_dense_chain([DenseLayer(rand_int64((3, 2), 2**8, 1).to(DEV), None, 0, None, None, 2**10)])
    x = torch.zeros((5, 3), dtype=torch.float32, device=DEV)
    res = dense_chain(x, chain, 8, 2**10)
    assert res.numel() == flag_words(5, chain) + 5 * 2 and res.dtype == torch.int64
    with pytest.raises(ValueError, match="flag words"):
        dense_chain(x, chain, 8, 2**10, out=torch.empty(res.numel() + 1, dtype=torch.int64, device=DEV))


def test_host_refusals():
    w = torch.full((4, 2), 2**20, dtype=torch.int64)
    with pytest.raises(OverflowError, match="2\\^53"):
        pack_dense_chain([DenseLayer(w, None, 0, None, None, 2**31)])
    with pytest.raises(ValueError, match="previous layer"):
        pack_dense_chain([DenseLayer(torch.ones((4, 3), dtype=torch.int64), None, 0, None, None, 1),
                          DenseLayer(torch.ones((4, 3), dtype=torch.int64), None, 0, None, None, 1)])
    with pytest.raises(ValueError, match="wider"):
        pack_dense_chain([DenseLayer(torch.ones((CHAIN_MAX_WIDTH + 1, 2), dtype=torch.int64), None, 0, None, None, 1)])


def test_block_rule():
    assert chain_block_m(1024, 16) == 4 and chain_block_m(3, 8) == 4 and chain_block_m(1024, 8) == 16
    assert chain_block_m(1024, 32) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_large_batch_every_block():
    g = torch.Generator().manual_seed(11)
    x = (torch.rand((4099, 8), generator=g) * 2 - 1).to(torch.float32)
    layers = _layers([8, 16, 16, 4], 11)
    want = _reference(x, layers, 13)
    for bm in (1, 8, 64, None):
        res, n_flags = _run(x, layers, 13, 2**14, bm)
        assert res[:n_flags].tolist() == [0] * n_flags
        assert_same(res[n_flags:].reshape(4099, 4), want, f"GPU dense_chain block_m {bm}")
