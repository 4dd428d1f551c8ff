"""``vcompute verify``: check a proof dir, and report only what the proof itself attests.

The steps, each trusting nothing it can recompute:

1. open the dir (:mod:`.proofdir`): regular files under size caps, settings validated;
2. find the SRS the proof was made with: ``--srs FILE``, else the full SRS pinned by hash in this
   machine's cache, else the 516-byte verifier part the dir ships; never generated here;
3. ``ezkl.verify`` the proof bytes and instances against ``vk.key`` (hex_proof must match);
4. decode the public inputs and outputs from the proof's instances with settings.json's layout;
   every other file that states them (summary, input, witness, pretty_public_inputs) must agree;
5. bind ``vk.key`` to ``model.onnx`` and settings.json by recomputing it (:mod:`.binding`), when
   the full SRS is at hand; only then is a model hash reported.

Nothing is written into the proof dir: verification reads evidence, it does not edit it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vcompute.artifacts import sha256_file
from vcompute.errors import ProofError, UsageError
from vcompute.zk import binding, proving, srs
from vcompute.zk.proofdir import MODEL, VERIFIER_SRS, Claims, ProofDir, check_consistent, decode_instances, proof_bytes


@dataclass
class SrsChoice:
    """The SRS verification uses, and where it came from."""

    path: Path
    source: str  # "--srs", "cache" or "shipped"
    full: Path | None  # the full SRS, when known (binding needs it)
    sha256: str | None  # of the full SRS


@dataclass
class VerifyResult:
    """What ``verify`` establishes. Every value comes from the proof or is recomputed here."""

    valid: bool
    proof_dir: str
    outputs: list[list[float]] | None
    outputs_fixed: list[list[int]] | None
    inputs: list[list[float]] | None
    inputs_fixed: list[list[int]] | None
    visibility: dict[str, str]
    vk_sha256: str
    settings_sha256: str
    proof_sha256: str
    srs: dict[str, Any]
    model_bound: bool
    model_sha256: str | None
    binding: str
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pinned_sha(pd: ProofDir) -> str | None:
    """The SRS hash the summary pins: only a hint for finding the file (a wrong one just fails)."""
    try:
        value = pd.summary().get("srs", {}).get("sha256")
    except (ProofError, AttributeError):
        return None
    return value if isinstance(value, str) and len(value) == 64 else None


def choose_srs(pd: ProofDir, user_srs: Path | None) -> SrsChoice:
    """The SRS the proof was made with; exit 2 naming what to pass when it cannot be found."""
    shipped = pd.optional(VERIFIER_SRS)
    shipped_bytes = shipped.read_bytes() if shipped else None
    logrows = pd.layout.logrows
    if user_srs is not None:
        if not user_srs.exists():
            raise UsageError(f"SRS file not found: {user_srs}")
        k = srs.srs_logrows(user_srs)
        if k < logrows:
            raise UsageError(f"SRS {user_srs} has 2^{k} rows; this proof's circuit needs 2^{logrows}")
        if shipped_bytes is not None and srs.verifier_srs(user_srs) != shipped_bytes:
            raise UsageError(f"{user_srs} is not the SRS this proof was made with (its verifier points differ from {VERIFIER_SRS})")
        return SrsChoice(user_srs, "--srs", user_srs, sha256_file(user_srs))
    pin = _pinned_sha(pd)
    full = srs.by_sha256(pin) if pin else None
    if full is not None:
        # This machine's own full SRS with the pinned hash: trusted more than the dir's points,
        # which are ignored if they differ (a valid proof under it is valid, whatever the dir says).
        try:
            ok = srs.srs_logrows(full) >= logrows and sha256_file(full) == pin
        except UsageError:
            ok = False
        if ok:
            return SrsChoice(full, "cache", full, pin)
    if shipped is not None:
        if srs.srs_logrows(shipped) != 1:
            raise UsageError(f"{shipped} is not a verifier SRS")
        return SrsChoice(shipped, "shipped", None, None)
    raise UsageError("the SRS this proof was made with is missing: pass --srs FILE")


def _bind(pd: ProofDir, choice: SrsChoice) -> tuple[bool, str | None, str]:
    """(bound, model sha256, how): recompute vk.key from model.onnx and settings.json."""
    model = pd.optional(MODEL)
    if model is None:
        return False, None, "not established: the proof dir has no model.onnx"
    if choice.full is None or choice.sha256 is None:
        return False, None, "not established: recomputing the verifying key needs the full SRS (pass --srs FILE)"
    vk = binding.vk_sha256(model, pd.settings_path, choice.full, choice.sha256)
    if vk != sha256_file(pd.vk_path):
        raise ProofError("proof rejected: vk.key is not the verifying key of model.onnx with settings.json")
    return True, sha256_file(model), "vk.key recomputed from model.onnx and settings.json: identical"


def verify(proof_dir: Path, srs_file: Path | None = None, require_model: bool = False) -> VerifyResult:
    """Verify the proof in ``proof_dir``; raise ``ProofError`` (exit 1) when anything disagrees.

    ``require_model``: fail (exit 2) unless the model can be bound to the vk (``attest`` needs it)."""
    start = time.perf_counter()
    pd = ProofDir.open(Path(proof_dir))
    choice = choose_srs(pd, srs_file)
    proof_bytes(pd.proof)
    proving.verify(pd.proof_path, pd.settings_path, pd.vk_path, choice.path)
    claims: Claims = decode_instances(pd.proof, pd.layout)
    check_consistent(pd, claims)
    bound, model_sha, how = _bind(pd, choice)
    if require_model and not bound:
        raise UsageError(f"cannot tell which model this proof is for: {how.removeprefix('not established: ')}")
    warnings = []
    if choice.source == "shipped":
        warnings.append(
            "verified with the SRS points shipped in the proof dir: a prover who made that SRS could forge"
            " proofs; pass --srs FILE (a ceremony SRS) for a proof you do not trust"
        )
    if not bound:
        warnings.append(f"model {how}; outputs are decoded with settings.json's layout and scales")
    lay = pd.layout
    return VerifyResult(
        valid=True,
        proof_dir=str(proof_dir),
        outputs=claims.outputs,
        outputs_fixed=claims.outputs_fixed,
        inputs=claims.inputs,
        inputs_fixed=claims.inputs_fixed,
        visibility={"input": lay.input_visibility, "output": lay.output_visibility, "param": lay.param_visibility},
        vk_sha256=sha256_file(pd.vk_path),
        settings_sha256=sha256_file(pd.settings_path),
        proof_sha256=sha256_file(pd.proof_path),
        srs={"source": choice.source, "sha256": choice.sha256, "path": str(choice.path)},
        model_bound=bound,
        model_sha256=model_sha,
        binding=how,
        seconds=round(time.perf_counter() - start, 4),
        warnings=warnings,
    )
