"""Fixtures shared by several test packages: the ../shared real data, a Kedro project copy, the
tiny ingested dataset. The functions behind them are in tests/helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import (
    SHARED_DATA,
    TinyData,
    build_tiny_data,
    make_project,
)

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it are skipped in a clone without it."""
    if not (SHARED_DATA / "real_videos" / "labels.csv").exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def kedro_project(tmp_path: Path, monkeypatch) -> Path:
    """A throwaway copy of the project's conf in a temp folder, as cwd, so runs write there."""
    project = make_project(tmp_path / "project")
    monkeypatch.chdir(project)
    return project


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> TinyData:
    """The tiny dataset (tests/helpers.py: tiny_lists) ingested once: clip and MoM tables and
    the clip store, for tests that need model inputs without running the chain. Read-only."""
    return build_tiny_data(tmp_path_factory.mktemp("tiny_data"))
