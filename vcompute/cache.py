"""The content-addressed cache for what is slow to make: calibrated circuits, SRS files, keys.

An entry's name is a hash of everything that determines its contents, so a hit is valid as long
as its files are intact. Each entry carries a ``MANIFEST.json`` (size and SHA-256 of every file),
written last: an entry whose files no longer match it (a truncated proving key, a disk error) is
named, removed and rebuilt. Builders hold a file lock per entry, so two processes never build the
same entry twice or publish half of one.

Root: ``$VCOMPUTE_CACHE``, else ``$XDG_CACHE_HOME/vcompute`` or ``~/.cache/vcompute``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock

from vcompute.artifacts import atomic_dir, sha256_file

MANIFEST = "MANIFEST.json"
log = logging.getLogger(__name__)


def cache_root() -> Path:
    """The cache's root directory (created on first use)."""
    env = os.environ.get("VCOMPUTE_CACHE")
    if env:
        root = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "vcompute"
    root.mkdir(parents=True, exist_ok=True)
    return root


def entry_dir(kind: str, key: str) -> Path:
    """Where the cache entry ``key`` of ``kind`` (e.g. ``keys``) lives; it may not exist yet."""
    return cache_root() / kind / key


def write_manifest(entry: Path) -> None:
    """Record size and SHA-256 of every file in ``entry`` (call it last, before publishing)."""
    files = {
        p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(entry.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    (entry / MANIFEST).write_text(json.dumps(files, indent=1))


def damage(entry: Path, full: bool = True) -> str | None:
    """Why ``entry`` cannot be trusted (a missing, resized or changed file), or None if intact.

    ``full=False`` checks sizes only (cheap, for multi-GB files read on every use)."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError):
        return "its manifest is missing or unreadable"
    for name, record in manifest.items():
        path = entry / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != record["bytes"]:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {record['bytes']}"
        if full and sha256_file(path) != record["sha256"]:
            return f"{name} does not match its checksum"
    return None


@contextlib.contextmanager
def entry_lock(entry: Path) -> Iterator[None]:
    """Hold the builder's lock for ``entry`` (a sibling ``.lock`` file; blocks while another builds)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry.parent / f".{entry.name}.lock")):
        yield


def get_or_build(
    entry: Path,
    build: Callable[[Path], None],
    full_check: bool = True,
    adopt: Callable[[Path], bool] | None = None,
) -> tuple[Path, bool]:
    """The intact entry at ``entry``, building it with ``build(tmp_dir)`` when absent or damaged.

    Returns ``(entry, cached)``. A damaged entry is reported in the log, removed and rebuilt.
    ``adopt(entry)`` may accept an entry from before manifests existed (it then gets one): for an
    SRS, whose rebuild would be a different random one."""
    if entry.is_dir() and damage(entry, full_check) is None:
        return entry, True
    with entry_lock(entry):
        if entry.is_dir():
            why = damage(entry, full_check)
            if why is None:
                return entry, True  # another process built it while we waited
            if not (entry / MANIFEST).exists() and adopt is not None and adopt(entry):
                write_manifest(entry)
                return entry, True
            log.warning("cache entry %s is damaged (%s): rebuilding it", entry, why)
            shutil.rmtree(entry)
        with atomic_dir(entry) as tmp:
            build(tmp)
            write_manifest(tmp)
    return entry, False
