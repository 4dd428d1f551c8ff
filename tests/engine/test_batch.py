"""Batch invariance: N samples run as one computation give each sample's own bits.

For every model of ``test_engine.CASES`` (one per op family, plus an MLP, a CNN, attention...)
we draw 16 distinct random samples, let EZKL compute each sample's witness, and run
``run_fixed_batch`` at batch sizes 1, 2, 3, 7 and 16 (the way batch-invariance tests run a
batch and each of its rows alone). Every sample's integers must equal its own EZKL witness and
the engine's batch-1 result for that sample, bit for bit, on every backend. The Triton
interpreter is slow on CPU: by default it runs one batch of 3 per model; ``-m slow`` (or a GPU)
runs every size.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

ezkl = pytest.importorskip("ezkl")

from tests.engine.test_engine import CASES  # noqa: E402
from tests.engine.witness_cases import N_SAMPLES, Case, product_model  # noqa: E402

from vcompute.engine import compare, run_fixed_batch  # noqa: E402

SIZES = [1, 2, 3, 7, N_SAMPLES]


def _pick(size: int) -> list[int]:
    """Which samples a batch of ``size`` holds: distinct, and not always the first ones."""
    if size == N_SAMPLES:
        return list(range(N_SAMPLES))
    rng = np.random.default_rng(size)
    return sorted(rng.choice(N_SAMPLES, size=size, replace=False).tolist())


def _check_batch(case: Case, backend: str, idx: list[int], device: str | None = None) -> None:
    res = run_fixed_batch(case.model, [case.samples[i] for i in idx], case.settings, device,
                          backend=backend)
    assert res.batch_size == len(idx)
    assert res.output_scales == case.settings["model_output_scales"]
    for pos, i in enumerate(idx):
        got = res.outputs_fixed[pos]
        exact, where = compare(got, case.witness[i])
        assert exact, (f"{case.name}, {backend}, batch {len(idx)}: sample {i} (row {pos}) vs its "
                       f"EZKL witness: {where}; ops {res.ops}")
        exact, where = compare(got, case.single(backend, i))
        assert exact, (f"{case.name}, {backend}, batch {len(idx)}: sample {i} (row {pos}) vs the "
                       f"engine's batch-1 run of it: {where}")
        assert res.outputs[pos] == [[v / 2.0 ** s for v in o]
                                    for o, s in zip(got, res.output_scales)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", list(CASES))
def test_torch_batch_matches_witness_and_batch_one(cases, name, size):
    _check_batch(cases(name), "torch", _pick(size))


@pytest.mark.parametrize("name", list(CASES))
def test_triton_batch_matches_witness_and_batch_one(cases, name):
    _check_batch(cases(name), "triton", _pick(3))


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", list(CASES))
def test_triton_batch_every_size(cases, name, size):
    _check_batch(cases(name), "triton", _pick(size))


@pytest.mark.gpu
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", list(CASES))
def test_gpu_batch_every_size(cases, name, size):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    _check_batch(cases(name), "triton", _pick(size), device="cuda:0")


def test_stacked_arrays_equal_per_sample_lists(cases):
    """One stacked array per model input is the same batch as a list of per-sample lists."""
    case = cases("matmul")  # two inputs
    idx = _pick(7)
    stacked = [np.stack([case.samples[i][k] for i in idx]) for k in range(2)]
    a = run_fixed_batch(case.model, stacked, case.settings, backend="torch")
    b = run_fixed_batch(case.model, [case.samples[i] for i in idx], case.settings,
                        backend="torch")
    assert a.outputs_fixed == b.outputs_fixed
    single = cases("mlp")
    c = run_fixed_batch(single.model, np.stack(single.samples), single.settings, backend="torch")
    assert c.outputs_fixed == [single.single("torch", i) for i in range(N_SAMPLES)]


def test_result_arrays_lists_and_samples_agree(cases):
    """``BatchResult.fixed`` (int64 [B, n] per output) holds the same integers as the per-sample
    lists built from it, ``floats()`` and ``outputs`` their values at the output scales, and
    ``sample(i)`` row i of each."""
    case = cases("matmul")
    idx = _pick(7)
    res = run_fixed_batch(case.model, [case.samples[i] for i in idx], case.settings, backend="torch")
    assert res.batch_size == 7 and all(a.dtype == np.int64 and a.shape[0] == 7 for a in res.fixed)
    assert [[row.tolist() for row in rows] for rows in zip(*res.fixed)] == res.outputs_fixed
    assert res.outputs_fixed == [case.single("torch", i) for i in idx]
    for a, f, s in zip(res.fixed, res.floats(), res.output_scales):
        assert np.array_equal(f * 2.0 ** s, a.astype(np.float64)), "floats() is not fixed / 2^scale"
    assert [[row.tolist() for row in rows] for rows in zip(*res.floats())] == res.outputs
    one = res.sample(3)
    assert one.outputs_fixed == res.outputs_fixed[3] and one.outputs == res.outputs[3]




@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_batch_overflow_guard_falls_back_to_samples(tmp_path, backend):
    """Overflow guards bound a product by the batch's largest operands, which may come from
    different samples: such a batch runs sample by sample instead of failing. A sample that
    could overflow on its own is still refused."""
    path = product_model(tmp_path)
    settings = {"run_args": {"input_scale": 0, "param_scale": 0, "scale_rebase_multiplier": 1}}
    big, small = 2.0 ** 40, 3.0
    a = [np.array([[big, -5.0]]), np.array([[small, 7.0]])]  # |x*y| ~ 2^42: fine alone
    b = [np.array([[small, 2.0]]), np.array([[-big, 1.0]])]
    res = run_fixed_batch(path, [a, b], settings, backend=backend)
    assert res.outputs_fixed == [[[int(big * small), -35]], [[-int(big * small), 2]]]
    with pytest.raises(OverflowError):
        run_fixed_batch(path, [a, [np.array([[big, 1.0]]), np.array([[big, 1.0]])]], settings,
                        backend=backend)
