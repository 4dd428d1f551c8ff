"""The structured reference string (SRS) that KZG commitments need.

Without internet ``ezkl.get_srs`` cannot download the public ceremony file, so by default we
generate a **development** SRS locally (its toxic waste is known: not secure for production)
and cache it per logrows. ``--srs FILE`` takes a ceremony SRS; we check it has enough rows.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import ezkl

from vcompute.zk import ezkl_call
from vcompute.artifacts import atomic_dir
from vcompute.cache import entry_dir
from vcompute.errors import UsageError

DEV_WARNING = "development SRS (generated locally, toxic waste known): not secure for production; pass --srs FILE for a ceremony SRS"


@dataclass(frozen=True)
class Srs:
    """An SRS file and what we know of it."""

    path: Path
    logrows: int
    development: bool
    cached: bool


def srs_logrows(path: Path) -> int:
    """Read the SRS's k (log2 of its rows) from the file header (halo2: a little-endian u32)."""
    try:
        with open(path, "rb") as f:
            header = f.read(4)
    except OSError as exc:
        raise UsageError(f"cannot read SRS file {path}: {exc.strerror}") from None
    if len(header) < 4:
        raise UsageError(f"{path} is not an SRS file (too short)")
    k = struct.unpack("<I", header)[0]
    if not 1 <= k <= 28:
        raise UsageError(f"{path} is not an SRS file (header says 2^{k} rows)")
    return k


def dev_srs(logrows: int) -> Srs:
    """The cached development SRS for ``logrows``, generated on first use."""
    entry = entry_dir("srs", f"dev-k{logrows}")
    path = entry / "kzg.srs"
    if path.exists():
        return Srs(path, logrows, development=True, cached=True)
    with atomic_dir(entry) as tmp:
        ezkl_call.call(ezkl.gen_srs, str(tmp / "kzg.srs"), logrows)
    return Srs(path, logrows, development=True, cached=False)


def ceremony_srs(path: Path, logrows: int) -> Srs:
    """A user-supplied SRS, refused when it has fewer rows than the circuit needs."""
    if not path.exists():
        raise UsageError(f"SRS file not found: {path}")
    k = srs_logrows(path)
    if k < logrows:
        raise UsageError(f"SRS {path} has 2^{k} rows; this circuit needs 2^{logrows} (logrows {logrows})")
    return Srs(path.resolve(), k, development=False, cached=True)


def resolve(logrows: int, user_srs: Path | None) -> Srs:
    """The SRS to use: the user's if given, else the development one."""
    return ceremony_srs(user_srs, logrows) if user_srs else dev_srs(logrows)
