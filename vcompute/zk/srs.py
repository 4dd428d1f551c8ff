"""The structured reference string (SRS) that KZG commitments need.

Without internet ``ezkl.get_srs`` cannot download the public ceremony file, so by default we
generate a **development** SRS locally (its toxic waste is known: not secure for production)
and cache it per logrows. ``--srs FILE`` takes a ceremony SRS; we check it has enough rows.

Every proof is pinned to its SRS by SHA-256. Verification needs only a tiny part of it (the first
G1 points and the two G2 points, :func:`verifier_srs`, 516 bytes), which a proof dir ships, so a
proof verifies on any machine; recomputing the verifying key from the model needs the full file,
found by its hash in the cache or given with ``--srs``. ``verify`` never generates an SRS.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

import ezkl

from vcompute.artifacts import atomic_path, sha256_file
from vcompute.cache import damage, entry_dir, get_or_build
from vcompute.errors import UsageError
from vcompute.zk import ezkl_call

DEV_WARNING = "development SRS (generated locally, toxic waste known): not secure for production; pass --srs FILE for a ceremony SRS"
#: largest circuit vcompute will make or check an SRS for (2^26 rows is already a ~8 GB SRS)
MAX_LOGROWS = 26
G1_BYTES, G2_BYTES = 64, 128


@dataclass(frozen=True)
class Srs:
    """An SRS file and what we know of it."""

    path: Path
    logrows: int
    development: bool
    cached: bool
    sha256: str = ""


def expected_size(k: int) -> int:
    """Bytes of a halo2 KZG SRS with 2^k rows: k, 2^k G1 points, 2^k Lagrange G1 points, two G2 points."""
    return 4 + 2 * (2**k) * G1_BYTES + 2 * G2_BYTES


def srs_logrows(path: Path) -> int:
    """The SRS's k (log2 of its rows), after checking the file is a regular file of the right size."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UsageError(f"cannot read SRS file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path} is not a regular file (an SRS must be one)")
    try:
        with open(path, "rb") as f:
            header = f.read(4)
    except OSError as exc:
        raise UsageError(f"cannot read SRS file {path}: {exc.strerror}") from None
    if len(header) < 4:
        raise UsageError(f"{path} is not an SRS file (too short)")
    k = struct.unpack("<I", header)[0]
    if not 1 <= k <= MAX_LOGROWS:
        raise UsageError(f"{path} is not an SRS file (header says 2^{k} rows)")
    if st.st_size != expected_size(k):
        raise UsageError(f"{path} is not an SRS file ({st.st_size} bytes; one with 2^{k} rows has {expected_size(k)})")
    return k


def verifier_srs(path: Path) -> bytes:
    """The part of an SRS that verification reads: a 2-row SRS made of the first points.

    Both ``ezkl.verify`` and ``ezkl.create_evm_verifier`` accept it (they use G1[0] and the two
    G2 points); checked against EZKL 23.0.5 (tests/zk/test_srs.py)."""
    k = srs_logrows(path)
    n = 2**k
    with open(path, "rb") as f:
        raw = f.read()
    g, lagrange, tail = raw[4 : 4 + n * G1_BYTES], raw[4 + n * G1_BYTES : 4 + 2 * n * G1_BYTES], raw[4 + 2 * n * G1_BYTES :]
    return struct.pack("<I", 1) + g[: 2 * G1_BYTES] + lagrange[: 2 * G1_BYTES] + tail


def _register(path: Path, sha: str) -> None:
    """Index a full SRS by its hash, so a proof that pins it finds it later."""
    index = entry_dir("srs", "by-sha256") / sha
    if not index.exists():
        with atomic_path(index) as tmp:
            tmp.write_text(str(path.resolve()))


def by_sha256(sha: str) -> Path | None:
    """A full SRS in the cache (or registered from elsewhere) with this hash, or None."""
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        return None
    index = entry_dir("srs", "by-sha256") / sha
    try:
        path = Path(index.read_text().strip())
    except OSError:
        return None
    entry = path.parent
    if not path.is_file() or ((entry / "MANIFEST.json").exists() and damage(entry, full=False)):
        return None
    return path


def dev_srs(logrows: int) -> Srs:
    """The cached development SRS for ``logrows``, generated on first use (never during verify)."""
    if not 1 <= logrows <= MAX_LOGROWS:
        raise UsageError(f"logrows {logrows} is outside 1..{MAX_LOGROWS}")
    entry, cached = get_or_build(
        entry_dir("srs", f"dev-k{logrows}"),
        lambda tmp: ezkl_call.call(ezkl.gen_srs, str(tmp / "kzg.srs"), logrows),
        adopt=_valid_srs_entry,
    )
    path = entry / "kzg.srs"
    sha = _manifest_sha(entry, "kzg.srs") or sha256_file(path)
    _register(path, sha)
    return Srs(path, logrows, development=True, cached=cached, sha256=sha)


def _valid_srs_entry(entry: Path) -> bool:
    try:
        srs_logrows(entry / "kzg.srs")
        return True
    except UsageError:
        return False


def _manifest_sha(entry: Path, name: str) -> str | None:
    import json

    try:
        return json.loads((entry / "MANIFEST.json").read_text())[name]["sha256"]
    except (OSError, ValueError, KeyError):
        return None


def ceremony_srs(path: Path, logrows: int) -> Srs:
    """A user-supplied SRS, refused when it has fewer rows than the circuit needs."""
    if not path.exists():
        raise UsageError(f"SRS file not found: {path}")
    k = srs_logrows(path)
    if k < logrows:
        raise UsageError(f"SRS {path} has 2^{k} rows; this circuit needs 2^{logrows} (logrows {logrows})")
    sha = sha256_file(path)
    _register(path, sha)
    return Srs(path.resolve(), k, development=False, cached=True, sha256=sha)


def resolve(logrows: int, user_srs: Path | None) -> Srs:
    """The SRS to prove with: the user's if given, else the development one."""
    return ceremony_srs(user_srs, logrows) if user_srs else dev_srs(logrows)
