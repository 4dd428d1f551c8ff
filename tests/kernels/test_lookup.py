"""table_lookup gathers table[x - offset] exactly and names the ranges when x leaves the table."""

from __future__ import annotations

import pytest
import torch

from vcompute.kernels._checks import BlockConfig
from vcompute.kernels.lookup import table_lookup
from vcompute.kernels.testing import assert_same


def _table(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-(2**40), 2**40, (n,), generator=g, dtype=torch.int64)


@pytest.mark.parametrize("shape", [(1,), (3,), (17, 33), (2, 5, 65)])
@pytest.mark.parametrize("offset", [-(2**15), 0, 1000, -(2**62)])
def test_matches_indexing(shape, offset):
    table = _table(2**16 + 1, 1)
    g = torch.Generator().manual_seed(2)
    x = torch.randint(offset, offset + table.numel(), shape, generator=g, dtype=torch.int64)
    x.view(-1)[0] = offset  # both ends of the table
    x.view(-1)[-1] = offset + table.numel() - 1
    assert_same(table_lookup(x, table, offset, BlockConfig(16, 1)), table[x - offset], f"offset {offset}")


def test_configs_give_same_bits():
    table = _table(513, 3)
    x = torch.arange(-256, 257, dtype=torch.int64).view(27, 19)
    ref = table[x + 256]
    for cfg in (BlockConfig(16, 1), BlockConfig(256, 4), BlockConfig(1024, 8)):
        assert_same(table_lookup(x, table, -256, cfg), ref, f"config {cfg}")


def test_out_of_range_names_the_range():
    table = _table(10, 4)
    with pytest.raises(ValueError, match=r"inputs span \[-3, 9\] but the table covers \[-2, 7\].*2 of 3 inputs"):
        table_lookup(torch.tensor([-3, 0, 9]), table, -2)
    with pytest.raises(ValueError, match=r"table covers \[5, 14\]"):
        table_lookup(torch.tensor([15]), table, 5)


def test_rejects_bad_arguments():
    table = _table(4, 5)
    with pytest.raises(TypeError, match="int64"):
        table_lookup(torch.tensor([0], dtype=torch.int32), table, 0)
    with pytest.raises(ValueError, match="1 dims"):
        table_lookup(torch.tensor([0]), table.view(2, 2), 0)
    with pytest.raises(TypeError, match="offset"):
        table_lookup(torch.tensor([0]), table, 0.0)
    assert table_lookup(torch.zeros((0,), dtype=torch.int64), table, 0).shape == (0,)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_indexing():
    table = _table(2**17, 7)
    g = torch.Generator().manual_seed(8)
    x = torch.randint(-(2**16), 2**16, (333, 77), generator=g, dtype=torch.int64)
    got = table_lookup(x.cuda(), table.cuda(), -(2**16))
    assert got.device.type == "cuda"
    assert_same(got, table[x + 2**16], "GPU lookup")
    with pytest.raises(ValueError, match="table covers"):
        table_lookup(x.cuda() + 2**16, table.cuda(), -(2**16))
