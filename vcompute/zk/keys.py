"""Proving and verifying keys: ``ezkl.setup``, cached by the compiled circuit and the SRS.

A proving key is large (hundreds of MB even for small models), so it lives only in the cache;
the out dir gets the small verifying key. Keys are deterministic in (circuit, SRS), which is
what lets ``verify`` recompute a proof's verifying key from its model (:mod:`vcompute.zk.binding`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ezkl

from vcompute.artifacts import sha256_file, sha256_json
from vcompute.cache import entry_dir, get_or_build
from vcompute.errors import ProofError, first_line
from vcompute.zk import ezkl_call
from vcompute.zk.srs import Srs


@dataclass(frozen=True)
class Keys:
    pk: Path
    vk: Path
    cached: bool


def setup(compiled: Path, srs: Srs, log: Path | None = None) -> Keys:
    """The keys for ``compiled`` under ``srs``, from the cache or made by ``ezkl.setup``.

    Every file of the entry is checked against its manifest on use (a truncated pk is rebuilt)."""
    key = sha256_json({"compiled": sha256_file(compiled), "srs": srs.sha256 or sha256_file(srs.path), "ezkl": ezkl_call.version()})

    def build(tmp: Path) -> None:
        try:
            ezkl_call.call(ezkl.setup, str(compiled), str(tmp / "vk.key"), str(tmp / "pk.key"), str(srs.path), log=log)
        except ezkl_call.EzklError as exc:
            raise ProofError(f"key generation (setup) failed: {first_line(exc)}") from None

    entry, cached = get_or_build(entry_dir("keys", key), build)
    return Keys(entry / "pk.key", entry / "vk.key", cached=cached)
