"""The two ways into distributed training from a Kedro project, on the ``test`` environment
(tiny model, 2 CPU processes): ``torchrun ... -m audioscope_kedro.distributed pretrain_audio``
and ``kedro run --pipeline pretrain_audio`` with ``pretrain_audio.distributed.nproc_per_node``
2. Each writes the outputs a one-process ``kedro run`` writes, with its numbers (tolerances of
test_distributed.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.helpers import TEST_DATA, make_project, run
from tests.training.test_distributed import (
    LOSS_TOLERANCE,
    WEIGHT_TOLERANCE,
    assert_curves_close,
    assert_weights_close,
    one_thread,
)

pytestmark = pytest.mark.slow
OUTPUTS = ("06_models/pretrained_separator", "08_reporting/pretrain_curve.csv")


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    """A project whose `demo_data` and `ingest` have run (`test` environment)."""
    project = make_project(tmp_path_factory.mktemp("ddp_kedro") / "project")
    run(project, "demo_data", "ingest")
    return project


@pytest.fixture(scope="module")
def one_process(ingested, tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("one") / "project"
    shutil.copytree(ingested, project)
    with one_thread():
        run(project, "pretrain_audio")
    return project


def assert_same_outputs(one: Path, two: Path) -> None:
    model, curve = OUTPUTS
    load = lambda p: torch.load(p / TEST_DATA / model / "model.pt", weights_only=True)  # noqa: E731
    assert_weights_close(load(one), load(two), WEIGHT_TOLERANCE)
    read = lambda p: pd.read_csv(p / TEST_DATA / curve)  # noqa: E731
    assert_curves_close(read(one), read(two), LOSS_TOLERANCE)


def test_torchrun_entry_point(ingested, one_process, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(ingested, project)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "audioscope_kedro.distributed",
        "pretrain_audio",
        "--env",
        "test",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_outputs(one_process, project)


def test_kedro_run_with_two_processes_per_node(ingested, one_process, tmp_path):
    """The Kedro session runs once, here; the node starts the 2 workers."""
    project = tmp_path / "project"
    shutil.copytree(ingested, project)
    with one_thread():
        run(project, "pretrain_audio", pretrain_audio={"distributed": {"nproc_per_node": 2}})
    assert_same_outputs(one_process, project)
