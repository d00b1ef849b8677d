"""`tune`: the study's contents, pruning, and two workers sharing one journal storage."""

from __future__ import annotations

import json
import shutil
import subprocess

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from audioscope_kedro.parameters import parse
from audioscope_kedro.training.audioscope import with_tuned
from audioscope_kedro.tuning.study import (
    TuneParams,
    as_overrides,
    make_storage,
    relevant_params,
    run_worker,
)
from tests.conftest import PROJECT_ROOT
from tests.helpers import TEST_DATA
from tests.pipelines.conftest import kedro_process_args, run

pytestmark = pytest.mark.slow


def _space(entries: dict) -> dict:
    return parse(TuneParams, {"space": entries}, "tune").space


def base_space() -> dict:
    """The search space of conf/base/parameters_tune.yml."""
    tune = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_tune.yml").read_text())["tune"]
    return _space(tune["space"])


def test_run_worker_prunes_the_weak_trial_and_keeps_the_budget(tmp_path):
    storage, lock = make_storage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(
        storage=storage,
        study_name="s",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    space = _space({"x": {"low": 0.0, "high": 1.0, "targets": ["train.x"]}})
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
    space = _space(
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
        "time_window": 8,
        "learning_rate": 0.002,
        "classification_loss": "exact",
        "num_sources": 4,
    }
    space = base_space()
    over = as_overrides(params, space)
    assert over["model"]["attention"] == {
        "variant": "sep_cma",
        "layers": 2,
        "heads": 4,
        "dim": 32,
        "time_window": 8,
    }
    assert over["model"]["embedding"] == {"dim": 32} and over["train"]["loop"] == {
        "learning_rate": 0.002
    }
    assert "time_window" not in relevant_params({**params, "variant": "sa"}, space)
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


def test_tune_pipeline_study_and_train_takes_best(chain, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(chain, project, symlinks=True)
    run(project, "tune")
    trials = pd.read_csv(project / TEST_DATA / "07_model_output/tune_trials.csv")
    assert len(trials) == 3 and set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    study = optuna.load_study(
        study_name="audioscope_attention",
        storage=f"sqlite:///{project / TEST_DATA}/07_model_output/optuna.db",
    )
    assert len(study.trials) == 3
    for t in study.trials:
        assert (
            t.params["variant"] in {"pool", "sep_sa", "cma"} and t.intermediate_values
        )  # reported during training
    best = json.loads((project / TEST_DATA / "07_model_output/tune_best_params.json").read_text())
    assert (
        best["value"] == study.best_value
        and best["model"]["attention"]["variant"] == study.best_params["variant"]
    )
    # a second run resumes the study: the budget is spent, nothing more is run
    run(project, "tune")
    assert (
        len(
            optuna.load_study(
                study_name="audioscope_attention",
                storage=f"sqlite:///{project / TEST_DATA}/07_model_output/optuna.db",
            ).trials
        )
        == 3
    )
    # train takes the best trial's settings when asked to
    run(project, "train", train={"use_tuned_params": True})
    config = json.loads(
        (project / TEST_DATA / "06_models/trained_audioscope/config.json").read_text()
    )
    assert config["attention"]["variant"] == best["model"]["attention"]["variant"]


def test_two_workers_share_one_journal_study(chain, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(chain, project, symlinks=True)
    journal = project / TEST_DATA / "07_model_output/journal.log"
    params = f"tune.storage=journal:{journal},tune.n_trials=4"
    cmd, env = kedro_process_args("tune", params)
    workers = [
        subprocess.Popen(
            cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    for w in workers:
        out, _ = w.communicate(timeout=600)
        assert w.returncode == 0, out.decode()[-3000:]
    storage, _ = make_storage(f"journal:{journal}")
    study = optuna.load_study(study_name="audioscope_attention", storage=storage)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(study.trials) == len(finished) == 4
    assert len({t.number for t in study.trials}) == 4
    trained = [
        tuple(sorted(relevant_params(t.params, base_space()).items()))
        for t in finished
        if "duplicate_of" not in t.user_attrs
    ]
    assert len(trained) == len(set(trained)), "a configuration was trained twice"
