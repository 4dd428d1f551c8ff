"""int_matmul's fused epilogue and planned path: bit-identical to the unfused kernel sequence
(int_matmul, div_round, int_add, clip) and to the plain int64 reference, over odd shapes, every
test tile config, batch sizes, rounding ties of both signs, planned limb counts and packed weights;
values outside the plan set the device flag instead of giving silent wrong bits."""

from __future__ import annotations

import pytest
import torch

import vcompute.kernels as kernels
from vcompute.kernels.activation import clip
from vcompute.kernels.elementwise import int_add
from vcompute.kernels.flags import (
    FLAG_A_RANGE,
    FLAG_ADD_OVERFLOW,
    FLAG_B_RANGE,
    FLAG_RESCALE_LIMIT,
    ErrorFlags,
    new_flag,
)
from vcompute.kernels.gemm import (
    DEFAULT_GEMM_CONFIG,
    MAX_OUT_TILE_BYTES,
    GemmConfig,
    default_config,
    int_matmul,
    limb_capacity,
    pack_weight,
)
from vcompute.kernels.rescale import div_round
from vcompute.kernels.testing import assert_same, ref_epilogue, ref_matmul

CONFIGS = [
    GemmConfig(16, 16, 32, 1, 1, 1),
    GemmConfig(32, 64, 32, 4, 2, 4, tma=False),
    GemmConfig(64, 32, 64, 4, 1, 8, persistent=True),
    GemmConfig(),
    GemmConfig(tma=False),
]
CFG_IDS = [f"{c.block_m}x{c.block_n}x{c.block_k}{'-tma' if c.tma else ''}{'-persistent' if c.persistent else ''}" for c in CONFIGS]

# (rescale_shift, bias_after_rescale, activation, clip)
EPILOGUES = [
    (13, False, None, None),
    (13, False, "relu", None),
    (13, True, "relu", None),
    (7, True, None, (-300, 500)),
    (1, False, None, (None, 40)),
    (0, False, "relu", None),
]
EPI_IDS = [f"s{s}{'-after' if after else ''}{'-' + act if act else ''}{'-clip' if c else ''}" for s, after, act, c in EPILOGUES]


def _rand(shape, lo, hi, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi + 1, shape, generator=g, dtype=torch.int64)


def _reference(a, b, bias, s, after, act, cl):
    lo, hi = (None, None) if cl is None else cl
    if act == "relu":
        lo = 0 if lo is None else max(lo, 0)
    return ref_epilogue(ref_matmul(a, b), bias, 2**s, after, lo, hi)


def _unfused(a, b, bias, s, after, act, cl, cfg):
    """The same sequence as separate kernels (what the engine ran before fusion)."""
    x = int_matmul(a, b, None if after else bias, cfg)
    if s:
        x = div_round(x, 2**s)
    if after and bias is not None:
        x = int_add(x, bias)
    lo, hi = (None, None) if cl is None else cl
    if act == "relu":
        lo = 0 if lo is None else max(lo, 0)
    return clip(x, lo, hi) if lo is not None or hi is not None else x


def _tie_operands(s: int, seed: int):
    """a [M, 3], b [3, N] whose products are u_n + v_m: every v_m sits on or next to a rounding
    tie of 2^s (both signs), u_n and the bias are multiples of 2^s (keeping the ties), some wide
    enough for 3-4 limbs."""
    half = 1 << (s - 1) if s else 0
    v = [k * (1 << s) + half + e for k in (-3, -2, -1, 0, 1, 2) for e in (-1, 0, 1)]
    u = [0, 1, -1, 5, -7, 2**10, -(2**10) - 3, 2**12 + 1]
    a = torch.tensor([[1, vm, 0] for vm in v], dtype=torch.int64)
    b = torch.tensor([[un << s for un in u], [1] * len(u), _rand((len(u),), -99, 99, seed).tolist()], dtype=torch.int64)
    bias = torch.tensor([(i - 4) << s for i in range(len(u))], dtype=torch.int64)
    return a, b, bias


@pytest.mark.parametrize("cfg", CONFIGS, ids=CFG_IDS)
@pytest.mark.parametrize("epi", EPILOGUES, ids=EPI_IDS)
def test_ties_equal_unfused_and_reference(cfg, epi):
    s, after, act, cl = epi
    a, b, bias = _tie_operands(s, 1)
    ref = _reference(a, b, bias, *epi)
    kw = dict(rescale_shift=s, bias_after_rescale=after, activation=act, clip=cl)
    assert_same(int_matmul(a, b, bias, cfg, **kw), ref, f"adaptive fused {epi}")
    assert_same(_unfused(a, b, bias, *epi, cfg), ref, f"unfused kernels {epi}")
    f = new_flag()
    out = int_matmul(a, b, bias, cfg, limbs=(2, 4), flag=f, **kw)
    assert int(f.item()) == 0, f"no flag expected, got {int(f.item())}"
    assert_same(out, ref, f"planned fused {epi}")


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 17, 5), (17, 33, 65), (33, 65, 3)])
@pytest.mark.parametrize("mag", [127, 2**13, 2**21])
def test_random_odd_shapes(m, k, n, mag):
    a = _rand((m, k), -mag, mag, 1)
    b = _rand((k, n), -mag, mag, 2)
    bias = _rand((n,), -mag * mag, mag * mag, 3)
    cfg = CONFIGS[(m + n) % 3]
    for epi in EPILOGUES[1:4]:
        kw = dict(rescale_shift=epi[0], bias_after_rescale=epi[1], activation=epi[2], clip=epi[3])
        ref = _reference(a, b, bias, *epi)
        assert_same(int_matmul(a, b, bias, cfg, **kw), ref, f"{m}x{k}x{n} mag {mag} {epi}")
        planned = {127: 1, 2**13: 2, 2**21: 3}[mag]
        assert_same(int_matmul(a, b, bias, cfg, limbs=(planned, planned), flag=new_flag(), **kw), ref,
                    f"planned {planned} limbs {m}x{k}x{n} {epi}")


def test_identical_bits_across_configs_and_batches():
    """Leading M = batch x rows: each sample alone gives the rows of the batched call, every config."""
    rows = 5
    a = _rand((4 * rows, 45), -(2**14), 2**14, 4)
    b = _rand((45, 23), -(2**14), 2**14, 5)
    bias = _rand((23,), -(2**27), 2**27, 6)
    kw = dict(rescale_shift=13, activation="relu")
    ref = _reference(a, b, bias, 13, False, "relu", None)
    pb = pack_weight(b)
    for cfg in CONFIGS:
        assert_same(int_matmul(a, b, bias, cfg, **kw), ref, f"adaptive {cfg}")
        assert_same(int_matmul(a, pb, bias, cfg, limbs=2, flag=new_flag(), **kw), ref, f"planned packed {cfg}")
    for i in range(4):
        sl = slice(i * rows, (i + 1) * rows)
        assert_same(int_matmul(a[sl], pb, bias, CONFIGS[i % 3], limbs=2, flag=new_flag(), **kw), ref[sl], f"sample {i} alone")


@pytest.mark.parametrize("la,lb", [(1, 1), (1, 2), (2, 1), (3, 2), (2, 4), (5, 1)])
def test_planned_limb_edges(la, lb):
    """Operands at the exact ends of the planned limbs' range: exact and no flag."""
    lo_a, hi_a = limb_capacity(la)
    lo_b, hi_b = limb_capacity(lb)
    a = torch.tensor([[lo_a, hi_a, -1], [0, lo_a, hi_a]], dtype=torch.int64)
    b = torch.tensor([[hi_b, 1], [lo_b, -1], [1, hi_b]], dtype=torch.int64)
    f = new_flag()
    assert_same(int_matmul(a, b, config=CONFIGS[0], limbs=(la, lb), flag=f), ref_matmul(a, b), f"planned {la}x{lb}")
    assert int(f.item()) == 0


def test_out_of_plan_values_set_the_flag():
    a = _rand((6, 7), -30000, 30000, 7)  # 2 limbs hold [-32896, 32639]
    b = _rand((7, 4), -30000, 30000, 8)
    f = new_flag()
    int_matmul(a, b, limbs=(2, 2), flag=f)
    assert int(f.item()) == 0
    a_bad = a.clone()
    a_bad[3, 5] = limb_capacity(2)[1] + 1  # one past what 2 limbs hold
    int_matmul(a_bad, b, limbs=(2, 2), flag=f)
    assert int(f.item()) == FLAG_A_RANGE
    f.zero_()
    b_bad = b.clone()
    b_bad[0, 0] = limb_capacity(2)[0] - 1
    int_matmul(a, b_bad, limbs=(2, 2), flag=f)
    assert int(f.item()) == FLAG_B_RANGE
    f.zero_()
    int_matmul(a, b, limbs=(2, 2), bounds=(20000, None), flag=f)  # a tighter bound than the limbs hold
    assert bool((a.abs() > 20000).any()) and int(f.item()) == FLAG_A_RANGE
    f.zero_()
    int_matmul(a, b, limbs=(2, 2), bounds=(30000, 30000), flag=f)
    assert int(f.item()) == 0
    f.zero_()
    int_matmul(a, pack_weight(b), limbs=(1, None), flag=f)
    assert int(f.item()) == FLAG_A_RANGE, "a needs 2 limbs, planned 1"
    with pytest.raises(OverflowError, match="planned limb count"):  # no flag given: checked here
        int_matmul(a_bad, b, limbs=(2, 2))


def test_bias_overflow_and_rescale_limit_flags():
    a = torch.tensor([[2**30, 1]], dtype=torch.int64)
    b = torch.tensor([[2**30], [0]], dtype=torch.int64)  # a @ b = 2^60
    plan = dict(limbs=(4, 4), bounds=(2**30, 2**30))  # 4 limbs alone allow K * 2^62 > 2^63
    f = new_flag()
    int_matmul(a, b, torch.tensor([7 * 2**60], dtype=torch.int64), flag=f, **plan)
    assert int(f.item()) == FLAG_ADD_OVERFLOW, "2^60 + 7 * 2^60 wraps int64"
    f.zero_()
    int_matmul(-a, b, torch.tensor([-7 * 2**60], dtype=torch.int64), flag=f, **plan)
    assert int(f.item()) == 0, "-2^63 itself fits"
    f.zero_()
    int_matmul(a, b, rescale_shift=3, flag=f, **plan)
    assert int(f.item()) == FLAG_RESCALE_LIMIT
    # just under the limit: exact, no flag
    a2 = torch.tensor([[2**26 - 1, 1]], dtype=torch.int64)
    b2 = torch.tensor([[2**26 + 1], [0]], dtype=torch.int64)  # 2^52 - 1
    f.zero_()
    out = int_matmul(a2, b2, rescale_shift=3, flag=f, **plan)
    assert int(f.item()) == 0 and int(out.item()) == ((2**52 - 1) + 4) // 8
    with pytest.raises(OverflowError, match="2\\^52"):  # adaptive: an internal flag, checked
        int_matmul(a, b, rescale_shift=3)
    with pytest.raises(OverflowError, match="2\\^52"):  # planned without a flag: checked here
        int_matmul(-a, b, rescale_shift=3, **plan)


def test_error_flags_helper_names_the_op():
    flags = ErrorFlags(capacity=4)
    a = _rand((3, 5), -30000, 30000, 9)
    b = _rand((5, 2), -(2**10), 2**10, 10)
    int_matmul(a, b, limbs=(2, 2), flag=flags.slot("fc1"))
    int_matmul(a * 1000, b, limbs=(2, 2), flag=flags.slot("fc2"))
    assert flags.slot("fc1").data_ptr() == flags.tensor.data_ptr()
    assert flags.codes() == {"fc2": FLAG_A_RANGE}
    with pytest.raises(OverflowError, match="fc2: the first operand"):
        flags.check()
    flags.reset()
    flags.check()
    for name in "xy":
        flags.slot(name)
    with pytest.raises(ValueError, match="slots"):
        flags.slot("one too many")


def test_packed_weight():
    b = _rand((37, 11), -(2**20), 2**20, 11)
    a = _rand((9, 37), -(2**13), 2**13, 12)
    pb = pack_weight(b)
    assert pb.n_limbs == 3 and pb.limbs.shape == (11, 4, 48) and pb.shape == (37, 11)
    assert_same(int_matmul(a, pb), ref_matmul(a, b), "adaptive packed")
    assert_same(int_matmul(a, pb, limbs=(2, 3), flag=new_flag()), ref_matmul(a, b), "planned packed")
    assert pack_weight(b, limbs=5).n_limbs == 5
    with pytest.raises(OverflowError, match="needs 3 limbs"):
        pack_weight(b, limbs=2)
    with pytest.raises(ValueError, match="packed with 3"):
        int_matmul(a, pb, limbs=(2, 2))


def test_empty_reduction_and_zero_operands_run_the_epilogue():
    bias = torch.tensor([-12, -4, 4, 12, 13], dtype=torch.int64)
    a = torch.zeros((2, 0), dtype=torch.int64)
    b = torch.zeros((0, 5), dtype=torch.int64)
    ref = ref_epilogue(torch.zeros((2, 5), dtype=torch.int64), bias, 8, False, 0, None)
    assert_same(int_matmul(a, b, bias, rescale_shift=3, activation="relu"), ref, "K = 0 adaptive")
    assert_same(int_matmul(a, b, bias, rescale_shift=3, activation="relu", limbs=(1, 1), flag=new_flag()), ref, "K = 0 planned")
    z = torch.zeros((2, 3), dtype=torch.int64)
    assert_same(int_matmul(z, _rand((3, 5), -9, 9, 1), bias, rescale_shift=3, activation="relu"), ref, "zero a")
    assert int_matmul(torch.zeros((0, 3), dtype=torch.int64), _rand((3, 5), -9, 9, 1), bias, rescale_shift=3).shape == (0, 5)


def test_default_config_rule():
    """Without a config: narrow tiles for few rows, one-limb output tiles within the shared-memory
    budget, the tuned default otherwise; the same bits as an explicit config either way."""
    small = default_config(1, 2, 2)
    assert (small.block_m, small.block_n) == (16, 64) and default_config(32, 2, 2).block_m == 64
    assert default_config(33, 2, 2) is DEFAULT_GEMM_CONFIG and default_config(1000, 2, 2) is DEFAULT_GEMM_CONFIG
    for la, lb in ((1, 1), (1, 2), (2, 1)):
        c = default_config(1000, la, lb)
        assert (c.block_m // la) * (c.block_n // lb) * 8 <= MAX_OUT_TILE_BYTES
    a = _rand((3, 70), -(2**13), 2**13, 13)
    b = _rand((70, 40), -(2**13), 2**13, 14)
    ref = _reference(a, b, None, 13, False, "relu", None)
    assert_same(int_matmul(a, b, rescale_shift=13, activation="relu"), ref, "default config, 3 rows")
    assert_same(int_matmul(a, b, config=CONFIGS[3], rescale_shift=13, activation="relu"), ref, "explicit default")


def test_rejects_bad_arguments():
    a = torch.ones((2, 3), dtype=torch.int64)
    b = torch.ones((3, 2), dtype=torch.int64)
    for kw, match in [
        (dict(rescale_shift=53), "rescale_shift"), (dict(rescale_shift=-1), "rescale_shift"),
        (dict(activation="gelu"), "activation"), (dict(clip=(5, 4)), "lo=5 > hi=4"),
        (dict(limbs=(0, 2)), "planned limbs"), (dict(limbs=(2, 9)), "planned limbs"), (dict(limbs=2), "planned limbs"),
        (dict(limbs=(1, 1), bounds=(129, None)), "bound for a"), (dict(bounds=(3, 3)), "planned-path"),
        (dict(limbs=(1, 1), flag=torch.zeros(1, dtype=torch.int64)), "int32"),
    ]:
        with pytest.raises(ValueError, match=match):
            int_matmul(a, b, **kw)
    with pytest.raises(OverflowError, match="int32"):  # planned: the accumulator bound comes from the limbs
        int_matmul(torch.ones((1, 131072), dtype=torch.int64), torch.ones((131072, 1), dtype=torch.int64), limbs=(2, 2))
    with pytest.raises(OverflowError, match="int64"):  # planned: K * max|a| * max|b| from the limbs
        int_matmul(torch.ones((1, 8), dtype=torch.int64), torch.ones((8, 1), dtype=torch.int64), limbs=(8, 8))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_planned_path_never_syncs():
    """With torch's sync debug mode set to error, the planned fused path (packed weights, flag) runs
    start to end without a device-to-host sync; the flag is read once at the end."""
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randint(-(2**13), 2**13, (300, 520), device="cuda", dtype=torch.int64, generator=g)
    b = torch.randint(-(2**13), 2**13, (520, 130), device="cuda", dtype=torch.int64, generator=g)
    bias = torch.randint(-(2**20), 2**20, (130,), device="cuda", dtype=torch.int64, generator=g)
    pb = pack_weight(b)
    flags = ErrorFlags("cuda")
    ref = _reference(a.cpu(), b.cpu(), bias.cpu(), 13, True, "relu", None)
    kw = dict(rescale_shift=13, bias_after_rescale=True, activation="relu")
    for cfg in CONFIGS:  # compile first (Triton's first launch may sync)
        int_matmul(a, pb, bias, cfg, limbs=2, flag=flags.slot("warm"), **kw)
        int_matmul(a, b, bias, cfg, limbs=(2, 2), flag=flags.slot("warm"), **kw)
    torch.cuda.synchronize()
    outs = []
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i, cfg in enumerate(CONFIGS):
            outs.append(int_matmul(a, pb, bias, cfg, limbs=2, flag=flags.slot(f"packed{i}"), **kw))
            outs.append(int_matmul(a, b, bias, cfg, limbs=(2, 2), flag=flags.slot(f"pair{i}"), **kw))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    flags.check()
    for i, out in enumerate(outs):
        assert_same(out, ref, f"GPU planned call {i}")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_cuda_graph_capture_and_flag():
    """The planned path captures into a CUDA graph (impossible with a host sync inside); replays
    give the reference bits, and an out-of-plan input replayed sets the flag."""
    g = torch.Generator(device="cuda").manual_seed(1)
    a = torch.randint(-(2**13), 2**13, (64, 200), device="cuda", dtype=torch.int64, generator=g)
    b = torch.randint(-(2**13), 2**13, (200, 96), device="cuda", dtype=torch.int64, generator=g)
    bias = torch.randint(-(2**20), 2**20, (96,), device="cuda", dtype=torch.int64, generator=g)
    pb = pack_weight(b)
    flag = new_flag("cuda")
    kw = dict(limbs=2, flag=flag, rescale_shift=13, activation="relu")
    int_matmul(a, pb, bias, **kw)  # compile outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = int_matmul(a, pb, bias, **kw)
    a.copy_(torch.randint(-(2**13), 2**13, a.shape, device="cuda", dtype=torch.int64, generator=g))
    graph.replay()
    torch.cuda.synchronize()
    assert int(flag.item()) == 0
    assert_same(out, _reference(a.cpu(), b.cpu(), bias.cpu(), 13, False, "relu", None), "graph replay")
    a[5, 7] = 2**16
    graph.replay()
    assert int(flag.item()) == FLAG_A_RANGE


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("rows", [1, 7, 300])
def test_gpu_default_config_every_limb_mix(rows):
    """config=None with the fused, checked epilogue for every limb mix up to 4 (the int64 output
    tile of one-limb operands must fit shared memory) and few rows (the narrow-tile rule)."""
    g = torch.Generator(device="cuda").manual_seed(rows)
    mags = {1: 127, 2: 2**13, 4: 2**23}  # 2^23 needs 4 limbs; K * 2^46 stays far from 2^52
    for la in (1, 2, 4):
        for lb in (1, 2, 4):
            a = torch.randint(-mags[la], mags[la], (rows, 100), device="cuda", dtype=torch.int64, generator=g)
            b = torch.randint(-mags[lb], mags[lb], (100, 200), device="cuda", dtype=torch.int64, generator=g)
            bias = torch.randint(-(2**30), 2**30, (200,), device="cuda", dtype=torch.int64, generator=g)
            ref = _reference(a.cpu(), b.cpu(), bias.cpu(), 5, True, None, (-(2**40), 2**40))
            kw = dict(rescale_shift=5, bias_after_rescale=True, clip=(-(2**40), 2**40))
            f = new_flag()
            got = int_matmul(a, b, bias, limbs=(la, lb), bounds=(mags[la], mags[lb]), flag=f, **kw)
            assert int(f.item()) == 0
            assert_same(got, ref, f"default config, {rows} rows, limbs {la}x{lb}")
            assert_same(int_matmul(a, b, bias, **kw), ref, f"adaptive default config, {rows} rows, limbs {la}x{lb}")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_fused_large_all_configs():
    g = torch.Generator(device="cuda").manual_seed(2)
    a = torch.randint(-(2**15), 2**15, (1000, 777), device="cuda", dtype=torch.int64, generator=g)
    b = torch.randint(-(2**15), 2**15, (777, 515), device="cuda", dtype=torch.int64, generator=g)
    bias = torch.randint(-(2**30), 2**30, (515,), device="cuda", dtype=torch.int64, generator=g)
    runs = [(epi, GemmConfig()) for epi in EPILOGUES]
    runs += [(EPILOGUES[2], cfg) for cfg in CONFIGS + [GemmConfig(128, 128, 128, 8, 4, 8, persistent=True)]]
    refs = {}
    for epi, cfg in runs:
        if epi not in refs:
            refs[epi] = _reference(a.cpu(), b.cpu(), bias.cpu(), *epi)
        kw = dict(rescale_shift=epi[0], bias_after_rescale=epi[1], activation=epi[2], clip=epi[3])
        assert_same(int_matmul(a, b, bias, cfg, **kw), refs[epi], f"GPU adaptive {epi} {cfg}")
        f = new_flag("cuda")
        assert_same(int_matmul(a, b, bias, cfg, limbs=(3, 3), flag=f, **kw), refs[epi], f"GPU planned {epi} {cfg}")
        assert int(f.item()) == 0
    assert kernels.device().type == "cuda"
