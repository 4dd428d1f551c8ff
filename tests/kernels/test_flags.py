"""flags: a one-kernel pass's flag words ORed into its flags on the host (or_flag_words), and the
device helper that writes them (store_flag_words), one program per row."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import triton
import triton.language as tl

import vcompute.kernels as kernels
from vcompute.kernels.flags import (FLAG_A_RANGE, FLAG_ADD_OVERFLOW, FLAG_INPUT_RANGE, describe_flag, or_flag_words,
                                    store_flag_words)

DEV = kernels.device()


@triton.jit
def _codes_kernel(codes_ptr, res_ptr):
    """Program p stores codes[2p], codes[2p + 1] as its flag words."""
    pid = tl.program_id(0)
    store_flag_words(res_ptr, tl.load(codes_ptr + 2 * pid), tl.load(codes_ptr + 2 * pid + 1))


def test_or_flag_words_ors_each_flag_over_the_programs():
    words = np.array([0, 0, FLAG_INPUT_RANGE, 0, 0, FLAG_A_RANGE, 0, FLAG_ADD_OVERFLOW], dtype=np.int64)
    got = or_flag_words(words, 2)
    assert got.tolist() == [FLAG_INPUT_RANGE, FLAG_A_RANGE | FLAG_ADD_OVERFLOW], got
    assert or_flag_words(torch.from_numpy(words), 4).tolist() == [0, FLAG_A_RANGE, FLAG_INPUT_RANGE, FLAG_ADD_OVERFLOW]
    assert or_flag_words(np.zeros(6, dtype=np.int64), 2).tolist() == [0, 0]
    assert "planned limb count or bound" in describe_flag(int(got[1]))


def test_or_flag_words_refuses_a_partial_row():
    with pytest.raises(ValueError, match="whole rows of 2"):
        or_flag_words(np.zeros(5, dtype=np.int64), 2)


@pytest.mark.parametrize("n_programs", [1, 3, 8])
def test_store_flag_words_writes_every_programs_row(n_programs):
    rng = np.random.default_rng(n_programs)
    codes = rng.integers(0, 1 << 11, 2 * n_programs).astype(np.int32)
    res = torch.full((2 * n_programs + 3,), -99, dtype=torch.int64, device=DEV)
    _codes_kernel[(n_programs,)](torch.from_numpy(codes).to(DEV), res)
    got = res.cpu().numpy()
    assert got[: 2 * n_programs].tolist() == codes.astype(np.int64).tolist(), f"flag words {got.tolist()}"
    assert got[2 * n_programs:].tolist() == [-99] * 3, "store_flag_words wrote past its program's row"
    assert or_flag_words(got[: 2 * n_programs], 2).tolist() == [int(np.bitwise_or.reduce(codes[0::2])),
                                                                   int(np.bitwise_or.reduce(codes[1::2]))]
