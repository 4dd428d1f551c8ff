"""relu / clip / max_scalar / min_scalar equal torch's int64 clamp, including the int64 extremes."""

from __future__ import annotations

import pytest
import torch

from vcompute.kernels._checks import BlockConfig
from vcompute.kernels.activation import clip, max_scalar, min_scalar, relu
from vcompute.kernels.testing import assert_same

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def _x(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-(2**40), 2**40, shape, generator=g, dtype=torch.int64)
    flat = x.view(-1)
    flat[: min(4, flat.numel())] = torch.tensor([I64_MIN, I64_MAX, 0, -1])[: min(4, flat.numel())]
    return x


@pytest.mark.parametrize("shape", [(1,), (3,), (17, 33), (2, 3, 65)])
def test_matches_torch(shape):
    x = _x(shape, sum(shape))
    cfg = BlockConfig(16, 1)
    assert_same(relu(x, cfg), x.clamp(min=0), "relu")
    assert_same(clip(x, -(2**13), 2**13, cfg), x.clamp(-(2**13), 2**13), "clip")
    assert_same(clip(x, None, 5), x.clamp(max=5), "clip hi only")
    assert_same(clip(x), x, "no bounds")
    assert_same(max_scalar(x, -7), x.clamp(min=-7), "max_scalar")
    assert_same(min_scalar(x, 2**50), x.clamp(max=2**50), "min_scalar")
    assert_same(clip(x, I64_MIN, I64_MAX), x, "full int64 range")
    assert_same(clip(x, 3, 3), torch.full_like(x, 3), "lo == hi")


def test_configs_and_noncontiguous():
    x = _x((9, 31), 1)
    ref = clip(x, -100, 1000)
    for cfg in (BlockConfig(16, 1), BlockConfig(128, 4), BlockConfig(4096, 8)):
        assert_same(clip(x, -100, 1000, cfg), ref, f"config {cfg}")
    assert_same(relu(x.t()), x.t().clamp(min=0), "transposed input")


def test_rejects_bad_arguments():
    x = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(ValueError, match="lo=5 > hi=4"):
        clip(x, 5, 4)
    with pytest.raises(ValueError, match="int64 value"):
        clip(x, 2**63)
    with pytest.raises(ValueError, match="int64 value"):
        clip(x, 1.5)
    with pytest.raises(TypeError, match="int64"):
        relu(x.float())
    assert relu(torch.zeros((0, 3), dtype=torch.int64)).shape == (0, 3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_torch():
    x = _x((1000, 33), 3)
    xc = x.cuda()
    assert_same(relu(xc), x.clamp(min=0), "GPU relu")
    assert_same(clip(xc, -(2**13), 2**13), x.clamp(-(2**13), 2**13), "GPU clip")
    assert_same(clip(xc, I64_MIN, I64_MAX), x, "GPU clip full range")
    assert_same(min_scalar(xc, -5), x.clamp(max=-5), "GPU min_scalar")
