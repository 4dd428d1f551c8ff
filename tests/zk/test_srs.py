"""The SRS: the development one is generated once and cached; a ceremony one is checked for size."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcompute.zk import srs
from vcompute.errors import UsageError


def test_dev_srs_is_cached_and_header_read() -> None:
    first = srs.dev_srs(10)
    second = srs.dev_srs(10)
    assert second.cached and second.path == first.path
    assert first.development
    assert srs.srs_logrows(first.path) == 10


def test_ceremony_srs_too_small_is_refused() -> None:
    small = srs.dev_srs(10).path
    with pytest.raises(UsageError, match="has 2\\^10 rows; this circuit needs 2\\^12"):
        srs.ceremony_srs(small, 12)


def test_ceremony_srs_larger_is_accepted() -> None:
    chosen = srs.ceremony_srs(srs.dev_srs(11).path, 10)
    assert chosen.logrows == 11 and not chosen.development


def test_not_an_srs_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.srs"
    junk.write_bytes(b"\xff\xff\xff\xff rest")
    with pytest.raises(UsageError, match="not an SRS file"):
        srs.srs_logrows(junk)
    with pytest.raises(UsageError, match="SRS file not found"):
        srs.ceremony_srs(tmp_path / "missing.srs", 10)
