"""The engine tests' shared fixture: models with many samples and their EZKL witnesses."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """cases(name) -> a :class:`tests.engine.witness_cases.Case`, made once per test module."""
    pytest.importorskip("ezkl")
    from tests.engine.witness_cases import case_maker

    return case_maker(tmp_path_factory.mktemp("engine-cases"))
