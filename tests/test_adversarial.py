"""Attacks on the layer around the proof (issue #8): each one must fail, or change nothing that is claimed.

The property every case checks: ``verify`` either rejects the dir (exit 1), refuses it as unusable
(exit 2), or reports exactly the claims of the untouched proof (outputs, inputs, vk, model). A
forged file may never move what is reported, and nothing here may write into the proof dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import pytest

from tests.conftest import CIRCUITS
from vcompute.errors import ProofError, UsageError, VcomputeError
from vcompute.zk.verify import verify

STUB_TRUE = "600160005260206000f3"  # runtime code that returns 1 for any call


def _claims(result) -> tuple:
    return (result.outputs_fixed, result.inputs_fixed, result.vk_sha256, result.model_sha256)


def _same_or_less(claims: tuple, honest: tuple) -> bool:
    """The same claims; a tampered file may cost the model binding (None), never change a value."""
    return claims[:3] == honest[:3] and claims[3] in (None, honest[3])


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def honest(proved) -> tuple[Path, tuple]:
    out = proved("mlp")
    return out, _claims(verify(out))


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


# --- claims come from the proof, never from summary.json ---------------------------------------------


def test_forged_summary_outputs_are_rejected(proof_copy) -> None:
    out = proof_copy("mlp")
    _edit_json(out / "summary.json", lambda s: s.__setitem__("outputs", [[42.0] * 4]))
    with pytest.raises(ProofError, match="summary.json outputs"):
        verify(out)


def test_summary_output_visibility_private_does_not_turn_the_check_off(proof_copy) -> None:
    out = proof_copy("mlp")

    def edit(s):
        s["visibility"]["output"] = "private"
        s["outputs_fixed"][0][0] += 1

    _edit_json(out / "summary.json", edit)
    with pytest.raises(ProofError, match="outputs_fixed"):
        verify(out)


def test_summary_naming_another_model_changes_nothing_reported(proof_copy, honest) -> None:
    out = proof_copy("mlp")
    _edit_json(out / "summary.json", lambda s: s["model"].__setitem__("sha256", "ab" * 32))
    assert _claims(verify(out)) == honest[1], "summary.json's model hash leaked into the result"


def test_another_models_onnx_is_not_bound_to_the_vk(proof_copy) -> None:
    out = proof_copy("mlp")
    shutil.copy(CIRCUITS / "cnn" / "model.onnx", out / "model.onnx")
    with pytest.raises(ProofError):
        verify(out)


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["run_args"].__setitem__("output_visibility", "Private"),
        lambda s: s["run_args"].__setitem__("input_scale", s["run_args"]["input_scale"] - 1),
        lambda s: s.__setitem__("model_output_scales", [s["model_output_scales"][0] - 3]),
    ],
    ids=["output-visibility", "input-scale", "output-scale"],
)
def test_edited_settings_fail_the_binding(proof_copy, edit) -> None:
    out = proof_copy("mlp")
    _edit_json(out / "settings.json", edit)
    with pytest.raises(VcomputeError):
        verify(out)


@pytest.mark.parametrize("name", ["input.json", "witness.json", "pretty"])
def test_other_files_that_state_public_values_must_agree(proof_copy, name: str) -> None:
    out = proof_copy("mlp")
    if name == "input.json":
        _edit_json(out / "input.json", lambda d: d["input_data"][0].__setitem__(0, 0.999))
    elif name == "witness.json":
        _edit_json(out / "witness.json", lambda w: w["outputs"][0].__setitem__(0, w["outputs"][0][1]))
    else:
        _edit_json(out / "proof.json", lambda p: p["pretty_public_inputs"]["outputs"][0].__setitem__(0, "0x" + "00" * 31 + "07"))
    with pytest.raises(ProofError, match="differ"):
        verify(out)


def test_hex_proof_alone_tampered_is_rejected(proof_copy) -> None:
    out = proof_copy("mlp")

    def edit(p):
        raw = bytearray(bytes.fromhex(p["hex_proof"][2:]))
        raw[40] ^= 1
        p["hex_proof"] = "0x" + raw.hex()

    _edit_json(out / "proof.json", edit)
    with pytest.raises(ProofError, match="hex_proof"):
        verify(out)


# --- a proof verifies anywhere; verify never makes an SRS --------------------------------------------


def test_foreign_cache_verifies_with_the_shipped_points_and_generates_nothing(proved, tmp_path, monkeypatch, honest) -> None:
    foreign = tmp_path / "foreign-cache"
    monkeypatch.setenv("VCOMPUTE_CACHE", str(foreign))
    result = verify(proved("mlp"))
    assert result.srs["source"] == "shipped" and not result.model_bound
    assert result.outputs_fixed == honest[1][0]
    assert not list(foreign.glob("srs/dev-*")), "verify generated an SRS"


def test_foreign_cache_with_the_full_srs_binds_the_model(proved, tmp_path, monkeypatch, vcompute_cache) -> None:
    full = next(vcompute_cache.glob("srs/dev-k*/kzg.srs"))
    monkeypatch.setenv("VCOMPUTE_CACHE", str(tmp_path / "foreign"))
    result = verify(proved("mlp"), full)
    assert result.model_bound and result.srs["source"] == "--srs", result.binding


def test_missing_srs_is_exit_2_naming_the_flag(proof_copy, tmp_path, monkeypatch) -> None:
    out = proof_copy("mlp")
    (out / "kzg.verifier.srs").unlink()
    monkeypatch.setenv("VCOMPUTE_CACHE", str(tmp_path / "foreign"))
    with pytest.raises(UsageError, match="the SRS this proof was made with is missing: pass --srs FILE"):
        verify(out)


def test_wrong_or_garbage_srs_is_a_usage_error(proved, tmp_path) -> None:
    garbage = tmp_path / "garbage.srs"
    garbage.write_bytes(os.urandom(5000))
    with pytest.raises(UsageError, match="not an SRS file"):
        verify(proved("mlp"), garbage)
    other = tmp_path / "other.srs"  # a valid header and size, other points
    from vcompute.zk.srs import expected_size

    other.write_bytes((15).to_bytes(4, "little") + os.urandom(expected_size(15) - 4))
    with pytest.raises(UsageError, match="not the SRS this proof was made with"):
        verify(proved("mlp"), other)


# --- bounded reads, read-only evidence --------------------------------------------------------------


def test_fifo_and_garbage_settings_are_one_line_usage_errors(proof_copy) -> None:
    out = proof_copy("mlp")
    settings = (out / "settings.json").read_text()
    (out / "settings.json").unlink()
    os.mkfifo(out / "settings.json")
    with pytest.raises(UsageError, match="not a regular file"):
        verify(out)
    (out / "settings.json").unlink()
    for logrows in ("abc", -1, 100):
        (out / "settings.json").write_text(settings)
        _edit_json(out / "settings.json", lambda s: s["run_args"].__setitem__("logrows", logrows))
        with pytest.raises(UsageError, match="logrows"):
            verify(out)


def test_summary_asking_for_a_huge_srs_costs_nothing(proof_copy, honest) -> None:
    out = proof_copy("mlp")
    _edit_json(out / "summary.json", lambda s: s.update(logrows=22, srs={"path": "/dev/zero", "sha256": "zz"}))
    assert _same_or_less(_claims(verify(out)), honest[1])


def test_read_only_dir_verifies_locally_and_is_not_written(proof_copy, honest) -> None:
    out = proof_copy("mlp")
    before = _tree_digest(out)
    for p in [out, *out.iterdir()]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        assert _claims(verify(out)) == honest[1]
    finally:
        out.chmod(0o755)
    assert _tree_digest(out) == before


# --- the cache heals ---------------------------------------------------------------------------------


def test_truncated_proving_key_is_rebuilt(proved, vcompute_cache, tmp_path) -> None:
    from vcompute.zk import pipeline

    proved("mlp")
    for pk in vcompute_cache.glob("keys/*/pk.key"):
        with open(pk, "r+b") as f:
            f.truncate(pk.stat().st_size // 2)
    summary = pipeline.prove(pipeline.ProveRequest(model=CIRCUITS / "mlp" / "model.onnx", input=CIRCUITS / "mlp" / "input.json", out=tmp_path / "out", evm=False, engine=False))
    assert summary["cache"]["setup"] is False, "a damaged key entry must be rebuilt, not used"
    verify(tmp_path / "out")


# --- fuzz: mutate bytes of every file; nothing different may be accepted ----------------------------


def _mutations(root: Path, count: int, seed: int, skip: tuple[str, ...] = ()):
    rng = random.Random(seed)
    files = sorted(p for p in root.iterdir() if p.is_file() and p.stat().st_size and p.name not in skip)
    for i in range(count):
        path = rng.choice(files)
        data = bytearray(path.read_bytes())
        kind = rng.choice(("flip", "flip", "digit", "truncate"))
        if kind == "truncate":
            del data[rng.randrange(len(data)) :]
        elif kind == "digit" and path.suffix == ".json":
            digits = [j for j, c in enumerate(data) if chr(c) in "0123456789abcdef"]
            j = rng.choice(digits)
            data[j] = ord(rng.choice([c for c in "0123456789abcdef" if c != chr(data[j])]))
        else:
            j = rng.randrange(len(data))
            data[j] ^= 1 << rng.randrange(8)
        yield i, path.name, kind, bytes(data)


def _fuzz(proof_copy, honest, count: int, seed: int, skip: tuple[str, ...] = ()) -> None:
    out = proof_copy("mlp")
    accepted_changed = []
    for i, name, kind, data in _mutations(out, count, seed, skip):
        original = (out / name).read_bytes()
        (out / name).write_bytes(data)
        try:
            claims = _claims(verify(out))
            if not _same_or_less(claims, honest[1]):
                accepted_changed.append((i, name, kind))
        except VcomputeError:
            pass
        finally:
            (out / name).write_bytes(original)
    assert not accepted_changed, f"mutations accepted with changed claims: {accepted_changed[:5]}"


def test_fuzz_a_few_hundred_mutations(proof_copy, honest) -> None:
    # model.onnx and settings.json mutations each cost a key recomputation (seconds): they have
    # their own cases above, and the slow fuzz below mutates them too.
    _fuzz(proof_copy, honest, 200, seed=1, skip=("model.onnx", "settings.json"))


@pytest.mark.slow
def test_fuzz_thousands_of_mutations(proof_copy, honest) -> None:
    _fuzz(proof_copy, honest, 3000, seed=2)
