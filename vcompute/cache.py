"""The content-addressed cache for what is slow to make: calibrated circuits, SRS files, keys.

An entry's name is a hash of everything that determines its contents, so a hit is always
valid and nothing ever needs invalidating. Root: ``$VCOMPUTE_CACHE``, else the user's cache
dir (``$XDG_CACHE_HOME/vcompute`` or ``~/.cache/vcompute``).
"""

from __future__ import annotations

import os
from pathlib import Path


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
