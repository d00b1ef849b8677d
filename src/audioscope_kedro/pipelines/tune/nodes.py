"""Nodes of ``tune``: an Optuna study over the attention variants and their hyper-parameters."""

from __future__ import annotations

import logging
import os
import tempfile

import optuna
import pandas as pd

from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.models.separation import Separator
from audioscope_kedro.training.fit import apply_tuned_params, fit_audioscope
from audioscope_kedro.training.loop import CheckpointStore
from audioscope_kedro.tuning.study import as_overrides, make_storage, run_worker, search_space

log = logging.getLogger(__name__)


def tune_attention(
    clip_store: ClipStore,
    mom_table: pd.DataFrame,
    coincidence_scores: pd.DataFrame,
    pretrained_separator: Separator,
    params: dict,
    train_params: dict,
    model_params: dict,
) -> tuple[pd.DataFrame, dict]:
    """Run this worker's share of the study, then return the trials table and the best trial
    (objective: calibrated on-screen SI-SNR on the validation MoMs, reported at every
    validation so that the pruner can stop weak trials)."""
    storage, lock = make_storage(params["storage"])
    # One process on SQLite: the seed alone decides the samples. Several processes on a journal
    # or a database: each also mixes in its process id, or they would all sample the same.
    seed = (
        params["seed"]
        if str(params["storage"]).startswith("sqlite")
        else params["seed"] * 100_003 + os.getpid()
    )
    study = optuna.create_study(
        study_name=params["study_name"],
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=params["n_startup_trials"]),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=params["pruner"]["n_startup_trials"],
            n_warmup_steps=params["pruner"]["n_warmup_steps"],
        ),
    )
    base_train, _ = apply_tuned_params(
        train_params, model_params, {"train": params.get("train_overrides", {})}
    )

    def objective(trial: optuna.Trial, sampled: dict) -> float:
        train_p, model_p = apply_tuned_params(base_train, model_params, as_overrides(sampled))
        if model_p["separator"]["num_sources"] != pretrained_separator.config.num_sources:
            train_p["init_from_pretrained"] = False  # no pre-trained separator with that M
        key = "val_calibrated_on_screen_si_snr"

        def report(step: int, row: dict) -> None:
            trial.report(row[key], step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"trial {trial.number} pruned at step {step}")

        with tempfile.TemporaryDirectory() as folder:
            _, curve = fit_audioscope(
                clip_store,
                mom_table,
                coincidence_scores,
                pretrained_separator,
                CheckpointStore(folder),
                train_p,
                model_p,
                on_validate=report,
                desc=f"trial {trial.number}",
            )
        return float(curve[key].iloc[-1])

    ran = run_worker(study, search_space(params["space"]), params["n_trials"], objective, lock)
    log.info("this worker ran %d trials; the study has %d", ran, len(study.trials))
    trials = study.trials_dataframe()
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return trials, {}
    best = max(complete, key=lambda t: t.value)
    return trials, {
        "trial": best.number,
        "value": best.value,
        "objective": "val_calibrated_on_screen_si_snr",
        "params": best.params,
        **as_overrides(best.params),
    }
