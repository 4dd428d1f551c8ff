"""``vcompute bench``: inference and proving measured side by side, in one run.

Inference, per batch size: the fixed-point engine on the whole batch (on a GPU: the fused plan
replayed as a CUDA graph; every sample checked against the op-by-op int64 path, and up to
``WITNESS_SAMPLES`` against EZKL's witness), PyTorch eager in float (GPU when there is one) and
onnxruntime on the CPU: latency and throughput (samples/s), device work timed like
``triton.testing.do_bench``.
Proof pipeline: every stage cold (an empty cache) and warm, each ``prove`` in its own process
so its peak memory is its own. Nothing here asserts a time: benchmarks record, tests check.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcompute import __version__
from vcompute.zk import ezkl_call
from vcompute.errors import ProofError, UsageError
from vcompute.evm.solc import EIP170_LIMIT
from vcompute.inputs import load_input, sample_input, to_json
from vcompute.model import ModelInfo, load_model

Progress = Callable[[str], None]


@dataclass
class BenchRequest:
    model: Path
    out: Path
    input: Path | None = None
    batches: list[int] = field(default_factory=lambda: [1, 8])
    repeat: int = 5
    rpc_url: str | None = None
    onchain: bool = False
    device: str | None = None


def _stats(times_ms: list[float], batch: int) -> dict[str, float]:
    median = statistics.median(times_ms)
    return {
        "median_ms": round(median, 4),
        "min_ms": round(min(times_ms), 4),
        "max_ms": round(max(times_ms), 4),
        "throughput_per_s": round(batch / (median / 1000.0), 2) if median > 0 else float("inf"),
    }


def _samples(base: list[np.ndarray], batch: int) -> list[list[np.ndarray]]:
    """``batch`` inputs: the given one, then seeded perturbations of it (same shape and range)."""
    rng = np.random.default_rng(1)
    out = [base]
    for _ in range(batch - 1):
        out.append([np.round(x + 0.05 * max(float(np.abs(x).max()), 1e-3) * rng.standard_normal(x.shape), 6) for x in base])
    return out


def _stack(samples: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Batch samples along the first axis (each sample keeps its batch-1 leading dim)."""
    return [np.concatenate([np.asarray(s[i])[None] if np.ndim(s[i]) == 0 or np.shape(s[i])[0] != 1 else s[i]
                            for s in samples], axis=0) for i in range(len(samples[0]))]


# --- proof pipeline -------------------------------------------------------------------------


def _prove_process(model: Path, input_path: Path, out: Path, cache: Path) -> tuple[dict[str, Any], int]:
    """Run ``vcompute prove --json`` in a child process; (summary, peak RSS in bytes)."""
    log = out.parent / f"{out.name}.stderr"
    with open(out.parent / f"{out.name}.json", "w") as stdout, open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vcompute.cli", "prove", str(model), "--input", str(input_path), "--out", str(out), "--json"],
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "VCOMPUTE_CACHE": str(cache)},
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise ProofError(f"prove failed while benchmarking (exit {proc.returncode}): {tail[0]}")
    return json.loads((out.parent / f"{out.name}.json").read_text()), usage.ru_maxrss * 1024


def bench_proof(model: ModelInfo, input_path: Path, work: Path, progress: Progress) -> dict[str, Any]:
    """Prove twice: with an empty cache (cold), then with the cache it filled (warm)."""
    cache = work / "cache"
    runs: dict[str, Any] = {}
    for name in ("cold", "warm"):
        progress(f"proof pipeline, {name} cache")
        summary, peak = _prove_process(model.path, input_path, work / name, cache)
        runs[name] = {
            "stages": {r["name"]: r["seconds"] for r in summary["stages"]},
            "cached": {r["name"]: r["cached"] for r in summary["stages"]},
            "total_s": round(sum(r["seconds"] for r in summary["stages"]), 3),
            "peak_rss_bytes": peak,
        }
    warm = json.loads((work / "warm" / "summary.json").read_text())
    return {
        **runs,
        "logrows": warm["logrows"],
        "proof_bytes": warm["proof"]["bytes"],
        "proving_key_bytes": warm["proving_key"]["bytes"],
        "engine_exact": warm.get("engine_exact"),
        "proof_dir": str(work / "warm"),
    }


def bench_gas(proof_dir: Path, rpc_url: str | None) -> dict[str, Any]:
    """Gas with the single-model verifier and with EZKL's reusable one, side by side.

    Single: deploy and verify (``deploy``/``verify``, None when its size is over EIP-170 and no
    chain that enforces the limit would take it). Reusable: deploy the shared contract, register
    this model's VKA, verify with it. Without ``rpc_url`` each runs on a fresh Anvil, so deploy and
    registration are measured, not reused; on a given chain a reused deployment reports the
    recorded gas."""
    from vcompute.evm.onchain import verify_onchain

    reusable = verify_onchain(proof_dir, rpc_url=rpc_url, reusable=True)
    gas: dict[str, Any] = {"deploy": None, "verify": None, "valid": None,
                           "single_deployed_size": reusable.single_deployed_size}
    if reusable.single_deployed_size is not None and reusable.single_deployed_size <= EIP170_LIMIT:
        single = verify_onchain(proof_dir, rpc_url=rpc_url)
        gas.update(deploy=single.deploy_gas, verify=single.verify_gas, valid=single.valid,
                   calldata_bytes=single.calldata_size)
    else:
        gas["single"] = f"not deployable: {reusable.single_deployed_size:,} bytes, over EIP-170's {EIP170_LIMIT:,}"
    gas["reusable"] = {
        "deploy": reusable.deploy_gas, "register_vka": reusable.register_gas, "verify": reusable.verify_gas,
        "valid": reusable.valid, "deployed_size": reusable.deployed_size, "calldata_bytes": reusable.calldata_size,
        "vka_digest": reusable.vka_digest,
    }
    return gas


# --- inference ------------------------------------------------------------------------------

#: EZKL witnesses checked per batch (each costs a witness generation); every sample of every batch
#: is also checked against the op-by-op engine (the exact int64 CPU path the witnesses vouch for)
WITNESS_SAMPLES = 16


def time_host(fn: Callable[[], Any], repeat: int, sync: Callable[[], None] = lambda: None) -> list[float]:
    """Wall-clock milliseconds of ``repeat`` calls after one warm-up (compilation, allocation)."""
    fn()  # warm-up: compilation, allocation
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


_time = time_host  # the former name


def time_device(fn: Callable[[], Any], warmup_ms: float = 25, rep_ms: float = 100) -> list[float]:
    """``triton.testing.do_bench``: CUDA-event times of each call (the L2 cache flushed before
    each), after warm-up; returns [median, min, max] in ms."""
    from triton.testing import do_bench

    return list(do_bench(fn, warmup=warmup_ms, rep=rep_ms, quantiles=[0.5, 0.0, 1.0]))


def time_stream(fn: Callable[[], Any], calls: int = 200, rounds: int = 5) -> list[float]:
    """Steady-state time per call on a CUDA device: ``calls`` calls back to back on the current
    stream (no host sync between them, caches warm, as a server running one model sees), timed
    by CUDA events around each round; returns [median, min, max] over ``rounds`` in ms per call.
    The complement of :func:`time_device`, which times one call after flushing the L2 cache."""
    import torch

    for _ in range(max(10, calls // 10)):
        fn()
    torch.cuda.synchronize()
    per_call = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        per_call.append(start.elapsed_time(end) / calls)
    per_call.sort()
    return [per_call[len(per_call) // 2], per_call[0], per_call[-1]]


#: batches per timed round of :func:`time_served`
STREAM_BATCHES = 64


def time_served(engine: Any, batch: Any, want: list[np.ndarray], rounds: int = 5) -> tuple[list[float], bool]:
    """Milliseconds per batch of ``Engine.infer_stream`` serving ``STREAM_BATCHES`` copies of
    ``batch`` from the host (every result received), per round, after a warm-up round that
    captures the stream's graphs; and whether every result of that round equals ``want`` (the
    checked batch's ``fixed`` arrays). Host wall clock: what a serving loop sees, copies and all."""
    def serve(check: bool) -> bool:
        same = True
        for res in engine.infer_stream(batch for _ in range(STREAM_BATCHES)):
            if check:
                same = same and all(np.array_equal(a, b) for a, b in zip(res.fixed, want))
        return same

    exact = serve(True)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        serve(False)
        times.append((time.perf_counter() - start) * 1000.0 / STREAM_BATCHES)
    return times, exact


def _stats_q(q: list[float], batch: int) -> dict[str, float]:
    """Stats from [median, min, max] (``time_device``)."""
    median, lo, hi = q
    return {"median_ms": round(median, 4), "min_ms": round(lo, 4), "max_ms": round(hi, 4),
            "throughput_per_s": round(batch / (median / 1000.0), 2) if median > 0 else float("inf")}


def _witness_outputs(sample: list[np.ndarray], proof_dir: Path) -> list[list[int]]:
    """EZKL's witness outputs for one sample, through the proven circuit."""
    from vcompute.zk import proving, srs

    summary = json.loads((proof_dir / "summary.json").read_text())
    info = summary["srs"]
    srs_path = Path(info["path"]) if "path" in info else None
    if srs_path is None:  # the proof's full SRS, by its hash: in the cache the bench's proofs filled
        saved = os.environ.get("VCOMPUTE_CACHE")
        os.environ["VCOMPUTE_CACHE"] = str(proof_dir.parent / "cache")
        try:
            srs_path = srs.by_sha256(info.get("sha256", ""))
        finally:
            if saved is None:
                os.environ.pop("VCOMPUTE_CACHE", None)
            else:
                os.environ["VCOMPUTE_CACHE"] = saved
    if srs_path is None:
        raise ProofError(f"the SRS of {proof_dir} (sha256 {info.get('sha256')}) is not in the bench's cache")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input.json"
        data.write_text(json.dumps(to_json(sample)))
        wit = proving.witness(data, proof_dir / "model.compiled", Path(tmp) / "w.json", proof_dir / "vk.key", srs_path)
    return proving.felts_to_ints(wit["outputs"])


def bench_engine_batched(model_path: Path, settings: dict[str, Any], samples: list[list[np.ndarray]], repeat: int,
                         device: str | None, witnesses: dict[int, list[list[int]]] | None = None,
                         reference: list[list[list[int]]] | None = None, tiles: Any = "auto") -> dict[str, Any]:
    """The engine on the whole batch at once (``Engine``: on a GPU, the fused plan as a CUDA graph).

    Exactness: every sample against ``reference`` (default: the op-by-op int64 path on the CPU)
    and the samples in ``witnesses`` (index -> EZKL's outputs) against EZKL. Times: on a GPU the
    graph replay alone (``time_device``, the batch already on the device, as the PyTorch column
    times its forward pass), and end to end from host float32 arrays to the int64 result arrays
    (``time_host`` of ``Engine.infer``, as onnxruntime's column takes and returns arrays).
    """
    import torch

    from vcompute.engine.engine import Engine
    from vcompute.engine.run import run_fixed_batch
    from vcompute.engine.witness import compare

    engine = Engine(model_path, settings, device, tiles=tiles)
    batch = _stack_f32(samples)
    result = engine.infer(batch)
    result = engine.infer(batch)  # the second call of a size captures its graph
    if reference is None:
        reference = run_fixed_batch(model_path, batch, settings, backend="torch").outputs_fixed
    bad_ref = [i for i, (got, want) in enumerate(zip(result.outputs_fixed, reference)) if got != want]
    bad_wit = [(i, where) for i, want in (witnesses or {}).items()
               if (where := compare(result.outputs_fixed[i], want)[1])]
    row: dict[str, Any] = {"device": result.device, "path": result.path, "samples_checked": len(samples),
                           "matches_reference": not bad_ref, "witnesses_checked": len(witnesses or {}),
                           "matches_witness": not bad_wit if witnesses else None,
                           "mismatch": (f"sample {bad_ref[0]} vs the op path" if bad_ref else
                                        f"sample {bad_wit[0][0]} vs its witness: {bad_wit[0][1]}" if bad_wit else None)}
    e2e = time_host(lambda: engine.infer(batch), repeat)
    row["end_to_end"] = _stats(e2e, len(samples))
    if result.path == "graph":
        runner = engine.graph_runner(batch)
        row.update(_stats_q(time_device(runner.replay), len(samples)))
        row["timed"] = "graph replay (device)"

        # the pass alone, back to back with warm caches: timed as PyTorch's steady column is
        row["warm"] = {**_stats_q(time_stream(runner.replay), len(samples)),
                       "timed": "back-to-back graph replays, the batch on the device (warm caches)"}
        # one batch of a serving loop: the graph with the input copy in and the result (with the
        # flags) copy out, as Engine.infer replays it for a batch from the host
        row["steady"] = {**_stats_q(time_stream(runner.replay_io), len(samples)),
                         "timed": "back-to-back batches: input copy in, graph replay, result copy out (warm caches)"}
        # a serving loop through the API: Engine.infer_stream over back-to-back batches, host
        # arrays in and BatchResults out (flags read, outputs copied), by the host's wall clock
        served, exact = time_served(engine, batch, result.fixed)
        row["stream"] = {**_stats(served, len(samples)), "exact": exact,
                         "timed": "Engine.infer_stream: host arrays in, results out, batches overlapped "
                                  f"(wall clock per batch over {STREAM_BATCHES})"}
        if not exact:
            row["matches_reference"] = False
            row["mismatch"] = row["mismatch"] or "a streamed batch differs from the same batch through infer"
    else:
        row.update(_stats(e2e, len(samples)))
        row["timed"] = "end to end (host)"
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return row


def _stack_f32(samples: list[list[np.ndarray]]) -> list[np.ndarray]:
    """One float32 array per model input with the samples on the first axis."""
    return [np.stack([np.asarray(s[k], dtype=np.float64).astype(np.float32) for s in samples])
            for k in range(len(samples[0]))]


def bench_engine(model: ModelInfo, settings: dict[str, Any], samples: list[list[np.ndarray]], repeat: int, proof_dir: Path, device: str | None) -> dict[str, Any]:
    """The engine on the batch, exactness checked against EZKL for up to ``WITNESS_SAMPLES``
    samples and against the op path for all of them."""
    witnesses = {i: _witness_outputs(s, proof_dir) for i, s in enumerate(samples[:WITNESS_SAMPLES])}
    return bench_engine_batched(model.path, settings, samples, repeat, device, witnesses)


def bench_torch(model: ModelInfo | Path, samples: list[list[np.ndarray]], repeat: int) -> dict[str, Any]:
    """PyTorch eager in float32, batched; on a GPU timed like the engine (``time_device``)."""
    import torch

    from vcompute.bench.torch_float import FloatModel, UnsupportedFloatOp, batch_inputs

    path = model.path if isinstance(model, ModelInfo) else Path(model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        net = FloatModel(path, device)
    except UnsupportedFloatOp as exc:  # the other columns still stand
        return {"unsupported": str(exc)}
    xs = batch_inputs(_stack(samples), device)
    if device == "cuda":
        row = _stats_q(time_device(lambda: net(*xs)), len(samples))
        row["steady"] = {**_stats_q(time_stream(lambda: net(*xs)), len(samples)),
                         "timed": "back-to-back forward passes, inputs on the device (warm caches)"}
        name = torch.cuda.get_device_name()
    else:
        row = _stats(time_host(lambda: net(*xs), repeat), len(samples))
        name = cpu_name()
    return {**row, "device": f"{device} ({name})"}


def _batched_model_bytes(path: Path) -> bytes:
    """The ONNX model with a symbolic first dimension on inputs and outputs, for batched runs."""
    import onnx

    proto = onnx.load(str(path))
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "N"
    return proto.SerializeToString()


def bench_onnxruntime(model: ModelInfo | Path, samples: list[list[np.ndarray]], repeat: int) -> dict[str, Any]:
    """onnxruntime on the CPU, batched when the graph allows, else one sample at a time."""
    import onnxruntime as ort

    path = model.path if isinstance(model, ModelInfo) else Path(model)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(_batched_model_bytes(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    batched = {n: x.astype(np.float32) for n, x in zip(names, _stack(samples))}
    try:
        session.run(None, batched)
        run = lambda: session.run(None, batched)  # noqa: E731
        mode = "batched"
    except Exception:
        plain = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feeds = [{n: x.astype(np.float32) for n, x in zip(names, s)} for s in samples]
        run = lambda: [plain.run(None, f) for f in feeds]  # noqa: E731
        mode = "per sample"
    reps = max(repeat, 5)
    return {**_stats(time_host(run, reps), len(samples)), "device": f"cpu ({cpu_name()}, {os.cpu_count()} cores)",
            "mode": mode}


def bench_onnxruntime_apart(path: Path, samples: list[list[np.ndarray]], repeat: int) -> dict[str, Any]:
    """:func:`bench_onnxruntime` in a process of its own. Once an onnxruntime session (and its
    thread pool) exists in a process, the engine's stream there slowed from 75-88 to 100-120 µs
    per LeNet-5 batch of 256 on the lent H100 host, for good (its staging copies run on torch's
    intra-op threads; BENCHMARKS.md §2h); and torch's threads could slow onnxruntime likewise.
    Apart, each is timed as a server running only it would see it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        row = pool.submit(bench_onnxruntime, Path(path), samples, repeat).result()
    return {**row, "process": "its own"}


# --- the whole run ---------------------------------------------------------------------------


def cpu_name() -> str:
    """The CPU's model name (platform.processor() is empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def versions() -> dict[str, str]:
    import onnxruntime
    import torch
    import triton

    return {
        "vcompute": __version__,
        "ezkl": ezkl_call.version(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def run(req: BenchRequest, progress: Progress = lambda _: None) -> dict[str, Any]:
    """Everything ``vcompute bench`` reports, as one dict (the JSON form)."""
    if not req.batches or any(b < 1 for b in req.batches):
        raise UsageError(f"--batch takes positive integers, got {req.batches}")
    if req.repeat < 1:
        raise UsageError(f"--repeat must be at least 1, got {req.repeat}")
    model = load_model(req.model)
    base = load_input(req.input, model) if req.input else sample_input(model)
    try:
        req.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write to {req.out}: {exc.strerror}") from None
    input_path = req.out / "input.json"
    input_path.write_text(json.dumps(to_json(base)))

    proof = bench_proof(model, input_path, req.out, progress)
    proof_dir = Path(proof["proof_dir"])
    settings = json.loads((proof_dir / "settings.json").read_text())
    if req.onchain or req.rpc_url:
        progress("on-chain verification")
        proof["gas"] = bench_gas(proof_dir, req.rpc_url)

    inference = []
    for batch in req.batches:
        samples = _samples(base, batch)
        row: dict[str, Any] = {"batch": batch}
        progress(f"inference, batch {batch}: Triton engine")
        row["engine"] = _engine_row(model, settings, samples, req, proof_dir)
        progress(f"inference, batch {batch}: PyTorch float")
        row["torch"] = bench_torch(model, samples, req.repeat)
        progress(f"inference, batch {batch}: onnxruntime")
        # in a process of its own: its thread pool would slow the engine's next rows here (§2h)
        row["onnxruntime"] = bench_onnxruntime_apart(model.path, samples, req.repeat)
        if "unsupported" not in row["engine"]:
            row["engine_speedup"] = speedups(row)
        inference.append(row)
    return {
        "model": str(model.path),
        "date": time.strftime("%Y-%m-%d"),
        "host": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "versions": versions(),
        "repeat": req.repeat,
        "proof": proof,
        "inference": inference,
    }


def _engine_row(model: ModelInfo, settings: dict[str, Any], samples: list[list[np.ndarray]], req: BenchRequest, proof_dir: Path) -> dict[str, Any]:
    from vcompute.engine.graph import UnsupportedOpError

    try:
        return bench_engine(model, settings, samples, req.repeat, proof_dir, req.device)
    except UnsupportedOpError as exc:
        return {"unsupported": str(exc)}


def speedups(row: dict[str, Any]) -> dict[str, float | None]:
    """Engine throughput over PyTorch float and onnxruntime for one batch row."""
    eng = row["engine"].get("throughput_per_s")
    out: dict[str, float | None] = {}
    for key in ("torch", "onnxruntime"):
        other = row[key].get("throughput_per_s")
        out[f"vs_{key}"] = round(eng / other, 3) if eng and other else None
    # the engine's steady state (with its copies) and its pass alone with warm caches, each
    # against PyTorch's back-to-back passes and onnxruntime's own runs
    for measure in ("steady", "warm"):
        mine = row["engine"].get(measure, {}).get("throughput_per_s")
        if mine:
            for key in ("torch", "onnxruntime"):
                other = row[key].get("steady", row[key]).get("throughput_per_s")
                out[f"{measure}_vs_{key}"] = round(mine / other, 3) if other else None
    served = row["engine"].get("stream", {}).get("throughput_per_s")
    other = row["onnxruntime"].get("throughput_per_s")
    if served and other:  # host arrays in, arrays out, on both sides
        out["stream_vs_onnxruntime"] = round(served / other, 3)
    return out
