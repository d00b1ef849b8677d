"""Several Optuna workers on one study: the storage, the trial budget, configurations trained once.

The storage is the only thing the workers share (no file lock: workers on other machines could
not see it), so every rule below is decided from what the storage holds:

- **Storage.** ``sqlite:///<file>`` for one process, ``journal:<file>`` (Optuna's journal
  file) for several processes on one machine, a database URL for several machines:
  ``postgresql://user@host:5432/db`` is opened with the ``psycopg`` driver.
- **Budget.** ``n_trials`` is the number of trials of the whole study, all workers together.
  The storage numbers trials atomically (PostgreSQL: under a lock on the study's row; journal:
  in log order), so every worker agrees on which trial is the ``n``-th. A worker takes a trial
  while fewer than ``n_trials`` are taken; two workers can both pass that check at once, so
  after asking, a trial counts the trials ahead of it (smaller numbers, not failed) and gives
  itself back (state FAIL, user attribute ``beyond_budget``) when ``n_trials`` are already
  there. A trial counts only trials created before it, whose count only falls (a trial never
  leaves FAIL), so at most ``n_trials`` trials are ever kept, and exactly ``n_trials`` when
  none fails.
- **A configuration is trained once.** Samplers can draw a configuration again (a grid, a
  categorical space, a queue of ``enqueue_trial``), and two workers can draw the same one at
  once. Each trial writes its configuration, then reads the others' (each write is committed
  before the read, so of two trials of one configuration at least one sees the other), and
  decides: it repeats a trial of its configuration that trains, or an earlier undecided one
  (smaller number: the tie-break every worker agrees on); it waits for a later undecided one
  to decide (milliseconds); else it trains. A repeat is not trained: it takes its original's
  value when that trial has completed, else it is pruned (the original's result comes with
  the original; a pruned repeat tells TPE, as its constant liar does for running trials, to
  look elsewhere). Failed trials do not count: their configuration may be trained again.
- **Pruning** needs nothing more: the pruner reads the other workers' intermediate values from
  the storage.

Every trial records the worker that took it (``host:pid``) in its user attribute ``worker``.

**A worker killed part-way** (SIGKILL, a lost machine) leaves its trial RUNNING. A worker
started later on the same host takes it over before it takes a new trial (:func:`adopt_trial`:
the recorded worker's process is gone), under a file lock so that two starting workers do not
both take it, and trains it again from the trial's checkpoints. Sampling is a pure function of
the seed, the trial's number and the finished trials (:class:`TrialSeededSampler`), so a study
killed and started again ends with the trials of an uninterrupted one.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from audioscope_kedro.atomic import process_alive
from audioscope_kedro.run_lock import AlreadyRunningError, RunLock

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
TAKEN = (*FINISHED, TrialState.RUNNING)
# How long a trial waits for a later trial of its configuration to decide; deciding takes
# milliseconds, so running out means that trial's worker died in between.
DECISION_WAIT_S = 60.0
POLL_S = 0.05


class TrialAttr(StrEnum):
    """The user attributes the workers write on their trials."""

    WORKER = "worker"  # host:pid of the worker that took the trial
    CONFIGURATION = "configuration"  # JSON of the values that make the trial's configuration
    TRAINED = "trained"  # True: this trial trains its configuration
    DUPLICATE_OF = "duplicate_of"  # number of the trial whose configuration it repeats
    BEYOND_BUDGET = "beyond_budget"  # True: given back, the budget was taken


def _mark(trial: optuna.Trial, attr: TrialAttr, value: Any) -> None:
    trial.set_user_attr(attr.value, value)  # a plain str key for every storage's serializer


def worker_id() -> str:
    """``host:pid``: distinct for workers on several machines, where pids may repeat."""
    return f"{socket.gethostname()}:{os.getpid()}"


def is_shared(spec: str) -> bool:
    """Whether a storage parameter lets several processes work on the study (all but SQLite)."""
    return not spec.startswith("sqlite")


def _mixed_seed(*parts: Any) -> int:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def worker_seed(seed: int, spec: str) -> int:
    """The sampler seed of this worker. On SQLite (one process) the seed alone; on a shared
    storage the seed mixed with the worker's identity, or all workers would sample the same
    configurations."""
    if not is_shared(spec):
        return seed
    return _mixed_seed(seed, worker_id())


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Optuna's TPE sampler, with each draw seeded by ``(seed, trial number, parameter)``.

    A ``TPESampler(seed=...)`` draws from one random stream that a restarted process begins
    afresh, so a study resumed after a kill (or run in several sessions) would sample other
    values than one uninterrupted session. Here every draw is made by a TPE sampler seeded for
    that draw: what TPE learns comes from the study's finished trials, never from the state of
    the sampler, so a trial's values are a pure function of the seed, its number and the trials
    before it, whichever process draws them (also the rest of a trial whose ``ask`` a kill cut
    short). ``tpe`` are ``TPESampler``'s keyword arguments."""

    def __init__(self, seed: int, **tpe: Any):
        self._seed = seed
        self._tpe_kwargs = tpe

    def _tpe(self, trial: FrozenTrial, draw: str) -> optuna.samplers.TPESampler:
        seed = _mixed_seed(self._seed, trial.number, draw)
        return optuna.samplers.TPESampler(seed=seed, **self._tpe_kwargs)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._tpe(trial, "relative").infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._tpe(trial, "relative").sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        tpe = self._tpe(trial, f"param:{param_name}")
        return tpe.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe(trial, "").before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001 - BaseSampler's
        self._tpe(trial, "").after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to reseed: every draw is seeded from the trial (``optuna`` calls this in
        the processes of ``n_jobs``, which this project does not use)."""


def database_url(spec: str) -> str:
    """A database URL with its driver: ``postgresql://`` (and ``postgres://``) use psycopg 3,
    the driver in requirements.txt; SQLAlchemy would otherwise look for psycopg2."""
    for scheme in ("postgresql://", "postgres://"):
        if spec.startswith(scheme):
            return "postgresql+psycopg://" + spec.removeprefix(scheme)
    return spec


def make_storage(spec: str) -> str | optuna.storages.BaseStorage:
    """The Optuna storage of a ``tune.storage`` parameter: ``journal:<file>``,
    ``sqlite:///<file>`` or a database URL (see the module's docstring)."""
    if spec.startswith("journal:"):
        path = Path(spec.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    if spec.startswith("sqlite:///"):
        Path(spec.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return spec
    url = database_url(spec)
    if url.startswith("postgresql+psycopg://"):
        try:  # SQLAlchemy would load it by name; importing it here gives the clear message
            import psycopg  # noqa: F401
        except ModuleNotFoundError as err:
            raise RuntimeError(
                f"tune.storage {_shown(url)}: PostgreSQL needs the psycopg driver "
                "(pip install 'psycopg[binary]', pinned in requirements.txt)"
            ) from err
    try:
        # pre-ping: a trial trains for minutes to hours between two uses of a pooled connection,
        # which a server or a firewall may have closed meanwhile
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    except Exception as err:
        raise RuntimeError(
            f"tune.storage {_shown(url)}: cannot open the study storage: {err}"
        ) from err


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def take_trial(
    study: optuna.Study, distributions: Mapping[str, BaseDistribution], n_trials: int
) -> optuna.Trial | None:
    """A new trial (sampled, or the next of the study's queue) within the budget of
    ``n_trials``, or None when the budget is taken."""
    while True:
        if len(study.get_trials(deepcopy=False, states=TAKEN)) >= n_trials:
            return None
        trial = study.ask(dict(distributions))
        _mark(trial, TrialAttr.WORKER, worker_id())
        if within_budget(study, trial.number, n_trials):
            return trial
        # another worker took the last place between the check above and the ask
        log.info("trial %d is beyond the budget of %d: given back", trial.number, n_trials)
        _mark(trial, TrialAttr.BEYOND_BUDGET, True)
        study.tell(trial, state=TrialState.FAIL)


def within_budget(study: optuna.Study, number: int, n_trials: int) -> bool:
    """Whether fewer than ``n_trials`` trials that have not failed are ahead of trial
    ``number`` (a queued trial ahead counts: someone will run it)."""
    ahead = [t for t in study.get_trials(deepcopy=False) if t.number < number]
    return sum(t.state != TrialState.FAIL for t in ahead) < n_trials


def configuration_of(trial: FrozenTrial, configure: Callable[[dict], dict]) -> str | None:
    """The configuration a trial wrote, or for a finished trial of a study begun before the
    attribute existed, the one its parameters make; None for a trial that has not written it
    yet (queued, or just asked)."""
    written = trial.user_attrs.get(TrialAttr.CONFIGURATION)
    if written is not None:
        return written
    if trial.state in FINISHED and TrialAttr.DUPLICATE_OF not in trial.user_attrs:
        return canonical(configure(trial.params))
    return None


def canonical(configuration: Mapping[str, Any]) -> str:
    """One string per configuration, whatever the order of its values."""
    return json.dumps(dict(configuration), sort_keys=True)


def _trains(trial: FrozenTrial) -> bool | None:
    """True: it trains (or trained) its configuration; False: it repeats another's; None: it
    has not decided yet."""
    if TrialAttr.DUPLICATE_OF in trial.user_attrs:
        return False
    if trial.user_attrs.get(TrialAttr.TRAINED) or trial.state in FINISHED:
        return True
    return None


def find_original(
    study: optuna.Study,
    trial: optuna.Trial,
    configuration: str,
    configure: Callable[[dict], dict],
    wait_s: float = DECISION_WAIT_S,
) -> FrozenTrial | None:
    """Write ``trial``'s configuration and decide: the trial it repeats, or None when it is to
    train its configuration (then it is marked as the one that trains it)."""
    _mark(trial, TrialAttr.CONFIGURATION, configuration)
    deadline = time.monotonic() + wait_s
    while True:
        same = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number
            and t.state != TrialState.FAIL
            and configuration_of(t, configure) == configuration
        ]
        trains = [t for t in same if _trains(t)]
        if trains:
            return trains[0]
        undecided = [t for t in same if _trains(t) is None]
        earlier = [t for t in undecided if t.number < trial.number]
        if earlier:
            # it sees this trial (it reads after writing, as this one did) and waits for it
            return earlier[0]
        if undecided and time.monotonic() < deadline:
            time.sleep(POLL_S)  # a later trial of this configuration is deciding
            continue
        if undecided:
            log.warning(
                "trial %d: trial(s) %s of the same configuration never decided (their worker "
                "stopped?); training it",
                trial.number,
                [t.number for t in undecided],
            )
        _mark(trial, TrialAttr.TRAINED, True)
        return None


def _tell_repeat(study: optuna.Study, trial: optuna.Trial, original: FrozenTrial) -> None:
    _mark(trial, TrialAttr.DUPLICATE_OF, original.number)
    if original.state == TrialState.COMPLETE:
        log.info("trial %d repeats trial %d: its value", trial.number, original.number)
        study.tell(trial, original.value)
    else:
        log.info(
            "trial %d repeats trial %d (%s): pruned, not trained again",
            trial.number,
            original.number,
            original.state.name,
        )
        study.tell(trial, state=TrialState.PRUNED)


@contextmanager
def claim_lock(path: Path) -> Iterator[None]:
    """Hold the exclusive lock ``path`` (``run_lock.RunLock``: a flock the kernel drops when
    its process dies), waiting while another worker holds it: claiming a trial takes
    milliseconds."""
    lock = RunLock(path, "a tune worker taking over an abandoned trial")
    while True:
        try:
            lock.acquire()
            break
        except AlreadyRunningError:
            time.sleep(POLL_S)
    try:
        yield
    finally:
        lock.release()


def storage_home(spec: str) -> Path:
    """Where this host keeps the files that go with a study storage (its locks, its trials'
    checkpoints): the storage file itself for ``sqlite:///`` and ``journal:``, a folder of
    the temporary directory named after the URL for a database."""
    if spec.startswith("sqlite:///"):
        return Path(spec.removeprefix("sqlite:///"))
    if spec.startswith("journal:"):
        return Path(spec.removeprefix("journal:"))
    digest = hashlib.sha1(spec.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"audioscope-tune-{digest}"


@dataclass(frozen=True)
class Recovery:
    """How a starting worker takes over the trials that killed workers left RUNNING.

    ``lock``: held while a trial is claimed (:func:`claim_lock`: one claimer at a time on
    this host).
    ``unmarked_after_s``: a RUNNING trial that never recorded its worker (killed between
    ``ask`` and the record) is abandoned after this many seconds; 0 where this worker holds
    the storage alone (SQLite under its run lock).
    """

    lock: Path
    unmarked_after_s: float = DECISION_WAIT_S


def abandoned(trial: FrozenTrial, unmarked_after_s: float = DECISION_WAIT_S) -> bool:
    """Whether a RUNNING trial's worker is gone: a process of this host that no longer runs
    (workers of other hosts cannot be checked from here), or no worker recorded for longer
    than ``unmarked_after_s``."""
    if trial.state != TrialState.RUNNING:
        return False
    worker = trial.user_attrs.get(TrialAttr.WORKER)
    if worker is None:
        start = trial.datetime_start
        age = (datetime.datetime.now() - start).total_seconds() if start else float("inf")
        return age >= unmarked_after_s
    host, _, pid = str(worker).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return int(pid) != os.getpid() and not process_alive(int(pid))


def adopt_trial(
    study: optuna.Study,
    distributions: Mapping[str, BaseDistribution],
    recovery: Recovery,
) -> optuna.Trial | None:
    """The first trial a gone worker left RUNNING, now recorded as this worker's (with the
    values its ``ask`` had not drawn yet, if it was killed in there), or None."""
    if not any(
        abandoned(t, recovery.unmarked_after_s)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ):
        return None
    with claim_lock(recovery.lock):
        # read again under the lock: another starting worker may have taken it meanwhile
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if abandoned(frozen, recovery.unmarked_after_s):
                # the Trial of an existing id, as study.ask builds it (no public accessor)
                trial = optuna.Trial(study, frozen._trial_id)  # noqa: SLF001
                previous = frozen.user_attrs.get(TrialAttr.WORKER, "an unrecorded worker")
                _mark(trial, TrialAttr.WORKER, worker_id())
                break
        else:
            return None
    for name, distribution in distributions.items():
        trial._suggest(name, distribution)  # noqa: SLF001 - as study.ask; drawn ones are kept
    log.warning(
        "trial %d was left running by %s, which is gone: this worker resumes it",
        trial.number,
        previous,
    )
    return trial


def _next_trial(
    study: optuna.Study,
    distributions: Mapping[str, BaseDistribution],
    n_trials: int,
    recovery: Recovery | None,
) -> optuna.Trial | None:
    """An abandoned trial to resume (within the budget), else a new one, else None."""
    while recovery is not None and (trial := adopt_trial(study, distributions, recovery)):
        if within_budget(study, trial.number, n_trials):
            return trial
        _mark(trial, TrialAttr.BEYOND_BUDGET, True)  # its ask was killed before this check
        study.tell(trial, state=TrialState.FAIL)
    return take_trial(study, distributions, n_trials)


def run_worker(
    study: optuna.Study,
    distributions: Mapping[str, BaseDistribution],
    n_trials: int,
    objective: Callable[[optuna.Trial, dict], float],
    configure: Callable[[dict], dict] = dict,
    recovery: Recovery | None = None,
) -> int:
    """Take trials until the study's budget of ``n_trials`` is taken; returns how many this
    worker trained. ``configure(params)`` gives the values that make a trial's configuration
    (two trials that give the same are one configuration); ``objective(trial, configuration)``
    trains it and may raise ``optuna.TrialPruned``. With ``recovery``, trials that killed
    workers left RUNNING are resumed first (:func:`adopt_trial`)."""
    trained = 0
    while (trial := _next_trial(study, distributions, n_trials, recovery)) is not None:
        told = False
        try:
            configuration = configure(trial.params)
            original = find_original(study, trial, canonical(configuration), configure)
            if original is not None:
                _tell_repeat(study, trial, original)
                told = True
                continue
            try:
                value = objective(trial, configuration)
            except optuna.TrialPruned:
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, value)
            told = True
            trained += 1
        finally:
            if not told:  # an error or an interrupt: the trial gives its place back
                study.tell(trial, state=TrialState.FAIL)
    return trained
