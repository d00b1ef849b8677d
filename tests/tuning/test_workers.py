"""Workers sharing one study through its storage (audioscope_kedro.tuning.workers): the budget
when two workers race for the last place, configurations trained once when two workers draw
the same one, failures giving their place back, the storage URLs; then many concurrent
workers on an in-memory, a journal and a real PostgreSQL storage."""

from __future__ import annotations

import threading
import time

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from audioscope_kedro.tuning.workers import (
    TrialAttr,
    canonical,
    database_url,
    find_original,
    make_storage,
    run_worker,
    take_trial,
    within_budget,
)

SPACE = {"variant": CategoricalDistribution(["pool", "cma", "sa"])}


def _study(storage=None, name="s", seed=0) -> optuna.Study:
    return optuna.create_study(
        storage=storage,
        study_name=name,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )


def _ask(study: optuna.Study, variant: str) -> optuna.Trial:
    """A trial of ``variant`` that has written its configuration but not decided yet: what a
    worker leaves in the storage between the two steps of find_original."""
    study.enqueue_trial({"variant": variant})
    trial = study.ask(SPACE)
    trial.set_user_attr(TrialAttr.CONFIGURATION.value, canonical(trial.params))
    return trial


def test_a_trial_asked_beyond_the_budget_is_given_back(tmp_path):
    storage = f"sqlite:///{tmp_path}/b.db"
    study, other = _study(storage), _study(storage)
    study.tell(study.ask(SPACE), 1.0)
    ask = study.ask

    def racing_ask(distributions):  # the other worker takes the last place meanwhile
        other.ask(distributions)
        return ask(distributions)

    study.ask = racing_ask
    assert take_trial(study, SPACE, n_trials=2) is None
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL]
    assert study.trials[2].user_attrs[TrialAttr.BEYOND_BUDGET] is True
    # a queued trial ahead holds its place: someone will run it
    study.enqueue_trial({"variant": "pool"})
    assert not within_budget(study, 4, n_trials=3) and within_budget(study, 4, n_trials=4)


def test_a_failed_trial_gives_its_place_back(tmp_path):
    study = _study(f"sqlite:///{tmp_path}/f.db")
    one = {"variant": CategoricalDistribution(["pool"])}
    calls = []

    def objective(trial, configuration):
        calls.append(trial.number)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return 1.0

    with pytest.raises(RuntimeError, match="out of memory"):
        run_worker(study, one, 2, objective)
    assert [t.state for t in study.trials] == [TrialState.FAIL]  # not left RUNNING
    # the failure took no place in the budget and is not a result: its configuration is trained
    # by the next trial, which the one after repeats
    assert run_worker(study, one, 2, objective) == 1
    assert calls == [0, 1]
    assert [t.state for t in study.trials] == [TrialState.FAIL] + [TrialState.COMPLETE] * 2
    assert study.trials[2].user_attrs[TrialAttr.DUPLICATE_OF] == 1


def test_repeats_take_the_original_value_or_are_pruned_without_training():
    study = _study()
    # a trial of a study begun before the configuration attribute existed
    study.add_trial(
        optuna.trial.create_trial(params={"variant": "sa"}, distributions=SPACE, value=3.0)
    )
    running = _ask(study, "pool")  # another worker trains pool right now
    assert find_original(study, running, canonical({"variant": "pool"}), dict) is None
    assert running.user_attrs[TrialAttr.TRAINED] is True
    trained = []
    for variant in ("sa", "pool"):
        study.enqueue_trial({"variant": variant})
    run_worker(study, SPACE, 4, lambda trial, c: trained.append(c) or 1.0)
    assert trained == []  # neither repeat trained
    sa, pool = study.trials[2], study.trials[3]
    assert (sa.state, sa.value, sa.user_attrs[TrialAttr.DUPLICATE_OF]) == (
        TrialState.COMPLETE,
        3.0,
        0,
    )
    assert (pool.state, pool.user_attrs[TrialAttr.DUPLICATE_OF]) == (TrialState.PRUNED, 1)


def test_an_earlier_undecided_trial_of_a_configuration_trains_it():
    study = _study()
    first, second = _ask(study, "cma"), _ask(study, "cma")
    configuration = canonical({"variant": "cma"})
    # the later one yields to the earlier at once; the earlier sees it decided and trains
    assert find_original(study, second, configuration, dict, wait_s=5.0).number == first.number
    second.set_user_attr(TrialAttr.DUPLICATE_OF.value, first.number)
    assert find_original(study, first, configuration, dict, wait_s=5.0) is None


def test_a_trial_waits_for_a_later_undecided_one_of_its_configuration():
    study = _study()
    first, second = _ask(study, "sa"), _ask(study, "sa")
    configuration = canonical({"variant": "sa"})

    def later_decides_to_train():  # it read the storage before the first wrote its configuration
        time.sleep(0.3)
        second.set_user_attr(TrialAttr.TRAINED.value, True)

    thread = threading.Thread(target=later_decides_to_train)
    thread.start()
    original = find_original(study, first, configuration, dict, wait_s=30.0)
    thread.join()
    assert original is not None and original.number == second.number
    # a later trial that never decides (its worker died): the wait ends, the trial trains
    third = _ask(study, "pool")
    _ask(study, "pool")
    assert find_original(study, third, canonical({"variant": "pool"}), dict, wait_s=0.2) is None


def test_database_urls_get_the_psycopg_driver():
    assert database_url("postgresql://u@h:5432/db") == "postgresql+psycopg://u@h:5432/db"
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("mysql+pymysql://u@h/db") == "mysql+pymysql://u@h/db"


def test_an_unreachable_database_is_named_without_its_password():
    with pytest.raises(RuntimeError) as err:
        make_storage("postgresql://tuner:secret@127.0.0.1:1/optuna")
    assert "postgresql+psycopg://tuner:***@127.0.0.1:1/optuna" in str(err.value)
    assert "secret" not in str(err.value)


# ------------------------------------------------------------------ many concurrent workers


def _storage_spec(kind: str, tmp_path, request) -> str | None:
    if kind == "journal":
        return f"journal:{tmp_path}/journal.log"
    if kind == "postgresql":
        server, database = request.getfixturevalue("postgres_database")
        return server.url(database)
    return None


@pytest.mark.parametrize("kind", ["memory", "journal", "postgresql"])
def test_concurrent_workers_keep_the_budget_and_train_each_configuration_once(
    kind, tmp_path, request
):
    spec = _storage_spec(kind, tmp_path, request)
    shared = optuna.storages.InMemoryStorage() if spec is None else None
    n_workers, n_trials = 4, 10
    trained = []
    start = threading.Barrier(n_workers)

    def objective(trial, configuration):
        trained.append(trial.number)
        for step in range(3):
            time.sleep(0.01)  # long enough for the others to draw the same configuration
            trial.report(float(step), step)
        return float(len(configuration["variant"]))

    errors = []

    def worker(seed):
        try:
            study = _study(shared or make_storage(spec), name="race", seed=seed)
            start.wait()
            run_worker(study, SPACE, n_trials, objective)
        except Exception as err:  # a thread's exception would be lost otherwise
            errors.append(err)

    _study(shared or make_storage(spec), name="race")  # created once, before the race
    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(n_workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(thread.is_alive() for thread in threads), errors
    trials = _study(shared or make_storage(spec), name="race").trials
    kept = [t for t in trials if t.state != TrialState.FAIL]
    assert len(kept) == n_trials and all(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in kept
    )
    assert all(t.user_attrs.get(TrialAttr.BEYOND_BUDGET) for t in trials if t not in kept)
    trained_variants = [t.params["variant"] for t in trials if t.user_attrs.get(TrialAttr.TRAINED)]
    assert sorted(t.number for t in trials if t.user_attrs.get(TrialAttr.TRAINED)) == sorted(
        trained
    )
    assert len(trained_variants) == len(set(trained_variants)), "a configuration trained twice"
