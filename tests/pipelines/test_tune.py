"""The `tune` pipeline: the study it writes, resuming it, `train` taking the best trial, and two
worker processes sharing one journal storage."""

from __future__ import annotations

import json
import shutil
import subprocess

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from audioscope_kedro.tuning.study import relevant_params
from audioscope_kedro.tuning.workers import make_storage
from tests.helpers import TEST_DATA, base_tune_space, kedro_process_args, run

pytestmark = pytest.mark.slow


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
    best = json.loads(
        (project / TEST_DATA / "07_model_output/tuned/tune_best_params.json").read_text()
    )
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
    storage = make_storage(f"journal:{journal}")
    study = optuna.load_study(study_name="audioscope_attention", storage=storage)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    # a worker that found the budget full gives its trial back (FAIL, beyond_budget)
    assert len(finished) == 4
    assert all(t in finished or t.user_attrs.get("beyond_budget") for t in study.trials)
    assert len({t.number for t in finished}) == 4
    trained = [
        tuple(sorted(relevant_params(t.params, base_tune_space()).items()))
        for t in finished
        if "duplicate_of" not in t.user_attrs
    ]
    assert len(trained) == len(set(trained)), "a configuration was trained twice"
