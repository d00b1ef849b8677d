"""The Optuna study of `tune`: pruning and the trial budget, duplicate configurations, and the
overrides a trial's parameters make (no pipeline run: see tests/pipelines/test_tune.py)."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from audioscope_kedro.training.audioscope import with_tuned
from audioscope_kedro.tuning.study import as_overrides, make_storage, run_worker
from tests.helpers import base_tune_space, tune_space


def test_run_worker_prunes_the_weak_trial_and_keeps_the_budget(tmp_path):
    storage, lock = make_storage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(
        storage=storage,
        study_name="s",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    space = tune_space({"x": {"low": 0.0, "high": 1.0, "targets": ["train.x"]}})
    curves = iter([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0], [0.1, 0.2, 0.3]])  # the third is weakest

    def objective(trial, params):
        values = next(curves)
        for step, value in enumerate(values):
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return values[-1]

    assert run_worker(study, space, 3, objective, lock) == 3
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    assert study.best_value == 4.0
    assert (
        run_worker(study, space, 3, objective, lock) == 0
    )  # budget spent: a new worker does nothing


def test_duplicate_configuration_is_not_trained_twice(tmp_path):
    storage, lock = make_storage(f"sqlite:///{tmp_path}/d.db")
    study = optuna.create_study(
        storage=storage,
        study_name="d",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
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
    run_worker(study, space, 4, lambda trial, params: trained.append(params) or 1.0, lock)
    assert trained == [{"variant": "pool"}]
    assert len(study.trials) == 4 and all(
        t.user_attrs.get("duplicate_of") == 0 for t in study.trials[1:]
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
