"""taps: a conv's gather tables reproduce the convolution at every pooling-window position
(padding, stride, groups, odd sizes) and have the size predicted from the geometry; a dense
layer's read each input once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vcompute.engine.taps import conv_table_size, conv_taps, dense_taps
from vcompute.kernels.reference import int_conv2d


@pytest.mark.parametrize("o,cg,k,groups,chw,stride,pads,pool", [
    (4, 1, (3, 3), 1, (1, 8, 8), (1, 1), (1, 1, 1, 1), (2, 2)),
    (6, 2, (3, 2), 3, (6, 7, 9), (2, 1), (1, 0, 2, 1), None),
    (5, 3, (2, 2), 1, (3, 7, 6), (1, 1), (0, 0, 0, 0), (2, 3)),
])
def test_conv_taps_gather_the_convolution(o, cg, k, groups, chw, stride, pads, pool):
    rng = np.random.default_rng(o)
    w = rng.integers(-5, 6, (o, cg, *k))
    x = rng.integers(-9, 10, chw)
    idx, wt, (oc, hp, wp) = conv_taps(w, chw, stride, pads, groups, pool)
    got = (x.reshape(-1)[idx] * wt).sum(axis=1)  # [P, O*HP*WP]
    full = int_conv2d(torch.from_numpy(x)[None], torch.from_numpy(w), None, stride, pads, groups=groups)[0].numpy()
    ph, pw = pool or (1, 1)
    assert got.shape == (ph * pw, oc * hp * wp)
    assert conv_table_size(w.shape, chw, stride, pads, pool) == idx.size, "the size checked before building"
    for p in range(ph * pw):
        dy, dx = divmod(p, pw)
        want = full[:, dy::ph, dx::pw][:, :hp, :wp].reshape(-1)
        assert np.array_equal(got[p], want), f"window position {(dy, dx)}: {np.flatnonzero(got[p] != want)[:5]} differ"


def test_dense_taps():
    w = np.arange(12, dtype=np.int64).reshape(4, 3)
    idx, wt = dense_taps(w)
    x = np.array([3, -1, 2, 5])
    assert idx.shape == wt.shape == (1, 4, 3)
    assert np.array_equal((x[idx] * wt).sum(axis=1)[0], x @ w)
