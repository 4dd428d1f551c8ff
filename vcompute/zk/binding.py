"""Binding a verifying key to a model: recompute it, never take a file's word for it.

A valid proof says "this vk accepts these instances". Which *model* that is, and how its
instances are laid out and scaled, is only established by recomputing the vk from the ONNX model
and settings.json under the proof's SRS (``compile_circuit`` then ``setup``; both are
deterministic in their inputs) and comparing it with ``vk.key`` byte for byte. That also binds
settings.json: a changed visibility or scale compiles to another circuit and another key.

Recomputing costs a setup, so a successful binding is recorded in the cache (keyed by the hashes
of model, settings and SRS). ``prove`` records one for every proof it makes.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import ezkl

from vcompute.artifacts import atomic_path, sha256_file, sha256_json
from vcompute.cache import entry_dir
from vcompute.errors import ProofError, first_line
from vcompute.zk import ezkl_call


def _record_path(model_sha: str, settings_sha: str, srs_sha: str) -> Path:
    key = sha256_json({"model": model_sha, "settings": settings_sha, "srs": srs_sha, "ezkl": ezkl_call.version()})
    return entry_dir("bindings", key[:2]) / f"{key}.json"


def record(model_sha: str, settings_sha: str, srs_sha: str, vk_sha: str) -> None:
    """Remember that this model and settings under this SRS give the vk with ``vk_sha``."""
    path = _record_path(model_sha, settings_sha, srs_sha)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"vk_sha256": vk_sha}))


def recorded_vk(model_sha: str, settings_sha: str, srs_sha: str) -> str | None:
    try:
        return json.loads(_record_path(model_sha, settings_sha, srs_sha).read_text())["vk_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def vk_sha256(model: Path, settings: Path, srs_path: Path, srs_sha: str, log: Path | None = None) -> str:
    """SHA-256 of the verifying key that ``model`` compiled with ``settings`` has under the SRS."""
    model_sha, settings_sha = sha256_file(model), sha256_file(settings)
    known = recorded_vk(model_sha, settings_sha, srs_sha)
    if known:
        return known
    with tempfile.TemporaryDirectory(prefix="vcompute-bind-") as tmp:
        work = Path(tmp)
        try:
            ezkl_call.call(ezkl.compile_circuit, str(model), str(work / "model.compiled"), str(settings), log=log)
            ezkl_call.call(ezkl.setup, str(work / "model.compiled"), str(work / "vk.key"), str(work / "pk.key"), str(srs_path), log=log)
        except ezkl_call.EzklError as exc:
            raise ProofError(f"proof rejected: model.onnx with settings.json does not compile to a circuit ({first_line(exc)})") from None
        vk = sha256_file(work / "vk.key")
    record(model_sha, settings_sha, srs_sha, vk)
    return vk
