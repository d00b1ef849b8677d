"""The Optuna study of `tune`: pruning and the trial budget, duplicate configurations, and the
overrides a trial's parameters make (no pipeline run: see tests/pipelines/test_tune.py; workers
sharing a storage: test_workers.py)."""

from __future__ import annotations

from functools import partial

import optuna
from optuna.trial import TrialState

from audioscope_kedro.training.audioscope import with_tuned
from audioscope_kedro.tuning.study import as_overrides, relevant_params, search_space
from audioscope_kedro.tuning.workers import TrialAttr, make_storage, run_worker
from tests.helpers import base_tune_space, tune_space


def _study(tmp_path, name: str, **pruner) -> optuna.Study:
    """A study on an SQLite file, random sampler of seed 0; a median pruner when given its
    settings."""
    return optuna.create_study(
        storage=make_storage(f"sqlite:///{tmp_path}/{name}.db"),
        study_name=name,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(**pruner) if pruner else optuna.pruners.NopPruner(),
    )


def _run(study: optuna.Study, space: dict, n_trials: int, objective) -> int:
    """run_worker over a ``tune.space``, as run_study calls it."""
    configure = partial(relevant_params, space=space)
    return run_worker(study, search_space(space), n_trials, objective, configure=configure)


def test_run_worker_prunes_the_weak_trial_and_keeps_the_budget(tmp_path):
    study = _study(tmp_path, "s", n_startup_trials=2, n_warmup_steps=0)
    space = tune_space({"x": {"low": 0.0, "high": 1.0, "targets": ["train.x"]}})
    curves = iter([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0], [0.1, 0.2, 0.3]])  # the third is weakest

    def objective(trial, params):
        values = next(curves)
        for step, value in enumerate(values):
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return values[-1]

    assert _run(study, space, 3, objective) == 3
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    assert study.best_value == 4.0
    assert _run(study, space, 3, objective) == 0  # budget spent: a new worker does nothing


def test_duplicate_configuration_is_not_trained_twice(tmp_path):
    study = _study(tmp_path, "d")
    space = tune_space(
        {
            "variant": {"choices": ["pool"], "targets": ["model.attention.variant"]},
            "time_window": {
                "choices": [4, 8],
                "targets": ["model.attention.time_window"],
                "only_if": {"variant": ["sep_sa", "sep_cma"]},
            },
        }
    )  # time_window is irrelevant to pool
    trained = []
    _run(study, space, 4, lambda trial, params: trained.append(params) or 1.0)
    assert trained == [{"variant": "pool"}]
    assert len(study.trials) == 4 and all(
        t.user_attrs.get(TrialAttr.DUPLICATE_OF) == 0 and t.value == 1.0 for t in study.trials[1:]
    )


def test_overrides_and_relevant_params():
    params = {
        "variant": "sep_cma",
        "layers": 2,
        "heads": 4,
        "dim": 32,
        "learning_rate": 0.002,
        "classification_loss": "exact",
        "num_sources": 4,
    }
    space = base_tune_space()
    over = as_overrides(params, space)
    assert over["model"]["attention"] == {
        "variant": "sep_cma",
        "layers": 2,
        "heads": 4,
        "dim": 32,
    }
    assert over["model"]["embedding"] == {"dim": 32} and over["train"]["loop"] == {
        "learning_rate": 0.002
    }
    assert over["train"]["classification_loss"] == "exact"
    train, model = with_tuned(
        {"loop": {"steps": 5, "learning_rate": 1}, "seed": 0},
        {"attention": {"variant": "pool", "dropout": 0.0}},
        over,
    )
    assert (
        train["loop"] == {"steps": 5, "learning_rate": 0.002}
        and model["attention"]["dropout"] == 0.0
    )
