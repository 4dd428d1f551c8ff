"""max_pool2d / sum_pool2d equal int64 references over odd shapes, strides and asymmetric padding
(max pads with the int64 minimum, sum with 0), identical across configs; sum's overflow guard."""

from __future__ import annotations

import pytest
import torch

from vcompute.kernels._checks import BlockConfig
from vcompute.kernels.pool import max_pool2d, sum_pool2d
from vcompute.kernels.testing import assert_same, rand_int64

I64_MIN = -(2**63)


def ref_pool(x, kernel, stride, padding, is_max):
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, stride, padding
    fill = I64_MIN if is_max else 0
    xp = torch.nn.functional.pad(x, (pl, pr, pt, pb), value=fill)
    n, c, h, w = xp.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    win = xp.unfold(2, kh, sh).unfold(3, kw, sw)[:, :, :ho, :wo]  # [n, c, ho, wo, kh, kw]
    return win.amax(dim=(-1, -2)) if is_max else win.sum(dim=(-1, -2))


CASES = [  # shape, kernel, stride, padding (t, l, b, r)
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((1, 3, 7, 9), (2, 2), (2, 2), (0, 0, 0, 0)),
    ((2, 3, 17, 5), (3, 3), (2, 1), (1, 1, 1, 1)),
    ((3, 1, 33, 17), (3, 2), (3, 2), (2, 0, 1, 1)),
    ((1, 5, 9, 9), (5, 5), (1, 1), (4, 4, 4, 4)),
]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("is_max", [True, False], ids=["max", "sum"])
def test_matches_reference(case, is_max):
    shape, k, s, p = case
    x = -rand_int64(shape, 2**40, sum(shape)).abs() - 1  # all negative: a padded 0 or wrong fill would show
    x.view(-1)[::3] *= -1
    fn = max_pool2d if is_max else sum_pool2d
    assert_same(fn(x, k, s, p, BlockConfig(16, 1)), ref_pool(x, k, s, p, is_max), f"{case}")


def test_defaults_configs_and_batches():
    x = rand_int64((4, 3, 11, 13), 2**30, 9)
    ref = ref_pool(x, (2, 3), (2, 3), (0, 0, 0, 0), True)
    assert_same(max_pool2d(x, (2, 3)), ref, "stride defaults to kernel")
    for cfg in (BlockConfig(16, 1), BlockConfig(128, 4), BlockConfig(2048, 8)):
        assert_same(sum_pool2d(x, 3, 2, 1, cfg), ref_pool(x, (3, 3), (2, 2), (1, 1, 1, 1), False), f"config {cfg}")
    for i in range(x.shape[0]):
        assert_same(max_pool2d(x[i : i + 1], 3, 2, (1, 0)), max_pool2d(x, 3, 2, (1, 0))[i : i + 1], f"image {i}")


def test_sum_overflow_guard():
    x = torch.full((1, 1, 2, 2), 2**61 - 1, dtype=torch.int64)
    assert int(sum_pool2d(x, 2).item()) == 4 * (2**61 - 1)
    with pytest.raises(OverflowError, match="int64"):
        sum_pool2d(torch.full((1, 1, 2, 2), 2**61, dtype=torch.int64), 2)
    assert int(max_pool2d(torch.full((1, 1, 2, 2), 2**62, dtype=torch.int64), 2).item()) == 2**62


def test_rejects_bad_arguments():
    x = torch.zeros((1, 1, 4, 4), dtype=torch.int64)
    with pytest.raises(ValueError, match="padding"):
        max_pool2d(x, 2, 1, 2)
    with pytest.raises(ValueError, match="output would be"):
        sum_pool2d(x, 5)
    with pytest.raises(ValueError, match="4 dims"):
        max_pool2d(x[0], 2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_reference():
    x = rand_int64((4, 16, 33, 31), 2**40, 13)
    for is_max, fn in ((True, max_pool2d), (False, sum_pool2d)):
        got = fn(x.cuda(), 3, 2, (1, 1, 0, 1))
        assert got.device.type == "cuda"
        assert_same(got, ref_pool(x, (3, 3), (2, 2), (1, 1, 0, 1), is_max), f"GPU {'max' if is_max else 'sum'} pool")
