"""Two `kedro run --pipeline tune` processes on one real PostgreSQL study, as on two machines:
the budget holds through the storage, a configuration that comes twice is trained once, trials
are pruned against values the other worker wrote, and both workers take trials.

The configurations come from the study's queue (`enqueue_trial`, as a grid sampler would give
them), so that repeats are certain. Two reference trials, finished "on another machine" before
the workers start with a value no 4-step training reaches, make the pruning certain whichever
worker finishes first: the median pruner waits for three complete trials (the two references
and the first trained one), then every later trial is below the median.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import optuna
import pytest
from optuna.trial import TrialState

from audioscope_kedro.tuning.study import search_space
from audioscope_kedro.tuning.workers import TrialAttr, make_storage
from tests.helpers import conf_parameters, kedro_process_args, tune_space

pytestmark = pytest.mark.slow

STUDY = "audioscope_attention"  # tune.study_name of conf/base
STEPS = 4  # tune.train_overrides.loop.steps of conf/test; one validation, at the last step
FIXED = {"layers": 1, "heads": 2, "dim": 16, "classification_loss": "exact", "num_sources": 4}
POOL, CMA, SEP_SA = (
    {"variant": v, "learning_rate": 2e-3, **FIXED} for v in ("pool", "cma", "sep_sa")
)
REFERENCES = [{**POOL, "learning_rate": 1e-3}, {**CMA, "learning_rate": 1e-3}]  # trials 0, 1
REFERENCE_VALUE = 100.0  # dB: far above a 4-step training
# trials 2..7: with the references, 2..6 fill the budget of 7; 4 repeats 2, 6 repeats 3
QUEUE = [POOL, CMA, POOL, SEP_SA, CMA, SEP_SA]
N_TRIALS = 7
RUNTIME_PARAMS = {
    "tune.n_trials": N_TRIALS,
    "tune.pruner.n_startup_trials": 3,  # the two references and one trained trial
    "tune.pruner.n_warmup_steps": 0,
    "tune.train_overrides.loop.validate_every": STEPS,
}


def _prepare_study(url: str) -> None:
    """The study the workers resume: the reference trials and the queue."""
    distributions = search_space(tune_space(conf_parameters("test")["tune"]["space"]))
    study = optuna.create_study(study_name=STUDY, storage=make_storage(url), direction="maximize")
    for params in REFERENCES:
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=REFERENCE_VALUE,
                intermediate_values={STEPS: REFERENCE_VALUE},
            )
        )
    for params in QUEUE:
        study.enqueue_trial(params)


def _wait_for_blocked_sessions(dsn: str, count: int, workers, timeout_s: float = 240.0) -> None:
    """Wait until ``count`` database sessions wait on a row lock (each worker, at its first
    trial), failing with the workers' output if one exits first."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            (blocked,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).fetchone()
            if blocked >= count:
                return
            for worker, log in workers:
                if worker.poll() is not None:
                    pytest.fail(
                        f"a worker exited before its first trial:\n{log.read_text()[-3000:]}"
                    )
            time.sleep(0.2)
    pytest.fail(f"the workers did not reach their first trial in {timeout_s:.0f} s")


def test_two_tune_processes_share_one_postgresql_study(tune_project, postgres_database, tmp_path):
    server, database = postgres_database
    url = server.url(database)
    project = tmp_path / "project"
    shutil.copytree(tune_project, project, symlinks=True)
    _prepare_study(url)
    params = ",".join(f"{k}={v}" for k, v in {"tune.storage": url, **RUNTIME_PARAMS}.items())
    cmd, env = kedro_process_args("tune", params)

    import psycopg

    # Both workers start before either takes a trial: the test holds the queued trials' rows,
    # so each worker waits for them at its first trial; released together, each takes one of
    # the first two.
    with psycopg.connect(server.dsn(database)) as gate:
        gate.execute("SELECT trial_id FROM trials WHERE state = 'WAITING' FOR UPDATE")
        workers = []
        for k in range(2):
            log = tmp_path / f"worker{k}.log"
            with log.open("w") as out:
                worker = subprocess.Popen(cmd, cwd=project, env=env, stdout=out, stderr=out)
            workers.append((worker, log))
        _wait_for_blocked_sessions(server.dsn(database), 2, workers)
        gate.commit()
    for worker, log in workers:
        assert worker.wait(timeout=300) == 0, log.read_text()[-3000:]

    trials = optuna.load_study(study_name=STUDY, storage=make_storage(url)).trials
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    # the budget: the references and five queued trials; the sixth never ran
    assert [t.number for t in finished] == list(range(N_TRIALS))
    last = trials[N_TRIALS]
    assert not last.intermediate_values and (
        last.state == TrialState.WAITING or last.user_attrs[TrialAttr.BEYOND_BUDGET]
    )
    # each configuration trained once; the repeats took their original's result, or were
    # pruned while it ran
    trained = [t for t in trials if t.user_attrs.get(TrialAttr.TRAINED)]
    assert [t.number for t in trained] == [2, 3, 5]
    assert all(list(t.intermediate_values) == [STEPS] for t in trained)
    for repeat, original in ((4, 2), (6, 3)):
        assert trials[repeat].user_attrs[TrialAttr.DUPLICATE_OF] == original
        assert not trials[repeat].intermediate_values
        assert trials[repeat].state in (trials[original].state, TrialState.PRUNED)
        if trials[repeat].state == TrialState.COMPLETE:
            assert trials[repeat].value == trials[original].value
    # pruning through the storage: the first of the two concurrent trials to report completes,
    # the trial after it is pruned against it and the references
    assert TrialState.COMPLETE in (trials[2].state, trials[3].state)
    assert trials[5].state == TrialState.PRUNED
    # the two processes each took trials
    host = socket.gethostname()
    assert {trials[2].user_attrs[TrialAttr.WORKER], trials[3].user_attrs[TrialAttr.WORKER]} == {
        f"{host}:{worker.pid}" for worker, _ in workers
    }
