"""Optuna studies over the attention variants and the hyper-parameters that go with each.

The study is named and resumed if it exists. How several workers share it (storage, the trial
budget of the whole study, a configuration trained once, taking over the trial of a killed
worker) is in :mod:`.workers`.

Each trial trains with checkpoints in a folder of its own (``TuneParams.checkpoints``), removed
once the trial is finished: a worker killed part-way through a trial and started again resumes
that trial from its last checkpoint, and the study ends as an uninterrupted one would.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.evaluation.metric_names import TUNE_OBJECTIVE
from audioscope_kedro.models.separation import Separator
from audioscope_kedro.parameters import merge, parse
from audioscope_kedro.run_lock import RunLock
from audioscope_kedro.training.audioscope import (
    TrainParams,
    fit_audioscope,
    model_config,
    with_tuned,
)
from audioscope_kedro.training.checkpoints import CheckpointStore
from audioscope_kedro.tuning.workers import (
    DECISION_WAIT_S,
    Recovery,
    TrialSeededSampler,
    is_shared,
    make_storage,
    run_worker,
    storage_home,
    worker_seed,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchDimension:
    """One entry of ``tune.space``: what to sample and where the value goes.

    ``choices`` (categorical) or ``low``/``high`` (a range; ``log`` for learning rates;
    integers give an integer range). ``targets`` are dotted paths into the ``train`` and
    ``model`` parameter blocks (one value may set several, e.g. the attention and embedding
    widths). ``only_if`` names other dimensions and the values for which this one matters
    (e.g. a setting of the separable variants only); otherwise it is dropped from the trial
    and does not make two trials different.
    """

    targets: tuple[str, ...]
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    only_if: dict[str, list[Any]] | None = None

    def __post_init__(self) -> None:
        if (self.choices is None) == (self.low is None or self.high is None):
            raise ValueError("a tune.space entry takes either choices or low and high")
        for target in self.targets:
            if target.split(".")[0] not in ("train", "model"):
                raise ValueError(f"tune.space target {target!r} must start with train. or model.")

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.choices is not None:
            return CategoricalDistribution(list(self.choices))
        if isinstance(self.low, int) and isinstance(self.high, int) and not self.log:
            return IntDistribution(self.low, self.high)
        return FloatDistribution(float(self.low), float(self.high), log=self.log)


def search_space(space: dict[str, SearchDimension]) -> dict[str, BaseDistribution]:
    """Optuna distributions of the ``tune.space`` entries."""
    return {name: dim.distribution() for name, dim in space.items()}


def relevant_params(params: dict, space: dict[str, SearchDimension]) -> dict:
    """The sampled values that matter for this trial (see ``SearchDimension.only_if``)."""
    out = dict(params)
    for name, dim in space.items():
        if dim.only_if and any(params.get(k) not in v for k, v in dim.only_if.items()):
            out.pop(name, None)
    return out


def as_overrides(params: dict, space: dict[str, SearchDimension]) -> dict:
    """A trial's values as ``{"train": {...}, "model": {...}}`` overrides (the format of
    ``tune_best_params.json``)."""
    out: dict = {"train": {}, "model": {}}
    for name, value in relevant_params(params, space).items():
        for target in space[name].targets:
            *path, leaf = target.split(".")
            node = out
            for part in path:
                node = node.setdefault(part, {})
            node[leaf] = value
    return out


@dataclass(frozen=True)
class PrunerParams:
    n_startup_trials: int = 2  # trials that are never pruned
    n_warmup_steps: int = 100  # no pruning before this training step


@dataclass(frozen=True)
class TuneParams:
    """The ``tune`` parameter block."""

    space: dict[str, SearchDimension]
    study_name: str = "audioscope_attention"
    # sqlite:///<file> (one process), journal:<file> (several processes on one machine), or a
    # database URL such as postgresql://user@host:5432/db (several machines; see .workers)
    storage: str = "sqlite:///data/07_model_output/optuna.db"
    n_trials: int = 10  # in the whole study, shared by all workers
    seed: int = 0
    n_startup_trials: int = 5  # random trials before TPE takes over
    pruner: PrunerParams = field(default_factory=PrunerParams)
    train_overrides: dict[str, Any] = field(default_factory=dict)  # each trial trains shorter
    # each trial's checkpoints, in <checkpoints>/<study_name>/trial_<number> while it runs;
    # null: beside a storage file (<folder>/<file stem>_checkpoints), in the temporary
    # directory for a database URL
    checkpoints: str | None = None

    def checkpoint_root(self) -> Path:
        """The folder of this study's trial checkpoints."""
        if self.checkpoints is not None:
            return Path(self.checkpoints) / self.study_name
        home = storage_home(self.storage)
        return home.with_name(f"{home.stem}_checkpoints") / self.study_name


def trial_folder(root: Path, number: int) -> Path:
    return root / f"trial_{number:05d}"


def _remove_finished_checkpoints(study: optuna.Study, root: Path) -> None:
    """Remove the checkpoint folders of trials that are finished (their result is in the
    study) or unknown to it; those of RUNNING trials stay, to be resumed."""
    if not root.is_dir():
        return
    running = {
        trial_folder(root, t.number).name
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    }
    for folder in root.glob("trial_*"):
        if folder.name not in running:
            shutil.rmtree(folder, ignore_errors=True)


def run_study(
    clip_store: ClipStore,
    mom_table: pd.DataFrame,
    coincidence_scores: pd.DataFrame,
    pretrained_separator: Separator,
    params: TuneParams,
    train_params: dict[str, Any],
    model_params: dict[str, Any],
    clip_seconds: float,
) -> tuple[pd.DataFrame, dict]:
    """Run this worker's share of the study; returns the trials table and the best trial in
    the format ``train.use_tuned_params`` reads (empty when no trial completed).

    On SQLite (one worker at a time) the worker holds a lock beside the database for the
    whole run: a second one fails at once with ``run_lock.AlreadyRunningError``."""
    with _worker_slot(params) as exclusive:
        study = optuna.create_study(
            study_name=params.study_name,
            storage=make_storage(params.storage),
            load_if_exists=True,
            direction="maximize",
            # constant_liar: a running trial (another worker's) counts as a bad one, so that
            # concurrent workers do not all sample around the same promising point
            sampler=TrialSeededSampler(
                seed=worker_seed(params.seed, params.storage),
                n_startup_trials=params.n_startup_trials,
                constant_liar=True,
            ),
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=params.pruner.n_startup_trials,
                n_warmup_steps=params.pruner.n_warmup_steps,
            ),
        )
        base_train = merge(train_params, params.train_overrides)

        def objective(trial: optuna.Trial, sampled: dict) -> float:
            train_p, model_p = with_tuned(
                base_train, model_params, as_overrides(sampled, params.space)
            )
            config = model_config(model_p, clip_store, clip_seconds)
            settings = parse(TrainParams, train_p, "train")
            if config.separator.num_sources != pretrained_separator.config.num_sources:
                settings = replace(
                    settings, init_from_pretrained=False
                )  # no pre-trained one with M

            def report(step: int, row: dict) -> None:
                trial.report(row[TUNE_OBJECTIVE], step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"trial {trial.number} pruned at step {step}")

            # the trial's own folder, kept until the trial is finished in the study (removed by
            # the next trial's start or the end of the run): a worker that takes this trial over
            # after a kill resumes from its last checkpoint
            _remove_finished_checkpoints(study, root)
            _, curve = fit_audioscope(
                clip_store,
                mom_table,
                coincidence_scores,
                pretrained_separator,
                CheckpointStore(trial_folder(root, trial.number)),
                settings,
                config,
                on_validate=report,
                desc=f"trial {trial.number}",
            )
            return float(curve[TUNE_OBJECTIVE].iloc[-1])

        root = params.checkpoint_root()
        home = storage_home(params.storage)
        ran = run_worker(
            study,
            search_space(params.space),
            params.n_trials,
            objective,
            configure=partial(relevant_params, space=params.space),
            # alone on SQLite (under the run lock), any RUNNING trial is a killed worker's
            recovery=Recovery(
                lock=home.with_name(f"{home.name}.claim.lock"),
                unmarked_after_s=0.0 if exclusive else DECISION_WAIT_S,
            ),
        )
        _remove_finished_checkpoints(study, root)
        log.info("this worker trained %d trials; the study has %d", ran, len(study.trials))
        trials = study.trials_dataframe()
        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        if not complete:
            return trials, {}
        best = max(complete, key=lambda t: t.value)
        return trials, {
            "trial": best.number,
            "value": best.value,
            "objective": TUNE_OBJECTIVE,
            "params": best.params,
            **as_overrides(best.params, params.space),
        }


@contextmanager
def _worker_slot(params: TuneParams) -> Iterator[bool]:
    """Yields whether this worker has the storage to itself: on SQLite under a lock file
    beside the database (``run_lock.RunLock``, released when the run ends or its process
    dies; a second worker is refused with ``AlreadyRunningError`` naming the first), else
    never."""
    if is_shared(params.storage):
        yield False
        return
    home = storage_home(params.storage)
    what = (
        f"tune on the SQLite study {params.study_name!r} in {home} (SQLite takes one worker at "
        "a time; to run several, give every worker tune.storage=journal:<file>, docs/scale.md)"
    )
    with RunLock(home.with_name(f"{home.name}.lock"), what):
        yield True
