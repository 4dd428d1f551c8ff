"""``vcompute bench``: inference and proving measured side by side, in one run.

Inference, per batch size: the Triton fixed-point engine (checked against EZKL's witness for
every sample), PyTorch eager in float (GPU when there is one) and onnxruntime on the CPU.
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
    return [np.concatenate([s[i] for s in samples], axis=0) for i in range(len(samples[0]))]


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


def _time(fn: Callable[[], Any], repeat: int, sync: Callable[[], None] = lambda: None) -> list[float]:
    fn()  # warm-up: compilation, allocation
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def _witness_outputs(sample: list[np.ndarray], proof_dir: Path) -> list[list[int]]:
    """EZKL's witness outputs for one sample, through the proven circuit."""
    from vcompute.zk import proving
    summary = json.loads((proof_dir / "summary.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input.json"
        data.write_text(json.dumps(to_json(sample)))
        wit = proving.witness(data, proof_dir / "model.compiled", Path(tmp) / "w.json", proof_dir / "vk.key", Path(summary["srs"]["path"]))
    return proving.felts_to_ints(wit["outputs"])


def bench_engine(model: ModelInfo, settings: dict[str, Any], samples: list[list[np.ndarray]], repeat: int, proof_dir: Path, device: str | None) -> dict[str, Any]:
    """The Triton engine, one sample at a time (the circuit is batch 1); exactness checked per sample."""
    from vcompute.engine.run import run_fixed
    from vcompute.engine.witness import compare

    results = [run_fixed(model.path, s, settings, device=device) for s in samples]
    mismatches = [m for r, s in zip(results, samples) if (m := compare(r.outputs_fixed, _witness_outputs(s, proof_dir))[1])]
    times = []
    for _ in range(repeat):
        times.append(sum(run_fixed(model.path, s, settings, device=device).time_ms for s in samples))
    return {**_stats(times, len(samples)), "device": results[0].device, "matches_witness": not mismatches, "mismatch": mismatches[0] if mismatches else None}


def bench_torch(model: ModelInfo, samples: list[list[np.ndarray]], repeat: int) -> dict[str, Any]:
    import torch

    from vcompute.bench.torch_float import FloatModel, batch_inputs

    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = FloatModel(model.path, device)
    xs = batch_inputs(_stack(samples), device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = _time(lambda: net(*xs), repeat, sync)
    name = torch.cuda.get_device_name() if device == "cuda" else cpu_name()
    return {**_stats(times, len(samples)), "device": f"{device} ({name})"}


def _batched_model_bytes(model: ModelInfo) -> bytes:
    """The ONNX model with a symbolic first dimension on inputs and outputs, for batched runs."""
    import onnx

    proto = onnx.load(str(model.path))
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "N"
    return proto.SerializeToString()


def bench_onnxruntime(model: ModelInfo, samples: list[list[np.ndarray]], repeat: int) -> dict[str, Any]:
    """onnxruntime on the CPU, batched when the graph allows, else one sample at a time."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(_batched_model_bytes(model), options, providers=["CPUExecutionProvider"])
    batched = {n: x.astype(np.float32) for n, x in zip(model.input_names, _stack(samples))}
    try:
        session.run(None, batched)
        run = lambda: session.run(None, batched)  # noqa: E731
        mode = "batched"
    except Exception:
        plain = ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
        feeds = [{n: x.astype(np.float32) for n, x in zip(model.input_names, s)} for s in samples]
        run = lambda: [plain.run(None, f) for f in feeds]  # noqa: E731
        mode = "per sample"
    return {**_stats(_time(run, repeat), len(samples)), "device": "cpu", "mode": mode}


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
        row["onnxruntime"] = bench_onnxruntime(model, samples, req.repeat)
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
