"""Proving and verifying keys: ``ezkl.setup``, cached by the compiled circuit and the SRS.

A proving key is large (hundreds of MB even for small models), so it lives only in the
cache; the out dir gets the small verifying key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ezkl

from vcompute.zk import ezkl_call
from vcompute.artifacts import atomic_dir, sha256_file, sha256_json
from vcompute.cache import entry_dir
from vcompute.errors import ProofError
from vcompute.zk.srs import Srs


@dataclass(frozen=True)
class Keys:
    pk: Path
    vk: Path
    cached: bool


def setup(compiled: Path, srs: Srs, log: Path | None = None) -> Keys:
    """The keys for ``compiled`` under ``srs``, from the cache or made by ``ezkl.setup``."""
    key = sha256_json({"compiled": sha256_file(compiled), "srs": sha256_file(srs.path), "ezkl": ezkl_call.version()})
    entry = entry_dir("keys", key)
    pk, vk = entry / "pk.key", entry / "vk.key"
    if pk.exists() and vk.exists():
        return Keys(pk, vk, cached=True)
    with atomic_dir(entry) as tmp:
        try:
            ezkl_call.call(ezkl.setup, str(compiled), str(tmp / "vk.key"), str(tmp / "pk.key"), str(srs.path), log=log)
        except ezkl_call.EzklError as exc:
            raise ProofError(f"key generation (setup) failed: {str(exc).strip().splitlines()[0]}") from None
    return Keys(pk, vk, cached=False)
