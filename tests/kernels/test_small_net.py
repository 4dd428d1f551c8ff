"""small_net: the one-launch small CNN equals a plain int64 reference (conv, epilogue, pool,
average's rounding, clamps, dense head) bit for bit, over odd geometries (padding, stride,
groups, pools of 2x2 and 1x2), batch sizes and block configs; the flags land in the result,
cleared first (it starts filled with junk); values beyond a bound raise the right flag; the host
refuses inconsistent or inexact tables."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import vcompute.kernels as kernels
from vcompute.engine.fixedpoint import quantize_input as ref_quantize
from vcompute.engine.taps import conv_taps, dense_taps
from vcompute.kernels.flags import FLAG_A_RANGE, FLAG_INPUT_RANGE
from vcompute.kernels.reference import div_round, int_conv2d, int_matmul, max_pool2d, sum_pool2d
from vcompute.kernels.small_net import (N_FLAGS, POOL_MAX, POOL_SUM, NetConfig, TapLayer, pack_small_net,
                                        small_net)
from vcompute.kernels.testing import assert_input_range_flag, assert_same, ref_epilogue

DEV = kernels.device()
BIG = 2**40


def _rand(shape, bound, seed):
    return np.random.default_rng(seed).integers(-bound, bound + 1, shape, dtype=np.int64)


class Conv:
    """A conv layer's geometry and weights, its TapLayer and its plain reference."""

    def __init__(self, chw, o, k, stride, pads, groups, pool, is_max, seed, shift=9, clip=(0, None)):
        self.chw, self.stride, self.pads, self.groups, self.pool, self.is_max = chw, stride, pads, groups, pool, is_max
        self.w = _rand((o, chw[0] // groups, *k), 60, seed)
        self.bias = _rand((o,), 2**12, seed + 1)
        self.shift, self.clip = shift, clip

    def layer(self) -> TapLayer:
        idx, wt, (o, hp, wp) = conv_taps(self.w, self.chw, self.stride, self.pads, self.groups, self.pool)
        pool = {} if self.pool is None else dict(pool=POOL_MAX if self.is_max else POOL_SUM,
                                                  pool_shift=0 if self.is_max else int(np.prod(self.pool)).bit_length() - 1,
                                                  pool_lo=-5000, pool_hi=None)
        return TapLayer(idx, wt, np.repeat(self.bias, hp * wp), False, self.shift, *self.clip,
                        in_width=int(np.prod(self.chw)), a_bound=BIG >> 12, out_bound=BIG, **pool)

    def reference(self, h: torch.Tensor) -> torch.Tensor:
        x = h.reshape(h.shape[0], *self.chw)
        y = int_conv2d(x, torch.from_numpy(self.w), None, self.stride, self.pads, groups=self.groups)
        y = ref_epilogue(y, torch.from_numpy(self.bias)[None, :, None, None], 1 << self.shift, False, *self.clip)
        if self.pool is not None:
            ho, wo = (y.shape[2] // self.pool[0]) * self.pool[0], (y.shape[3] // self.pool[1]) * self.pool[1]
            y = y[:, :, :ho, :wo].contiguous()
            if self.is_max:
                y = max_pool2d(y, self.pool)
            else:
                y = div_round(sum_pool2d(y, self.pool), int(np.prod(self.pool)))
            y = y.clamp(min=-5000)
        return y.reshape(y.shape[0], -1)


class Dense:
    def __init__(self, k, n, seed, clip=(None, None)):
        self.w, self.bias, self.clip = _rand((k, n), 200, seed), _rand((n,), 2**14, seed + 2), clip

    def layer(self) -> TapLayer:
        idx, wt = dense_taps(self.w)
        return TapLayer(idx, wt, self.bias, True, 7, *self.clip, in_width=self.w.shape[0], a_bound=BIG >> 12,
                        out_bound=BIG)

    def reference(self, h: torch.Tensor) -> torch.Tensor:
        return ref_epilogue(int_matmul(h, torch.from_numpy(self.w)), torch.from_numpy(self.bias)[None, :], 1 << 7,
                            True, *self.clip)


def _nets():
    """(name, layers): the bundled CNN's shape, and odd ones."""
    yield "cnn-like", [Conv((1, 8, 8), 4, (3, 3), (1, 1), (1, 1, 1, 1), 1, (2, 2), True, 1),
                       Conv((4, 4, 4), 4, (3, 3), (1, 1), (1, 1, 1, 1), 1, (2, 2), False, 2), Dense(16, 3, 3)]
    yield "odd", [Conv((2, 7, 9), 6, (3, 2), (2, 1), (1, 0, 2, 1), 2, None, False, 4, clip=(-300, 9000)),
                  Conv((6, 4, 9), 3, (2, 3), (1, 2), (0, 1, 0, 0), 3, (1, 2), True, 5),
                  Dense(3 * 3 * 2, 5, 6, clip=(0, None)), Dense(5, 7, 7)]


def _reference(x: torch.Tensor, layers, scale: int) -> torch.Tensor:
    h = torch.from_numpy(ref_quantize(x.numpy().astype(np.float32), scale))
    for ly in layers:
        h = ly.reference(h)
    return h


def _run(x, layers, scale, bound, config=None):
    net = pack_small_net(layers, DEV)
    res = torch.full((N_FLAGS + x.shape[0] * net.widths[-1],), -99, dtype=torch.int64, device=DEV)
    small_net(x.to(DEV), net, scale, bound, res, config=config)
    return res.cpu(), net.widths[-1]


@pytest.mark.parametrize("config", [NetConfig(1, 64, 2), NetConfig(4, 8, 4), NetConfig(2, 16, 1)])
@pytest.mark.parametrize("m", [1, 7])
@pytest.mark.parametrize("name,net", list(_nets()))
def test_matches_layer_by_layer_reference(name, net, m, config):
    g = torch.Generator().manual_seed(m)
    x = (torch.rand((m, int(np.prod(net[0].chw))), generator=g) * 4 - 2).to(torch.float32)
    x[0, 0] = 0.5 / 2**8  # an exact tie at the input's rounding
    res, n_out = _run(x, [ly.layer() for ly in net], 8, 2**12, config)
    assert res[:N_FLAGS].tolist() == [0] * N_FLAGS, f"flags raised: {res[:N_FLAGS].tolist()}"
    assert_same(res[N_FLAGS:].reshape(m, n_out), _reference(x, net, 8), f"small_net {name} batch {m} {config}")


def test_input_beyond_its_bound_flags_inputs_and_infinite_too():
    _, net = next(_nets())
    layers = [ly.layer() for ly in net]
    assert_input_range_flag(lambda x, scale, bound: _run(x, layers, scale, bound)[0],
                            torch.zeros((5, 64), dtype=torch.float32), (3, 10))


def test_output_beyond_its_bound_flags_the_net():
    _, net = next(_nets())
    layers = [ly.layer() for ly in net]
    x = torch.full((3, 64), 1.0, dtype=torch.float32)
    hidden = _reference(x, net[:1], 8)
    assert bool((hidden != 0).any()), "test set-up: the first layer's output is all zero"
    layers[0] = replace(layers[0], out_bound=0)
    res, _ = _run(x, layers, 8, 2**12)
    assert int(res[1]) & FLAG_A_RANGE and int(res[0]) == 0, f"flags {res[:2].tolist()}: the net's should hold FLAG_A_RANGE"


def test_a_flag_in_any_one_program_reaches_the_pass():
    """One bad sample, in the first, a middle or the last program, raises the pass's input flag."""
    _, net = next(_nets())
    layers = [ly.layer() for ly in net]
    for config in (NetConfig(1, 64, 2), NetConfig(2, 16, 1)):
        for bad in (0, 4, 6):
            x = torch.zeros((7, 64), dtype=torch.float32)
            x[bad, 5] = 3.0  # 768 at scale 8, beyond the bound 512
            res, _ = _run(x, layers, 8, 512, config)
            assert int(res[0]) & FLAG_INPUT_RANGE and int(res[1]) == 0, \
                f"sample {bad} of 7, {config}: flags {res[:2].tolist()}"


def test_host_refusals():
    idx, wt = dense_taps(np.full((4, 2), 2**20, dtype=np.int64))
    ly = TapLayer(idx, wt, None, True, 0, None, None, in_width=4, a_bound=2**31, out_bound=BIG)
    with pytest.raises(OverflowError, match="2\\^53"):
        pack_small_net([ly], "cpu")
    ok = replace(ly, a_bound=1)
    with pytest.raises(ValueError, match="previous layer"):
        pack_small_net([ok, ok], "cpu")
    with pytest.raises(ValueError, match="outside"):
        pack_small_net([replace(ok, idx=idx + 3)], "cpu")
    with pytest.raises(ValueError, match="window positions"):
        pack_small_net([replace(ok, idx=np.concatenate([idx, idx]), weight=np.concatenate([wt, wt]))], "cpu")
    with pytest.raises(ValueError, match="power of two"):
        NetConfig(3, 64, 2).check()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_large_batch_every_config():
    for name, net in _nets():
        g = torch.Generator().manual_seed(12)
        x = (torch.rand((1031, int(np.prod(net[0].chw))), generator=g) * 2 - 1).to(torch.float32)
        want = _reference(x, net, 8)
        for cfg in (NetConfig(1, 64, 2), NetConfig(2, 32, 2)):
            res, n_out = _run(x, [ly.layer() for ly in net], 8, 2**12, cfg)
            assert res[:N_FLAGS].tolist() == [0] * N_FLAGS
            assert_same(res[N_FLAGS:].reshape(1031, n_out), want, f"GPU small_net {name} {cfg}")
