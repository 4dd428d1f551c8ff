"""``vcompute prove MODEL --inputs SOURCE --out DIR``: one circuit, many inputs, proofs in parallel.

What runs once: calibration (``--calibration-data``, else on the batch's own inputs), compile, SRS,
setup, the Solidity verifier, and the fixed-point engine over *all* inputs in one pass
(:func:`vcompute.engine.run.run_fixed_batch`). What runs per input, on worker processes
(:mod:`.workers`) or Ray actors (:mod:`.ray_pool`): witness, the comparison of the engine's
integers with that witness, the proof and its verification. This process then writes each proof
dir (``DIR/<name>``, a normal proof dir: ``vcompute verify DIR/<name>`` works) through a staging
dir and one rename, exactly as ``prove`` does, and keeps ``DIR/batch.json`` up to date.

Files every proof dir of the batch shares (model.onnx, settings.json, model.compiled, vk.key,
kzg.verifier.srs, Verifier.sol, Verifier.json) are hard links to one copy in ``DIR/.shared``
where the filesystem allows (else copies): a batch of 10,000 proofs does not hold 10,000 copies
of the model.

**Calibration.** With ``--calibration-data FILE`` that file; else, on a first run, up to 64 of
the batch's own good inputs, evenly spaced (all of them for a batch of 64 or fewer). The data used
is kept as ``DIR/calibration.json`` and reused when the batch is run again without
``--calibration-data``, so a resumed or extended batch keeps its circuit and keys.

**Resume.** An input whose proof dir exists, is a proof of this model, input and verifying key,
and passes ``vcompute verify`` is skipped. Anything else is proven again (its old dir replaced
whole). ``batch.json`` is a record, never trusted: resuming looks at the proof dirs themselves.

**Failures.** A bad input (unreadable, the wrong size, NaN, outside the calibrated range) fails
alone, with its reason in ``batch.json``; so does an input whose proof or engine check fails, or
whose worker process dies. Exit codes: 0 every input proven and verified; 3 some inputs were
refused as bad or some proofs carry warnings, and every other input was proven; 1 a proof,
verification or exactness check failed for some input (or a worker died on it); 2 the batch
could not start (model, SOURCE, out dir, options) or no input could be read; 130 interrupted
(``batch.json`` says what was done; run the same command again to resume).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcompute import __version__
from vcompute.artifacts import FILE_MODE, copy_file, sha256_file, write_json
from vcompute.errors import PARTIAL, ProofError, UsageError, VcomputeError, first_line
from vcompute.inputs import CalibrationData, check_range, read_calibration_data, to_json
from vcompute.model import ModelInfo, load_model
from vcompute.zk import circuit, ezkl_call, pipeline
from vcompute.zk.batch_inputs import Item, calibration_data, items_from_values, read_source
from vcompute.zk.proofdir import MODEL, VERIFIER_SRS, read_summary
from vcompute.zk.workers import ProcessPool, cpu_count, mark_warm, rss_mb, threads_per_worker

BATCH_FILE = "batch.json"
CALIBRATION_FILE = "calibration.json"
SHARED_DIR = ".shared"
LOCK_FILE = ".batch.lock"
#: most inputs calibration runs on when no --calibration-data is given
CALIBRATION_LIMIT = 64
#: batch.json is rewritten at most this often while proofs stream in (and always at the end)
WRITE_EVERY = 2.0
SHARED_FILES = (MODEL, "settings.json", "model.compiled", "vk.key", VERIFIER_SRS)
EVM_SHARED = ("Verifier.sol", "Verifier.json")

#: ``on_event(kind, record)``: "start" (the plan), "input" (one input done), "done" (the batch)
BatchEvents = Callable[[str, dict[str, Any]], None]


def _no_events(kind: str, record: dict[str, Any]) -> None:
    pass


@dataclass
class BatchRequest:
    """What ``vcompute prove --inputs`` was asked to do."""

    model: Path | str
    inputs: Path | str | Any  # SOURCE (a path), or values for the API (batch_inputs.items_from_values)
    out: Path | str | None = None
    calibration_data: Path | str | None = None
    srs: Path | str | None = None
    options: circuit.CircuitOptions = field(default_factory=circuit.CircuitOptions)
    engine: bool = True
    evm: bool = True
    force: bool = False
    workers: int | None = None  # None: the number of cores (Ray: the cluster's CPUs // threads)
    threads: int | None = None  # rayon threads per worker; None: cores // workers
    ray: bool = False
    ray_address: str | None = None

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        if isinstance(self.inputs, str):
            self.inputs = Path(self.inputs)
        self.out = Path(self.out) if self.out is not None else pipeline.default_out(self.model)
        for name in ("calibration_data", "srs"):
            value = getattr(self, name)
            setattr(self, name, Path(value) if value is not None else None)

    @property
    def use_ray(self) -> bool:
        return self.ray or self.ray_address is not None


@dataclass
class BatchResult:
    out: Path
    record: dict[str, Any]

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.record["inputs"]

    @property
    def exit_code(self) -> int:
        return int(self.record["exit_code"])


# --- the out dir ------------------------------------------------------------------------------


def is_batch_dir(folder: Path) -> bool:
    return (Path(folder) / BATCH_FILE).is_file()


def read_record(folder: Path) -> dict[str, Any]:
    """``DIR/batch.json`` (a claim: what was done, never evidence of validity)."""
    from vcompute.zk.proofdir import read_json

    record = read_json(Path(folder) / BATCH_FILE, "batch record")
    if not isinstance(record, dict) or not isinstance(record.get("inputs"), list):
        raise UsageError(f"{folder / BATCH_FILE} is not a vcompute batch record")
    return record


def _check_out(req: BatchRequest, model: ModelInfo) -> None:
    out = req.out
    paths = [("model", req.model), ("calibration data", req.calibration_data), ("SRS", req.srs)]
    if isinstance(req.inputs, Path):
        paths.append(("inputs", req.inputs))
    for what, path in paths:
        if path is not None and path.resolve().is_relative_to(out.resolve()):
            raise UsageError(f"--out {out} holds the {what} being used ({path}): choose another --out")
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    if not any(out.iterdir()) or req.force:
        return
    try:
        same = read_record(out).get("model", {}).get("sha256") == model.sha256
    except VcomputeError:
        same = False
    if not same:
        raise UsageError(f"--out {out} is not empty and is not a batch of this model: pass --force to write into it"
                         " (only the proof dirs of this batch's inputs are replaced), or choose another --out")


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One batch at a time per out dir; stale staging dirs of a killed run are removed under the lock."""
    from filelock import FileLock, Timeout

    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UsageError(f"another batch is writing into {out} right now: wait for it, or choose another --out") from None
    try:
        for p in out.iterdir():
            if p.name.startswith(".") and (".staging-" in p.name or ".old-" in p.name or p.name.startswith(".work-")):
                shutil.rmtree(p, ignore_errors=True)
        yield
    finally:
        lock.release()  # the lock file stays: removing it would let two later runs lock different files


def _link_or_copy(src: Path, dest: Path) -> None:
    """``dest`` becomes a hard link to ``src`` (a copy where links are impossible), atomically."""
    tmp = dest.with_name(f".{dest.name}.link")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, FILE_MODE)
    os.replace(tmp, dest)


# --- preparing: calibration, circuit, keys, verifier, engine -------------------------------------


def _input_json(item: Item) -> str:
    """The bytes ``input.json`` gets (as ``prove`` writes it), so resume can compare hashes."""
    return json.dumps(to_json(item.arrays), indent=2) + "\n"


def _calibration(req: BatchRequest, model: ModelInfo, items: list[Item]) -> tuple[CalibrationData, dict[str, Any]]:
    """The calibration data (kept as DIR/calibration.json) and how it was chosen."""
    dest = req.out / CALIBRATION_FILE
    scale = pipeline._known_input_scale(req.options)
    if req.calibration_data is not None:
        data = read_calibration_data(req.calibration_data, model, scale)
        if not dest.is_file() or sha256_file(dest) != data.sha256:
            copy_file(req.calibration_data, dest)
        return data, {"source": "--calibration-data", "path": str(req.calibration_data), "samples": data.samples,
                      "why": f"--calibration-data {req.calibration_data} ({data.samples} samples)"}
    if dest.is_file():
        data = read_calibration_data(dest, model, scale)
        return data, {"source": "kept", "samples": data.samples,
                      "why": f"{CALIBRATION_FILE} from an earlier run of this batch ({data.samples} samples)"}
    raw, names = calibration_data(items, CALIBRATION_LIMIT)
    write_json(dest, raw)
    good = sum(1 for it in items if it.ok)
    how = f"all {good}" if len(names) == good else f"{len(names)} evenly spaced of the {good}"
    return read_calibration_data(dest, model, scale), {
        "source": "inputs", "inputs": names, "samples": len(names),
        "why": f"{how} good inputs of the batch (no --calibration-data; kept as {CALIBRATION_FILE})"}


def _write_shared(out: Path, shared: pipeline.Shared, evm_art: dict[str, Any] | None) -> Path:
    """DIR/.shared: one copy of the files every proof dir links to (replaced whole when it changed).

    Proof dirs made earlier keep their own links to the old files, so replacing it never
    changes them."""
    import tempfile

    folder = out / SHARED_DIR
    tmp = Path(tempfile.mkdtemp(prefix=".shared.staging-", dir=out))
    try:
        pipeline.stage_shared(tmp, shared)
        if evm_art is not None:
            from vcompute.evm import verifier

            verifier.write_outputs(tmp, evm_art, b"")
            for name in ("calldata.bin", "calldata.hex"):
                (tmp / name).unlink()
        if folder.is_dir():
            names = sorted(p.name for p in tmp.iterdir())
            if names == sorted(p.name for p in folder.iterdir()) and all(
                    sha256_file(folder / n) == sha256_file(tmp / n) for n in names):
                return folder
        pipeline._publish(tmp, folder)
        return folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _evm_artifact(shared: pipeline.Shared, warnings: list[dict[str, str]]) -> dict[str, Any] | None:
    """The Solidity verifier, compiled once for the batch; a failure becomes every proof's warning."""
    from vcompute.evm import solc, verifier

    try:
        solc.node_binary()
        solc.solc_module()
        return verifier.verifier_artifact(shared.keys.vk, shared.circ.settings_path, shared.srs.path)
    except VcomputeError as exc:
        warnings.append({"stage": "evm verifier", "message": f"Solidity verifier not built: {exc} (or pass --no-evm)"})
        return None


def engine_pass(model: ModelInfo, settings: dict[str, Any], items: list[Item]) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """The fixed-point engine over every input at once: per item, its output integers (or why not).

    One :func:`run_fixed_batch` call; if it fails for a reason other than an unsupported op (one
    bad sample can sink a batch), each sample is run alone so the others keep their check."""
    from vcompute.engine.graph import UnsupportedOpError
    from vcompute.engine.run import run_fixed, run_fixed_batch

    if not items:
        return {}, {"mode": "none"}
    start = time.perf_counter()
    try:
        result = run_fixed_batch(model.path, [it.arrays for it in items], settings)
    except UnsupportedOpError as exc:
        reason = f"unsupported op: {exc}"
        return {it.index: {"outputs_fixed": None, "engine_reason": reason} for it in items}, {"mode": "none", "reason": reason}
    except Exception as exc:  # noqa: BLE001  fall back to one sample at a time
        batch_error = f"{type(exc).__name__}: {first_line(exc)}"
    else:
        per = {"engine_device": result.device, "engine_time_ms": round(result.time_ms / len(items), 4),
               "engine_ops": result.ops, "engine_batch": len(items)}
        out = {it.index: {"outputs_fixed": result.outputs_fixed[i], **per} for i, it in enumerate(items)}
        return out, {"mode": "one pass", "batch": len(items), "device": result.device, "time_ms": round(result.time_ms, 3),
                     "seconds": round(time.perf_counter() - start, 3)}
    out = {}
    for it in items:
        try:
            r = run_fixed(model.path, it.arrays, settings)
            out[it.index] = {"outputs_fixed": r.outputs_fixed, "engine_device": r.device, "engine_time_ms": r.time_ms,
                             "engine_ops": r.ops, "engine_batch": 1}
        except UnsupportedOpError as exc:
            out[it.index] = {"outputs_fixed": None, "engine_reason": f"unsupported op: {exc}"}
        except Exception as exc:  # noqa: BLE001  recorded; the proof does not depend on it
            out[it.index] = {"outputs_fixed": None, "engine_reason": f"engine error: {type(exc).__name__}: {first_line(exc)}"}
    return out, {"mode": "per sample", "why": f"the one-pass batch failed ({batch_error})",
                 "seconds": round(time.perf_counter() - start, 3)}


def float_reference(model: ModelInfo, items: list[Item]) -> dict[int, list[list[float]] | None]:
    """The float model's outputs per item (onnxruntime, one session); None where it cannot run."""
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001  informative only: the summary then says why (pipeline retries)
        return {it.index: None for it in items}
    out: dict[int, list[list[float]] | None] = {}
    for it in items:
        try:
            feeds = {name: x.astype(np.float32) for name, x in zip(model.input_names, it.arrays)}
            out[it.index] = [np.asarray(o, dtype=np.float64).reshape(-1).tolist() for o in session.run(None, feeds)]
        except Exception:  # noqa: BLE001
            out[it.index] = None
    return out


# --- resume ---------------------------------------------------------------------------------------


def _is_proof_dir(folder: Path) -> bool:
    """A dir ``prove`` wrote (for any model): its summary names a model and it holds only our files."""
    try:
        sha = (read_summary(folder) or {})["model"]["sha256"]
    except (KeyError, TypeError):
        return False
    return isinstance(sha, str) and pipeline._is_proof_dir_of(folder, sha)


def _resume_candidates(out: Path, items: list[Item], model: ModelInfo, vk_sha: str,
                       force: bool = False) -> tuple[list[Item], dict[int, str]]:
    """Items whose existing dir claims to be this exact proof (checked by verify next), and refusals."""
    candidates, refused = [], {}
    for it in items:
        folder = out / it.name
        if not folder.exists():
            continue
        if not pipeline._is_proof_dir_of(folder, model.sha256):
            if force and _is_proof_dir(folder):
                continue  # a proof of another model: replaced whole (--force)
            refused[it.index] = f"{folder} exists and is not a proof dir of this model: remove it, or pass --force to replace a proof dir of another model"
            continue
        try:
            summary = read_summary(folder) or {}
            same_input = summary["input"]["sha256"] == _sha_text(_input_json(it))
            same_vk = sha256_file(folder / "vk.key") == vk_sha
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if same_input and same_vk:
            candidates.append(it)
    return candidates, refused


def _sha_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def verify_dirs(dirs: list[Path], workers: int | None = None, srs: Path | None = None,
                require_model: bool = False) -> dict[Path, tuple[bool, Any]]:
    """``vcompute verify`` of many proof dirs on worker processes: {dir: (valid, result dict or reason)}."""
    from vcompute.zk.workers import verify_task

    if not dirs:
        return {}
    n = max(1, min(workers or cpu_count(), len(dirs)))
    tasks = [(i, {"dir": str(d), "srs": str(srs) if srs else None, "require_model": require_model}) for i, d in enumerate(dirs)]
    results: dict[Path, tuple[bool, Any]] = {}
    if n == 1:  # no pool for one dir or one worker
        for i, task in tasks:
            try:
                results[dirs[i]] = (True, verify_task(task))
            except VcomputeError as exc:
                results[dirs[i]] = (False, {"kind": "usage" if isinstance(exc, UsageError) else "proof", "message": str(exc)})
        return results
    with ProcessPool(n, threads=threads_per_worker(n), init="vcompute.zk.workers:init_verifier") as pool:
        for i, outcome in pool.run("vcompute.zk.workers:verify_task", tasks):
            results[dirs[i]] = (True, outcome.value) if outcome.ok else (False, {"kind": outcome.kind, "message": outcome.message})
    return results


# --- the batch ---------------------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class _Record:
    """batch.json, kept in memory and written atomically (throttled while proofs stream in)."""

    def __init__(self, out: Path, head: dict[str, Any], items: list[Item]) -> None:
        self.path = out / BATCH_FILE
        self.head = head
        self.entries = {it.index: {"index": it.index, "name": it.name, "source": it.source, "status": "pending"}
                        for it in items}
        self.last_write = 0.0

    def set(self, index: int, **fields: Any) -> dict[str, Any]:
        entry = self.entries[index]
        entry.update(fields)
        return entry

    def counts(self) -> dict[str, int]:
        statuses = [e["status"] for e in self.entries.values()]
        return {"total": len(statuses), **{s: statuses.count(s) for s in ("proven", "skipped", "failed", "pending")}}

    def document(self) -> dict[str, Any]:
        return {**self.head, "counts": self.counts(), "inputs": [self.entries[k] for k in sorted(self.entries)]}

    def write(self, force: bool = False) -> None:
        if force or time.monotonic() - self.last_write >= WRITE_EVERY:
            write_json(self.path, self.document())
            self.last_write = time.monotonic()


def exit_code_of(entries: list[dict[str, Any]]) -> int:
    """0 all proven; 1 a proof/exactness failure or a dead worker; 2 nothing could be read; 3 bad inputs or warnings."""
    failed = [e for e in entries if e["status"] == "failed"]
    if any(e.get("error", {}).get("kind") != "usage" for e in failed):
        return ProofError.exit_code
    if failed and len(failed) == len(entries):
        return UsageError.exit_code
    if failed or any(e.get("partial") for e in entries if e["status"] in ("proven", "skipped")):
        return PARTIAL
    return 0


def prove_batch(req: BatchRequest, progress: pipeline.Progress = pipeline._no_progress,
                on_event: BatchEvents = _no_events) -> BatchResult:
    """Prove every input of the batch; returns batch.json's content (also written to DIR/batch.json)."""
    req.options.check()
    if req.workers is not None and req.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {req.workers}")
    if req.threads is not None and req.threads < 1:
        raise UsageError(f"--threads must be at least 1, not {req.threads}")
    model = load_model(req.model)
    if req.srs is not None and not req.srs.exists():
        raise UsageError(f"SRS file not found: {req.srs}")
    scale = pipeline._known_input_scale(req.options)
    items = read_source(req.inputs, model, scale) if isinstance(req.inputs, Path) else items_from_values(req.inputs, model, scale)
    _check_out(req, model)
    if not any(it.ok for it in items):
        first = next(it for it in items if not it.ok)
        raise UsageError(f"no input could be read ({len(items)} refused; the first: {first.error})")
    with _locked(req.out):
        return _run(req, model, items, progress, on_event)


def _run(req: BatchRequest, model: ModelInfo, items: list[Item], progress: pipeline.Progress,
         on_event: BatchEvents) -> BatchResult:
    out: Path = req.out
    started, t0 = _now(), time.perf_counter()
    stages = pipeline.Stages(progress)
    calibration, calib_how = _calibration(req, model, items)
    calib_sha = calibration.sha256
    on_event("calibration", calib_how)
    preq = pipeline.ProveRequest(model=req.model, out=out, calibration_data=out / CALIBRATION_FILE, srs=req.srs,
                                 options=req.options, engine=req.engine, evm=req.evm)
    shared = pipeline.prepare_shared(preq, model, calibration, out / CALIBRATION_FILE, stages, None, out)
    if not shared.keys.cached:
        mark_warm(shared.circ.key)  # setup laid out EZKL's lookup tables on this host
    batch_warnings: list[dict[str, str]] = []
    evm_art = _evm_artifact(shared, batch_warnings) if req.evm else None
    shared_dir = _write_shared(out, shared, evm_art)
    vk_sha = sha256_file(shared.keys.vk)

    cores = cpu_count()
    workers = req.workers or (None if req.use_ray else cores)
    threads = req.threads or (1 if req.use_ray else threads_per_worker(workers, cores))
    head: dict[str, Any] = {
        "vcompute_version": __version__, "ezkl_version": ezkl_call.version(),
        "model": {"path": str(model.path), "sha256": model.sha256},
        "source": str(req.inputs) if isinstance(req.inputs, Path) else "(API)",
        "circuit_key": shared.circ.key, "vk_sha256": vk_sha, "settings_sha256": sha256_file(shared.circ.settings_path),
        "srs": {"sha256": shared.srs.sha256, "logrows": shared.srs.logrows, "development": shared.srs.development},
        "calibration": {"file": CALIBRATION_FILE, "sha256": calib_sha, **calib_how},
        "shared_stages": shared.records, "warnings": batch_warnings,
        "started": started, "finished": None, "seconds": None, "interrupted": False, "exit_code": None,
    }
    record = _Record(out, head, items)
    for it in items:
        if it.ok:  # a circuit calibrated elsewhere (or earlier) may not hold every input's values
            try:
                check_range(it.arrays, model, shared.settings)
            except UsageError as exc:
                it.error = str(exc)
        if not it.ok:
            record.set(it.index, status="failed", error={"kind": "usage", "message": it.error})

    # resume: dirs that already hold this exact proof and verify are kept
    good = [it for it in items if it.ok]
    candidates, refused = _resume_candidates(out, good, model, vk_sha, req.force)
    for index, why in refused.items():
        record.set(index, status="failed", error={"kind": "usage", "message": why})
    checked = verify_dirs([out / it.name for it in candidates], workers=min(cores, len(candidates) or 1)) if candidates else {}
    for it in candidates:
        valid, result = checked[out / it.name]
        if valid:
            summary = json.loads((out / it.name / "summary.json").read_text())
            record.set(it.index, status="skipped", dir=it.name, reason="already proven; verified again now",
                       engine_exact=summary.get("engine_exact"), partial=bool(summary.get("partial")),
                       warnings=summary.get("warnings", []))
    todo = [it for it in good if record.entries[it.index]["status"] == "pending"]

    engine_by_item, engine_info = engine_pass(model, shared.settings, todo) if req.engine else ({}, {"mode": "off"})
    head["engine"] = engine_info
    reference = float_reference(model, todo)
    record.write(force=True)

    pool: Any
    if req.use_ray:
        from vcompute.zk.ray_pool import RayPool

        pool = RayPool(shared, workers, threads, address=req.ray_address)
    else:
        workers = max(1, min(workers, len(todo))) if todo else 1  # no idle workers for a small batch
        threads = req.threads or threads_per_worker(workers, cores)
        work_dir = out / f".work-{os.getpid()}"
        pool = ProcessPool(workers, threads=threads, init="vcompute.zk.workers:init_prover",
                           init_arg={"shared": shared, "work_dir": str(work_dir)})
    on_event("start", {"total": len(items), "todo": len(todo), "skipped": record.counts()["skipped"],
                       "failed": record.counts()["failed"], "workers": workers, "threads": threads,
                       "refused": [(e["name"], e["error"]["message"]) for e in record.entries.values() if e["status"] == "failed"],
                       "backend": "ray" if req.use_ray else "processes", "calibration": calib_how,
                       "engine": engine_info})
    interrupted = False
    error: VcomputeError | None = None
    try:
        if todo:
            with pool:
                head["workers"] = pool.describe()
                on_event("workers", head["workers"])
                tasks = [(it.index, {"name": it.name, "input_json": _input_json(it), "evm": req.evm and evm_art is not None,
                                     "engine": engine_by_item.get(it.index) if req.engine else None}) for it in todo]
                by_index = {it.index: it for it in todo}
                for index, outcome in pool.run("vcompute.zk.workers:prove_task", tasks):
                    it = by_index[index]
                    entry = _land(out, preq, shared, shared_dir, it, outcome, evm_art, batch_warnings, reference.get(index), record)
                    record.write()
                    on_event("input", entry)
        else:
            head["workers"] = {"backend": "ray" if req.use_ray else "processes", "count": 0, "rayon_threads": threads}
    except KeyboardInterrupt:
        interrupted = True
        raise
    except VcomputeError as exc:  # the workers could not start: the batch stops, said in batch.json too
        error = exc
        head["error"] = {"kind": "usage" if isinstance(exc, UsageError) else "proof", "message": str(exc)}
        raise
    finally:
        if not req.use_ray:
            shutil.rmtree(out / f".work-{os.getpid()}", ignore_errors=True)
        head.update(finished=_now(), seconds=round(time.perf_counter() - t0, 3), interrupted=interrupted,
                    driver_rss_mb=rss_mb())
        head["exit_code"] = (130 if interrupted else error.exit_code if error is not None
                             else exit_code_of(list(record.entries.values())))
        record.write(force=True)
    document = record.document()
    on_event("done", document)
    return BatchResult(out, document)


def _land(out: Path, preq: pipeline.ProveRequest, shared: pipeline.Shared, shared_dir: Path, it: Item, outcome: Any,
          evm_art: dict[str, Any] | None, batch_warnings: list[dict[str, str]], reference: Any, record: _Record) -> dict[str, Any]:
    """Write one input's proof dir from its worker's result (staging dir, then one rename); record it."""
    if not outcome.ok:
        return record.set(it.index, status="failed", error={"kind": outcome.kind, "message": outcome.message},
                          worker=outcome.worker)
    value = outcome.value
    dest = out / it.name
    start = time.perf_counter()
    try:
        staging = pipeline._staging_dir(dest)
        try:
            (staging / "input.json").write_text(_input_json(it))
            for name in SHARED_FILES:
                _link_or_copy(shared_dir / name, staging / name)
            for name, data in value["files"].items():
                (staging / name).write_bytes(data)
            stages = pipeline.Stages(pipeline._no_progress)
            stages.records = [{**r, "batch": True} for r in copy.deepcopy(shared.records)] + value["records"]
            stages.warnings = list(value["warnings"]) + list(batch_warnings)
            req = preq if evm_art is not None or not preq.evm else _without_evm(preq)
            summary = pipeline.finish(staging, req, shared, stages, False, value["engine"], it.arrays, value["fixed"],
                                      it.notes, evm_artifact=evm_art, calldata=value.get("calldata"), reference=reference)
            summary["batch"] = {"name": it.name, "index": it.index, "source": it.source}
            write_json(staging / "summary.json", summary)
            if evm_art is not None:
                for name in EVM_SHARED:
                    if (shared_dir / name).is_file() and (staging / name).is_file():
                        _link_or_copy(shared_dir / name, staging / name)
            pipeline._publish(staging, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except (OSError, VcomputeError) as exc:
        return record.set(it.index, status="failed", error={"kind": "usage" if isinstance(exc, OSError) else "proof",
                                                            "message": f"could not write {dest}: {first_line(exc)}"})
    seconds = {r["name"]: r["seconds"] for r in value["records"]}
    return record.set(
        it.index, status="proven", dir=it.name, seconds=value["seconds"], prove_seconds=seconds.get("prove"),
        witness_seconds=seconds.get("witness"), verify_seconds=seconds.get("verify"),
        engine_exact=summary.get("engine_exact"), partial=bool(summary["partial"]),
        warnings=summary["warnings"], worker=value.get("worker"), worker_peak_rss_mb=value.get("peak"),
        proof_sha256=summary["proof"]["sha256"], land_seconds=round(time.perf_counter() - start, 4),
    )


def _without_evm(preq: pipeline.ProveRequest) -> pipeline.ProveRequest:
    clone = copy.copy(preq)
    clone.evm = False
    return clone


# --- verifying a batch dir ------------------------------------------------------------------------


def proof_dirs_of(folder: Path) -> tuple[list[Path], dict[str, Any]]:
    """The proof dirs in a batch dir (every non-hidden subdir with a proof.json), and its record.

    ``batch.json`` only says which inputs there should be: a listed proof whose dir is missing
    is reported, and a proof dir it does not list is verified all the same."""
    record = read_record(folder)
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "proof.json").exists())
    return dirs, record


def verify_batch(folder: Path | str, srs: Path | None = None, workers: int | None = None,
                 require_model: bool = False) -> dict[str, Any]:
    """``vcompute verify DIR`` on a batch dir: every proof verified (in parallel), one row each."""
    folder = Path(folder)
    start = time.perf_counter()
    dirs, record = proof_dirs_of(folder)
    n = max(1, min(workers or cpu_count(), len(dirs) or 1))
    results = verify_dirs(dirs, workers=n, srs=srs, require_model=require_model)
    rows: list[dict[str, Any]] = []
    present = {d.name for d in dirs}
    for d in dirs:
        valid, value = results[d]
        if valid:
            rows.append({"name": d.name, "result": "valid", "outputs": value["outputs"], "model_bound": value["model_bound"],
                         "model_sha256": value["model_sha256"], "vk_sha256": value["vk_sha256"],
                         "reason": "; ".join(value["warnings"][:1]) if not value["model_bound"] else "", "verify": value})
        else:
            rows.append({"name": d.name, "result": "invalid", "reason": value["message"], "model_bound": None})
    for entry in record["inputs"]:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or name in present:
            continue
        if entry.get("status") in ("proven", "skipped"):
            rows.append({"name": name, "result": "invalid", "model_bound": None,
                         "reason": f"batch.json lists it as {entry['status']}, but {folder / name} holds no proof"})
        else:
            error = entry.get("error") if isinstance(entry.get("error"), dict) else {}
            rows.append({"name": name, "result": "not proven", "model_bound": None,
                         "reason": f"{entry.get('status')}: {error.get('message', '')}".rstrip(": ")})
    rows.sort(key=lambda r: r["name"])
    warnings = []
    models = sorted({r["model_sha256"] for r in rows if r["result"] == "valid" and r.get("model_sha256")})
    vks = sorted({r["vk_sha256"] for r in rows if r["result"] == "valid"})
    if len(models) > 1 or len(vks) > 1:
        warnings.append(f"the proofs are of {max(len(models), len(vks))} different models or circuits")
    if any(r["result"] == "valid" and not r["model_bound"] for r in rows):
        warnings.append("some proofs could not be bound to their model (pass --srs FILE with the SRS they were made with)")
    counts = {k: sum(1 for r in rows if r["result"] == k) for k in ("valid", "invalid", "not proven")}
    return {"dir": str(folder), "valid": counts["valid"], "invalid": counts["invalid"], "not_proven": counts["not proven"],
            "seconds": round(time.perf_counter() - start, 3), "workers": n, "models": models, "vk_sha256": vks,
            "warnings": warnings, "proofs": rows}
