"""Killable runs for the interruption tests (tests/reliability/test_interruptions.py).

A run is what ``kedro run --env test --pipeline NAME --params ...`` runs in a project folder (a
Kedro session, as tests/helpers.py ``run`` starts it), or an ``audioscope`` command line, in a
process of its own. The process is forked from a server that imported the project once
(``multiprocessing``'s forkserver, with this module preloaded): starting one costs tens of
milliseconds instead of the seconds a fresh interpreter takes to import torch and Kedro, so
every stage can be killed and started again several times within the suite's time budget. It
runs with one torch thread, in a process group of its own, its output in a log file.

Two kinds of kill point, both SIGKILL (nothing runs after it: no ``finally``, no ``atexit``):

- **at a commit**: the process counts the renames that publish a file or folder (the last
  step of every atomic write: ``os.replace``, and the folder swap of ``atomic``) and sends
  itself SIGKILL just before or just after the n-th one;
- **at a time**: the test kills the process group after a delay (anywhere: mid-write,
  mid-step, while Kedro loads the inputs...).

``AUDIOSCOPE_KILL_VERBOSE=1`` prints every run's kill point, exit status and seconds.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

import audioscope_kedro.atomic as atomic
from audioscope_kedro import command
from tests import helpers

# the forkserver imports these once; every run is forked from it with them loaded
PRELOAD = [
    "torch",
    "optuna",
    "kedro.framework.session",
    "audioscope_kedro.pipeline_registry",
    "audioscope_kedro.datasets.clip_store_dataset",
    "audioscope_kedro.datasets.model_datasets",
    "audioscope_kedro.datasets.optional_json",
    "audioscope_kedro.datasets.lists_dataset",
    "audioscope_kedro.datasets.media_datasets",
    "kedro_datasets.pandas",
    "kedro_datasets.json",
    "audioscope_kedro.tuning.study",
    "audioscope_kedro.training.coincidence",
    "audioscope_kedro.training.separator",
    "tests.reliability.kill_jobs",
]


@dataclass(frozen=True)
class Job:
    """One run: a pipeline of the ``test`` environment in ``cwd`` (with runtime ``params``), or
    ``audioscope`` with ``argv``. ``kill_at_commit`` > 0: SIGKILL itself at that commit,
    ``kill_before`` the rename or after it."""

    cwd: Path
    log: Path
    pipeline: str | None = None
    params: dict = field(default_factory=dict)
    argv: tuple[str, ...] = ()
    kill_at_commit: int = 0
    kill_before: bool = False

    @property
    def report(self) -> Path:
        """Written by a run that ends normally: when it made each commit, its seconds."""
        return self.log.with_suffix(".json")


@dataclass(frozen=True)
class Outcome:
    exitcode: int  # 0: finished; -9: killed
    seconds: float  # from the start to the end (or the kill)
    commit_times: tuple[float, ...] | None  # seconds in, of a run that finished (else None)

    @property
    def commits(self) -> int | None:
        return None if self.commit_times is None else len(self.commit_times)

    @property
    def killed(self) -> bool:
        return self.exitcode == -signal.SIGKILL


class _Commits:
    """Counts the commits of this process and kills it at the chosen one."""

    def __init__(self, job: Job):
        self.job = job
        self.count = 0
        self.t0 = time.perf_counter()
        self.times: list[float] = []

    def wrap(self, fn):
        def counted(*args, **kwargs):
            self.count += 1
            at = self.count == self.job.kill_at_commit
            if at and self.job.kill_before:
                os.kill(os.getpid(), signal.SIGKILL)
            out = fn(*args, **kwargs)
            self.times.append(time.perf_counter() - self.t0)
            if at:
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        return counted


def _child(job: Job) -> None:
    os.setpgid(0, 0)  # a group of its own: a kill reaches anything it starts
    fd = os.open(job.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    torch.set_num_threads(1)
    commits = _Commits(job)
    os.replace = commits.wrap(os.replace)
    atomic._exchange = commits.wrap(atomic._exchange)
    os.chdir(job.cwd)
    if job.pipeline is not None:
        helpers.run(job.cwd, job.pipeline, **job.params)
        code = 0
    else:
        code = command.main(list(job.argv))
    job.report.write_text(json.dumps({"commit_times": commits.times}))
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


_context = multiprocessing.get_context("forkserver")


def start(job: Job) -> multiprocessing.Process:
    _context.set_forkserver_preload(PRELOAD)
    job.report.unlink(missing_ok=True)
    # not a daemon: a run may start processes of its own (ingest workers, DDP ranks)
    process = _context.Process(target=_child, args=(job,))
    process.start()
    return process


def kill(process: multiprocessing.Process) -> None:
    """SIGKILL to the run's process group (the process alone if it has not made it yet)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


def run(job: Job, kill_after: float | None = None, timeout: float = 120.0) -> Outcome:
    """Run ``job`` to its end, or SIGKILL it ``kill_after`` seconds after its start (if it is
    still running then)."""
    t0 = time.perf_counter()
    process = start(job)
    try:
        process.join(kill_after if kill_after is not None else timeout)
        if process.is_alive():
            if kill_after is None:
                raise TimeoutError(f"{job} still running after {timeout} s")
            kill(process)
        process.join(timeout)
    finally:
        if process.is_alive():
            kill(process)
            process.join()
    seconds = time.perf_counter() - t0
    if os.environ.get("AUDIOSCOPE_KILL_VERBOSE"):
        print(
            f"  run {job.pipeline or job.argv[0]} kill={job.kill_at_commit}/{kill_after}: "
            f"exit {process.exitcode} in {seconds:.2f} s",
            file=sys.__stderr__,
        )
    times = None
    if process.exitcode == 0 and job.report.exists():
        times = tuple(json.loads(job.report.read_text())["commit_times"])
    return Outcome(process.exitcode, seconds, times)


def log_tail(job: Job, chars: int = 3000) -> str:
    return job.log.read_text(errors="replace")[-chars:] if job.log.exists() else "(no log)"
