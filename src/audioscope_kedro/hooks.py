"""Kedro hooks: a lock per pipeline run, so that two runs never write the same outputs at once.

``kedro run --pipelines P --env E`` holds ``<data_root of E>/.locks/P.lock`` (``run_lock.py``:
``fcntl.flock``, released by the kernel when the process dies, SIGKILL included) from
``before_pipeline_run`` to ``after_pipeline_run`` / ``on_pipeline_error``. A second run of P on
the same data root stops before its first node with an :class:`AlreadyRunningError` naming
the pipeline, the environment and the pid and host of the run holding it (``kedro run`` exits
with status 1). The lock is per pipeline *and data root*: environments that write under
different data roots (``data/``, ``data/demo/``, ``data/test/``) never block each other;
two environments sharing a data root write the same files, so they do.

A run holds the lock of every registered pipeline it runs nodes of: ``kedro run``
(``__default__``) holds those of ``ingest`` to ``evaluate``, so it and a ``kedro run --pipeline
train`` exclude each other; ``--nodes decode_clips`` holds ``ingest``'s. Two exceptions, where
runs at once are the design:

- ``tune``: workers are ``kedro run --pipeline tune`` processes sharing one Optuna study (the
  storage hands out trials; README, "Several workers"); no lock.
- ingest across machines (docs/scale.md): a run of only ``decode_clips`` with
  ``ingest.num_nodes > 1`` holds ``ingest.lock`` *shared* and its own
  ``ingest-node-<r>-of-<n>.lock`` exclusively: the nodes run at once, a second run of the same
  node rank is refused, and so is a one-machine ingest (exclusive) while nodes run.

A run that writes a clip store (a :class:`ClipStoreDataset` output) also holds the store's
lock (``run_lock.store_lock_path``), the one ``python -m audioscope_kedro.data.ingest merge`` /
``convert`` take: a merge by hand never races an ingest.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.framework.cli.utils import KedroCliError
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

from audioscope_kedro.run_lock import LOCK_DIR, AlreadyRunningError, RunLock, store_lock_path

log = logging.getLogger(__name__)

# pipelines whose runs go on at once by design (workers of one Optuna study)
CONCURRENT_RUNS = frozenset({"tune"})


def per_node_rank() -> dict[str, frozenset[str]]:
    """The nodes that the machines of a multi-node build run at once, one per
    ``<pipeline>.node_rank`` of ``<pipeline>.num_nodes`` (the block of the pipeline's name).
    Imported here, not at the top: settings.py imports this module, and the pipelines import
    torch (seconds) that `kedro --help` should not pay."""
    from audioscope_kedro.pipelines.ingest.pipeline import NODE_RANK_NODES

    return {"ingest": NODE_RANK_NODES}


class PipelineAlreadyRunningError(AlreadyRunningError, KedroCliError):
    """An :class:`AlreadyRunningError` that ``kedro run`` reports as its message alone (a
    ``KedroCliError``), without a traceback through Kedro's internals, and exits with 1."""

    def __init__(self, message: str):
        KedroCliError.__init__(self, message)  # click's exception keeps `message` for show()

    def show(self, file=None) -> None:
        # KedroCliError.show formats sys.exc_info(), which is empty where click calls it
        print(f"Error: {self.message}", file=file or sys.stderr)


@dataclass(frozen=True)
class LockSpec:
    """One lock a run takes: ``<data_root>/.locks/<name>.lock``, exclusive or shared."""

    name: str
    shared: bool = False

    @property
    def file_name(self) -> str:
        return f"{self.name}.lock"


def node_lock_name(pipeline: str, rank: int, num_nodes: int) -> str:
    return f"{pipeline}-node-{rank:04d}-of-{num_nodes:04d}"


def plan_locks(
    run: Pipeline,
    registered: Mapping[str, Pipeline],
    params: Callable[[str], dict | None],
    pipeline_names: list[str] | None = None,
) -> list[LockSpec]:
    """The locks a run of ``run`` (the filtered pipeline) takes, given the registered
    pipelines and ``params(block)`` (the run's parameter block, None when absent)."""
    run_nodes = {n.name for n in run.nodes}
    if not run_nodes:
        return []
    parallel = per_node_rank()
    specs, covered = [], set()
    for name in sorted(registered):
        if name == "__default__":
            continue
        mine = run_nodes & {n.name for n in registered[name].nodes}
        if not mine:
            continue
        covered |= mine
        if name in CONCURRENT_RUNS:
            continue
        block = params(name) if name in parallel else None
        num_nodes = int((block or {}).get("num_nodes", 1))
        if name in parallel and mine <= parallel[name] and num_nodes > 1:
            rank = int(block.get("node_rank", 0))
            specs += [
                LockSpec(name, shared=True),
                LockSpec(node_lock_name(name, rank, num_nodes)),
            ]
        else:
            specs.append(LockSpec(name))
    if run_nodes - covered:  # nodes of no registered pipeline (a pipeline built by hand)
        specs.append(LockSpec("+".join(sorted(pipeline_names or ["__default__"]))))
    return specs


def _describe_run(run_params: dict[str, Any]) -> str:
    names = run_params.get("pipeline_names") or ["__default__"]
    env = run_params.get("env") or "the default environment"
    what = f"kedro run --pipelines {','.join(names)} --env {env}"
    if run_params.get("node_names"):
        what += f" --nodes {','.join(run_params['node_names'])}"
    return what


class RunLockHooks:
    """Takes the run's locks before its first node, releases them when it ends."""

    def __init__(self) -> None:
        self._data_root: Path | None = None
        self._held: dict[str, ExitStack] = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        # the env's data root (conf/<env>/globals.yml), relative to the project folder
        data_root = Path(context.config_loader["globals"].get("data_root", "data"))
        self._data_root = (Path(context.project_path) / data_root).resolve()

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog):
        # A run ended by a BaseException (KeyboardInterrupt in a notebook) calls neither
        # after_pipeline_run nor on_pipeline_error: its locks are still ours; Kedro runs one
        # session at a time per process, so they are stale here.
        for stale in list(self._held):
            self._held.pop(stale).close()
        from kedro.framework.project import pipelines  # the registry of this project

        from audioscope_kedro.datasets.clip_store_dataset import ClipStoreDataset

        def params(block: str) -> dict | None:
            dataset = catalog.get(f"params:{block}")
            return dataset.load() if dataset is not None else None

        what = _describe_run(run_params)
        root = self._data_root or (Path(run_params["project_path"]) / "data").resolve()
        specs = plan_locks(
            pipeline, dict(pipelines.items()), params, run_params.get("pipeline_names")
        )
        # node runs hold the shared locks without recording themselves: a refusal names
        # them from their node locks
        node_locks = sorted((root / LOCK_DIR).glob("*-node-*.lock"))
        locks = [
            RunLock(root / LOCK_DIR / spec.file_name, what, spec.shared, node_locks)
            for spec in specs
        ]
        per_node = any(spec.shared for spec in specs)
        for name in sorted(pipeline.all_outputs()):
            dataset = catalog.get(name)
            if specs and isinstance(dataset, ClipStoreDataset):
                store = dataset.path
                locks.append(RunLock(store_lock_path(store), what, per_node, node_locks))
        stack = ExitStack()
        try:
            for lock in locks:
                stack.enter_context(lock)
        except AlreadyRunningError as error:
            stack.close()
            raise PipelineAlreadyRunningError(str(error)) from None
        except BaseException:
            stack.close()
            raise
        if locks:
            log.info("holding %s", ", ".join(str(lock.path) for lock in locks))
        self._held[run_params["run_id"]] = stack

    def _release(self, run_params: dict[str, Any]) -> None:
        stack = self._held.pop(run_params["run_id"], None)
        if stack is not None:
            stack.close()

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any]) -> None:
        self._release(run_params)

    @hook_impl
    def on_pipeline_error(self, run_params: dict[str, Any]) -> None:
        self._release(run_params)
