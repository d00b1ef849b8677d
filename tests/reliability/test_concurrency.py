"""Concurrency (issue 13, part "lock"): two runs writing the same outputs at once.

Real `kedro run` processes on the tiny dataset (tests/helpers.py), raced deterministically: the
first run is frozen (SIGSTOP) while it holds its lock, the second starts and must be refused
with a message naming the first, then the first goes on (SIGCONT) and must leave exactly the
outputs of a run alone. A SIGKILLed holder must not block the next run; the node runs of a
multi-node ingest must still run side by side. What the code did before the lock: two
`build_clip_store` of one store started together crashed in 2 of 14 tries (one deleted the
other's temporary shard folder, or its plan folder), see docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.pipeline import Pipeline

from audioscope_kedro.data import ingest as ingest_command
from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.hooks import RunLockHooks, plan_locks
from audioscope_kedro.run_lock import (
    LOCK_DIR,
    AlreadyRunningError,
    RunLock,
    live_holder,
    store_lock_path,
)
from tests.helpers import (
    TEST_DATA,
    kedro_process_args,
    make_project,
    tiny_lists,
    write_tiny_videos,
)

pytestmark = pytest.mark.slow

LOCKS = TEST_DATA / LOCK_DIR
STORE = TEST_DATA / "03_primary/clip_store"
PIPELINES = [
    "demo_data",
    "ingest",
    "coincidence",
    "pretrain_audio",
    "train",
    "calibrate",
    "evaluate",
    "tune",
]
NODE_PARAMS = "ingest.node_rank={},ingest.num_nodes=2"


# ------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A project whose `test` environment holds the tiny dataset's videos and lists (what
    `demo_data` would write there): `ingest` reads them."""
    project = make_project(tmp_path_factory.mktemp("lock") / "project")
    demo = project / TEST_DATA / "01_raw/demo"
    write_tiny_videos(demo)
    for key, table in tiny_lists().items():
        table.to_csv(demo / key.file_name("filtered"), header=False, index=False)
    return project


@pytest.fixture
def project(template, tmp_path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(template, copy, symlinks=True)
    return copy


def session_run(project: Path, pipeline: str, nodes: list[str] | None = None, **params) -> None:
    """`kedro run --env test --pipelines <pipeline> [--nodes ...] --params ...`, in this
    process (the project's hooks included)."""
    cwd = os.getcwd()
    os.chdir(project)
    try:
        bootstrap_project(project)
        with KedroSession.create(
            project_path=project, env="test", runtime_params=params or None
        ) as session:
            session.run(pipeline_names=[pipeline], node_names=nodes)
    finally:
        os.chdir(cwd)


def start(project: Path, params: str = "ingest.num_workers=1", nodes: str | None = None):
    """A `kedro run --env test --pipeline ingest` process, in its own process group."""
    cmd, env = kedro_process_args("ingest", params)
    if nodes:
        cmd += ["--nodes", nodes]
    return subprocess.Popen(
        cmd,
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(errors="replace")


def wait_until_held(lock: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until ``proc`` holds ``lock`` (has recorded itself in it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = live_holder(lock)
        if holder is not None and holder.pid == proc.pid:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before holding {lock}:\n{finish(proc)[1]}")
        time.sleep(0.02)
    raise AssertionError(f"{proc.pid} did not take {lock} in {timeout} s")


@contextmanager
def frozen(proc: subprocess.Popen) -> Iterator[None]:
    """``proc`` stopped (it keeps its locks) for the body; killed if the body fails."""
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        yield
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    os.killpg(proc.pid, signal.SIGCONT)


def outputs(project: Path) -> dict[str, str]:
    """Content hash of every file a run wrote under the data root (not the inputs, not the
    lock files, whose content is who holds them)."""
    root = project / TEST_DATA
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock") and "01_raw" not in p.parts
    }


@pytest.fixture(scope="module")
def solo(template, tmp_path_factory) -> dict[str, str]:
    """The outputs of one `ingest` run alone."""
    project = tmp_path_factory.mktemp("solo") / "project"
    shutil.copytree(template, project, symlinks=True)
    session_run(project, "ingest")
    return outputs(project)


# ------------------------------------------------------------------------------------- tests


def test_second_run_is_refused_and_the_first_equals_a_run_alone(project, solo, capsys):
    """Two `kedro run --pipeline ingest` on one data root at once: the second exits with 1 and
    a message naming the pipeline, the environment, and the pid and host of the first; so does
    `python -m audioscope_kedro.data.ingest merge STORE`, which holds the store's lock as
    ingest does. The first finishes with the outputs of a run alone."""
    first = start(project)
    store = project / STORE
    wait_until_held(store_lock_path(store), first)  # its last lock: it holds them all
    held_by_first = f"held by pid {first.pid} on host {socket.gethostname()}"
    with frozen(first):
        code, out = finish(start(project))
        assert code == 1, out[-3000:]
        message = " ".join(out.split())  # rich wraps long lines
        assert "refused, a run writing the same outputs is already running" in message
        assert "kedro run --pipelines ingest --env test" in message
        assert held_by_first in message
        assert "Traceback" not in out  # the message, not a stack of Kedro's internals
        assert ingest_command.main(["merge", str(store)]) == 1
        err = capsys.readouterr().err
        assert f"ingest merge {store}: refused" in err and "already running" in err
        assert held_by_first in err and "--pipelines ingest --env test" in err
    code, out = finish(first)
    assert code == 0, out[-3000:]
    assert outputs(project) == solo
    assert live_holder(project / LOCKS / "ingest.lock") is None  # released at the end
    assert ingest_command.main(["merge", str(store)]) == 0  # alone, the command runs


@pytest.mark.parametrize("kill_at", ["before its first node", "mid-decode"])
def test_lock_of_a_killed_run_does_not_block_the_next(project, solo, kill_at):
    """A run SIGKILLed while it holds its lock (before its first node, or once its first shard
    is written) leaves its record in the lock file but no lock: the next run proceeds, and
    ends with the outputs of a run alone."""
    first = start(project)
    lock = project / LOCKS / "ingest.lock"
    wait_until_held(lock, first)
    if kill_at == "mid-decode":
        manifest = project / STORE / "shards/shard-00000/manifest.json"
        while not manifest.exists() and first.poll() is None:
            time.sleep(0.005)
    os.killpg(first.pid, signal.SIGSTOP)  # (so that it cannot finish before the check)
    assert live_holder(lock).pid == first.pid, "the kill must land while it holds the lock"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert f'"pid": {first.pid}' in lock.read_text()  # the dead holder's record is still there
    assert live_holder(lock) is None
    session_run(project, "ingest")
    assert outputs(project) == solo


def test_ingest_node_ranks_run_at_once(project, solo):
    """The nodes of a multi-node ingest (docs/scale.md) run side by side: node 1 runs to the
    end while node 0 holds its locks; a second node 0, a one-machine ingest and a merge by
    hand are refused meanwhile; when node 0 ends, the store is the one a single run builds."""
    session_run(project, "ingest", nodes=["build_clip_table", "build_mom_table"])
    node0 = start(project, NODE_PARAMS.format(0), nodes="decode_clips")
    wait_until_held(project / LOCKS / "ingest-node-0000-of-0002.lock", node0)
    with frozen(node0):
        code, out = finish(start(project, NODE_PARAMS.format(1), nodes="decode_clips"))
        assert code == 0, out[-3000:]
        params = {"ingest": {"node_rank": 0, "num_nodes": 2}}
        held_by_node0 = f"pid {node0.pid} on host {socket.gethostname()}"
        with pytest.raises(AlreadyRunningError, match=held_by_node0):
            session_run(project, "ingest", nodes=["decode_clips"], **params)
        # the one-machine ingest is blocked by the node runs' shared lock: named by node lock
        with pytest.raises(AlreadyRunningError, match=f"runs that share it: {held_by_node0}"):
            session_run(project, "ingest")
    code, out = finish(node0)
    assert code == 0, out[-3000:]
    session_run(project, "ingest", nodes=["summarise_ingest"])
    assert outputs(project) == solo


def test_a_failed_run_releases_its_lock(project):
    """A run that fails in a node (on_pipeline_error) gives its lock back: the next run of the
    same pipeline in the same process is not refused."""
    with pytest.raises(Exception, match="shard_size must be at least 1"):
        session_run(project, "ingest", ingest={"shard_size": 0})
    assert live_holder(project / LOCKS / "ingest.lock") is None
    session_run(project, "ingest", nodes=["build_clip_table"])


def test_convert_command_holds_both_stores(tiny_data, tmp_path, capsys):
    """`convert SOURCE TARGET` is refused while another run holds either store's lock (the
    source must not change while it is read), runs when none does; `merge` of a folder that
    no ingest wrote is a message, not a traceback."""
    source, target = str(tiny_data.store.root), str(tmp_path / "wds")
    for busy in (source, target):
        with RunLock(store_lock_path(busy), "another run"):
            assert ingest_command.main(["convert", source, target]) == 1
        assert "refused" in capsys.readouterr().err and not Path(target, "index.parquet").exists()
    assert ingest_command.main(["convert", source, target]) == 0
    assert len(ClipStore(target).index) == len(tiny_data.store.index)
    assert ingest_command.main(["merge", str(tmp_path / "nothing")]) == 1
    assert "nothing to merge" in capsys.readouterr().err


# ------------------------------------------------------------------------- the lock itself


def test_run_lock_modes_and_record(tmp_path):
    """Exclusive against exclusive and against shared, shared beside shared; the holder's
    record while held, none after. flock belongs to an open file, so two RunLocks of one
    process exclude each other as two processes would."""
    path = tmp_path / "x.lock"
    with RunLock(path, "first run"):
        assert live_holder(path).what == "first run" and live_holder(path).pid == os.getpid()
        with pytest.raises(AlreadyRunningError, match=f"held by pid {os.getpid()} on host"):
            RunLock(path, "second run").acquire()
        with pytest.raises(AlreadyRunningError, match="running first run since"):
            RunLock(path, "a reader", shared=True).acquire()
    assert path.read_text() == "" and live_holder(path) is None
    node = tmp_path / "x-node-0001.lock"
    with (
        RunLock(path, "node 0", shared=True),
        RunLock(path, "node 1", shared=True),
        RunLock(node, "node 1 of 2"),
        pytest.raises(AlreadyRunningError, match="runs that share it: pid .* node 1"),
    ):
        RunLock(path, "one machine", shared_holders=[node]).acquire()
    with RunLock(path, "after"):  # every holder gone: free again
        pass


def test_run_lock_of_a_killed_process_is_released(tmp_path):
    """The kernel drops a SIGKILLed holder's flock: no stale lock, whatever the file says."""
    path = tmp_path / "x.lock"
    code = (
        "import sys, time; from audioscope_kedro.run_lock import RunLock; "
        f"RunLock({str(path)!r}, 'doomed').acquire(); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"held"
    assert live_holder(path).pid == proc.pid
    proc.kill()
    proc.wait()
    assert "doomed" in path.read_text()  # its record stays ...
    with RunLock(path, "next"):  # ... but not its lock
        assert live_holder(path).what == "next"


def _registry() -> dict:
    return {
        name: importlib.import_module(f"audioscope_kedro.pipelines.{name}").create_pipeline()
        for name in PIPELINES
    }


@pytest.mark.parametrize(
    ("pipelines", "nodes", "ingest", "expected"),
    [
        (["ingest"], None, {}, [("ingest", False)]),
        # `kedro run` (the chain): the lock of each pipeline it runs, so that it and a
        # `kedro run --pipeline train` exclude each other
        (
            ["ingest", "coincidence", "pretrain_audio", "train", "calibrate", "evaluate"],
            None,
            {},
            [
                ("calibrate", False),
                ("coincidence", False),
                ("evaluate", False),
                ("ingest", False),
                ("pretrain_audio", False),
                ("train", False),
            ],
        ),
        (["tune"], None, {}, []),  # workers of one study run at once by design
        (["ingest"], ["decode_clips"], {}, [("ingest", False)]),
        (
            ["ingest"],
            ["decode_clips"],
            {"node_rank": 1, "num_nodes": 3},
            [("ingest", True), ("ingest-node-0001-of-0003", False)],
        ),
        # the tables are files every node would write: with them, a node run is exclusive
        (["ingest"], None, {"node_rank": 1, "num_nodes": 3}, [("ingest", False)]),
    ],
)
def test_plan_locks(pipelines, nodes, ingest, expected):
    registry = _registry()
    run = sum((registry[p] for p in pipelines), Pipeline([]))
    if nodes:
        run = run.filter(node_names=nodes)
    specs = plan_locks(run, registry, lambda block: ingest if block == "ingest" else None)
    assert [(s.name, s.shared) for s in specs] == expected


def test_hook_releases_locks_of_an_interrupted_run(project):
    """A run ended by KeyboardInterrupt calls neither after_pipeline_run nor on_pipeline_error;
    the next run in the same process (a notebook) must not be refused by its own leftovers."""
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env="test") as session:
        context = session.load_context()
        catalog = context.catalog
    from kedro.framework.project import pipelines

    hooks = RunLockHooks()
    hooks.after_context_created(context)
    run_params = {"run_id": "a", "env": "test", "pipeline_names": ["ingest"]}
    hooks.before_pipeline_run(run_params, pipelines["ingest"], catalog)
    assert live_holder(project / LOCKS / "ingest.lock").pid == os.getpid()
    hooks.before_pipeline_run({**run_params, "run_id": "b"}, pipelines["ingest"], catalog)
    hooks.after_pipeline_run({**run_params, "run_id": "b"})
    assert live_holder(project / LOCKS / "ingest.lock") is None
