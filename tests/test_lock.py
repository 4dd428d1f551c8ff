"""constraints.txt (the Python lockfile `make setup` installs under) covers every dependency.

A package added to pyproject.toml but not to the lock would install at whatever is newest on the
day CI runs; a pin that disagrees with pyproject's own exact pin (ezkl, web3) would fail to install.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
#: pinned by the Makefile itself (the CPU build), not by the lock
NOT_LOCKED = {"torch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[_name(name)] = version.strip()
    return pins


def test_every_installed_dependency_is_pinned_once() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in ("dev", "bench"):  # what `make setup` installs
        wanted += project["optional-dependencies"][extra]
    locked = _locked()
    missing = sorted({_name(r) for r in wanted} - NOT_LOCKED - set(locked))
    assert not missing, f"in pyproject.toml but not in constraints.txt: {missing} (run `make lock`)"
    for requirement in wanted:
        exact = re.search(r"==\s*([^\s,;]+)", requirement)
        if exact:
            name = _name(requirement)
            assert locked[name] == exact.group(1), f"{name}: pyproject pins {exact.group(1)}, constraints.txt {locked[name]}"
    assert not NOT_LOCKED & set(locked), "torch is pinned by the Makefile (the CPU build), not by the lock"
