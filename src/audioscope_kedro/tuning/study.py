"""Optuna studies over the attention variants and the hyper-parameters that go with each.

Storage: an SQLite file for one process, Optuna's journal file for several processes on one
machine (``journal:<path>``), a database URL (PostgreSQL, MySQL) for several machines. The study
is named and resumed if it exists. Workers share the trial budget: a worker takes a new trial
only while finished + running trials are fewer than ``n_trials`` (checked under a file lock on
one machine), and a sampled configuration that a finished trial already ran is not trained
again: it gets that trial's value.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import optuna
from filelock import FileLock
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

log = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def make_storage(spec: str) -> tuple[str | optuna.storages.BaseStorage, Path | None]:
    """Storage from a parameter, and the lock file guarding the trial budget (None for a
    remote database). ``journal:<file>``: journal file; ``sqlite:///<file>``; any other URL."""
    if spec.startswith("journal:"):
        path = Path(spec.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend), path.with_name(path.name + ".budget.lock")
    if spec.startswith("sqlite:///"):
        path = Path(spec.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return spec, path.with_name(path.name + ".budget.lock")
    return spec, None


def search_space(space: dict) -> dict[str, optuna.distributions.BaseDistribution]:
    """Distributions from the ``tune.space`` parameters: a list is categorical; ``{low, high}``
    is a range (``log: true`` for learning rates; integers give an integer range)."""
    out = {}
    for name, spec in space.items():
        if isinstance(spec, list):
            out[name] = CategoricalDistribution(spec)
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log"):
            out[name] = IntDistribution(spec["low"], spec["high"])
        else:
            out[name] = FloatDistribution(
                float(spec["low"]), float(spec["high"]), log=bool(spec.get("log"))
            )
    return out


def relevant_params(params: dict) -> dict:
    """The hyper-parameters that belong to the sampled variant: ``time_window`` only matters to
    the separable variants, so the others drop it (and do not count as different trials)."""
    out = dict(params)
    if not str(out.get("variant", "")).startswith("sep_"):
        out.pop("time_window", None)
    return out


def as_overrides(params: dict) -> dict:
    """A trial's parameters as ``train`` and ``model`` overrides (the format of best params)."""
    p = relevant_params(params)
    attention = {k: p[k] for k in ("variant", "layers", "heads", "dim", "time_window") if k in p}
    model: dict = {"attention": attention}
    if "dim" in p:
        model["embedding"] = {"dim": p["dim"]}
    if "num_sources" in p:
        model["separator"] = {"num_sources": p["num_sources"]}
    train: dict = {}
    if "learning_rate" in p:
        train["loop"] = {"learning_rate": p["learning_rate"]}
    if "classification_loss" in p:
        train["classification_loss"] = p["classification_loss"]
    return {"model": model, "train": train}


def _budget_lock(lock_path: Path | None):
    return FileLock(str(lock_path)) if lock_path is not None else contextlib.nullcontext()


def run_worker(
    study: optuna.Study,
    space: dict[str, optuna.distributions.BaseDistribution],
    n_trials: int,
    objective: Callable[[optuna.Trial, dict], float],
    lock_path: Path | None,
) -> int:
    """Take trials until the study holds ``n_trials`` finished or running ones; returns how
    many this worker ran. ``objective(trial, params)`` may raise ``optuna.TrialPruned``."""
    ran = 0
    while True:
        with _budget_lock(lock_path):
            taken = len(study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING)))
            if taken >= n_trials:
                return ran
            trial = study.ask(space)
        params = relevant_params(trial.params)
        duplicate = next(
            (
                t
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if relevant_params(t.params) == params
            ),
            None,
        )
        if duplicate is not None:
            log.info("trial %d repeats trial %d: reusing its value", trial.number, duplicate.number)
            trial.set_user_attr("duplicate_of", duplicate.number)
            study.tell(trial, duplicate.value)
            continue
        try:
            value = objective(trial, params)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except Exception:
            study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            study.tell(trial, value)
        ran += 1
