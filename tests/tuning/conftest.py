"""Fixtures of the tuning tests: a real PostgreSQL server (Debian's `postgresql` package or any
`initdb`/`pg_ctl` on PATH) started in a temporary folder, a fresh database per test, and a
project whose `tune` inputs exist (the chain up to `pretrain_audio` on `--env test`).

Tests that need the server skip, saying why, where no server binary is found or none starts.
PostgreSQL refuses to run as root: as root the server runs as the `postgres` user (created by
the Debian package) through `runuser`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import make_project, run

SUPERUSER = "audioscope"  # the server's superuser; trust authentication, 127.0.0.1 only
# the prerequisites of `tune`: its inputs are clip_store, mom_table, coincidence_scores and
# pretrained_separator
TUNE_INPUTS = ["demo_data", "ingest", "coincidence", "pretrain_audio"]


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int

    def url(self, database: str) -> str:
        """The URL a user writes in ``tune.storage`` (the driver is added by make_storage)."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """The libpq connection string, for psycopg in the tests."""
        return f"host={self.host} port={self.port} user={SUPERUSER} dbname={database}"


def _server_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else the newest Debian version."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    candidates += [Path(p) for p in debian]
    return next(
        (c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None
    )


def _as_server_user() -> tuple[list[str], str | None]:
    """The command prefix that runs the server as a user it accepts, and that user (None: the
    current one)."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        runuser = None
    if runuser is None:
        pytest.skip(
            "PostgreSQL refuses to run as root and there is no `postgres` user (or no runuser) "
            "to run it as: apt-get install postgresql creates it"
        )
    return [runuser, "-u", "postgres", "--"], "postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 in a temporary folder, stopped and removed at the end."""
    pytest.importorskip("psycopg", reason="psycopg (requirements.txt) is not installed")
    bin_dir = _server_bin()
    if bin_dir is None:
        pytest.skip(
            "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under "
            "/usr/lib/postgresql/*/bin: apt-get install postgresql"
        )
    prefix, user = _as_server_user()
    # not under pytest's tmp_path: its folders are private to the current user, and the server
    # may run as another one
    root = Path(tempfile.mkdtemp(prefix="audioscope-pg-"))
    if user is not None:
        shutil.chown(root, user=user)
    data = root / "data"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}

    def call(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*prefix, *args], env=env, cwd=root, capture_output=True, text=True, timeout=120
        )

    started = False
    try:
        init = call(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--no-locale",
            "-E",
            "UTF8",
            "--no-sync",
        )
        if init.returncode != 0:
            pytest.skip(f"initdb failed, no PostgreSQL server can start here: {init.stderr[-800:]}")
        port = _free_port()
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        start = call(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o", options,
            "start",
        )  # fmt: skip
        if start.returncode != 0:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            pytest.skip(f"the PostgreSQL server did not start: {start.stderr[-400:]} {log[-800:]}")
        started = True
        yield PostgresServer("127.0.0.1", port)
    finally:
        if started:
            call(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server: PostgresServer, request) -> tuple[PostgresServer, str]:
    """A new empty database on the server, named after the test."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    with psycopg.connect(postgres_server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server, name


@pytest.fixture(scope="session")
def tune_project(tmp_path_factory) -> Path:
    """A project (conf of this repository, `--env test`) whose `tune` inputs are written.
    Read-only for the tests: copy it to run `tune` in it."""
    project = make_project(tmp_path_factory.mktemp("tune_project") / "project")
    run(project, *TUNE_INPUTS)
    return project
