"""Distributed data-parallel training on the CPU (gloo), with real worker processes started
by ``training.launch`` (``elastic_launch``, as ``kedro run`` with ``distributed.nproc_per_node``
does): 2 processes train as 1 does with the same global batch and seed; validation shared
among them gives the one-process figures; a 2-process run killed with SIGKILL resumes, with 2
processes or with 1, and ends as an uninterrupted run; only rank 0 touches the checkpoints.

Tolerance (measured on this 2-core CPU, one torch thread per process on both sides): the
per-step training losses of 2 processes differ from 1 process's by at most 4e-6 (float32
rounding: each worker's mean over its half of the batch, then the average of the two, instead
of one mean), the weights after the runs by at most 1e-5 (Adam divides each gradient by its
running RMS, so where a gradient is tiny the rounding difference becomes a relative
difference of the step). The test allows 2e-5 and 1e-4. Sharded validation gives the
one-process figures exactly (measured difference 0; the test allows 1e-12): every batch is the
one a single process makes, only the process that runs it differs.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import torch

from audioscope_kedro.training.checkpoints import CheckpointStore
from audioscope_kedro.training.launch import DistributedSettings, run
from tests.helpers import PROJECT_ROOT
from tests.training import ddp_jobs
from tests.training.ddp_jobs import RecordingStore, World

pytestmark = pytest.mark.slow

LOSS_TOLERANCE = 2e-5
WEIGHT_TOLERANCE = 1e-4
TWO = DistributedSettings(nproc_per_node=2)
KILL_STEPS = 20  # long enough for the kill to land before the end (it lands at step 2 to 4)


@contextmanager
def one_thread():
    """One torch thread here and in the workers (``OMP_NUM_THREADS``, read by torch when a
    worker starts): both sides sum in the same order within a process."""
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return ddp_jobs.build_world(tmp_path_factory.mktemp("ddp_world"))


@pytest.fixture(scope="module")
def one_process(world, tmp_path_factory) -> dict:
    with one_thread():
        return ddp_jobs.trainings_and_validation(world, tmp_path_factory.mktemp("one"))


@pytest.fixture(scope="module")
def two_processes(world, tmp_path_factory) -> dict:
    with one_thread():
        return run(TWO, ddp_jobs.trainings_and_validation, world, tmp_path_factory.mktemp("two"))


def flat(weights: dict) -> dict[str, torch.Tensor]:
    """State dicts, or a dict of them (the coincidence folds), as one flat dict."""
    out = {}
    for key, value in weights.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def assert_curves_close(a: pd.DataFrame, b: pd.DataFrame, tolerance: float) -> None:
    a, b = a.drop(columns="steps_per_s"), b.drop(columns="steps_per_s")
    assert sorted(a.columns) == sorted(b.columns)
    pd.testing.assert_frame_equal(a, b[a.columns], check_exact=False, rtol=0, atol=tolerance)


def assert_weights_close(a: dict, b: dict, tolerance: float) -> None:
    a, b = flat(a), flat(b)
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= tolerance, f"weights differ by up to {worst}"


@pytest.mark.parametrize("recipe", ["pretrain_audio", "coincidence", "train"])
def test_two_processes_train_as_one(one_process, two_processes, recipe):
    """Same global batch and seed: the same loss at every step (the curve is validated every
    step) and the same weights, for each recipe (coincidence: both fold models)."""
    weights_1, curve_1 = one_process[recipe]
    weights_2, curve_2 = two_processes[recipe]
    assert curve_1["step"].tolist() == list(range(1, len(curve_1) + 1))
    assert_curves_close(curve_1, curve_2, LOSS_TOLERANCE)
    assert_weights_close(weights_1, weights_2, WEIGHT_TOLERANCE)
    assert any(c.startswith("train_") for c in curve_1.columns)


def test_sharded_validation_equals_one_process(one_process, two_processes):
    """Each process validates a share of the batches (together, every one exactly once)
    and the figures are those of one process."""
    one, two = one_process["validation"], two_processes["validation"]
    for recipe, row in one["rows"].items():
        assert two["rows"][recipe] == pytest.approx(row, rel=0, abs=1e-12), recipe
    [alone] = one["examples"]
    shares = two["examples"]
    assert len(shares) == 2
    for recipe, total in alone.items():
        assert sum(s[recipe] for s in shares) == total, recipe
        assert all(0 < s[recipe] < total for s in shares), (recipe, shares)


def checkpoint_steps(folder: Path) -> list[int]:
    return [int(p.stem.removeprefix("step-")) for p in CheckpointStore(folder).paths()]


def start_killable(job: tuple, folder: Path) -> subprocess.Popen:
    """``python -m tests.training.ddp_jobs`` on ``job``, in a process group of its own (the
    launcher and its workers), one torch thread per worker."""
    path = folder / "job.pkl"
    path.write_bytes(pickle.dumps(job))
    with (folder / "job.log").open("wb") as log:  # a file: a full pipe would stall the run
        return subprocess.Popen(
            [sys.executable, "-m", "tests.training.ddp_jobs", str(path)],
            cwd=PROJECT_ROOT,
            env={**os.environ, "OMP_NUM_THREADS": "1", "KEDRO_DISABLE_TELEMETRY": "true"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def ranks_in(log: Path) -> set[str]:
    return {line.split()[0] for line in log.read_text().splitlines()}


def test_killed_run_resumes_with_two_or_one_processes(world, tmp_path):
    """SIGKILL to a 2-process run (launcher and workers) once it has written a checkpoint;
    started again with 2 processes, and separately with 1, it continues from that checkpoint
    (the steps before it are not trained again) and ends with the weights and the curve of an
    uninterrupted run. Only rank 0 reads, writes or clears checkpoints."""
    killed, log = tmp_path / "killed", tmp_path / "killed.log"
    store = RecordingStore(killed, log)
    proc = start_killable((TWO, ddp_jobs.train_job, (world, store, KILL_STEPS)), tmp_path)
    deadline = time.monotonic() + 120
    try:
        while not checkpoint_steps(killed):
            assert proc.poll() is None, (tmp_path / "job.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    at_kill = max(checkpoint_steps(killed))
    assert 0 < at_kill < KILL_STEPS, "the run was not killed part-way"
    assert ranks_in(log) == {"0"}

    with one_thread():
        straight = ddp_jobs.train_job(world, CheckpointStore(tmp_path / "straight"), KILL_STEPS)
        resumed = {}
        for processes in (2, 1):
            folder = tmp_path / f"resumed_{processes}"
            shutil.copytree(killed, folder)
            store = RecordingStore(folder, tmp_path / f"resumed_{processes}.log")
            settings = DistributedSettings(nproc_per_node=processes)
            resumed[processes] = run(settings, ddp_jobs.train_job, world, store, KILL_STEPS)
            saves = [
                int(line.split()[2])
                for line in store.log.read_text().splitlines()
                if line.split()[1] == "save"
            ]
            assert min(saves) > at_kill, "trained again from before the checkpoint"
            assert ranks_in(store.log) == {"0"}
    for weights, curve in resumed.values():
        assert_weights_close(straight[0], weights, WEIGHT_TOLERANCE)
        assert_curves_close(straight[1], curve, LOSS_TOLERANCE)
