"""Fixtures of the pipeline tests: a tiny run of the whole chain on the `test` environment, and
a project holding the demo dataset (tests/helpers.py: make_project, run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import CHAIN, TEST_DATA, make_project, run


@pytest.fixture(scope="session")
def chain(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("chain") / "project")
    run(project, *CHAIN)
    return project


@pytest.fixture
def demo_project(kedro_project: Path) -> Path:
    """A project whose `demo_data` has been run (on the `test` environment)."""
    run(kedro_project, "demo_data", demo_root=str(TEST_DATA / "01_raw/demo"))
    return kedro_project
