"""``prove`` end to end: the stages in order, timed, cached, and staged.

Everything is built in a staging dir beside the out dir and moved into place whole, only once
the proof is made and verified: an out dir never holds a half-made set, and a failed prove leaves
no out dir behind. An old proof dir is replaced whole, never file by file; any other non-empty
dir is refused unless ``force``.

A finished proof is never thrown away: the optional stages after it (the EVM verifier, solc) and
the engine check's own failures are recorded in ``summary.json`` under ``warnings`` with their
reason, and the result is ``partial`` (CLI exit 3). Only a real engine mismatch (its integers
differ from the witness) fails the prove, since that breaks vcompute's promise.
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
from vcompute.artifacts import copy_file, sha256_file, write_json
from vcompute.engine import check as engine_check
from vcompute.errors import UsageError, VcomputeError, first_line
from vcompute.inputs import CalibrationData, check_range, read_calibration_data, read_input, sample_input, to_json
from vcompute.model import ModelInfo, load_model, run_float
from vcompute.zk import binding, circuit, ezkl_call, keys, proving, srs
from vcompute.zk.proofdir import MODEL, VERIFIER_SRS

#: Called as ``progress(stage, "start" | "done" | "warning", record)``; the CLI draws it, tests ignore it.
Progress = Callable[[str, str, dict[str, Any]], None]

#: Files every finished out dir holds; ``summary.json`` marks a dir as vcompute's.
ARTIFACTS = ("input.json", "settings.json", "model.compiled", "vk.key", "witness.json", "proof.json",
             MODEL, VERIFIER_SRS, "ezkl.log", "summary.json")


def _no_progress(stage: str, event: str, record: dict[str, Any]) -> None:
    pass


@dataclass
class ProveRequest:
    """What ``vcompute prove`` was asked to do. Paths may be given as ``str``."""

    model: Path | str
    out: Path | str | None = None
    input: Path | str | None = None
    calibration_data: Path | str | None = None
    srs: Path | str | None = None
    options: circuit.CircuitOptions = field(default_factory=circuit.CircuitOptions)
    engine: bool = True
    evm: bool = True
    force: bool = False
    reusable_verifier: bool = False

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        self.out = Path(self.out) if self.out is not None else default_out(self.model)
        for name in ("input", "calibration_data", "srs"):
            value = getattr(self, name)
            setattr(self, name, Path(value) if value is not None else None)


def default_out(model: Path) -> Path:
    """``out/<name>``: the model's file name, or its folder's name for the usual ``model.onnx``."""
    stem = model.stem
    if stem == "model" and model.resolve().parent.name:
        stem = model.resolve().parent.name
    return Path("out") / stem


class Stages:
    """Records each stage's wall time and whether its result came from the cache."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.records: list[dict[str, Any]] = []
        self.warnings: list[dict[str, str]] = []

    @contextlib.contextmanager
    def run(self, name: str) -> Iterator[dict[str, Any]]:
        record: dict[str, Any] = {"name": name, "seconds": 0.0, "cached": False}
        self.progress(name, "start", record)
        start = time.perf_counter()
        yield record
        record["seconds"] = round(time.perf_counter() - start, 4)
        self.records.append(record)
        self.progress(name, "done", record)

    def warn(self, stage: str, message: str) -> None:
        self.warnings.append({"stage": stage, "message": message})
        self.progress(stage, "warning", {"message": message})


# --- the out dir ------------------------------------------------------------------------------


def _inside(path: Path | None, folder: Path) -> bool:
    return path is not None and path.resolve().is_relative_to(folder.resolve())


def check_out_dir(req: ProveRequest, model: ModelInfo) -> None:
    """Refuse an out dir that holds anything but an old proof of this model (unless ``force``).

    Even with ``force``, never an out dir that holds the model or input being proven: it is
    replaced whole, so they would be deleted."""
    out = req.out
    for what, path in (("model", req.model), ("input", req.input), ("calibration data", req.calibration_data), ("SRS", req.srs)):
        if _inside(path, out):
            raise UsageError(f"--out {out} holds the {what} being used ({path}), and an out dir is replaced whole: choose another --out")
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    if not any(out.iterdir()) or req.force:
        return
    if _is_proof_dir_of(out, model.sha256):
        return
    raise UsageError(
        f"--out {out} is not empty and is not a vcompute proof dir of this model: pass --force to replace it"
        " whole, or choose another --out"
    )


def _is_proof_dir_of(folder: Path, model_sha: str) -> bool:
    """A dir ``prove`` wrote for the same model (its own files only): safe to replace."""
    from vcompute.zk.proofdir import read_summary

    try:
        same_model = (read_summary(folder) or {})["model"]["sha256"] == model_sha
    except (KeyError, TypeError):
        return False
    from vcompute.evm import reusable, verifier

    ours = set(ARTIFACTS) | set(verifier.OUTPUT_NAMES) | set(reusable.OUTPUT_NAMES)
    return same_model and all(p.name in ours for p in folder.iterdir())


def _staging_dir(out: Path) -> Path:
    """A fresh staging dir beside ``out`` (same filesystem, so the final rename is atomic)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    except OSError as exc:
        raise UsageError(f"cannot write to out dir {out}: {exc.strerror}") from None


def _publish(staging: Path, out: Path) -> None:
    """Swap the finished staging dir in for ``out``; an old ``out`` is removed only afterwards."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "dir")
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --- the stages -------------------------------------------------------------------------------


def _output_report(model: ModelInfo, inputs: list[np.ndarray], fixed: list[list[int]], scales: list[int],
                   reference: list[list[float]] | None = None) -> dict[str, Any]:
    """Dequantized proven outputs beside the float model's, with the largest absolute error."""
    proven = [[v / 2.0**s for v in row] for row, s in zip(fixed, scales)]
    report: dict[str, Any] = {"outputs": proven, "outputs_fixed": fixed, "output_scales": scales}
    try:  # ``reference``: the float outputs when the caller has them already (a batch runs one session)
        if reference is None:
            reference = [o.reshape(-1).tolist() for o in run_float(model, inputs)]
    except Exception as exc:  # the float reference is informative only: a model onnxruntime refuses still proves
        return {**report, "float_outputs": None, "max_abs_error": None, "float_error": f"onnxruntime: {first_line(exc)}"}
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
    check_out_dir(req, model)
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
    # a cached circuit may have been calibrated on smaller values: check before the SRS and keys
    check = lambda settings: check_range(inputs, model, settings)  # noqa: E731
    shared = prepare_shared(req, model, calibration, input_path, stages, log, staging, check=check)
    stage_shared(staging, shared)
    fixed, engine = prove_input(staging, shared, inputs, stages, log, engine=req.engine)
    return finish(staging, req, shared, stages, generated, engine, inputs, fixed, input_notes)


# --- the split that ``prove --inputs`` (:mod:`vcompute.zk.batch`) reuses ------------------------
# prepare_shared: what every input of one model shares (circuit, SRS, keys), made once;
# prove_input: witness, engine check, proof and verification of one input;
# finish: the EVM outputs and summary.json. ``_prove_in`` is the three in a row.


@dataclass
class Shared:
    """What every input of one model and options shares: the circuit, the SRS and the keys."""

    model: ModelInfo
    circ: circuit.Circuit
    settings: dict[str, Any]
    srs: srs.Srs
    keys: keys.Keys
    records: list[dict[str, Any]] = field(default_factory=list)  # their stage records


def prepare_shared(req: ProveRequest, model: ModelInfo, calibration: CalibrationData | None, input_path: Path,
                   stages: Stages, log: Path | None, scratch: Path,
                   check: Callable[[dict[str, Any]], None] | None = None) -> Shared:
    """Calibrate and compile (on ``calibration``, else on ``input_path``), resolve the SRS, make the keys.

    Each comes from the cache when it can. ``check(settings)`` runs right after calibration."""
    first = len(stages.records)
    with stages.run("calibrate + compile") as rec:
        data_path = input_path
        if calibration is not None:  # checked and flattened: EZKL reads only flat lists
            data_path = scratch / ".calibration-data.json"
            write_json(data_path, calibration.data)
        circ = circuit.build(model.path, model.sha256, req.options, data_path, calibration.sha256 if calibration else None, log=log)
        if calibration is not None:
            data_path.unlink()
        rec["cached"] = circ.cached
        rung = circ.meta.get("calibration", {})
        if rung.get("rung") and not circ.cached:
            why = rung["failed"][0]["reason"] if rung.get("failed") else "no parameters"
            stages.progress("calibrate + compile", "warning", {"message": f"EZKL's default calibration failed ({why}); calibrated on rung {rung['name']!r}: {rung['why']}"})
    settings = circ.settings()
    logrows = int(settings["run_args"]["logrows"])
    if check is not None:
        check(settings)

    with stages.run("srs") as rec:
        the_srs = srs.resolve(logrows, req.srs)
        rec["cached"] = the_srs.cached
    if the_srs.development:
        stages.progress("srs", "warning", {"message": srs.DEV_WARNING})

    with stages.run("setup") as rec:
        the_keys = keys.setup(circ.compiled_path, the_srs, log=log)
        rec["cached"] = the_keys.cached
    binding.record(model.sha256, sha256_file(circ.settings_path), the_srs.sha256, sha256_file(the_keys.vk))
    return Shared(model, circ, settings, the_srs, the_keys, stages.records[first:])


def stage_shared(staging: Path, shared: Shared) -> None:
    """Put the files every proof dir of this circuit holds into ``staging``."""
    copy_file(shared.model.path, staging / MODEL)
    copy_file(shared.circ.settings_path, staging / "settings.json")
    copy_file(shared.circ.compiled_path, staging / "model.compiled")
    (staging / VERIFIER_SRS).write_bytes(srs.verifier_srs(shared.srs.path))
    copy_file(shared.keys.vk, staging / "vk.key")


#: ``engine(witness_fixed)`` -> the summary's engine fields; raises ProofError on a mismatch
EngineCheck = Callable[[list[list[int]]], dict[str, Any]]


def prove_input(staging: Path, shared: Shared, inputs: list[np.ndarray], stages: Stages, log: Path | None,
                engine: bool | EngineCheck = True) -> tuple[list[list[int]], dict[str, Any]]:
    """Witness, engine check, proof and local verification of ``staging/input.json``.

    Writes ``witness.json`` and ``proof.json`` into ``staging``; returns the witness's output
    integers and the engine fields. ``engine`` may be a callable that compares outputs the engine
    computed beforehand with the witness (a batch runs the engine once for all its inputs)."""
    model, settings = shared.model, shared.settings
    with stages.run("witness"):
        wit = proving.witness(staging / "input.json", shared.circ.compiled_path, staging / "witness.json",
                              shared.keys.vk, shared.srs.path, log=log)
        circuit.check_witness(settings, wit)  # before prove: EZKL's prove can hang on an out-of-table lookup
    fixed = proving.felts_to_ints(wit["outputs"])

    result: dict[str, Any] = {"engine_exact": None, "engine_reason": "skipped (--no-engine)"}
    if engine and not model.input_names:  # tract folds a constant graph to its output before EZKL sees it
        result = {"engine_exact": None, "engine_reason": "the model has no inputs: EZKL proves a constant, nothing for the engine to run"}
    elif engine:
        with stages.run("engine"):
            result = engine(fixed) if callable(engine) else engine_check.check(
                model.proto if model.proto is not None else model.path, inputs, settings, fixed, model_key=model.sha256)
        if result["engine_exact"] is None:
            stages.warn("engine", f"the engine did not run this model ({result['engine_reason']}): engine_exact is null")

    with stages.run("prove"):
        proving.prove(staging / "witness.json", shared.circ.compiled_path, shared.keys.pk, staging / "proof.json",
                      shared.srs.path, log=log)

    with stages.run("verify"):
        proving.verify(staging / "proof.json", shared.circ.settings_path, shared.keys.vk, shared.srs.path, log=log)
    return fixed, result


def finish(staging: Path, req: ProveRequest, shared: Shared, stages: Stages, generated: bool, engine: dict[str, Any],
           inputs: list[np.ndarray], fixed: list[list[int]], input_notes: list[str],
           evm_artifact: dict[str, Any] | None = None, calldata: bytes | None = None,
           reference: list[list[float]] | None = None) -> dict[str, Any]:
    """The proof exists: write the EVM outputs (a failure is a warning) and summary.json; return the summary.

    A batch passes the verifier ``evm_artifact`` it compiled once, each proof's ``calldata`` and
    the float ``reference`` outputs it computed with one onnxruntime session."""
    # From here on the proof exists: nothing below may throw it away.
    evm = _build_evm(stages, staging, shared.srs.path, req.reusable_verifier, evm_artifact, calldata) if req.evm else None
    summary = _summary(req, shared.model, shared.circ, shared.settings, shared.srs, shared.keys, stages, staging,
                       generated, engine, inputs, fixed, input_notes, reference)
    if evm is not None:
        summary["evm"] = evm
    write_json(staging / "summary.json", summary)
    return summary


def _summary(req, model, circ, settings, the_srs, the_keys, stages, staging, generated, engine, inputs, fixed, input_notes,
             reference=None) -> dict[str, Any]:
    proof_bytes = len(bytes(json.loads((staging / "proof.json").read_text())["proof"]))
    return {
        "vcompute_version": __version__,
        "ezkl_version": ezkl_call.version(),
        "model": {"path": str(model.path), "sha256": model.sha256, "ops": model.op_types},
        "input": {"sha256": sha256_file(staging / "input.json"), "generated": generated, "notes": input_notes},
        "settings_sha256": sha256_file(staging / "settings.json"),
        "vk_sha256": sha256_file(staging / "vk.key"),
        "circuit_key": circ.key,
        "calibration": {
            "data_sha256": circ.meta.get("calibration_sha256"),
            "on_first_input": circ.meta.get("calibrated_on_input"),
            **circ.meta.get("calibration", {}),
        },
        "logrows": int(settings["run_args"]["logrows"]),
        "scales": {"input": settings["run_args"]["input_scale"], "param": settings["run_args"]["param_scale"]},
        "visibility": {
            "input": req.options.input_visibility,
            "output": req.options.output_visibility,
            "param": req.options.param_visibility,
        },
        "srs": {"sha256": the_srs.sha256, "logrows": the_srs.logrows, "development": the_srs.development,
                "verifier_points": VERIFIER_SRS},
        "proving_key": {"bytes": the_keys.pk.stat().st_size},
        "cache": {r["name"]: r["cached"] for r in stages.records if r["name"] in ("calibrate + compile", "srs", "setup")},
        "stages": stages.records,
        "proof": {"bytes": proof_bytes, "sha256": sha256_file(staging / "proof.json")},
        "verified": True,
        "warnings": stages.warnings,
        "partial": bool(stages.warnings),
        **engine,
        **_output_report(model, inputs, fixed, [int(s) for s in settings["model_output_scales"]], reference),
    }


def _build_evm(stages: Stages, staging: Path, srs_path: Path, reusable: bool = False,
               artifact: dict[str, Any] | None = None, data: bytes | None = None) -> dict[str, Any]:
    """Write the Solidity verifier, its Hardhat artifact and the calldata; a failure is a warning.

    The single-model verifier (``Halo2Verifier``), unless it would exceed EIP-170 or ``reusable``
    asks for EZKL's reusable verifier: then ``Halo2VerifierReusable`` with this model's VKA, its
    digest and the reusable ``verifyProof`` calldata instead (see :mod:`vcompute.evm.reusable`).
    ``artifact`` and ``data``: the compiled single verifier and the calldata, when a batch made them once."""
    from vcompute.evm import reusable as rv
    from vcompute.evm import solc, verifier

    try:  # a proof needs no Node.js: without the npm toolchain the Solidity step is skipped, loudly
        solc.node_binary()
        solc.solc_module()
    except UsageError as exc:
        stages.warn("evm verifier", f"Solidity verifier not built: {exc} (or pass --no-evm)")
        return {"skipped": str(exc)}
    vk, settings = staging / "vk.key", staging / "settings.json"
    try:
        with stages.run("evm verifier") as rec:
            single = artifact or verifier.verifier_artifact(vk, settings, srs_path)
            kind, reason = rv.choose(single, reusable)
            data = data if data is not None else verifier.calldata(staging / "proof.json")
            if kind == rv.SINGLE:
                rec["cached"] = single["cached"]
                result = verifier.write_outputs(staging, single, data)
            else:
                art, the_vka = rv.artifact(vk, settings, srs_path), rv.vka(vk, settings, srs_path)
                rec["cached"] = single["cached"] and art["cached"] and the_vka.cached
                result = rv.write_outputs(staging, art, the_vka, rv.verify_calldata(*verifier.decode_calldata(data), the_vka.words))
                result["single_deployed_size"] = single["deployed_size"]
            result["reason"] = reason
            result["requested_reusable"] = reusable
    except VcomputeError as exc:
        stages.warn("evm verifier", f"Solidity verifier not built: {exc}")
        return {"failed": str(exc)}
    if not result["fits_eip170"]:  # only a reusable verifier over the limit could get here
        stages.warn(
            "evm verifier",
            f"the verifier is {result['deployed_size']:,} bytes deployed, over EIP-170's {result['eip170_limit']:,}:"
            " it cannot be deployed on a chain that enforces the limit",
        )
    return result
