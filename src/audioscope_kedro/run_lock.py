"""Locks that keep two runs from writing the same outputs at once.

A lock is a file locked with ``fcntl.flock`` (POSIX), not a file whose existence means "locked":
the kernel drops a flock when its process ends, however it ends (SIGKILL, out of memory, a
crashed machine's NFS lease), so a dead run never leaves a stale lock behind. The file itself is
never removed (removing a flock file while another process waits to lock it would let two
processes hold "the" lock on two different inodes); an exclusive holder writes who it is
(pid, host, what, since when, command line) into it, which is what a refused run reports.

Why ``fcntl.flock`` and not the ``filelock`` package: it is in the standard library, it has
shared locks (the machines of a multi-node ingest hold the ingest lock shared, each its own
node lock exclusive), and its release on process death is the kernel's. Where the platform or
the file system has no flock (Windows; a network file system mounted without lock support) a
run goes on unlocked with a warning: the writes stay atomic (``atomic.py``), only the
"already running" refusal is lost.

Plain Python: the Kedro hook (``hooks.py``) and the ``python -m audioscope_kedro.data.ingest``
command both use it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs go on unlocked (see the module docstring)
    fcntl = None

log = logging.getLogger(__name__)

LOCK_DIR = ".locks"  # under an environment's data root: one lock file per pipeline
# errors of a file system that cannot lock (NFS without lockd, some FUSE mounts)
_NO_LOCKING = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class AlreadyRunningError(RuntimeError):
    """Another live process holds the lock of the outputs this run would write."""


@dataclass(frozen=True)
class Holder:
    """Who holds an exclusive lock (what it wrote into the lock file)."""

    pid: int
    host: str
    what: str
    since: str
    command: str

    def describe(self) -> str:
        return (
            f"pid {self.pid} on host {self.host}, running {self.what} since {self.since} "
            f"(command: {self.command})"
        )

    @classmethod
    def of_this_process(cls, what: str) -> Holder:
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            what=what,
            since=time.strftime("%Y-%m-%d %H:%M:%S %z"),
            command=" ".join(sys.argv) or sys.executable,
        )


def _read_holder(fd: int) -> Holder | None:
    """The holder recorded in an open lock file; None when empty or half written (a holder
    writes its record right after taking the lock: a reader can land in between)."""
    data = os.pread(fd, 65536, 0)
    try:
        return Holder(**json.loads(data))
    except (ValueError, TypeError):
        return None


def store_lock_path(store_root: str | Path) -> Path:
    """The lock of a clip store: beside its folder (``03_primary/.clip_store.lock``), not in
    it, so that the store's files (a DVC output) are only the store's."""
    root = Path(store_root)
    return root.parent / f".{root.name}.lock"


class RunLock:
    """A non-blocking ``flock`` on ``path``: exclusive (one holder) or shared (any number of
    shared holders, no exclusive one). ``what`` names the run for the messages, e.g.
    ``"kedro run --pipeline ingest --env test"``.

    Use as a context manager; :meth:`acquire` raises :class:`AlreadyRunningError`, naming the
    holder, when the lock is taken. ``shared_holders``: lock files whose exclusive holders
    also hold this lock shared (the node locks of a multi-node ingest), listed in the message
    when a shared holder blocks an exclusive request (shared holders record nothing here).
    """

    def __init__(
        self,
        path: str | Path,
        what: str,
        shared: bool = False,
        shared_holders: list[Path] | None = None,
    ):
        self.path = Path(path)
        self.what = what
        self.shared = shared
        self.shared_holders = shared_holders or []
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        if fcntl is None:
            log.warning("no flock on this platform: %s runs without a lock", self.what)
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            message = self._refusal(fd)
            os.close(fd)
            raise AlreadyRunningError(message) from None
        except OSError as error:
            os.close(fd)
            if error.errno not in _NO_LOCKING:
                raise
            log.warning(
                "the file system of %s cannot lock (%s): %s runs without a lock",
                self.path,
                error.strerror,
                self.what,
            )
            return self
        # whatever the file says is a dead holder's record: nobody else holds it exclusively
        os.ftruncate(fd, 0)
        if not self.shared:
            record = json.dumps(asdict(Holder.of_this_process(self.what))).encode()
            os.pwrite(fd, record, 0)
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if not self.shared:
            os.ftruncate(fd, 0)  # before unlocking: no reader sees a record of a finished run
        os.close(fd)  # closing the last descriptor of the open file drops the flock

    def _refusal(self, fd: int) -> str:
        # an exclusive holder has recorded itself (or is about to); shared holders do not
        holder = _read_holder(fd)
        if holder is not None:
            who = holder.describe()
        else:
            live = [h.describe() for h in map(live_holder, self.shared_holders) if h]
            who = (
                "runs that share it: " + "; ".join(live)
                if live
                else "another run (it has not recorded itself yet, or holds it shared)"
            )
        return (
            f"{self.what}: refused, a run writing the same outputs is already running "
            f"(lock {self.path} held by {who}). Two runs writing the same outputs at once "
            "could corrupt them: wait for that run to finish (or stop it) and start again. "
            "The operating system releases the lock of a process that dies, so this is a "
            "live run, not a stale lock."
        )

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def live_holder(path: str | Path) -> Holder | None:
    """The exclusive holder of the lock file ``path`` if a live process holds it; None when
    the file is absent, free, held shared, or (just taken) not yet written."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)  # held exclusively by a live process
        except OSError:
            return None
        return None  # we could lock it: nobody holds it exclusively
    finally:
        os.close(fd)  # drops our probe's shared lock, if we took one
