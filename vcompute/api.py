"""The public Python API: ``vcompute.prove``, ``verify``, ``verify_onchain``, ``attest``, ``infer``, ``export``.

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
from typing import Any

import numpy as np

from vcompute.errors import PARTIAL, UsageError

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
    from vcompute.zk import circuit, pipeline

    options = circuit.CircuitOptions(
        target=target, scales=tuple(scales) if scales else None, max_logrows=max_logrows,
        input_visibility=input_visibility, output_visibility=output_visibility, param_visibility=param_visibility,
    )
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
    from vcompute.zk import batch, circuit

    options = circuit.CircuitOptions(
        target=target, scales=tuple(scales) if scales else None, max_logrows=max_logrows,
        input_visibility=input_visibility, output_visibility=output_visibility, param_visibility=param_visibility,
    )
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
    from vcompute import inference
    from vcompute.zk import circuit

    options = circuit.CircuitOptions(target=target, scales=tuple(scales) if scales else None, max_logrows=max_logrows)
    with tempfile.TemporaryDirectory(prefix="vcompute-api-") as tmp:
        result = inference.infer(
            Path(model), _input_file(input, Path(tmp), "input.json"), Path(settings) if settings else None,
            options=options, calibration_data=_input_file(calibration_data, Path(tmp), "calibration.json"), device=device,
        )
    return InferResult(**{k: result[k] for k in ("outputs", "outputs_fixed", "output_scales", "device", "time_ms", "ops")})


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
