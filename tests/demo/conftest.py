"""Fixtures of the demo tests (the functions behind them are in tests/demo/helpers.py)."""

from __future__ import annotations

import pytest

from tests.demo.helpers import StandIn, build_stand_in


@pytest.fixture(scope="session")
def stand_in(tmp_path_factory) -> StandIn:
    """Stand-in recordings and pictures for the realistic demo (tests/demo/helpers.py)."""
    return build_stand_in(tmp_path_factory.mktemp("stand_in"))
