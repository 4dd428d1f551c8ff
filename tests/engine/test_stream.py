"""``Engine.infer_stream`` (#9): many batches served in order, each with the bits ``infer`` gives it.

On the CPU the stream is ``infer`` per batch; on a GPU (``-m gpu``) batches go to graph slots of
their own, several in flight on their own streams, and every sample must still equal its EZKL
witness: batches of mixed sizes, a batch beyond the tier (re-run through ``infer``), a stream
closed early, and a policy whose last kernel hands the flags over (a per-slot ticket).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

ezkl = pytest.importorskip("ezkl")

from tests.engine.test_fast import GPU, _check, lenet, lenet_on_gpu  # noqa: E402,F401  (lenet: a fixture)
from tests.engine.witness_cases import N_SAMPLES  # noqa: E402

from vcompute.engine import cudart, run_fixed_batch  # noqa: E402
from vcompute.engine import stream as stream_mod  # noqa: E402
from vcompute.engine.engine import Engine, _GraphRunner, as_float32, stage_float32  # noqa: E402
from vcompute.errors import UsageError  # noqa: E402

#: batch index lists: mixed sizes, sizes seen again, samples rotated (new data in old buffers)
BATCHES = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10], [11, 12, 13, 14], [1, 3, 5, 7], [15, 0, 2],
           [2, 4, 6, 8], [9, 11, 13, 15], [6, 7, 8], [10, 12, 14, 0], [3, 2, 1, 0], [5, 9, 13]]


def _stream(eng, case, batches, **kw):
    return eng.infer_stream(([case.samples[i] for i in idx] for idx in batches), **kw)


LAYOUTS = ["contiguous", "strided", "fortran", "reversed", "read-only", "byte-swapped"]


def _laid_out(x: np.ndarray, layout: str) -> np.ndarray:
    """``x``'s values in the given memory layout (the last three are ones torch cannot wrap)."""
    if layout == "strided":
        return np.repeat(x, 2, axis=2)[:, :, ::2]
    if layout == "fortran":
        return np.asfortranarray(x)
    if layout == "reversed":
        return np.ascontiguousarray(x[:, :, ::-1])[:, :, ::-1]
    if layout == "read-only":
        y = x.copy()
        y.flags.writeable = False
        return y
    if layout == "byte-swapped":
        return x.astype(x.dtype.newbyteorder())
    return x


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "int64", "int32"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_staging_gives_the_float32_that_infer_quantizes(dtype, layout):
    """A slot's staging writes into its pinned buffer the float32 ``infer`` would make of the
    input (float64 values at float32 ties, subnormal in float32 and beyond its range included):
    same bits, whichever way the input is laid out in memory."""
    rng = np.random.default_rng(7)
    vals = rng.uniform(-3, 3, (5, 3, 4)) * 10.0 ** rng.integers(-8, 9, (5, 3, 4))
    vals.flat[:6] = [1 + 2.0 ** -24, 1 + 3 * 2.0 ** -24, 2.0 ** 25 + 1, -(2.0 ** 60) - 3,  # ties, big ints
                     3e-40, -1e-46]  # subnormal float32, and below its smallest subnormal
    with np.errstate(over="ignore"):  # float16: the big values become inf, which must stage as inf
        x0 = vals.astype(dtype) if dtype.startswith("float") else \
            np.round(vals).clip(np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
    x = _laid_out(x0, layout)
    assert np.array_equal(x, x0), f"the {layout} copy changed values"
    want = as_float32(x)
    assert want.dtype == np.float32
    got = torch.full((5, 12), float("nan"), dtype=torch.float32)
    stage_float32(got, x)
    assert np.array_equal(got.numpy().view(np.int32), want.reshape(5, 12).view(np.int32)), \
        f"{dtype} ({layout}): staged {got.numpy().ravel()[:6]} vs infer's {want.ravel()[:6]}"


def test_runner_stages_float_inputs_as_float32_and_integer_ones_as_they_are():
    """``_GraphRunner.stage`` (infer's graph path and the stream's slots): a quantized int64
    input must keep every bit (2^60 + 3 has no float32), a float one becomes infer's float32."""
    big = np.array([[2**60 + 3, -(2**53) - 1, 7]], dtype=np.int64)
    floats = np.array([[1 + 2.0 ** -24, 0.1, -3.0]])
    host_in = [torch.zeros((1, 3), dtype=torch.int64), torch.zeros((1, 3), dtype=torch.float32)]
    holder = type("Pinned", (), {"host_in": host_in, "host_in_np": [h.numpy() for h in host_in]})()
    _GraphRunner.stage(holder, [big, floats])
    assert np.array_equal(host_in[0].numpy(), big), f"int64 input staged as {host_in[0]}"
    assert np.array_equal(host_in[1].numpy().view(np.int32), as_float32(floats).view(np.int32)), \
        f"float input staged as {host_in[1]}, infer's float32 is {as_float32(floats)}"


def test_a_streams_kinds_of_batch_are_looked_up_once_each(cases):
    """``stream._kind``: a batch of per-sample shapes seen before in the stream reuses the first
    look-up (plan, input specs), whatever its batch size; another shape gets its own; a shape the
    model refuses raises each time and is never remembered."""
    case = cases("mlp")
    eng = Engine(case.model, case.settings, "cpu", backend="torch")
    known: dict = {}
    x = np.stack([np.asarray(case.samples[i][0], dtype=np.float32) for i in range(4)])
    first = stream_mod._kind(eng, [x], None, known)
    assert stream_mod._kind(eng, [x[:3]], None, known) is first, "a smaller batch of the same shape looked up again"
    graph, plan = eng._prepare_checked(eng._circuit_shapes([x]), None)
    assert first.plan is plan and first.specs == eng._input_specs(graph) and first.float_inputs
    other = x.reshape(4, 1, -1)  # the same values with another per-sample shape: a kind of its own, same plan
    assert stream_mod._kind(eng, [other], None, known) is not first
    assert stream_mod._kind(eng, [other], None, known).plan is plan and len(known) == 2, list(known)
    for _ in range(2):
        with pytest.raises(UsageError):
            stream_mod._kind(eng, [np.zeros((2, 3), np.float32)], None, known)
    assert all(k[0] != (3,) for k in known), f"a refused shape was remembered: {list(known)}"


def test_a_kinds_route_follows_the_tier_infer_last_ran(cases):
    """``stream._route``: no slot before ``infer`` has run a size clean and captured its graph;
    then the tier's compiled pass and slot key, kept per size; a new tier (a new bits list) or
    a compiled pass since marked not compilable is looked up afresh, never served from memory."""
    from vcompute.engine.compiled import NotCompilable

    case = cases("cnn")
    eng = Engine(case.model, case.settings, "cpu", backend="triton", path="fused")
    batch = [case.samples[i] for i in range(3)]
    eng.infer(batch)
    kind = stream_mod._kind(eng, stream_mod._batch_inputs(batch), None, {})
    assert stream_mod._route(eng, kind, 3) is None, "a slot without a captured graph"
    bits = eng._last_bits[kind.shapes]
    key = (tuple(s for s, _ in kind.specs), tuple(bits), 3)  # infer's key for a graph (engine.graph_key)
    eng._graphs[key] = "captured"  # what infer's second batch of a size leaves on a GPU (only its key counts here)
    cp = eng._compiled[(kind.shapes, tuple(bits))]
    assert stream_mod._route(eng, kind, 3) == (cp, key)
    assert 3 in kind.routes and stream_mod._route(eng, kind, 3) == (cp, key)
    assert stream_mod._route(eng, kind, 4) is None, "a size without its own graph got a slot"
    eng._last_bits[kind.shapes] = [b + 1 for b in bits]  # infer moved to a higher tier: not compiled yet
    assert stream_mod._route(eng, kind, 3) is None, "the old tier's pass served after infer moved on"
    eng._last_bits[kind.shapes] = list(bits)  # the same tier as a new list: found again, not remembered
    assert stream_mod._route(eng, kind, 3) == (cp, key)
    eng._compiled[(kind.shapes, tuple(bits))] = NotCompilable("the compiled plan failed: test")
    assert stream_mod._route(eng, kind, 3) is None, "a pass marked not compilable still served"


@pytest.mark.parametrize("path", ["fused", "ops"])
def test_stream_equals_infer_per_batch(cases, path):
    case = cases("cnn")
    eng = Engine(case.model, case.settings, "cpu", backend="triton" if path == "fused" else "torch", path=path)
    got = list(_stream(eng, case, BATCHES[:5]))
    assert len(got) == 5, f"{len(got)} results for 5 batches"
    for k, (idx, res) in enumerate(zip(BATCHES, got)):
        _check(case, res, idx, f"stream ({path}), batch {k}")
        assert res.path == path, res.path


def test_stream_pulls_batches_as_it_goes(cases):
    """The source may be endless: the stream reads a batch only when it needs one."""
    case = cases("mlp")
    eng = Engine(case.model, case.settings, "cpu", backend="torch")
    pulled = []

    def source():
        for k in range(10**6):
            pulled.append(k)
            yield [case.samples[k % N_SAMPLES]]

    stream = eng.infer_stream(source())
    first = next(stream)
    _check(case, first, [0], "first of an endless stream")
    assert pulled == [0], f"pulled {pulled} for one result"
    stream.close()


@pytest.mark.parametrize("depth", [0, -1, 1.5, True, "2"])
def test_stream_depth_is_checked_at_the_call(cases, depth):
    case = cases("mlp")
    eng = Engine(case.model, case.settings, "cpu", backend="torch")
    with pytest.raises(UsageError, match="depth"):
        eng.infer_stream([], depth=depth)


def test_a_bad_batch_ends_the_stream_after_the_good_ones(cases):
    case = cases("mlp")
    eng = Engine(case.model, case.settings, "cpu", backend="torch")
    batches = [[case.samples[0]], [case.samples[1], case.samples[2]], [[np.zeros((1, 3))]], [case.samples[3]]]
    got = []
    with pytest.raises(UsageError):
        for res in eng.infer_stream(batches):
            got.append(res)
    assert len(got) == 2, f"{len(got)} results before the bad third batch"
    _check(case, got[1], [1, 2], "the batch before the bad one")
    assert list(eng.infer_stream([])) == []


def test_one_stream_at_a_time_per_engine(cases):
    """Two open streams would share the engine's slots: the second is refused, with the way out;
    once the first is closed or done, a new one runs."""
    case = cases("mlp")
    eng = Engine(case.model, case.settings, "cpu", backend="torch")
    batches = [[case.samples[i]] for i in range(4)]
    first = eng.infer_stream(batches)
    _check(case, next(first), [0], "first stream")
    with pytest.raises(UsageError, match="already serving an infer_stream"):
        next(eng.infer_stream(batches))
    _check(case, next(first), [1], "first stream, after the refused second")
    first.close()
    assert len(list(eng.infer_stream(batches))) == 4
    assert len(list(eng.infer_stream(batches))) == 4  # a stream run to its end frees the engine too


# -- GPU: graph slots on their own streams -----------------------------------------------------


@pytest.mark.gpu
@GPU
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("name", ["mlp", "cnn", "residual_block", "gap_linear"])
def test_gpu_stream_every_batch_exact(cases, name, depth):
    case = cases(name)
    eng = Engine(case.model, case.settings, "cuda:0")
    for rep in range(2):  # the second pass runs on the slots the first made
        got = list(_stream(eng, case, BATCHES, depth=depth))
        assert len(got) == len(BATCHES)
        for k, (idx, res) in enumerate(zip(BATCHES, got)):
            _check(case, res, idx, f"{name}, stream depth {depth}, pass {rep}, batch {k}")
    assert eng._rings, "no batch went to a graph slot"
    for key, ring in eng._rings.items():
        assert len(ring) == depth and all(s.job is None for s in ring), f"ring {key}: busy after the stream"


@pytest.mark.gpu
@GPU
@pytest.mark.parametrize("policy", ["auto", "wide", "unfolded"])
def test_gpu_stream_policies_and_flag_handover(cases, policy):
    """``wide`` ends the MLP's pass on a float64 GEMM that publishes the flags through a ticket:
    each slot must have its own, or passes in flight at once would hand over each other's."""
    case = cases("mlp")
    eng = Engine(case.model, case.settings, "cuda:0", tiles=policy)
    batches = [[(k + j) % N_SAMPLES for j in range(8)] for k in range(24)]
    got = list(_stream(eng, case, batches, depth=4))
    for k, (idx, res) in enumerate(zip(batches, got)):
        _check(case, res, idx, f"mlp, tiles {policy}, stream batch {k}")


@pytest.mark.gpu
@GPU
def test_gpu_stream_batch_beyond_the_tier_reruns(cases):
    """A batch whose inputs outgrow the tier raises the device's input flag in its slot; it is
    re-run through ``infer`` (its own tier) and comes back in its place; the rest stay exact."""
    case = cases("mlp")
    eng = Engine(case.model, case.settings, "cuda:0")
    idx = [0, 1, 2, 3]
    batch = [case.samples[i] for i in idx]
    bigger = [[s[0] * 40.0] for s in batch]
    want = run_fixed_batch(case.model, bigger, case.settings, backend="torch").outputs_fixed
    got = list(eng.infer_stream([batch, batch, batch, bigger, batch, batch, bigger, batch]))
    for k, res in enumerate(got):
        if k in (3, 6):
            assert res.outputs_fixed == want, f"batch {k} (beyond the tier) differs from the op path"
        else:
            _check(case, res, idx, f"batch {k} of a stream with larger batches")


@pytest.mark.gpu
@GPU
def test_gpu_stream_closed_early_leaves_nothing_in_flight(cases):
    case = cases("cnn")
    eng = Engine(case.model, case.settings, "cuda:0")
    stream = _stream(eng, case, BATCHES * 3, depth=3)
    for k in range(6):
        _check(case, next(stream), BATCHES[k], f"batch {k} before closing")
    stream.close()
    assert all(s.job is None for ring in eng._rings.values() for s in ring)
    for k, res in enumerate(_stream(eng, case, BATCHES, depth=3)):
        _check(case, res, BATCHES[k], f"batch {k} of the next stream")


@pytest.mark.gpu
@GPU
def test_gpu_stream_device_tensors_and_lenet(lenet):
    eng, idx, host, dev = lenet_on_gpu(lenet)
    got = list(eng.infer_stream([host, dev, host, host, dev, host, host], depth=2))
    for k, res in enumerate(got):
        _check(lenet, res, idx, f"lenet stream batch {k}")


@pytest.mark.gpu
@GPU
def test_gpu_stream_direct_launch_and_torch_replay_agree(cases):
    """Where torch's CUDA runtime is found the slots launch their graphs directly; with the handles
    taken away they replay through torch. Every batch is exact either way."""
    case = cases("cnn")
    eng = Engine(case.model, case.settings, "cuda:0")
    for k, res in enumerate(_stream(eng, case, BATCHES, depth=3)):
        _check(case, res, BATCHES[k], f"cnn batch {k}, launched directly where possible")
    slots = [s for ring in eng._rings.values() for s in ring]
    assert slots, "no batch went to a graph slot"
    if cudart.graph_launcher() is not None:
        assert all(s.direct is not None for s in slots), "a slot without the direct launch's handles"
    for s in slots:
        s.direct = None
    for k, res in enumerate(_stream(eng, case, BATCHES, depth=3)):
        _check(case, res, BATCHES[k], f"cnn batch {k}, replayed through torch")


def test_results_do_not_share_their_op_list(cases):
    """A plan's op names are worked out once (``Plan.op_names``); each result still gets its own list."""
    case = cases("mlp")
    eng = Engine(case.model, case.settings, "cpu", backend="torch")
    a, b = eng.infer([case.samples[0]]), eng.infer([case.samples[1]])
    assert a.ops == b.ops and a.ops, a.ops
    (plan,) = {id(p): p for _, p in eng._plans.values()}.values()
    assert plan.op_names is plan.op_names and list(plan.op_names) == a.ops, (plan.op_names, a.ops)
    a.ops.append("changed")
    assert "changed" not in b.ops and "changed" not in eng.infer([case.samples[2]]).ops
