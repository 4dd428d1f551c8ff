"""A proof dir, read as evidence: what its files say, checked, and what the proof itself attests.

Anyone can edit the files of a proof dir, so nothing here is taken on trust:

* ``proof.json`` is the truth: its proof bytes and public instances are what the SNARK checks;
  ``hex_proof`` must agree with the bytes.
* ``settings.json`` gives the instance layout (which values are inputs and outputs, their scales);
  it is validated and bounded here, and bound to ``vk.key`` by recomputing the key
  (:mod:`vcompute.zk.binding`).
* ``summary.json``, ``input.json``, ``witness.json`` and ``pretty_public_inputs`` are claims: each
  must agree with the proof's instances or the dir is rejected; none of them is ever reported.

Every file is read only if it is a regular file under a size cap, so a FIFO or a huge file cannot
hang or exhaust ``verify``.
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcompute.engine.witness import felt_to_int
from vcompute.errors import ProofError, UsageError
from vcompute.zk.srs import MAX_LOGROWS

#: names of the files ``vcompute prove`` writes, by role
PROOF, SETTINGS, VK, SUMMARY = "proof.json", "settings.json", "vk.key", "summary.json"
MODEL, INPUT, WITNESS, VERIFIER_SRS = "model.onnx", "input.json", "witness.json", "kzg.verifier.srs"
#: caps on what is read (bytes): generous for real models, small enough to bound the cost
LIMITS = {PROOF: 64 << 20, SETTINGS: 4 << 20, VK: 512 << 20, SUMMARY: 16 << 20, INPUT: 256 << 20,
          WITNESS: 256 << 20, MODEL: 2 << 30, VERIFIER_SRS: 4096}
VISIBILITIES = ("public", "private", "fixed", "hashed", "polycommit")


def regular_file(path: Path, limit: int, what: str) -> int:
    """The size of ``path`` after checking it is a regular file no larger than ``limit``."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path} is not a regular file")
    if st.st_size > limit:
        raise UsageError(f"{path} is {st.st_size:,} bytes, more than the {limit:,} a {what} may have")
    return st.st_size


def read_json(path: Path, what: str, corrupt: type[Exception] = UsageError) -> Any:
    """Parse a JSON file under its size cap; malformed or absurdly nested JSON is ``corrupt``."""
    regular_file(path, LIMITS.get(path.name, 64 << 20), what)
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        prefix = "proof rejected: " if corrupt is ProofError else ""
        raise corrupt(f"{prefix}{path} is not valid JSON ({type(exc).__name__})") from None


def read_summary(folder: Path) -> dict[str, Any] | None:
    """summary.json of ``folder`` as a hint (None when absent or unreadable): the one reader.

    Only ever used to find things (is this our dir to replace or resume? which SRS hash to look
    up?), never as a claim: claims are checked against the proof (:func:`check_consistent`)."""
    try:
        data = read_json(Path(folder) / SUMMARY, "summary")
    except (UsageError, ProofError):
        return None
    return data if isinstance(data, dict) else None


def visibility_name(value: Any) -> str:
    """EZKL writes a visibility as "Public" or as {"Hashed": {...}}: its lower-case name."""
    name = next(iter(value)) if isinstance(value, dict) and value else value
    if not isinstance(name, str) or name.lower() not in VISIBILITIES:
        raise UsageError(f"settings.json: unknown visibility {value!r}")
    return name.lower()


def _int_in(value: Any, lo: int, hi: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UsageError(f"settings.json: {what} must be an integer in {lo}..{hi}, not {value!r}")
    return value


@dataclass(frozen=True)
class Layout:
    """Where a proof's public values sit among its instances, and their scales (from settings.json)."""

    logrows: int
    input_visibility: str
    output_visibility: str
    param_visibility: str
    input_shapes: list[list[int]]
    output_shapes: list[list[int]]
    input_scales: list[int]
    output_scales: list[int]

    @property
    def public_inputs(self) -> bool:
        return self.input_visibility == "public"

    @property
    def public_outputs(self) -> bool:
        return self.output_visibility == "public"


def layout(settings: Any) -> Layout:
    """Validate settings.json and read the instance layout from it; a bad value is one clear line."""
    if not isinstance(settings, dict) or not isinstance(settings.get("run_args"), dict):
        raise UsageError("settings.json is not EZKL settings (no run_args)")
    ra = settings["run_args"]
    logrows = _int_in(ra.get("logrows"), 1, MAX_LOGROWS, "run_args.logrows")
    vis = {k: visibility_name(ra.get(f"{k}_visibility")) for k in ("input", "output", "param")}
    shapes = settings.get("model_instance_shapes")
    in_scales, out_scales = settings.get("model_input_scales"), settings.get("model_output_scales")
    for what, value in (("model_instance_shapes", shapes), ("model_input_scales", in_scales), ("model_output_scales", out_scales)):
        if not isinstance(value, list):
            raise UsageError(f"settings.json: {what} must be a list")
    for s in in_scales + out_scales:
        _int_in(s, -64, 64, "a scale")
    for shape in shapes:
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 31 for d in shape):
            raise UsageError(f"settings.json: instance shape {shape!r} is not a list of sizes")
    n_in = len(in_scales) if vis["input"] == "public" else 0
    n_out = len(out_scales) if vis["output"] == "public" else 0
    if n_in + n_out > len(shapes):
        raise UsageError(f"settings.json: {len(shapes)} instance shapes for {n_in} public inputs and {n_out} public outputs")
    return Layout(
        logrows=logrows,
        input_visibility=vis["input"],
        output_visibility=vis["output"],
        param_visibility=vis["param"],
        input_shapes=shapes[:n_in],
        output_shapes=shapes[len(shapes) - n_out :] if n_out else [],
        input_scales=[int(s) for s in in_scales],
        output_scales=[int(s) for s in out_scales],
    )


@dataclass
class Claims:
    """What a valid proof attests about the model's public values, decoded from its instances."""

    inputs_fixed: list[list[int]] | None
    outputs_fixed: list[list[int]] | None
    inputs: list[list[float]] | None = None
    outputs: list[list[float]] | None = None
    instances: list[int] = field(default_factory=list)


def _split(values: list[int], shapes: list[list[int]]) -> list[list[int]]:
    out, i = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(values[i : i + n])
        i += n
    return out


def decode_instances(proof: dict[str, Any], lay: Layout) -> Claims:
    """Split the proof's public instances into inputs and outputs as the layout says.

    EZKL lays out public inputs first and public outputs last; anything between (hashes, public
    params) is not decoded. A count that cannot match the layout rejects the proof."""
    rows = proof.get("instances")
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise ProofError("proof rejected: proof.json has no instances")
    try:
        flat = [felt_to_int(f) for row in rows for f in row]
    except (TypeError, ValueError):
        raise ProofError("proof rejected: proof.json has malformed instances") from None
    n_in = sum(math.prod(s) for s in lay.input_shapes)
    n_out = sum(math.prod(s) for s in lay.output_shapes)
    if n_in + n_out > len(flat):
        raise ProofError(
            f"proof rejected: settings.json declares {n_in} public input and {n_out} public output values,"
            f" the proof has {len(flat)} instances"
        )
    ins = _split(flat[:n_in], lay.input_shapes) if lay.public_inputs else None
    outs = _split(flat[len(flat) - n_out :], lay.output_shapes) if lay.public_outputs else None
    claims = Claims(inputs_fixed=ins, outputs_fixed=outs, instances=flat)
    if ins is not None:
        claims.inputs = [[v / 2.0**s for v in row] for row, s in zip(ins, lay.input_scales)]
    if outs is not None:
        claims.outputs = [[v / 2.0**s for v in row] for row, s in zip(outs, lay.output_scales)]
    return claims


@dataclass
class ProofDir:
    """The files of a ``vcompute prove`` out dir, opened and checked for shape (not yet verified)."""

    root: Path
    proof: dict[str, Any]
    settings: dict[str, Any]
    layout: Layout

    @property
    def proof_path(self) -> Path:
        return self.root / PROOF

    @property
    def settings_path(self) -> Path:
        return self.root / SETTINGS

    @property
    def vk_path(self) -> Path:
        return self.root / VK

    def optional(self, name: str) -> Path | None:
        """A file the dir may hold (model.onnx, input.json, ...), checked to be a regular file."""
        path = self.root / name
        if not os.path.lexists(path):
            return None
        regular_file(path, LIMITS.get(name, 64 << 20), name)
        return path

    def summary(self) -> dict[str, Any]:
        """summary.json's claims ({} when absent); only ever compared with the proof, never reported."""
        path = self.optional(SUMMARY)
        data = read_json(path, "summary", ProofError) if path else {}
        return data if isinstance(data, dict) else {}

    @classmethod
    def open(cls, root: Path) -> "ProofDir":
        """Check the folder and read proof.json and settings.json; UsageError if it is not a proof dir."""
        root = Path(root)
        if not root.is_dir():
            raise UsageError(f"proof dir not found: {root}")
        missing = [n for n in (PROOF, SETTINGS, VK) if not os.path.lexists(root / n)]
        if missing:
            raise UsageError(f"{root} is not a proof dir written by 'vcompute prove': missing {', '.join(missing)}")
        regular_file(root / VK, LIMITS[VK], "verifying key")
        proof = read_json(root / PROOF, "proof", ProofError)
        if not isinstance(proof, dict) or not isinstance(proof.get("proof"), list):
            raise ProofError(f"proof rejected: {root / PROOF} has no proof bytes")
        settings = read_json(root / SETTINGS, "settings")
        return cls(root=root, proof=proof, settings=settings, layout=layout(settings))


def proof_bytes(proof: dict[str, Any]) -> bytes:
    """The proof bytes; ``hex_proof`` (which calldata encoding reads) must be the same bytes."""
    try:
        raw = bytes(proof["proof"])
    except (TypeError, ValueError, KeyError):
        raise ProofError("proof rejected: proof bytes are malformed") from None
    hex_proof = proof.get("hex_proof")
    if hex_proof is not None and (not isinstance(hex_proof, str) or hex_proof.removeprefix("0x").lower() != raw.hex()):
        raise ProofError("proof rejected: hex_proof differs from the proof bytes")
    return raw


def _felts(rows: Any, big_endian: bool = False) -> list[list[int]] | None:
    """Rows of field elements as signed ints; witness.json writes them little-endian, pretty_public_inputs big-endian."""
    if rows is None:
        return None
    try:
        if big_endian:
            return [[felt_to_int(int(f, 16)) for f in row] for row in rows]
        return [[felt_to_int(f) for f in row] for row in rows]
    except (TypeError, ValueError, AttributeError):
        raise ProofError("proof rejected: a file holds malformed field elements") from None


def check_consistent(pd: ProofDir, claims: Claims) -> None:
    """Every other file that states public values must state the proven ones, or the dir is rejected."""
    witness = pd.optional(WITNESS)
    if witness:
        w = read_json(witness, "witness", ProofError)
        if not isinstance(w, dict):
            raise ProofError("proof rejected: witness.json is not a witness")
        _same("witness.json outputs", _felts(w.get("outputs")), claims.outputs_fixed)
        _same("witness.json inputs", _felts(w.get("inputs")), claims.inputs_fixed)
    pretty = pd.proof.get("pretty_public_inputs")
    if isinstance(pretty, dict):
        _same("pretty_public_inputs outputs", _felts(pretty.get("outputs"), big_endian=True), claims.outputs_fixed)
        _same("pretty_public_inputs inputs", _felts(pretty.get("inputs"), big_endian=True), claims.inputs_fixed)
    elif pretty is not None:
        raise ProofError("proof rejected: pretty_public_inputs is malformed")
    input_json = pd.optional(INPUT)
    if input_json and claims.inputs_fixed is not None:
        _check_input_file(input_json, pd, claims.inputs_fixed)
    summary = pd.summary()
    if "outputs_fixed" in summary and claims.outputs_fixed is not None:
        _same("summary.json outputs_fixed", summary.get("outputs_fixed"), claims.outputs_fixed)
    if isinstance(summary.get("outputs"), list) and claims.outputs is not None:
        _close("summary.json outputs", summary["outputs"], claims.outputs)


def _same(what: str, stated: Any, proven: list[list[int]] | None) -> None:
    if stated is None or proven is None:
        return
    if stated != proven:
        raise ProofError(f"proof rejected: {what} differ from the values the proof attests")


def _close(what: str, stated: Any, proven: list[list[float]]) -> None:
    try:
        ok = len(stated) == len(proven) and all(
            len(a) == len(b) and all(abs(float(x) - y) <= 1e-9 * max(1.0, abs(y)) for x, y in zip(a, b))
            for a, b in zip(stated, proven)
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ProofError(f"proof rejected: {what} differ from the values the proof attests")


def _check_input_file(path: Path, pd: ProofDir, inputs_fixed: list[list[int]]) -> None:
    """input.json, quantized as EZKL quantizes it, must give the proof's public inputs."""
    from vcompute.engine.quantize import quantize_input

    data = read_json(path, "input", ProofError)
    tensors = data.get("input_data") if isinstance(data, dict) else None
    if not isinstance(tensors, list) or len(tensors) != len(inputs_fixed):
        raise ProofError("proof rejected: input.json does not hold the proof's public inputs")
    types = pd.settings.get("input_types") or []
    for i, (values, proven, scale) in enumerate(zip(tensors, inputs_fixed, pd.layout.input_scales)):
        try:
            flat = np.asarray(values, dtype=np.float64).reshape(-1)
            is_float = i >= len(types) or str(types[i]).upper().startswith("F")
            q = quantize_input(flat, scale, is_float).tolist()
        except (TypeError, ValueError, OverflowError):
            raise ProofError("proof rejected: input.json is malformed") from None
        if q != proven:
            raise ProofError("proof rejected: input.json differs from the public inputs the proof attests")
