"""A tiny run of the whole chain on the `test` environment, shared by the pipeline tests."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.conftest import PROJECT_ROOT

CHAIN = ["demo_data", "ingest", "coincidence", "pretrain_audio", "train", "calibrate", "evaluate"]


def make_project(root: Path) -> Path:
    """A project folder with this repository's conf (the package itself is installed)."""
    root.mkdir(parents=True)
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def run(project: Path, *pipelines: str, **params) -> None:
    cwd = os.getcwd()
    os.chdir(project)
    try:
        bootstrap_project(project)
        for name in pipelines:
            with KedroSession.create(
                project_path=project, env="test", runtime_params=params or None
            ) as session:
                session.run(pipeline_names=[name])
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="session")
def chain(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("chain") / "project")
    run(project, *CHAIN)
    return project


def kedro_process_args(pipeline: str, params: str) -> tuple[list[str], dict[str, str]]:
    """Command and environment of a separate `kedro run` process on the `test` environment
    (one torch thread, so that two of them do not fight over the cores)."""
    cmd = [
        sys.executable,
        "-m",
        "kedro",
        "run",
        "--env",
        "test",
        "--pipeline",
        pipeline,
        "--params",
        params,
    ]
    return cmd, {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
