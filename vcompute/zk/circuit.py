"""The circuit: EZKL settings, calibration and compilation, cached by what determines them.

The cache key holds the model's hash and every option that changes the circuit, but not the
input being proven: a second ``prove`` of the same model with a new input reuses the
circuit (and so the keys). Without ``--calibration-data`` the first input calibrates.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ezkl

from vcompute.zk import ezkl_call
from vcompute.artifacts import atomic_dir, sha256_json
from vcompute.cache import entry_dir
from vcompute.errors import UsageError

VISIBILITIES = ("public", "private", "fixed", "hashed")
TARGETS = ("resources", "accuracy")


@dataclass(frozen=True)
class CircuitOptions:
    """Every user choice that changes the circuit (and so its cache key)."""

    target: str = "resources"
    scales: tuple[int, ...] | None = None
    max_logrows: int | None = None
    input_visibility: str = "public"
    output_visibility: str = "public"
    param_visibility: str = "fixed"

    def check(self) -> None:
        """Reject values EZKL would choke on, with one line each."""
        if self.target not in TARGETS:
            raise UsageError(f"--target must be one of {', '.join(TARGETS)}, not {self.target!r}")
        for name in ("input_visibility", "output_visibility", "param_visibility"):
            value = getattr(self, name)
            if value not in VISIBILITIES:
                raise UsageError(f"--{name.replace('_', '-')} must be one of {', '.join(VISIBILITIES)}, not {value!r}")
        if self.param_visibility not in ("fixed", "private", "hashed"):
            raise UsageError("--param-visibility public is not supported by EZKL; use fixed, private or hashed")
        if self.scales is not None and any(not 0 <= s <= 24 for s in self.scales):
            raise UsageError(f"--scales must be integers in 0..24 (log2 of the fixed-point scale), got {list(self.scales)}")
        if self.max_logrows is not None and not 8 <= self.max_logrows <= 26:
            raise UsageError(f"--max-logrows must be in 8..26, got {self.max_logrows}")


@dataclass
class Circuit:
    """A calibrated, compiled circuit in the cache."""

    key: str
    dir: Path
    cached: bool
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def settings_path(self) -> Path:
        return self.dir / "settings.json"

    @property
    def compiled_path(self) -> Path:
        return self.dir / "model.compiled"

    def settings(self) -> dict[str, Any]:
        return json.loads(self.settings_path.read_text())

    @property
    def logrows(self) -> int:
        return int(self.settings()["run_args"]["logrows"])


def circuit_key(model_sha: str, options: CircuitOptions, calibration_sha: str | None) -> str:
    """The cache key: model, options, the calibration data when the user named one, EZKL's version."""
    return sha256_json(
        {"model": model_sha, "options": asdict(options), "calibration": calibration_sha, "ezkl": ezkl_call.version()}
    )


def _run_args(options: CircuitOptions) -> ezkl.PyRunArgs:
    args = ezkl.PyRunArgs()
    args.input_visibility = options.input_visibility
    args.output_visibility = options.output_visibility
    args.param_visibility = options.param_visibility
    return args


def _explain(stage: str, model: Path, error: ezkl_call.EzklError) -> UsageError:
    """Turn an EZKL failure on a model into one line that names the op when it can."""
    op = ezkl_call.unsupported_op(str(error))
    if op:
        return UsageError(f"EZKL cannot take {model}: unsupported ONNX op {op}")
    first = str(error).strip().splitlines()[0] if str(error).strip() else "unknown error"
    return UsageError(f"EZKL could not {stage} {model}: {first}")


def build(
    model: Path,
    model_sha: str,
    options: CircuitOptions,
    calibration_data: Path,
    calibration_sha: str | None,
    log: Path | None = None,
) -> Circuit:
    """Return the cached circuit for this model and options, calibrating and compiling if needed.

    ``calibration_sha`` is the hash of a user-named calibration file, or None when the data
    is the input being proven (then the input does not enter the key).
    """
    key = circuit_key(model_sha, options, calibration_sha)
    entry = entry_dir("circuits", key)
    if (entry / "model.compiled").exists():
        meta = json.loads((entry / "meta.json").read_text())
        return Circuit(key, entry, cached=True, meta=meta)
    with atomic_dir(entry) as tmp:
        settings = tmp / "settings.json"
        try:
            ezkl_call.call(ezkl.gen_settings, str(model), str(settings), _run_args(options), log=log)
        except ezkl_call.EzklError as exc:
            raise _explain("read", model, exc) from None
        try:
            ok = ezkl_call.call(
                ezkl.calibrate_settings,
                str(calibration_data),
                str(model),
                str(settings),
                options.target,
                2.0,
                list(options.scales) if options.scales else None,
                [1, 2, 10],
                options.max_logrows,
                log=log,
            )
        except ezkl_call.EzklError as exc:
            raise _explain("calibrate", model, exc) from None
        if not ok:
            raise UsageError(f"EZKL could not calibrate {model} within the given scales and logrows cap")
        try:
            ezkl_call.call(ezkl.compile_circuit, str(model), str(tmp / "model.compiled"), str(settings), log=log)
        except ezkl_call.EzklError as exc:
            raise _explain("compile", model, exc) from None
        meta = {"calibration_sha256": calibration_sha, "calibrated_on_input": calibration_sha is None}
        (tmp / "meta.json").write_text(json.dumps(meta))
    return Circuit(key, entry, cached=False, meta=meta)
