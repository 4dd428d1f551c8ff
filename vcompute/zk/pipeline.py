"""``prove`` and ``verify`` end to end: the stages in order, timed, cached, and staged.

Everything is built in a staging directory inside the out dir and moved into place only when
every stage has succeeded, ``summary.json`` last: an out dir never holds a half-made set.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcompute import __version__
from vcompute.engine import check as engine_check
from vcompute.zk import circuit, ezkl_call, keys, proving, srs
from vcompute.artifacts import copy_file, sha256_file, write_json
from vcompute.errors import ProofError, UsageError
from vcompute.inputs import CalibrationData, check_range, read_calibration_data, read_input, sample_input, to_json
from vcompute.model import ModelInfo, load_model, run_float

#: Called as ``progress(stage, "start" | "done", record)``; the CLI draws it, tests ignore it.
Progress = Callable[[str, str, dict[str, Any]], None]

#: Files a finished out dir holds; ``summary.json`` is written last and marks completion.
ARTIFACTS = ("input.json", "settings.json", "model.compiled", "vk.key", "witness.json", "proof.json", "ezkl.log")


def _no_progress(stage: str, event: str, record: dict[str, Any]) -> None:
    pass


@dataclass
class ProveRequest:
    """What ``vcompute prove`` was asked to do."""

    model: Path
    out: Path
    input: Path | None = None
    calibration_data: Path | None = None
    srs: Path | None = None
    options: circuit.CircuitOptions = field(default_factory=circuit.CircuitOptions)
    engine: bool = True
    evm: bool = True


class Stages:
    """Records each stage's wall time and whether its result came from the cache."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.records: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def run(self, name: str) -> Iterator[dict[str, Any]]:
        record: dict[str, Any] = {"name": name, "seconds": 0.0, "cached": False}
        self.progress(name, "start", record)
        start = time.perf_counter()
        yield record
        record["seconds"] = round(time.perf_counter() - start, 4)
        self.records.append(record)
        self.progress(name, "done", record)


def _staging_dir(out: Path) -> Path:
    """A fresh staging dir inside ``out`` (same filesystem, so renames are atomic)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    except OSError as exc:
        raise UsageError(f"cannot write to out dir {out}: {exc.strerror}") from None


def _publish(staging: Path, out: Path) -> None:
    """Move finished artifacts from staging into ``out``; summary.json goes last."""
    names = sorted(p.name for p in staging.iterdir() if p.name != "summary.json")
    (out / "summary.json").unlink(missing_ok=True)
    for name in names:
        os.replace(staging / name, out / name)
    os.replace(staging / "summary.json", out / "summary.json")


def _output_report(model: ModelInfo, inputs: list[np.ndarray], fixed: list[list[int]], scales: list[int]) -> dict[str, Any]:
    """Dequantized proven outputs beside the float model's, with the largest absolute error."""
    proven = [[v / 2.0**s for v in row] for row, s in zip(fixed, scales)]
    report: dict[str, Any] = {"outputs": proven, "outputs_fixed": fixed, "output_scales": scales}
    try:
        reference = [o.reshape(-1).tolist() for o in run_float(model, inputs)]
    except Exception as exc:  # the float reference is informative only: a model onnxruntime refuses still proves
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {**report, "float_outputs": None, "max_abs_error": None, "float_error": f"onnxruntime: {first[:300]}"}
    errors = [float(np.max(np.abs(np.subtract(p, r)))) if p else 0.0 for p, r in zip(proven, reference)]
    return {**report, "float_outputs": reference, "max_abs_error": max(errors) if errors else 0.0}


def _prepare_input(req: ProveRequest, model: ModelInfo, staging: Path) -> tuple[list[np.ndarray], bool, list[str]]:
    """Load the user's input (or make the sample one) and save it as ``input.json``, in the flat form EZKL reads."""
    generated = req.input is None
    scale = _known_input_scale(req.options)
    read = read_input(req.input, model, scale) if req.input is not None else None
    arrays = sample_input(model) if read is None else read.arrays
    write_json(staging / "input.json", to_json(arrays))
    return arrays, generated, read.notes if read else []


def _known_input_scale(options: circuit.CircuitOptions) -> int | None:
    """The input scale before calibration, when the user fixed it (one --scales value): field-element inputs need it."""
    return options.scales[0] if options.scales and len(options.scales) == 1 else None


def prove(req: ProveRequest, progress: Progress = _no_progress) -> dict[str, Any]:
    """Run every stage for one model and input; return the summary (also written to summary.json)."""
    req.options.check()
    model = load_model(req.model)
    calibration = read_calibration_data(req.calibration_data, model, _known_input_scale(req.options)) if req.calibration_data else None
    if req.srs is not None and not req.srs.exists():
        raise UsageError(f"SRS file not found: {req.srs}")
    staging = _staging_dir(req.out)
    try:
        summary = _prove_in(staging, req, model, calibration, progress)
        _publish(staging, req.out)
        return summary
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _prove_in(staging: Path, req: ProveRequest, model: ModelInfo, calibration: CalibrationData | None, progress: Progress) -> dict[str, Any]:
    stages = Stages(progress)
    log = staging / "ezkl.log"
    inputs, generated, input_notes = _prepare_input(req, model, staging)
    input_path = staging / "input.json"

    with stages.run("calibrate + compile") as rec:
        data_path = input_path
        if calibration is not None:  # checked and flattened: EZKL reads only flat lists
            data_path = staging / ".calibration-data.json"
            write_json(data_path, calibration.data)
        circ = circuit.build(model.path, model.sha256, req.options, data_path, calibration.sha256 if calibration else None, log=log)
        if calibration is not None:
            data_path.unlink()
        rec["cached"] = circ.cached
        rung = circ.meta.get("calibration", {})
        if rung.get("rung") and not circ.cached:
            why = rung["failed"][0]["reason"] if rung.get("failed") else "no parameters"
            progress("calibrate + compile", "warning", {"message": f"EZKL's default calibration failed ({why}); calibrated on rung {rung['name']!r}: {rung['why']}"})
        copy_file(circ.settings_path, staging / "settings.json")
        copy_file(circ.compiled_path, staging / "model.compiled")
    settings = circ.settings()
    logrows = int(settings["run_args"]["logrows"])
    check_range(inputs, model, settings)  # a cached circuit may have been calibrated on smaller values

    with stages.run("srs") as rec:
        the_srs = srs.resolve(logrows, req.srs)
        rec["cached"] = the_srs.cached
    if the_srs.development:
        progress("srs", "warning", {"message": srs.DEV_WARNING})

    with stages.run("setup") as rec:
        the_keys = keys.setup(circ.compiled_path, the_srs, log=log)
        rec["cached"] = the_keys.cached
        copy_file(the_keys.vk, staging / "vk.key")

    with stages.run("witness"):
        wit = proving.witness(input_path, circ.compiled_path, staging / "witness.json", the_keys.vk, the_srs.path, log=log)
    circuit.check_witness(settings, wit)  # before prove: EZKL's prove can hang on an out-of-table lookup
    fixed = proving.felts_to_ints(wit["outputs"])

    engine: dict[str, Any] = {"engine_exact": None, "engine_reason": "skipped (--no-engine)"}
    if req.engine and not model.input_names:  # tract folds a constant graph to its output before EZKL sees it
        engine = {"engine_exact": None, "engine_reason": "the model has no inputs: EZKL proves a constant, nothing for the engine to run"}
    elif req.engine:
        with stages.run("engine"):
            engine = engine_check.check(model.path, inputs, settings, fixed)

    with stages.run("prove"):
        proving.prove(staging / "witness.json", circ.compiled_path, the_keys.pk, staging / "proof.json", the_srs.path, log=log)

    with stages.run("verify"):
        proving.verify(staging / "proof.json", staging / "settings.json", staging / "vk.key", the_srs.path, log=log)

    evm: dict[str, Any] | None = None
    if req.evm:
        evm = _build_evm(stages, staging, the_srs.path)

    proof_bytes = len(bytes(json.loads((staging / "proof.json").read_text())["proof"]))
    summary = {
        "vcompute_version": __version__,
        "ezkl_version": ezkl_call.version(),
        "model": {"path": str(model.path), "sha256": model.sha256, "ops": model.op_types},
        "input": {"sha256": sha256_file(input_path), "generated": generated, "notes": input_notes},
        "settings_sha256": sha256_file(staging / "settings.json"),
        "circuit_key": circ.key,
        "calibration": {
            "data_sha256": circ.meta.get("calibration_sha256"),
            "on_first_input": circ.meta.get("calibrated_on_input"),
            **circ.meta.get("calibration", {}),
        },
        "logrows": logrows,
        "scales": {"input": settings["run_args"]["input_scale"], "param": settings["run_args"]["param_scale"]},
        "visibility": {
            "input": req.options.input_visibility,
            "output": req.options.output_visibility,
            "param": req.options.param_visibility,
        },
        "srs": {"path": str(the_srs.path), "logrows": the_srs.logrows, "development": the_srs.development},
        "proving_key": {"path": str(the_keys.pk), "bytes": the_keys.pk.stat().st_size},
        "cache": {r["name"]: r["cached"] for r in stages.records if r["name"] in ("calibrate + compile", "srs", "setup")},
        "stages": stages.records,
        "proof": {"bytes": proof_bytes, "sha256": sha256_file(staging / "proof.json")},
        "verified": True,
        **engine,
        **_output_report(model, inputs, fixed, [int(s) for s in settings["model_output_scales"]]),
    }
    if evm is not None:
        summary["evm"] = evm
    write_json(staging / "summary.json", summary)
    return summary


def _build_evm(stages: Stages, staging: Path, srs_path: Path) -> dict[str, Any] | None:
    """Write the Solidity verifier, its compiled artifact and the calldata (when the EVM tools are installed)."""
    from vcompute.evm import solc, verifier
    try:  # a proof needs no Node.js: without the npm toolchain the Solidity step is skipped, loudly
        solc.node_binary()
        solc.solc_module()
    except UsageError as exc:
        stages.progress("evm verifier", "warning", {"message": f"Solidity verifier not built: {exc} (or pass --no-evm)"})
        return {"skipped": str(exc)}
    with stages.run("evm verifier") as rec:
        result = verifier.build_verifier(
            staging, staging / "vk.key", staging / "settings.json", srs_path, staging / "proof.json"
        )
        rec["cached"] = bool(result.get("cache_hit"))
    # The verifier module reports staging paths; the out dir's files keep the same names.
    return {k: (Path(v).name if isinstance(v, str) and v.startswith(str(staging)) else v) for k, v in result.items()}


def load_summary(proof_dir: Path) -> dict[str, Any]:
    """Read a finished out dir's summary.json (its presence marks a complete prove)."""
    path = proof_dir / "summary.json"
    if not proof_dir.is_dir():
        raise UsageError(f"proof dir not found: {proof_dir}")
    if not path.exists():
        raise UsageError(f"{proof_dir} has no summary.json: not a finished 'vcompute prove' out dir")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc})") from None


def verify(proof_dir: Path, srs_override: Path | None = None) -> dict[str, Any]:
    """Check a proof dir's proof against its vk, settings and SRS; raise ``ProofError`` if invalid."""
    summary = load_summary(proof_dir)
    settings = proof_dir / "settings.json"
    start = time.perf_counter()
    logrows = int(summary["logrows"])
    if srs_override:
        the_srs = srs.ceremony_srs(srs_override, logrows)
    elif summary["srs"]["development"]:
        the_srs = srs.dev_srs(logrows)
    else:
        the_srs = srs.ceremony_srs(Path(summary["srs"]["path"]), logrows)
    proving.verify(proof_dir / "proof.json", settings, proof_dir / "vk.key", the_srs.path)
    _check_claimed_outputs(proof_dir, summary)
    return {
        "valid": True,
        "proof_dir": str(proof_dir),
        "srs": {"path": str(the_srs.path), "development": the_srs.development},
        "seconds": round(time.perf_counter() - start, 4),
        "outputs": summary.get("outputs"),
    }


def _check_claimed_outputs(proof_dir: Path, summary: dict[str, Any]) -> None:
    """With public outputs, the outputs summary.json claims must be the ones the proof attests."""
    if summary.get("visibility", {}).get("output") != "public":
        return
    claimed = [v for row in summary.get("outputs_fixed", []) for v in row]
    attested = proving.proof_outputs(proving.load_proof(proof_dir / "proof.json"), len(claimed))
    if attested != claimed:
        raise ProofError("proof rejected: summary.json claims outputs the proof does not attest")
