"""Programmatic dependent launch (kernels.pdl) is off wherever it cannot run, refuses unknown
modes and never leaks out of its block; on a Hopper GPU, a pass with dependent launches gives the
same bits as one without (tests/engine/test_fast.py runs whole models under the ``auto``,
``small`` and ``unfolded`` policies: waits, off, released early)."""

from __future__ import annotations

import pytest
import torch

from vcompute.kernels import fused_elementwise
from vcompute.kernels.flags import new_flag
from vcompute.kernels.pdl import PDL_MODES, dependent_launches, launch_options
from vcompute.kernels.runtime import device, interpreting
from vcompute.kernels.testing import assert_same


def test_off_outside_a_block_and_on_the_cpu():
    assert launch_options(torch.device("cpu")) == {"GDC": 0}
    for mode in PDL_MODES:
        with dependent_launches(mode):
            assert launch_options(torch.device("cpu")) == {"GDC": 0}, f"mode {mode} on the CPU"


def test_rejects_unknown_modes_and_restores_the_outer_mode():
    with pytest.raises(ValueError, match="pdl mode must be one of off, wait, early"):
        with dependent_launches("always"):
            pass
    with dependent_launches("wait"):
        with dependent_launches("off"):
            pass
        if torch.cuda.is_available() and not interpreting() and torch.cuda.get_device_capability()[0] >= 9:
            assert launch_options(torch.device("cuda", torch.cuda.current_device()))["GDC"] == 1
    assert launch_options(device()) == {"GDC": 0}


def _chain(x: torch.Tensor, flag: torch.Tensor) -> list[torch.Tensor]:
    """Eight launches, each reading the one before: y <- round((y + x) / 2), then y * x clipped."""
    ys, y = [], x
    for i in range(8):
        y = fused_elementwise(y, x, "add", rescale_shift=1, flag=flag) if i % 2 == 0 else \
            fused_elementwise(y, x, "mul", clip=(-(2**40), 2**40), flag=flag)
        ys.append(y)
    return ys


def _same_bits_in_every_mode(dev: torch.device, n: int) -> None:
    g = torch.Generator().manual_seed(7)
    x = torch.randint(-1000, 1000, (3, n), generator=g, dtype=torch.int64).to(dev)
    flag = new_flag(dev)
    want = _chain(x, flag)
    for mode in PDL_MODES:
        with dependent_launches(mode):
            got = _chain(x, flag)
        for i, (w, gt) in enumerate(zip(want, got)):
            assert_same(gt, w, f"launch {i}, pdl {mode}")
    assert int(flag.item()) == 0


def test_dependent_launches_give_the_same_bits():
    """On the CPU (the interpreter) every mode is off: the contract, and the kernels' signatures."""
    _same_bits_in_every_mode(device(), 1001)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 9,
                    reason="needs a Hopper or later GPU")
def test_gpu_dependent_launches_give_the_same_bits():
    """On Hopper the launches overlap: each must still read what the one before it wrote."""
    for _ in range(3):
        _same_bits_in_every_mode(torch.device("cuda", torch.cuda.current_device()), 300_007)
