"""The compiled fast path (#9): planned limbs, fused epilogues, one flag read, CUDA graphs.

Every model of ``test_engine.CASES`` (and the bundled LeNet-5) runs batched on the fused path
(the Triton interpreter on the CPU; the GPU and its CUDA graphs under ``-m gpu``): each sample's
integers must equal its own EZKL witness and its batch-1 result, for every tile policy. Models
with ops outside the fast path must say so and run op by op, with the same bits. A batch that
raises a device flag is never returned from the fast path: it re-runs op by op.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

ezkl = pytest.importorskip("ezkl")

from tests.conftest import CIRCUITS  # noqa: E402
from tests.engine.witness_cases import N_SAMPLES, product_model  # noqa: E402
from tests.engine.test_engine import CASES  # noqa: E402

from vcompute.engine import compare, run_fixed, run_fixed_batch, witness_outputs  # noqa: E402
from vcompute.engine.compiled import (TILE_POLICIES, CompiledPlan, NotCompilable,  # noqa: E402
                                      analyze_bounds, rebase_bound, tile_policy)
from vcompute.engine.engine import Engine, _concrete_shapes  # noqa: E402
from vcompute.engine.run import _declared_shapes, engine_for  # noqa: E402
from vcompute.engine.ops import run_step  # noqa: E402
from vcompute.engine.backends import TorchBackend  # noqa: E402
from vcompute.engine.quantize import quantize_input  # noqa: E402

OP_CASES = Path(__file__).parent / "cases"

#: the models the fast path must cover (a regression here is a lost fast path, not a wrong bit)
COVERED = {"mlp", "mlp_s7", "mlp_s10_m2", "cnn", "cnn_s9", "conv_bn_groups", "add_sub_mul",
           "div_const", "gap_linear", "concat_layout", "batchnorm", "leaky_relu", "avgpool_pad",
           "reduce_mean", "clip_relu6", "abs_neg", "conv_bn_unfused", "avgpool_no_count_pad",
           "maxpool_pad_negative", "view_flatten", "residual_block"}

GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


class LeNet:
    """The bundled LeNet-5 at EZKL's calibrated scale (13), a few samples and their witnesses."""

    def __init__(self, root: Path, n: int = 4) -> None:
        self.model = CIRCUITS / "lenet" / "model.onnx"
        settings, compiled = root / "settings.json", root / "model.compiled"
        args = ezkl.PyRunArgs()
        args.input_scale = args.param_scale = 13
        assert ezkl.gen_settings(str(self.model), str(settings), py_run_args=args)
        assert ezkl.compile_circuit(str(self.model), str(compiled), str(settings))
        self.settings = json.loads(settings.read_text())
        first = np.array(json.loads((CIRCUITS / "lenet" / "input.json").read_text())["input_data"][0])
        rng = np.random.default_rng(9)
        self.samples = [[first.reshape(1, 1, 28, 28)]] + [
            [np.round(rng.uniform(-1, 1, (1, 1, 28, 28)), 6)] for _ in range(n - 1)]
        self.witness = []
        for i, s in enumerate(self.samples):
            data, wit = root / f"in{i}.json", root / f"w{i}.json"
            data.write_text(json.dumps({"input_data": [s[0].reshape(-1).tolist()]}))
            ezkl.gen_witness(str(data), str(compiled), str(wit))
            self.witness.append(witness_outputs(wit))


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    return LeNet(tmp_path_factory.mktemp("lenet"))


def lenet_on_gpu(lenet) -> tuple[Engine, list[int], list, torch.Tensor]:
    """A LeNet engine on the GPU, its samples' indices and host batch, and that batch as one
    float32 tensor on the device."""
    eng = Engine(lenet.model, lenet.settings, "cuda:0")
    idx = list(range(len(lenet.samples)))
    host = [lenet.samples[i] for i in idx]
    return eng, idx, host, torch.tensor(np.concatenate([s[0] for s in host]), dtype=torch.float32, device="cuda:0")


def _check(case, res, idx, what):
    assert res.batch_size == len(idx)
    for pos, i in enumerate(idx):
        exact, where = compare(res.outputs_fixed[pos], case.witness[i])
        assert exact, f"{what}: sample {i} (row {pos}) vs its EZKL witness: {where}; path {res.path}"
        if hasattr(case, "single"):
            exact, where = compare(res.outputs_fixed[pos], case.single("torch", i))
            assert exact, f"{what}: sample {i} vs the op path's batch-1 run: {where}"


@pytest.mark.parametrize("name", list(CASES))
def test_fused_batch_matches_witness(cases, name):
    """Batch of 3 on the fused path (Triton interpreter): witness and batch-1 bits; the
    covered models must run fused, the others must say why they fell back."""
    case = cases(name)
    idx = [0, 5, N_SAMPLES - 1]
    res = run_fixed_batch(case.model, [case.samples[i] for i in idx], case.settings, "cpu",
                          backend="triton", path="fused")
    _check(case, res, idx, f"{name}, fused")
    if name in COVERED:
        assert res.path == "fused", f"{name} lost its fast path: {res.path}"
    else:
        assert res.path.startswith("ops (fallback: "), res.path


@pytest.mark.parametrize("policy", TILE_POLICIES)
@pytest.mark.parametrize("name", ["mlp", "cnn", "conv_bn_groups", "residual_block", "gap_linear"])
def test_every_tile_policy_gives_the_same_bits(cases, name, policy):
    case = cases(name)
    idx = [1, 2, 3, 4, 6, 8, 9]
    res = run_fixed_batch(case.model, [case.samples[i] for i in idx], case.settings, "cpu",
                          backend="triton", path="fused", tiles=policy)
    assert res.path == "fused"
    _check(case, res, idx, f"{name}, tiles {policy}")


#: how each policy multiplies LeNet-5's fc layers (K x N: 400 x 120, 120 x 84, 84 x 10): ``auto``
#: on the limbs, as every reduction over 64 (faster than dots in the whole engine on the H100,
#: BENCHMARKS.md §2m); ``dot`` on float64 dots up to F64_DOT_GEMM_MAX (32,768) weights, so fc1
#: (48,000) stays on the limbs
LENET_GEMMS = {"auto": ["limbs"] * 3, "small": ["limbs"] * 3, "fma": ["limbs"] * 3,
               "dot": ["limbs", "float64 dot", "float64 dot"]}


def _gemm_kind(line: str) -> str:
    return "float64 dot" if "float64 dot" in line else "float64" if "float64" in line else "limbs"


@pytest.mark.parametrize("size,policy", [(1, "auto"), (4, "small"), (3, "fma"), (2, "dot")])
def test_lenet_fused(lenet, size, policy):
    idx = list(range(size))
    res = run_fixed_batch(lenet.model, [lenet.samples[i] for i in idx], lenet.settings, "cpu",
                          backend="triton", path="fused", tiles=policy)
    assert res.path == "fused"
    _check(lenet, res, idx, f"lenet, batch {size}, tiles {policy}")
    eng = engine_for(lenet.model, lenet.settings, "cpu", backend="triton", path="fused", tiles=policy)
    (lines,) = eng.describe()["tiers"].values()
    gemms = [_gemm_kind(g) for g in lines if g.startswith("gemm")]
    assert gemms == LENET_GEMMS[policy], f"tiles {policy}: fc layers ran as {gemms}, not {LENET_GEMMS[policy]}"
    ops = run_fixed_batch(lenet.model, [lenet.samples[i] for i in idx], lenet.settings, backend="torch")
    assert ops.outputs_fixed == res.outputs_fixed and ops.path == "ops"


def _all_values(graph, plan, xs):
    """Every value of the op path, batched (torch int64 on the CPU)."""
    be = TorchBackend()
    vals = {}
    for k, name in enumerate(graph.inputs):
        node = graph.nodes[name]
        vals[name] = torch.from_numpy(quantize_input(np.asarray(xs[k]).reshape(len(xs[k]), *node.shape),
                                                     plan.input_scales[k], node.attrs["float"]))
    vals.update({n: torch.from_numpy(np.ascontiguousarray(q)).unsqueeze(0) for n, q in plan.consts.items()})
    for name, step in plan.steps.items():
        vals[name] = run_step(be, step, [vals[i] for i in step.node.inputs])
    return vals


@pytest.mark.parametrize("name", sorted(COVERED))
def test_static_bounds_hold_every_value(cases, name):
    """Each value's static bound dominates what the op path computes, for every sample."""
    case = cases(name)
    eng = Engine(case.model, case.settings, "cpu", backend="torch")
    xs = [np.stack([s[k] for s in case.samples]) for k in range(len(case.samples[0]))]
    first = [tuple(x.shape[1:]) for x in xs]
    shapes = _concrete_shapes(_declared_shapes(eng._src), first, [int(np.prod(f)) for f in first])
    graph, plan = eng.prepare(shapes)
    xs = [x.reshape(len(x), *s) for x, s in zip(xs, shapes)]
    bits = eng._host_bits(graph, plan, [x.astype(np.float32) for x in xs])
    bounds = analyze_bounds(graph, plan, [(1 << b) - 1 for b in bits])
    for v, t in _all_values(graph, plan, xs).items():
        got = int(t.abs().max()) if t.numel() else 0
        assert got <= bounds.value[v], f"{name}: value {v} reaches {got} > bound {bounds.value[v]}"


def test_rebase_bound():
    for b in (0, 1, 7, 8, 9, 1000, 2**40 + 3):
        for d in (1, 2, 8, 1024):
            xs = torch.tensor([b, -b], dtype=torch.int64)
            from vcompute.kernels.reference import div_round

            assert int(div_round(xs, d).abs().max()) == rebase_bound(b, d)


def test_device_resident_inputs_escalate_the_tier(cases):
    """Tensors the host never reads start at the smallest tier; values beyond it raise the input
    flag, and the batch re-runs at its own tier, exact (never a wrong bit)."""
    case = cases("mlp")
    eng = Engine(case.model, case.settings, "cpu", backend="triton", path="fused")
    x = torch.tensor(np.stack([case.samples[i][0] for i in range(3)]), dtype=torch.float32)
    big = x * 6.0  # beyond the floor tier (|x| < 2)
    want = run_fixed_batch(case.model, big.numpy().astype(np.float64), case.settings, backend="torch")
    res = eng.infer(big)
    assert res.path == "fused" and res.outputs_fixed == want.outputs_fixed
    assert res.outputs_fixed == eng.infer(big.numpy()).outputs_fixed


def test_host_inputs_reuse_the_last_tier_and_escalate(cases):
    """A host batch of seen shapes runs on the last clean tier without scanning its inputs; one
    beyond that tier raises the input flag on the device and re-runs at its own tier. Every batch
    gives the op path's bits, on whichever tier ran it."""
    case = cases("mlp")
    eng = Engine(case.model, case.settings, "cpu", backend="triton", path="fused")
    scans = []
    host_bits = eng._host_bits
    eng._host_bits = lambda *a: scans.append(1) or host_bits(*a)
    small = np.stack([case.samples[i][0] for i in range(3)]).astype(np.float32)
    big = small * 6.0
    for batch, want_scans, want_tiers in ((small, 1, 1), (small, 1, 1), (big, 2, 2), (small, 2, 2), (big, 2, 2)):
        want = run_fixed_batch(case.model, batch.astype(np.float64), case.settings, backend="torch")
        res = eng.infer(batch)
        assert res.path == "fused" and res.outputs_fixed == want.outputs_fixed, f"batch max {abs(batch).max()}"
        assert (len(scans), len(eng._compiled)) == (want_scans, want_tiers), (
            f"after a batch of max {abs(batch).max():.2f}: {len(scans)} host scans, {len(eng._compiled)} tiers")


@pytest.mark.parametrize("as_tensor", [False, True], ids=["host", "tensor"])
def test_integer_inputs_get_their_own_tier_every_batch(as_tensor):
    """Integer inputs are not quantized on the device, so nothing there checks them against a
    tier: a batch holding one gets its exact tier every time, from a scan of a host array or one
    sync for a tensor (here a Cast of an int64 input, whose values the plan would otherwise never
    see)."""
    case = json.loads((OP_CASES / "Cast_intin_float.json").read_text())
    eng = Engine(OP_CASES / "Cast_intin_float.onnx", {"run_args": case["run_args"]}, "cpu", backend="triton",
                 path="fused", check_scales=False)
    x = np.array([[3, -2, 0, 7, 1], [1, 2, 3, 4, 5]], dtype=np.int64).reshape(2, 1, 5)
    for batch in (x, x * 1000, x):
        res = eng.infer(torch.from_numpy(batch) if as_tensor else [batch])
        assert res.path == "fused" and res.fixed[0].tolist() == batch.reshape(2, 5).tolist(), res.path
    tiers = [json.loads(t)["bits"] for t in eng.describe()["tiers"]]
    assert tiers == [[8], [13]], f"the int64 batch up to 7000 ran on tiers {tiers}, not its own 13-bit one"


def test_a_raised_flag_never_returns_fast_outputs(cases):
    """A plan whose bounds a batch breaks (here: tampered) flags it on the device; the engine
    then runs the op path and returns its (exact) bits, saying so."""
    case = cases("cnn")
    eng = Engine(case.model, case.settings, "cpu", backend="triton", path="fused")
    idx = [0, 1]
    batch = [case.samples[i] for i in idx]
    assert eng.infer(batch).path == "fused"
    for cp in eng._compiled.values():
        assert isinstance(cp, CompiledPlan)
        cp.input_bounds = [1 for _ in cp.input_bounds]  # every real input now breaks the plan
    res = eng.infer(batch)
    assert res.path.startswith("ops (fallback: device flags raised by inputs"), res.path
    _check(case, res, idx, "flagged batch")
    assert eng.stats["fallbacks"] == 1


def test_infer_takes_each_float_dtype_as_the_float32_it_rounds_to(cases):
    """A float host input reaches the pass in its own dtype (the staging converts it as it
    copies): the tier scan and the fused path's upload must still see the float32 it rounds to.
    Here one value sits just under a tier's edge in float64 and on it in float32 (float32 rounds
    it onto 2^(s+1) once quantized: one bit more), and float16 inputs."""
    from vcompute.engine.engine import as_float32

    case = cases("cnn")
    scale = int(case.settings["run_args"]["input_scale"])
    edge = 2.0 - 2.0 ** -(scale + 1)  # edge * 2^scale = 2^(scale+1) - 0.5: rounds away to 2^(scale+1)
    x64 = np.stack([np.asarray(case.samples[i][0], dtype=np.float64) for i in range(3)]) / 4
    x64.flat[0] = edge - 1e-12
    assert float(np.float32(x64.flat[0])) == edge
    forms = {"float64": x64, "float32": as_float32(x64), "float16": x64.astype(np.float16),
             "float16 as float32": as_float32(x64.astype(np.float16))}
    got = {}
    for name, x in forms.items():
        eng = Engine(case.model, case.settings, "cpu", backend="triton", path="fused")
        res = eng.infer([[s] for s in x])
        assert res.path == "fused", f"{name}: {res.path}"
        got[name] = res.fixed
        assert eng._last_bits, name
        got[name + " bits"] = list(eng._last_bits.values())
    for a, b in (("float64", "float32"), ("float16", "float16 as float32")):
        assert all(np.array_equal(u, v) for u, v in zip(got[a], got[b])), f"{a} input gave other bits than {b}"
        assert got[a + " bits"] == got[b + " bits"], f"{a}: tier {got[a + ' bits']} vs {got[b + ' bits']}"
    assert got["float64 bits"] == [[scale + 2]], f"the tier of a value float32 rounds onto 2^{scale + 1}: {got['float64 bits']}"


@pytest.mark.parametrize("nb", [1, 3])
def test_clean_outputs_agrees_with_read_flags(cases, nb):
    """``clean_outputs`` (a served batch's one check) on a pass's result laid out as ``forward``
    lays it out: each output's integers where every flag word is zero; None as soon as any word,
    first or last, holds a flag (``read_flags`` then names it)."""
    case = cases("cnn")
    eng = Engine(case.model, case.settings, "cpu", backend="triton", path="fused")
    want = eng.infer([case.samples[i % len(case.samples)] for i in range(nb)]).fixed
    (cp,) = eng._compiled.values()
    words = cp.flag_words(nb)
    res = np.concatenate([np.zeros(words, dtype=np.int64)] + [w.ravel() for w in want])
    got = cp.clean_outputs(res, nb)
    assert got is not None and [g.shape for g in got] == [w.shape for w in want]
    assert all(np.array_equal(g, w) for g, w in zip(got, want)), "clean_outputs read other values"
    res_before = res.copy()
    got[0][...] = -1
    assert np.array_equal(res, res_before), "clean_outputs returned views of the (reused) result buffer"
    for i in {0, words - 1}:
        flagged = res.copy()
        flagged[i] = 1 << 3
        assert cp.clean_outputs(flagged, nb) is None, f"flag word {i} of {words} was not seen"
        assert cp.read_flags(flagged, nb).any()
    assert not cp.read_flags(res, nb).any()


def test_overflowing_inputs_fail_as_on_the_op_path(tmp_path):
    """Inputs whose products leave the exact range are refused with the op path's error, and a
    batch that only the batch-wide guard refuses still runs (sample by sample)."""
    path = product_model(tmp_path)
    settings = {"run_args": {"input_scale": 0, "param_scale": 0, "scale_rebase_multiplier": 1}}
    big, small = 2.0 ** 40, 3.0
    a = [np.array([[big, -5.0]]), np.array([[small, 7.0]])]
    b = [np.array([[small, 2.0]]), np.array([[-big, 1.0]])]
    res = run_fixed_batch(path, [a, b], settings, "cpu", backend="triton", path="fused")
    assert res.outputs_fixed == [[[int(big * small), -35]], [[-int(big * small), 2]]]
    assert res.path.startswith("ops (fallback: ")
    with pytest.raises(OverflowError):
        run_fixed_batch(path, [a, [np.array([[big, 1.0]]), np.array([[big, 1.0]])]], settings, "cpu",
                        backend="triton", path="fused")
    small_batch = [[np.array([[3.0, -5.0]]), np.array([[4.0, 7.0]])]]
    assert run_fixed_batch(path, small_batch, settings, "cpu", backend="triton",
                           path="fused").outputs_fixed == [[[12, -35]]]


def test_nonfinite_input_is_refused_like_the_op_path(cases):
    case = cases("mlp")
    bad = case.samples[0][0].copy()
    bad.reshape(-1)[0] = np.inf
    with pytest.raises(OverflowError):
        run_fixed_batch(case.model, [[bad]], case.settings, backend="torch")
    with pytest.raises(OverflowError):
        run_fixed_batch(case.model, [[bad]], case.settings, "cpu", backend="triton", path="fused")


def test_not_compilable_says_why(cases):
    case = cases("softmax")
    eng = Engine(case.model, case.settings, "cpu", backend="triton", path="fused")
    res = eng.infer([case.samples[0]])
    assert res.path.startswith("ops (fallback: ") and eng.stats["last_fallback"]
    cp = next(iter(eng._compiled.values()))
    assert isinstance(cp, NotCompilable)


def test_path_arguments_are_checked(cases):
    from vcompute.errors import UsageError

    case = cases("mlp")
    with pytest.raises(UsageError, match="CUDA"):
        Engine(case.model, case.settings, "cpu", backend="triton", path="graph")
    with pytest.raises(UsageError, match="triton"):
        Engine(case.model, case.settings, "cpu", backend="torch", path="fused")
    with pytest.raises(UsageError, match="path must be"):
        Engine(case.model, case.settings, "cpu", path="fast")
    # the defaults: op by op on the CPU
    assert Engine(case.model, case.settings, "cpu").path == "ops"


def test_engine_serves_many_calls_from_one_load(cases):
    """``vcompute.Engine`` / ``vcompute.load``: one model, many batches of different sizes."""
    import vcompute

    case = cases("cnn")
    eng = vcompute.load(case.model, settings=case.settings, device="cpu", backend="triton", path="fused")
    assert isinstance(eng, vcompute.Engine)
    for idx in ([0], [1, 2], [3, 4, 5]):
        _check(case, eng.infer([case.samples[i] for i in idx]), idx, "served")
    assert eng.stats["fused"] == 3 and len(eng._compiled) >= 1


# -- GPU: the graph path ---------------------------------------------------------------------


@pytest.mark.gpu
@GPU
@pytest.mark.parametrize("name", sorted(COVERED))
def test_gpu_graph_path_every_size(cases, name):
    """Each size twice: the first call runs fused, the second captures and replays the graph;
    a third with other samples replays it again (new data through the same static buffers)."""
    case = cases(name)
    eng = Engine(case.model, case.settings, "cuda:0")
    for size in (1, 2, 3, 7, 16):
        idx = list(range(size))
        for rep in range(3):
            sel = idx if rep < 2 else [(i + 5) % N_SAMPLES for i in idx]
            res = eng.infer([case.samples[i] for i in sel])
            _check(case, res, sel, f"{name}, graph, batch {size}, call {rep}")
            assert res.path == ("graph (first call: fused)" if rep == 0 else "graph"), res.path


@pytest.mark.gpu
@GPU
def test_gpu_lenet_graph_and_device_inputs(lenet):
    eng, idx, batch, x = lenet_on_gpu(lenet)
    for _ in range(3):
        _check(lenet, eng.infer(batch), idx, "lenet graph")
    for _ in range(3):
        res = eng.infer(x)
        _check(lenet, res, idx, "lenet, device-resident input")
    assert res.path == "graph"


@pytest.mark.gpu
@GPU
@pytest.mark.parametrize("name", ["mlp", "cnn", "residual_block"])
def test_gpu_host_and_device_batches_alternate_on_one_graph(cases, name):
    """A batch from the host replays the graph that holds the copies in and out (``io_graph``,
    which must have been captured); a device batch of the same size replays the plain graph over
    the same static inputs. Alternated, each result is exact: neither leaves stale data behind."""
    case = cases(name)
    eng = Engine(case.model, case.settings, "cuda:0")
    halves = [list(range(0, 5)), list(range(5, 10))]
    on_device = [torch.from_numpy(np.stack([np.asarray(case.samples[i][0], dtype=np.float32) for i in idx]))
                 .to("cuda:0") for idx in halves]
    for rep in range(3):
        for idx, x in zip(halves, on_device):
            _check(case, eng.infer([case.samples[i] for i in idx]), idx, f"{name}, host batch, call {rep}")
            _check(case, eng.infer(x), idx, f"{name}, device batch, call {rep}")
    hosted = [r for r in eng._graphs.values() if r._io_tried]
    assert hosted and all(r.io_graph is not None for r in hosted), "no graph with the host copies was captured"


@pytest.mark.gpu
@GPU
@pytest.mark.parametrize("policy", TILE_POLICIES)
def test_gpu_tile_policies(lenet, policy):
    eng = Engine(lenet.model, lenet.settings, "cuda:0", tiles=policy)
    idx = list(range(len(lenet.samples)))
    for _ in range(2):
        _check(lenet, eng.infer([lenet.samples[i] for i in idx]), idx, f"lenet, tiles {policy}")


@pytest.mark.gpu
@GPU
def test_gpu_graph_flag_falls_back(cases):
    case = cases("mlp")
    eng = Engine(case.model, case.settings, "cuda:0")
    batch = [case.samples[i] for i in range(4)]
    for _ in range(2):
        assert eng.infer(batch).path.startswith("graph")
    bigger = [[s[0] * 40.0] for s in batch]  # a higher tier: its own plan and graph
    want = run_fixed_batch(case.model, bigger, case.settings, backend="torch").outputs_fixed
    for _ in range(2):
        res = eng.infer(bigger)
        assert res.outputs_fixed == want and res.path.startswith("graph")
    assert run_fixed(case.model, case.samples[0], case.settings, "cuda:0").outputs_fixed == case.witness[0]


def test_launch_folding_per_policy(cases):
    """The auto policy runs the MLP as one dense-chain launch and the CNN as one small-net launch;
    without them (``wide``) the CNN's input quantize folds into its first conv and its finalize
    into its last GEMM; ``unfolded`` keeps a launch per op; ``int64``'s limb GEMMs split their
    activations themselves. All give the op path's bits (the policy test above); this pins which
    kernels run."""
    def groups(name, policy):
        case = cases(name)
        eng = Engine(case.model, case.settings, "cpu", backend="triton", path="fused", tiles=policy)
        res = eng.infer([case.samples[0], case.samples[1]])
        assert res.path == "fused"
        (lines,) = eng.describe()["tiers"].values()
        return lines

    mlp = groups("mlp", "auto")
    assert len(mlp) == 1 and mlp[0].startswith("dense chain in one launch"), mlp
    assert all("chain" not in g for g in groups("mlp", "unfolded")), "unfolded still ran the chain"
    cnn = groups("cnn", "auto")
    assert len(cnn) == 1 and cnn[0].startswith("small net in one launch"), cnn
    capped = groups("cnn", replace(tile_policy("auto"), name="capped", net_max_taps=4000))  # its tables: 4,656
    assert not any("small net" in g for g in capped), f"a net beyond net_max_taps ran as one kernel: {capped}"
    cnn = groups("cnn", "wide")  # no one-kernel net: the first conv quantizes, the last GEMM publishes
    assert "quantizes its input" in cnn[0] and "writes the result and flags" in cnn[-1], cnn
    assert not any("quantizes" in g or "writes the result" in g for g in groups("cnn", "unfolded"))
    wide = groups("mlp", "wide")  # no chain: two float64 GEMMs, the first quantizing, the last publishing
    assert "quantizes its input" in wide[0] and "writes the result and flags" in wide[-1], wide
    gemms = [g for g in groups("mlp", "int64") if g.startswith("gemm")]  # limb GEMMs splitting their input
    assert gemms and all("split in the GEMM" in g for g in gemms), gemms
    assert not any("split in the GEMM" in g for g in groups("mlp", "small")), "small split in the GEMM"
    layers = replace(tile_policy("auto"), name="layers", chain=False, net=False)
    dot = groups("cnn", layers)  # auto's float64 dots: the convs (9 and 36 taps) as implicit GEMMs, the short GEMM too
    assert [g.split(" +")[0] for g in dot if g.startswith(("conv", "gemm"))] == [
        "conv 4x1x3x3 direct float64 dot (quantizes its input)", "conv 4x4x3x3 direct float64 dot",
        "gemm K=16 N=3 float64 dot (writes the result and flags)"], dot
    assert groups("cnn", "dot") == dot, "the dot policy ran the CNN unlike auto without its net"
    assert not any("dot" in g for g in groups("cnn", "wide")), "wide ran float64 dots"
    fma = groups("cnn", "fma")  # the FMA kernels: convs and the K=16 GEMM
    assert [g.split(" +")[0] for g in fma if g.startswith(("conv", "gemm"))] == [
        "conv 4x1x3x3 direct float64 (quantizes its input)", "conv 4x4x3x3 direct float64",
        "gemm K=16 N=3 float64 (writes the result and flags)"], fma
    pol = layers  # per kind of layer, and convs from a number of taps up
    gemm_only = groups("cnn", replace(pol, name="gemm-dots", f64_dot="gemm"))
    assert [("dot" in g) for g in gemm_only if g.startswith(("conv", "gemm"))] == [False, False, True], gemm_only
    conv_only = groups("cnn", replace(pol, name="conv-dots", f64_dot="conv", dot_conv_min_taps=10))
    assert [("dot" in g) for g in conv_only if g.startswith(("conv", "gemm"))] == [False, True, False], conv_only
    with pytest.raises(ValueError, match="f64_dot"):
        groups("cnn", replace(pol, name="typo", f64_dot="dots"))
