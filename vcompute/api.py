"""The public Python API: ``vcompute.prove``, ``verify``, ``verify_onchain``, ``attest``, ``infer``,
``infer_batch``, ``load`` (an :class:`Engine` serving many batches), ``export``.

Each takes paths as ``str`` or ``Path`` and inputs as files, numpy arrays, torch tensors or
EZKL's ``{"input_data": ...}`` dict, and returns a typed result (a dataclass). Failures raise
:class:`vcompute.UsageError` (bad input) or :class:`vcompute.ProofError` (a proof or check that
fails). Everything works in a plain script and inside a running event loop (Jupyter): EZKL's
async calls run in a worker thread with their own loop.

The CLI is a thin layer over these functions.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vcompute.errors import PARTIAL, UsageError

if TYPE_CHECKING:  # imported lazily below: `import vcompute` stays light
    from vcompute.zk.circuit import CircuitOptions

PathLike = str | Path
#: an input: a file, one array or tensor (a one-input model), a list of them, or EZKL's dict
InputLike = PathLike | np.ndarray | Sequence[Any] | dict[str, Any] | Any


@dataclass
class ProveResult:
    """A finished proof dir and what its summary says."""

    out: Path
    outputs: list[list[float]]
    outputs_fixed: list[list[int]]
    engine_exact: bool | None
    partial: bool
    warnings: list[dict[str, str]]
    summary: dict[str, Any] = field(repr=False)

    @property
    def exit_code(self) -> int:
        """0, or 3 when the proof landed but an optional stage failed (see ``warnings``)."""
        return PARTIAL if self.partial else 0


@dataclass
class InferResult:
    """The engine's outputs: the integers a proof attests, and their dequantized values."""

    outputs: list[list[float]]
    outputs_fixed: list[list[int]]
    output_scales: list[int]
    device: str
    time_ms: float
    ops: list[str]
    path: str = "ops"


@dataclass
class BatchInferResult:
    """Every sample's outputs: ``outputs_fixed[i][k]`` are sample i's output k, flat integers."""

    outputs: list[list[list[float]]]
    outputs_fixed: list[list[list[int]]]
    output_scales: list[int]
    device: str
    time_ms: float
    ops: list[str]
    path: list[str]
    batch_size: int

    def __len__(self) -> int:
        return len(self.outputs_fixed)

    def sample(self, i: int) -> InferResult:
        return InferResult(self.outputs[i], self.outputs_fixed[i], self.output_scales, self.device, self.time_ms,
                           self.ops, self.path[-1])


def _input_file(value: InputLike, work: Path, name: str) -> Path | None:
    """Turn any accepted input form into an EZKL input file (None stays None)."""
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        return Path(value)
    if isinstance(value, dict):
        data = value
    else:
        tensors = [value] if _is_array(value) else list(value)
        data = {"input_data": [np.asarray(_to_numpy(t), dtype=np.float64).reshape(-1).tolist() for t in tensors]}
    path = work / name
    path.write_text(json.dumps(data))
    return path


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or type(value).__module__.startswith("torch")


def _to_numpy(value: Any) -> np.ndarray:
    if type(value).__module__.startswith("torch"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _circuit_options(
    target: str, scales: Sequence[int] | None, max_logrows: int | None,
    input_visibility: str, output_visibility: str, param_visibility: str,
) -> CircuitOptions:
    """prove's and prove_batch's circuit keywords as the pipeline's CircuitOptions (checked there)."""
    from vcompute.zk import circuit

    return circuit.CircuitOptions(
        target=target, scales=tuple(scales) if scales else None, max_logrows=max_logrows,
        input_visibility=input_visibility, output_visibility=output_visibility, param_visibility=param_visibility,
    )


def prove(
    model: PathLike,
    input: InputLike = None,
    out: PathLike | None = None,
    *,
    srs: PathLike | None = None,
    target: str = "resources",
    scales: Sequence[int] | None = None,
    max_logrows: int | None = None,
    calibration_data: InputLike = None,
    input_visibility: str = "public",
    output_visibility: str = "public",
    param_visibility: str = "fixed",
    engine: bool = True,
    evm: bool = True,
    force: bool = False,
    progress: Callable[[str, str, dict[str, Any]], None] | None = None,
    reusable_verifier: bool = False,
) -> ProveResult:
    """Prove ``model`` on ``input`` (default: a deterministic sample) into the out dir ``out``.

    ``reusable_verifier``: write EZKL's reusable verifier and this model's VKA instead of the
    single-model verifier (done anyway when that one would exceed EIP-170)."""
    from vcompute.zk import pipeline

    options = _circuit_options(target, scales, max_logrows, input_visibility, output_visibility, param_visibility)
    with tempfile.TemporaryDirectory(prefix="vcompute-api-") as tmp:
        request = pipeline.ProveRequest(
            model=model, out=out, input=_input_file(input, Path(tmp), "input.json"),
            calibration_data=_input_file(calibration_data, Path(tmp), "calibration.json"),
            srs=srs, options=options, engine=engine, evm=evm, force=force, reusable_verifier=reusable_verifier,
        )
        summary = pipeline.prove(request, progress or pipeline._no_progress)
    return ProveResult(
        out=Path(request.out), outputs=summary["outputs"], outputs_fixed=summary["outputs_fixed"],
        engine_exact=summary.get("engine_exact"), partial=summary["partial"], warnings=summary["warnings"],
        summary=summary,
    )


@dataclass
class BatchProveResult:
    """A finished batch: its dir and ``batch.json``'s content (every input's status)."""

    out: Path
    record: dict[str, Any] = field(repr=False)

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.record["inputs"]

    @property
    def counts(self) -> dict[str, int]:
        return self.record["counts"]

    @property
    def exit_code(self) -> int:
        """0 all proven; 3 some inputs refused as bad (or warnings); 1 a proof or check failed for some input."""
        return int(self.record["exit_code"])


def prove_batch(
    model: PathLike,
    inputs: PathLike | np.ndarray | Sequence[Any],
    out: PathLike | None = None,
    *,
    workers: int | None = None,
    threads: int | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    srs: PathLike | None = None,
    target: str = "resources",
    scales: Sequence[int] | None = None,
    max_logrows: int | None = None,
    calibration_data: InputLike = None,
    input_visibility: str = "public",
    output_visibility: str = "public",
    param_visibility: str = "fixed",
    engine: bool = True,
    evm: bool = True,
    force: bool = False,
    progress: Callable[[str, str, dict[str, Any]], None] | None = None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> BatchProveResult:
    """Prove ``model`` on many inputs into ``out`` (one proof dir per input, and batch.json).

    ``inputs``: a JSON-lines file, a directory of input files, an .npy/.npz file, an array with a
    leading sample axis, or a list of inputs (each in any form ``prove`` takes). ``workers``
    processes (default: the cores) with ``threads`` rayon threads each; ``ray``/``ray_address``
    run them as Ray actors instead. A bad input fails alone: see ``result.entries``."""
    from vcompute.zk import batch

    options = _circuit_options(target, scales, max_logrows, input_visibility, output_visibility, param_visibility)
    with tempfile.TemporaryDirectory(prefix="vcompute-api-") as tmp:
        source = Path(inputs) if isinstance(inputs, (str, Path)) else inputs
        request = batch.BatchRequest(
            model=model, inputs=source, out=out, calibration_data=_input_file(calibration_data, Path(tmp), "calibration.json"),
            srs=srs, options=options, engine=engine, evm=evm, force=force, workers=workers, threads=threads,
            ray=ray, ray_address=ray_address,
        )
        result = batch.prove_batch(request, progress or (lambda *a: None), on_event or (lambda *a: None))
    return BatchProveResult(result.out, result.record)


def verify_batch(batch_dir: PathLike, srs: PathLike | None = None, workers: int | None = None) -> dict[str, Any]:
    """Verify every proof of a batch dir in parallel: {valid, invalid, not_proven, proofs: [...]}; never raises for an invalid one."""
    from vcompute.zk.batch import verify_batch as _verify_batch

    return _verify_batch(Path(batch_dir), Path(srs) if srs else None, workers)


def attest_batch(batch_dir: PathLike, rpc_url: str | None = None, private_key: str | None = None,
                 registry: str | None = None, srs: PathLike | None = None, workers: int | None = None) -> dict[str, Any]:
    """Record every valid proof of a batch dir in InferenceRegistry with ``attestBatch``: counts, gas and one row per proof."""
    from vcompute.evm.registry import attest_batch_dir

    return attest_batch_dir(batch_dir, rpc_url=rpc_url, private_key=private_key, registry_address=registry, srs=srs, workers=workers)


def verify(proof_dir: PathLike, srs: PathLike | None = None):
    """Verify a proof dir locally; returns a :class:`vcompute.zk.verify.VerifyResult`, raises ProofError if invalid."""
    from vcompute.zk.verify import verify as _verify

    return _verify(Path(proof_dir), Path(srs) if srs else None)


def verify_onchain(proof_dir: PathLike, rpc_url: str | None = None, private_key: str | None = None, srs: PathLike | None = None,
                   reusable_verifier: bool = False):
    """Verify with the Solidity verifier on a chain (a temporary Anvil without ``rpc_url``): an ``OnchainResult``.

    Through EZKL's reusable verifier when the single-model one would exceed EIP-170, or when asked."""
    from vcompute.evm.onchain import verify_onchain as _verify_onchain

    return _verify_onchain(proof_dir, rpc_url=rpc_url, private_key=private_key, srs=srs, reusable=reusable_verifier)


def attest(proof_dir: PathLike, rpc_url: str | None = None, private_key: str | None = None,
           registry: str | None = None, srs: PathLike | None = None, reusable_verifier: bool = False):
    """Record a verified result in InferenceRegistry: an ``AttestResult`` (status attested, already-attested or rejected)."""
    from vcompute.evm.registry import attest_proof_dir

    return attest_proof_dir(proof_dir, rpc_url=rpc_url, private_key=private_key, registry_address=registry, srs=srs,
                            reusable=reusable_verifier)


def infer(
    model: PathLike,
    input: InputLike = None,
    *,
    settings: PathLike | None = None,
    target: str = "resources",
    scales: Sequence[int] | None = None,
    max_logrows: int | None = None,
    calibration_data: InputLike = None,
    device: str | None = None,
) -> InferResult:
    """Run ``model`` on the fixed-point engine: the integers ``prove`` would attest for the same options."""
    from vcompute.inference import infer as run_one
    from vcompute.zk import circuit

    options = circuit.CircuitOptions(target=target, scales=tuple(scales) if scales else None, max_logrows=max_logrows)
    with tempfile.TemporaryDirectory(prefix="vcompute-api-") as tmp:
        result = run_one(
            Path(model), _input_file(input, Path(tmp), "input.json"), Path(settings) if settings else None,
            options=options, calibration_data=_input_file(calibration_data, Path(tmp), "calibration.json"), device=device,
        )
    return InferResult(**{k: result[k] for k in ("outputs", "outputs_fixed", "output_scales", "device", "time_ms", "ops", "path")})


def _samples(model_path: Path, samples: Any, work: Path) -> tuple[Path | None, list[list[np.ndarray]] | None]:
    """Samples as a file path (any format ``infer.load_samples`` reads), or a list of per-sample
    inputs (each: an array, a list of arrays, or EZKL's dict), or one stacked array."""
    from vcompute.inputs import parse_input_data
    from vcompute.model import load_model

    if samples is None or isinstance(samples, (str, Path)):
        return (Path(samples) if samples is not None else None), None
    model = load_model(model_path)
    if _is_array(samples):
        samples = [_to_numpy(samples)[i] for i in range(len(samples))]
    out = []
    for i, s in enumerate(samples):
        if isinstance(s, dict):
            out.append(parse_input_data(s, model, f"sample {i}"))
            continue
        tensors = [s] if _is_array(s) else list(s)
        data = {"input_data": [np.asarray(_to_numpy(t), dtype=np.float64).reshape(-1).tolist() for t in tensors]}
        out.append(parse_input_data(data, model, f"sample {i}"))
    return None, out


def infer_batch(
    model: PathLike,
    samples: Any = None,
    *,
    batch_size: int = 64,
    settings: PathLike | None = None,
    target: str = "resources",
    scales: Sequence[int] | None = None,
    max_logrows: int | None = None,
    calibration_data: InputLike = None,
    device: str | None = None,
) -> BatchInferResult:
    """Run many samples through one loaded engine, ``batch_size`` at a time: the integers
    ``prove`` would attest for each. ``samples``: a file (EZKL JSON with a list of samples, JSON
    lines, .npy, .npz), a list of per-sample inputs, or one array with the samples on its first
    axis. Without ``settings``, calibration runs as ``prove`` would, on the first sample."""
    from vcompute.inference import infer_batch as run_batch
    from vcompute.zk import circuit

    options = circuit.CircuitOptions(target=target, scales=tuple(scales) if scales else None, max_logrows=max_logrows)
    with tempfile.TemporaryDirectory(prefix="vcompute-api-") as tmp:
        path, parsed = _samples(Path(model), samples, Path(tmp))
        result = run_batch(
            Path(model), path, Path(settings) if settings else None, options=options,
            calibration_data=_input_file(calibration_data, Path(tmp), "calibration.json"), device=device,
            batch_size=batch_size, samples=parsed,
        )
    return BatchInferResult(
        outputs=[s["outputs"] for s in result["samples"]], outputs_fixed=[s["outputs_fixed"] for s in result["samples"]],
        output_scales=result["output_scales"], device=result["device"], time_ms=result["time_ms"], ops=result["ops"],
        path=result["path"], batch_size=batch_size,
    )


def load(
    model: PathLike | Any,
    settings: PathLike | dict[str, Any] | None = None,
    *,
    device: str | None = None,
    backend: str | None = None,
    path: str = "auto",
    tiles: str = "auto",
    target: str = "resources",
    scales: Sequence[int] | None = None,
    max_logrows: int | None = None,
    calibration_data: InputLike = None,
):
    """Load a model once for many calls: an :class:`vcompute.Engine` whose ``.infer(batch)``
    returns every sample's outputs (``BatchResult``). ``batch``: a list of per-sample input lists,
    stacked arrays (one per model input, samples first) or torch tensors (on the GPU they stay
    there). ``settings``: EZKL's settings (a dict or a file, e.g. a proof dir's); without them,
    calibration runs as ``prove`` would, on ``calibration_data`` or the deterministic sample input.
    On a GPU each batch size's forward pass is captured once in a CUDA graph and replayed."""
    from vcompute.engine.engine import Engine
    from vcompute.inference import check_device, resolve_settings
    from vcompute.inputs import sample_input
    from vcompute.model import load_model
    from vcompute.zk import circuit

    if isinstance(settings, dict):
        settings_dict = settings
    else:
        info = load_model(Path(model))
        options = circuit.CircuitOptions(target=target, scales=tuple(scales) if scales else None, max_logrows=max_logrows)
        options.check()
        check_device(device)
        with tempfile.TemporaryDirectory(prefix="vcompute-api-") as tmp:
            settings_dict = resolve_settings(
                info, Path(settings) if settings else None, options,
                _input_file(calibration_data, Path(tmp), "calibration.json"), sample_input(info))
    return Engine(model if not isinstance(model, str) else Path(model), settings_dict, device, backend=backend,
                  path=path, tiles=tiles)


def export(module: Any, example_input: Any, path: PathLike, *, opset: int = 17, input_names: Sequence[str] | None = None) -> Path:
    """Write a ``torch.nn.Module`` as ONNX with the exporter settings EZKL reads.

    The TorchScript exporter (``dynamo=False``; the dynamo one emits ops tract does not take),
    opset 17, constant folding on, module in eval mode. Returns the path."""
    import warnings

    import torch

    path = Path(path)
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"export takes a torch.nn.Module, not {type(module).__name__}")
    args = tuple(example_input) if isinstance(example_input, (list, tuple)) else (example_input,)
    names = list(input_names) if input_names else [f"input_{i}" for i in range(len(args))]
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset, do_constant_folding=True,
                          input_names=names, output_names=["output"])
    return path
