"""Kill-and-restart of every stage that writes: ``ingest``, ``coincidence``, ``pretrain_audio``,
``train``, ``tune`` (Kedro pipelines of the ``test`` environment) and ``audioscope separate``.

Each stage first runs uninterrupted (the reference; it also makes the next stage's inputs).
Then, in a copy of the project as it was before the stage, the same run is started, killed with
SIGKILL, started again, killed again... (kill points from a seeded RNG: at a random commit, the
rename that publishes an output, just before or after it; at a random time in the reference's
run time), and finally left to finish. After every kill:

- every output that exists is complete: it loads (tables, JSON, checkpoints, model folders,
  the clip store clip by clip, the Optuna database, separate's audio/video/figures); only
  hidden temporaries of the killed writer may be half-written, and no reader lists them;
- nothing is lost: the stage's inputs are unchanged, and no checkpoint folder goes back to an
  earlier step than it had reached.

After the last run the outputs equal the reference's, byte for byte, except where a value is
a measurement of the run, not a result (compared without it, see ``SEMANTIC``): the
``steps_per_s`` column of the curves (also inside the checkpoints), the Optuna trials' start
and end times, durations and worker (``host:pid``), the lock files' holders, and
``separation.json``'s ``timings`` and ``wall_seconds``, and the time stamp that libsndfile
writes in the PEAK chunk of a float WAV file. No temporary is left anywhere. A tune trial's
checkpoint folder is removed once the trial is finished; every other checkpoint folder only
moves forward.

Below, the pieces that make it hold, each on its own (milliseconds): what a killed writer
leaves is cleaned by the next write (``atomic.sweep``); a folder put back when its
replacement fails half-way; a checkpoint folder pruned on resume when a kill fell between a
save and its pruning; a study sampled in two sessions as in one (``TrialSeededSampler``); a
trial left RUNNING by a killed worker taken over, with the values its ``ask`` had not drawn.

Runs are forked from a preloaded server (``kill_jobs``), one torch thread each. The kill points
are drawn from ``numpy.random.default_rng([seed, stage])``; ``AUDIOSCOPE_KILL_SEEDS=0,1,2``
runs every stage once per seed (default: seed 0 alone, to keep the suite's time).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from audioscope_kedro import atomic
from audioscope_kedro.atomic import STALE_MARK, is_temporary, write_json
from audioscope_kedro.data.store import INDEX_FILE, ClipStore
from audioscope_kedro.models.persistence import CONFIG_FILE, load_model
from audioscope_kedro.parameters import parse
from audioscope_kedro.run_lock import AlreadyRunningError
from audioscope_kedro.training.checkpoints import CheckpointStore
from audioscope_kedro.training.loop import LoopSettings, train_loop
from audioscope_kedro.tuning.study import TuneParams, _worker_slot
from audioscope_kedro.tuning.workers import (
    Recovery,
    TrialAttr,
    TrialSeededSampler,
    adopt_trial,
    run_worker,
)
from tests.helpers import TEST_DATA, make_project
from tests.reliability import kill_jobs
from tests.reliability.kill_jobs import Job

# seeds of the kill points: AUDIOSCOPE_KILL_SEEDS=0,1,2,... runs every stage once per seed
SEEDS = [int(s) for s in os.environ.get("AUDIOSCOPE_KILL_SEEDS", "0").split(",")]
PIPELINES = ("ingest", "coincidence", "pretrain_audio", "train", "tune")
STAGES = (*PIPELINES, "separate")
# runtime parameters of each pipeline's runs (the reference's and the killed ones' alike):
# two tune trials, each checkpointing at every step, so that a kill inside a trial resumes it
PARAMS = {"tune": {"tune": {"n_trials": 2, "train_overrides": {"loop": {"checkpoint_every": 1}}}}}
SEPARATED = "separated"  # separate's --out, in the stage's folder


# ------------------------------------------------------------------------ the reference runs


@dataclass(frozen=True)
class Reference:
    """A stage's uninterrupted run: the folder before it and after it (copies), how many
    commits it made and how long it took."""

    before: Path
    after: Path
    commit_times: tuple[float, ...]  # seconds from the start of the run to each commit

    @property
    def commits(self) -> int:
        return len(self.commit_times)


def _copy(src: Path, dst: Path) -> Path:
    # real copies: an output written in place (O_TRUNC) would change a hard-linked reference
    return Path(shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(".viz")))


def stage_job(stage: str, folder: Path, log: Path, inputs: Path, **kill) -> Job:
    """The run of ``stage`` in ``folder`` (``inputs``: the reference project, whose test
    videos and released model ``separate`` reads)."""
    if stage == "separate":
        argv = (
            "separate",
            str(inputs / TEST_DATA / "01_raw/demo/videos/test"),
            "--model",
            # the trained model without calibration.json: separate uses raw probabilities
            str(inputs / TEST_DATA / "06_models/trained_audioscope"),
            "--out",
            str(folder / SEPARATED),
        )
        return Job(cwd=folder, log=log, argv=argv, **kill)
    return Job(cwd=folder, log=log, pipeline=stage, params=PARAMS.get(stage, {}), **kill)


def _run_ok(job: Job) -> kill_jobs.Outcome:
    outcome = kill_jobs.run(job)
    assert outcome.exitcode == 0, kill_jobs.log_tail(job)
    return outcome


@dataclass(frozen=True)
class Chain:
    """The reference runs of every stage, and the reference project (whose test videos and
    released model ``separate`` reads)."""

    stages: dict[str, Reference]
    project: Path


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Chain:
    """The chain run once, uninterrupted, with a copy of the project after every stage."""
    root = tmp_path_factory.mktemp("interruptions")
    ref = make_project(root / "reference")
    _run_ok(Job(cwd=ref, log=root / "demo_data.log", pipeline="demo_data"))
    before = _copy(ref, root / "after_demo_data")
    stages: dict[str, Reference] = {}
    for stage in PIPELINES:
        outcome = _run_ok(stage_job(stage, ref, root / f"{stage}.log", ref))
        after = _copy(ref, root / f"after_{stage}")
        stages[stage] = Reference(before, after, outcome.commit_times)
        before = after
    (empty := root / "before_separate").mkdir()
    outcome = _run_ok(stage_job("separate", ref, root / "separate.log", ref))
    stages["separate"] = Reference(empty, ref, outcome.commit_times)
    return Chain(stages, ref)


# ------------------------------------------------------------ what must hold after a kill


def written(stage: str, folder: Path) -> Path:
    """Where a stage's outputs are: the data root of a project, separate's --out folder."""
    return folder / SEPARATED if stage == "separate" else folder / TEST_DATA


def _input_files(folder: Path) -> dict[str, bytes]:
    """What the stage finds in its folder (lock files aside, whose content is the holder)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix != ".lock"
    }


def leftovers(root: Path) -> list[Path]:
    """Hidden temporaries and stale folders of interrupted atomic writes under ``root``."""
    return [p for p in root.rglob(".*") if is_temporary(p) or STALE_MARK in p.name]


def _inside_leftover(path: Path, root: Path) -> bool:
    return any(is_temporary(p) or STALE_MARK in p.name for p in path.relative_to(root).parents)


def _load_media(path: Path) -> None:
    with av.open(str(path)) as container:
        for _ in container.decode(*container.streams):
            pass


def _load_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"), path


def _load_db(path: Path) -> None:
    with sqlite3.connect(path) as db:  # rolls back what a killed transaction left
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", path


def _load_html(path: Path) -> None:
    assert path.read_text().rstrip().endswith("</html>"), path


LOADERS: dict[str, Callable[[Path], object]] = {
    ".parquet": pd.read_parquet,
    ".csv": pd.read_csv,
    ".json": lambda p: json.loads(p.read_text()),
    ".pt": lambda p: torch.load(p, map_location="cpu", weights_only=True),
    ".npy": lambda p: np.load(p, mmap_mode="r"),
    ".db": _load_db,
    ".mp4": _load_media,
    ".wav": _load_media,
    ".flac": _load_media,
    ".png": _load_png,
    ".html": _load_html,
}


def check_complete(root: Path) -> None:
    """Every output under ``root`` that a reader would take as there loads: files by their
    type, model folders (config.json present) as models, the clip store (index present) clip
    by clip. Hidden temporaries and what is inside them are skipped: no reader lists them."""
    for path in sorted(root.rglob("*")):
        if _inside_leftover(path, root) or is_temporary(path) or STALE_MARK in path.name:
            continue
        if "01_raw" in path.relative_to(root).parts or ".locks" in path.parts:
            continue  # inputs of these stages / lock files (their content is the holder)
        try:
            if path.is_file() and path.suffix in LOADERS:
                LOADERS[path.suffix](path)
            elif path.is_dir() and (path / CONFIG_FILE).exists():
                load_model(path)
            elif path.is_dir() and (path / INDEX_FILE).exists():
                store = ClipStore(path)
                for _, audio, frames in store:
                    assert audio.size and len(frames), path
        except Exception as err:  # noqa: BLE001 - reported with the file that did not load
            raise AssertionError(f"{path} is there but does not load: {err!r}") from err


def checkpoint_steps(root: Path) -> dict[str, int]:
    """The newest checkpoint step of every checkpoint folder under ``root``."""
    steps: dict[str, int] = {}
    for path in root.rglob("step-*.pt"):
        key = str(path.parent.relative_to(root))
        steps[key] = max(steps.get(key, 0), int(path.stem.removeprefix("step-")))
    return steps


def trial_finished(out: Path, folder: str) -> bool:
    """Whether ``folder`` is the checkpoint folder of a tune trial that is finished (removed
    then, by design: its result is in the study)."""
    match = re.search(r"trial_(\d+)$", folder)
    db = out / "07_model_output/optuna.db"
    if match is None or not db.exists():
        return False
    number = int(match.group(1))
    return any(t[0] == number and t[1].is_finished() for t in _trials(db))


# ------------------------------------------------------- comparing with the reference run


def _curve(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).drop(columns="steps_per_s", errors="ignore")


def _without_rates(value):
    """A checkpoint's content without the measured ``steps_per_s`` of its curve rows."""
    if isinstance(value, dict):
        return {k: _without_rates(v) for k, v in value.items() if k != "steps_per_s"}
    if isinstance(value, list | tuple):
        return [_without_rates(v) for v in value]
    return value


def _assert_equal_objects(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_equal_objects(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_equal_objects(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _same_checkpoint(a: Path, b: Path) -> None:
    load = lambda p: _without_rates(torch.load(p, map_location="cpu", weights_only=True))  # noqa: E731
    _assert_equal_objects(load(a), load(b), str(b))


MEASURED_TRIAL_COLUMNS = ["datetime_start", "datetime_complete", "duration", "user_attrs_worker"]


def _same_trials_csv(a: Path, b: Path) -> None:
    drop = lambda p: pd.read_csv(p).drop(columns=MEASURED_TRIAL_COLUMNS, errors="ignore")  # noqa: E731
    pd.testing.assert_frame_equal(drop(a), drop(b))


def _trials(db: Path) -> list[tuple]:
    summaries = optuna.get_all_study_summaries(f"sqlite:///{db}")
    out = []
    for summary in summaries:
        study = optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{db}")
        for t in study.trials:
            attrs = {k: v for k, v in t.user_attrs.items() if k != "worker"}
            out.append((t.number, t.state, t.params, t.value, t.intermediate_values, attrs))
    return out


def _same_study(a: Path, b: Path) -> None:
    assert _trials(a) == _trials(b), b


def _without_peak_time(data: bytes) -> bytes:
    """A WAV file with the time stamp of its PEAK chunk (libsndfile writes the time of
    writing there: ``PEAK``, size, version, then the 4-byte time) zeroed."""
    at = data.find(b"PEAK", 12, 200)
    return data if at < 0 else data[: at + 12] + bytes(4) + data[at + 16 :]


def _same_wav(a: Path, b: Path) -> None:
    assert _without_peak_time(a.read_bytes()) == _without_peak_time(b.read_bytes()), b


def _same_separation_json(a: Path, b: Path) -> None:
    def load(p: Path) -> dict:
        meta = json.loads(p.read_text())
        return {k: v for k, v in meta.items() if k not in ("timings", "wall_seconds")}

    assert load(a) == load(b), b


# outputs with a measured value in them: compared without it
SEMANTIC: list[tuple[Callable[[Path], bool], Callable[[Path, Path], None]]] = [
    (lambda p: p.name.endswith("_curve.csv"), lambda a, b: pd.testing.assert_frame_equal(*map(_curve, (a, b)))),
    (lambda p: p.name.startswith("step-") and p.suffix == ".pt", _same_checkpoint),
    (lambda p: p.name == "tune_trials.csv", _same_trials_csv),
    (lambda p: p.suffix == ".db", _same_study),
    (lambda p: p.name == "separation.json", _same_separation_json),
    (lambda p: p.suffix == ".wav", _same_wav),
]  # fmt: skip


def _outputs(root: Path) -> set[Path]:
    """The files under ``root``, lock files aside (a run leaves them; their content is the
    holder, and a claim lock exists only where a trial was taken over)."""
    return {
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and p.suffix != ".lock" and ".locks" not in p.parts
    }


def assert_same_outputs(reference: Path, got: Path) -> None:
    """Every file of ``reference`` in ``got`` and no other, with equal content (``SEMANTIC``
    for the ones with a measurement in them), lock files aside."""
    ref_files, got_files = _outputs(reference), _outputs(got)
    assert sorted(map(str, got_files - ref_files)) == [], "files the reference run did not write"
    assert sorted(map(str, ref_files - got_files)) == [], "files missing after the restarts"
    for rel in sorted(ref_files):
        a, b = reference / rel, got / rel
        for applies, same in SEMANTIC:
            if applies(a):
                same(a, b)
                break
        else:
            assert a.read_bytes() == b.read_bytes(), f"{rel} differs from the reference run's"


# ------------------------------------------------------------------------------ the test


@dataclass(frozen=True)
class KillPoint:
    """At the ``commit``-th commit (before or after its rename), or ``delay`` seconds in."""

    commit: int = 0
    before: bool = False
    delay: float | None = None

    def describe(self) -> str:
        if self.delay is not None:
            return f"{self.delay:.2f} s in"
        return f"{'before' if self.before else 'after'} commit {self.commit}"


def kill_plan(rng: np.random.Generator, ref: Reference) -> list[KillPoint]:
    """Three kills. The first run at one of the reference's ``n`` commits, just before or after
    its rename (always reached: the run does what the reference did). The restarted run at a
    time while it writes: it starts as the reference did (its first commit about as late),
    then does what was left after that commit (the reference's time from it to its last),
    so the kill is drawn in that window. The next run at one of the ``n - k`` commits that a
    run resumed after commit ``k`` still makes. The later two land unless the run they aim
    at finishes first (it resumes, so it has less to do than the estimate says)."""
    commit = int(rng.integers(1, ref.commits + 1))
    times = ref.commit_times
    window = (0.8 * times[0], times[0] + times[-1] - times[commit - 1])
    return [
        KillPoint(commit, bool(rng.integers(2))),
        KillPoint(delay=float(rng.uniform(*window))),
        KillPoint(int(rng.integers(1, max(1, ref.commits - commit) + 1)), bool(rng.integers(2))),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("stage", STAGES)
def test_a_killed_stage_restarts_to_the_outputs_of_an_uninterrupted_run(
    stage, seed, chain, tmp_path
):
    ref = chain.stages[stage]
    folder = _copy(ref.before, tmp_path / "killed")
    out = written(stage, folder)
    inputs = _input_files(folder)
    plan = kill_plan(np.random.default_rng([seed, STAGES.index(stage)]), ref)
    landed: list[str] = []
    steps: dict[str, int] = {}
    for attempt, point in enumerate(plan):
        log = tmp_path / f"attempt_{attempt}.log"
        job = stage_job(
            stage, folder, log, chain.project, kill_at_commit=point.commit, kill_before=point.before
        )
        outcome = kill_jobs.run(job, kill_after=point.delay)
        assert outcome.exitcode == 0 or outcome.killed, (
            f"attempt {attempt} ({point.describe()}) failed:\n{kill_jobs.log_tail(job)}"
        )
        if outcome.killed:
            landed.append(point.describe())
        check_complete(out)
        now = checkpoint_steps(out)
        lost = {
            k: (v, now.get(k))
            for k, v in steps.items()
            if now.get(k, 0) < v and not (k not in now and trial_finished(out, k))
        }
        assert not lost, f"checkpoints went back after the kill {point.describe()}: {lost}"
        steps = now
        still = {k: v for k, v in _input_files(folder).items() if k in inputs}
        assert still == inputs, f"an input of {stage} changed after {point.describe()}"
    assert landed[:1] == [plan[0].describe()], "the first kill must land"
    final = stage_job(stage, folder, tmp_path / "final.log", chain.project)
    outcome = kill_jobs.run(final)
    assert outcome.exitcode == 0, kill_jobs.log_tail(final)
    assert leftovers(out) == [], "temporaries left after the restart"
    assert_same_outputs(written(stage, ref.after), out)
    print(f"{stage} seed {seed}: {len(landed)} of {len(plan)} kills landed: {'; '.join(landed)}")


# --------------------------------------------------------- the pieces, each on its own


def dead_pid() -> int:
    """The pid of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], stdout=-1)
    return int(done.stdout)


def test_what_a_killed_writer_left_is_cleaned_by_the_next_write(tmp_path):
    host, dead, live = socket.gethostname(), dead_pid(), os.getppid()
    gone = [tmp_path / f".a.tmp-{host}-{dead}.json", tmp_path / f".shard-00001.tmp-{host}-{dead}"]
    gone[0].write_text('{"half')
    gone[1].mkdir()
    kept = [
        tmp_path / f".b.tmp-{host}-{live}.json",  # a live writer's
        tmp_path / f".c.tmp-otherhost-{dead}.json",  # another host's: cannot tell
        tmp_path / f".d.tmp-{dead}.json.keep",  # not a temporary name
    ]
    for path in kept:
        path.write_text("x")
    # killed between the two renames of a folder replacement: the old folder, aside
    stale = tmp_path / f".model.stale-{host}-{dead}"
    stale.mkdir()
    (stale / "weights").write_text("old")
    write_json(tmp_path / "y.json", {})
    assert not any(p.exists() for p in gone) and all(p.exists() for p in kept)
    assert (tmp_path / "model/weights").read_text() == "old" and not stale.exists()


def test_a_folder_whose_replacement_fails_half_way_is_put_back(tmp_path, monkeypatch):
    target = tmp_path / "out"
    with atomic.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "f").write_text("old")
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # no renameat2 here
    real = os.replace

    def second_rename_fails(src, dst):
        if Path(src).name.startswith(".out.tmp-"):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", second_rename_fails)
    with pytest.raises(OSError), atomic.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "f").write_text("new")
    assert (target / "f").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "out"
    ]


def test_a_resumed_run_prunes_what_a_kill_before_the_pruning_left(tmp_path):
    model = torch.nn.Linear(2, 1)
    settings = LoopSettings(steps=4, warmup_steps=1, checkpoint_every=1, keep_checkpoints=2)
    store = CheckpointStore(tmp_path)

    def step(m, batch):
        loss = m(batch).pow(2).mean()
        return loss, {"loss": loss.item()}

    def run() -> None:
        train_loop(model, step, lambda s: torch.ones(3, 2) * s, settings, store, code_version="x")

    run()
    # a kill after the rename of step 4 and before the pruning of step 2
    shutil.copy(store.paths()[0], tmp_path / "step-0000002.pt")
    assert len(store.paths()) == 3
    run()  # resumes at the end: nothing to train, but it prunes
    assert [p.name for p in store.paths()] == ["step-0000003.pt", "step-0000004.pt"]


SPACE = {
    "variant": optuna.distributions.CategoricalDistribution(["pool", "sa", "cma"]),
    "lr": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True),
}


def _study(storage: str) -> optuna.Study:
    sampler = TrialSeededSampler(seed=3, n_startup_trials=2, constant_liar=True)
    return optuna.create_study(
        study_name="s", storage=storage, load_if_exists=True, direction="maximize", sampler=sampler
    )


def _objective(trial: optuna.Trial, configuration: dict) -> float:
    return -abs(np.log10(configuration["lr"]) + 2.5) + 0.1 * len(configuration["variant"])


def _params(study: optuna.Study) -> list[tuple]:
    return [(t.number, t.params, t.value) for t in study.trials]


def test_a_study_in_two_sessions_samples_what_one_session_would(tmp_path):
    """A restarted worker has a fresh sampler: with TPE's one random stream it would draw
    other values than the uninterrupted session; seeded per trial and parameter, the same."""
    one = _study(f"sqlite:///{tmp_path}/one.db")
    run_worker(one, SPACE, 6, _objective)
    two = f"sqlite:///{tmp_path}/two.db"
    run_worker(_study(two), SPACE, 3, _objective)
    run_worker(_study(two), SPACE, 6, _objective)  # "a new process": a new sampler
    assert _params(_study(two)) == _params(one)


def test_a_trial_left_running_by_a_killed_worker_is_taken_over(tmp_path):
    """A worker killed inside ``ask`` (one value drawn of two) and never recorded: the next
    worker takes the trial over, draws the missing value as the killed one would have, and
    the study ends as an uninterrupted one."""
    one = _study(f"sqlite:///{tmp_path}/one.db")
    run_worker(one, SPACE, 3, _objective)
    storage = f"sqlite:///{tmp_path}/two.db"
    study = _study(storage)
    run_worker(study, SPACE, 1, _objective)
    trial = study.ask()  # the killed worker's trial: created, one value drawn, no worker
    trial.suggest_categorical("variant", ["pool", "sa", "cma"])
    recovery = Recovery(lock=tmp_path / "claim.lock", unmarked_after_s=0.0)
    resumed = _study(storage)
    assert run_worker(resumed, SPACE, 3, _objective, recovery=recovery) == 2
    assert _params(resumed) == _params(one)
    assert resumed.trials[1].user_attrs[TrialAttr.WORKER].endswith(f":{os.getpid()}")
    # a trial whose recorded worker is alive is not taken over
    live = resumed.ask()
    live.set_user_attr(TrialAttr.WORKER.value, f"{socket.gethostname()}:{os.getppid()}")
    assert adopt_trial(resumed, SPACE, recovery) is None


def test_a_second_sqlite_worker_is_refused_while_one_runs(tmp_path):
    """SQLite holds one worker: a second `kedro run --pipeline tune` on the same database stops
    at once naming the first (a killed worker's lock goes with its process)."""
    params = parse(TuneParams, {"space": {}, "storage": f"sqlite:///{tmp_path}/o.db"}, "tune")
    with _worker_slot(params) as alone:
        assert alone
        with pytest.raises(AlreadyRunningError, match="SQLite takes one worker at a time"):
            _worker_slot(params).__enter__()
    with _worker_slot(params):  # released when the first ended
        pass
    journal = parse(TuneParams, {"space": {}, "storage": f"journal:{tmp_path}/j.log"}, "tune")
    with _worker_slot(journal) as alone, _worker_slot(journal) as again:
        assert not alone and not again  # shared storages take several workers
