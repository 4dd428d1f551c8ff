"""The circuit: EZKL settings, calibration and compilation, cached by what determines them.

The cache key holds the model's hash and every option that changes the circuit, but not the
input being proven: a second ``prove`` of the same model with a new input reuses the
circuit (and so the keys). Without ``--calibration-data`` the first input calibrates.

When EZKL's calibration finds no parameters, ``build`` retries on a documented ladder of wider
settings (``LADDER``) and records the rung that worked in the entry's ``meta.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ezkl

from vcompute.zk import ezkl_call
from vcompute.artifacts import atomic_dir, sha256_json
from vcompute.cache import entry_dir
from vcompute.errors import UsageError, first_line

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


def _run_args(options: CircuitOptions, decomp_legs: int = 2, decomp_base: int = 16384) -> ezkl.PyRunArgs:
    args = ezkl.PyRunArgs()
    args.input_visibility = options.input_visibility
    args.output_visibility = options.output_visibility
    args.param_visibility = options.param_visibility
    args.decomp_base = decomp_base
    args.decomp_legs = decomp_legs
    return args


def _explain(stage: str, model: Path, error: ezkl_call.EzklError) -> UsageError:
    """Turn an EZKL failure on a model into one line that names the op when it can."""
    op = ezkl_call.unsupported_op(str(error))
    if op:
        return UsageError(f"EZKL cannot take {model}: unsupported ONNX op {op}")
    first = first_line(error) or "unknown error"
    return UsageError(f"EZKL could not {stage} {model}: {first}")


# -- the calibration ladder ------------------------------------------------------------------------
#
# EZKL's calibration (``execute.rs::calibrate``) tries every (input scale <= param scale) pair of
# the scales given (default 11..13) times every rebase multiplier, runs the model's fixed-point
# forward pass on the calibration data at each, and keeps the pairs whose forward pass succeeds
# and whose lookup tables and range checks fit ``max_logrows``. When none does it fails with
# "could not find any suitable parameters". Why a pair fails, as EZKL logs it:
#
# * a value too large for EZKL's range check: |v| > decomp_base^decomp_legs - 1 = 2^28 - 1
#   ("decomposition error ... too large"); every input, output, ReLU input, comparison and
#   rebase quotient is checked. More decomp_legs widen that bound at the same precision;
#   lower scales shrink v at the cost of precision. Calibration never varies decomp_* itself.
# * too many table columns under --max-logrows ("extended k is too large"): the 16384-row
#   range-check table of the default decomposition needs 2^15 rows to fit in one column;
#   decomp_base 128 with 4 legs checks the same 2^28 range with a 128-row table.
# * a lookup range too large for any table (> 12 * 2^26 / margin): lower scales shrink it; a
#   smaller ``lookup_safety_margin`` (EZKL pads the observed range by this factor) shrinks the
#   tables, but an input beyond the calibrated range then breaks the proof (EZKL's prove can
#   even hang on it), so the margin is lowered only on the last rung, and only to 1.5.
#
# So the ladder widens, in order of cost to the user: the range check first (precision kept, a
# few more constraints), a smaller table when the user capped the rows, then lower scales (less
# precision), then the lookup margin. A rung past the first is accepted only if EZKL's own
# fidelity report on the calibration data is usable (``MAX_MEAN_ABS_PERCENT_ERROR``): very low
# scales always "calibrate", to noise. The target is not a rung: EZKL uses it only to choose
# among parameter sets that passed. max_logrows is not one either: without --max-logrows EZKL
# already allows 2^26 rows, its largest SRS. A user's --scales and --max-logrows are kept on
# every rung (rungs that would only change the scales are then skipped); the target is always
# the user's. Pass --scales to force a scale the gate would refuse (rung 0 is never gated).

DEFAULT_SCALES = (11, 12, 13)  # what EZKL tries when given none (execute.rs)
REBASE_MULTIPLIERS = (1, 2, 10)
#: A later rung whose calibration report shows a larger mean absolute percent error is refused.
MAX_MEAN_ABS_PERCENT_ERROR = 0.5


@dataclass(frozen=True)
class Rung:
    """One calibration attempt: the settings it widens relative to EZKL's defaults."""

    name: str
    why: str
    scales: tuple[int, ...] | None = None  # None: the user's --scales, else EZKL's default 11..13
    decomp_base: int = 16384
    decomp_legs: int = 2  # range checks cover |v| <= decomp_base^legs - 1
    lookup_safety_margin: float = 2.0
    scale_rebase_multiplier: tuple[int, ...] = REBASE_MULTIPLIERS
    only_with_max_logrows: bool = False  # useful only when the user capped the rows


LADDER: tuple[Rung, ...] = (
    Rung("default", "EZKL's defaults"),
    Rung("wide-range", "range checks widened to |v| < 16384^3 (decomp_legs 3): values too large for 2^28", decomp_legs=3),
    Rung("wider-range", "range checks widened to |v| < 16384^4 (decomp_legs 4)", decomp_legs=4),
    Rung(
        "small-tables", "range checks in base 128 with 4 legs: the same 2^28 range with a 128-row table, to fit --max-logrows",
        decomp_base=128, decomp_legs=4, only_with_max_logrows=True,
    ),
    Rung("low-scales", "scales 7..10: smaller fixed-point values and lookup tables, less precision", scales=(7, 8, 9, 10)),
    Rung("low-scales-wide-range", "scales 7..10 and decomp_legs 3", scales=(7, 8, 9, 10), decomp_legs=3),
    Rung(
        "lowest-scales", "scales 4..6, decomp_legs 3, lookup margin 1.5 (inputs beyond the calibration range will fail)",
        scales=(4, 5, 6), decomp_legs=3, lookup_safety_margin=1.5,
    ),
)

#: EZKL's words when no (scale, multiplier) pair worked: the failures the ladder retries.
_NO_PARAMETERS = re.compile(r"could not find any suitable parameters|calibration failed", re.IGNORECASE)


def ladder(options: CircuitOptions) -> list[tuple[Rung, dict[str, Any]]]:
    """The rungs this run tries, each with the exact calibration settings, duplicates removed."""
    rungs, seen = [], set()
    for rung in LADDER:
        if rung.only_with_max_logrows and options.max_logrows is None:
            continue
        scales = options.scales if options.scales else rung.scales
        settings = {
            "target": options.target,
            "scales": list(scales) if scales else None,
            "scale_rebase_multiplier": list(rung.scale_rebase_multiplier),
            "lookup_safety_margin": rung.lookup_safety_margin,
            "decomp_base": rung.decomp_base,
            "decomp_legs": rung.decomp_legs,
            "max_logrows": options.max_logrows,
        }
        key = json.dumps(settings, sort_keys=True)
        if key not in seen:
            seen.add(key)
            rungs.append((rung, settings))
    return rungs


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: EZKL prefixes errors with their module in brackets ("[tensor] ..."); dropped (rich would eat them as markup).
_TAGS = re.compile(r"\[[a-zA-Z_]+\]\s*")


class _Log(logging.Handler):
    """Collects what EZKL logs during a calibration: why each (scale, multiplier) pair failed, and
    the fidelity report of the pair it chose."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[str] = []
        self.fidelity: dict[str, float] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = _TAGS.sub("", _ANSI.sub("", record.getMessage())).strip()
        if record.levelno >= logging.ERROR:
            self.errors.append(message)
        elif "Numerical Fidelity Report" in message:
            self.fidelity = _parse_fidelity(message)

    def reason(self) -> str:
        """The most common specific reason (EZKL's graph errors beat its generic 'forward pass failed')."""
        specific = [m for m in self.errors if not m.startswith(("forward pass failed", "Calibration failed", "i-scale"))]
        pool = specific or [m.split("reason: ", 1)[-1] for m in self.errors if "reason: " in m]
        if not pool:
            return "no reason logged"
        shapes = Counter(re.sub(r"-?\d+", "N", m) for m in pool)
        common = shapes.most_common(1)[0][0]
        example = next(m for m in pool if re.sub(r"-?\d+", "N", m) == common)
        return example.strip().replace("\n", " ")[:240]


def _parse_fidelity(message: str) -> dict[str, float] | None:
    """EZKL's fidelity table (execute.rs ``AccuracyResults``): header row and value row, '|'-separated."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in message.splitlines() if line.strip().startswith("|")]
    if len(rows) < 2:
        return None
    try:
        return {k: float(v) for k, v in zip(rows[0], rows[1])}
    except ValueError:
        return None


@contextlib.contextmanager
def _collect_log() -> Iterator[_Log]:
    handler = _Log()
    logger = logging.getLogger("ezkl")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _describe(settings: dict[str, Any]) -> str:
    scales = settings["scales"]
    text = f"scales {'11..13' if scales is None else ','.join(map(str, scales))}, decomp {settings['decomp_base']}^{settings['decomp_legs']}"
    if settings["lookup_safety_margin"] != 2.0:
        text += f", lookup margin {settings['lookup_safety_margin']:g}"
    return text


def _calibrate(model: Path, calibration_data: Path, settings_path: Path, options: CircuitOptions, log: Path | None) -> dict[str, Any]:
    """Climb the ladder until a rung calibrates; returns the record of which one did (for meta.json)."""
    failed: list[dict[str, Any]] = []
    rungs = ladder(options)
    for index, (rung, chosen) in enumerate(rungs):
        args = _run_args(options, chosen["decomp_legs"], chosen["decomp_base"])
        try:
            ezkl_call.call(ezkl.gen_settings, str(model), str(settings_path), args, log=log)
        except ezkl_call.EzklError as exc:
            raise _explain("read", model, exc) from None
        with _collect_log() as logged:
            try:
                ezkl_call.call(
                    ezkl.calibrate_settings,
                    str(calibration_data),
                    str(model),
                    str(settings_path),
                    chosen["target"],
                    chosen["lookup_safety_margin"],
                    chosen["scales"],
                    chosen["scale_rebase_multiplier"],
                    chosen["max_logrows"],
                    log=log,
                )
                error = None
            except ezkl_call.EzklError as exc:
                if not _NO_PARAMETERS.search(str(exc)):
                    raise _explain("calibrate", model, exc) from None
                error = logged.reason()
        mape = (logged.fidelity or {}).get("mean_abs_percent_error")
        if error is None and index > 0 and mape is not None and not mape <= MAX_MEAN_ABS_PERCENT_ERROR:
            picked = json.loads(settings_path.read_text())["run_args"]
            error = f"calibrated at scale {picked['input_scale']}/{picked['param_scale']} but useless: mean abs error {mape:.0%} of the float outputs"
        if error is None:
            return {
                "rung": LADDER.index(rung), "name": rung.name, "why": rung.why, "settings": chosen,
                "fidelity": logged.fidelity, "failed": failed,
            }
        failed.append({"rung": rung.name, "settings": _describe(chosen), "reason": error})
    kept = [f"--{k.replace('_', '-')}" for k, v in (("scales", options.scales), ("max_logrows", options.max_logrows)) if v]
    kept_text = f"; your {' and '.join(kept)} kept on every rung" if kept else ""
    raise UsageError(
        f"EZKL found no circuit parameters for {model} on any of {len(rungs)} calibration rungs"
        f" ({'; '.join(f['rung'] + ': ' + f['settings'] for f in failed)}){kept_text}; last reason:"
        f" {failed[-1]['reason']}; {_hint(options)}"
    )


def _hint(options: CircuitOptions) -> str:
    if options.max_logrows is not None:
        return "raise --max-logrows, or normalize the model's inputs and outputs"
    return "normalize the model's inputs and outputs (values beyond 2^28 / 2^scale do not fit a circuit), or pass --calibration-data"


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
    is the input being proven (then the input does not enter the key). ``meta["calibration"]``
    records the ladder rung that calibrated (see ``LADDER``) and why earlier rungs failed.
    """
    key = circuit_key(model_sha, options, calibration_sha)
    entry = entry_dir("circuits", key)
    if (entry / "model.compiled").exists():
        meta = json.loads((entry / "meta.json").read_text())
        meta.setdefault("calibration", {"rung": 0, "name": LADDER[0].name, "why": LADDER[0].why, "failed": []})
        return Circuit(key, entry, cached=True, meta=meta)
    with atomic_dir(entry) as tmp:
        settings = tmp / "settings.json"
        calibration = _calibrate(model, calibration_data, settings, options, log)
        try:
            ezkl_call.call(ezkl.compile_circuit, str(model), str(tmp / "model.compiled"), str(settings), log=log)
        except ezkl_call.EzklError as exc:
            raise _explain("compile", model, exc) from None
        meta = {
            "calibration_sha256": calibration_sha,
            "calibrated_on_input": calibration_sha is None,
            "calibration": calibration,
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
    return Circuit(key, entry, cached=False, meta=meta)


def check_witness(settings: dict[str, Any], witness: dict[str, Any]) -> None:
    """Refuse a witness the circuit cannot prove: lookup inputs or range-checked values beyond what
    calibration sized the tables for. EZKL's gen_witness does not catch a lookup overflow, and its
    prove then fails or hangs (issue 10's notes: prove hung >15 min); this check costs nothing."""
    lookups = settings.get("required_lookups") or []
    lo, hi = settings["run_args"].get("lookup_range", [0, 0])
    w_lo, w_hi = int(witness.get("min_lookup_inputs", 0)), int(witness.get("max_lookup_inputs", 0))
    if lookups and (w_lo < lo or w_hi > hi):
        raise UsageError(
            f"this input drives EZKL's lookup tables to [{w_lo}, {w_hi}], outside the calibrated range [{lo}, {hi}]:"
            " the circuit cannot prove it; calibrate on data that covers this input (--calibration-data)"
        )
    checks = settings.get("required_range_checks") or []
    widest = max((b - a for a, b in checks), default=None)
    size = int(witness.get("max_range_size", 0))
    if widest is not None and size > widest:
        raise UsageError(
            f"this input needs a range check of {size} values, the circuit was calibrated for {widest}:"
            " calibrate on data that covers this input (--calibration-data)"
        )
