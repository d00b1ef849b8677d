"""Atomic writes: every file or folder the project writes appears complete or not at all.

The one idiom: write under a temporary name in the same folder (so the rename never crosses a
file system), then rename onto the final name. A folder replaces a folder by an atomic swap
(Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere the old one is moved aside first and put back
if the second rename fails).

**Interrupted writers.** A process killed while writing leaves only a hidden
``.<stem>.tmp-<host>-<pid><suffix>`` entry that no reader looks for (or, killed between the two
renames of the fallback folder swap, the old folder as ``.<name>.stale-<host>-<pid>``). The
first atomic write of a later process into that folder removes the temporaries of writers of
this host that are no longer alive and puts a stale folder back where its output is missing:
a run started again after a kill leaves no debris. Entries of other hosts (a shared file
system) are left alone: whether their writer lives cannot be told from here.

**Full disk.** A write that fails for want of space raises :class:`DiskFullError` naming the
output; its temporary is removed and the previous version of the output is untouched.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"
STALE_MARK = ".stale-"
# Below this many free bytes a failed write counts as a full disk: torch.save reports a full
# disk as a RuntimeError ("unexpected pos"), np.save as an OSError without errno.
LOW_SPACE_BYTES = 1 << 20
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)

_TMP_RE = re.compile(r"^\.(?P<stem>.*)\.tmp-(?:(?P<host>.+)-)?(?P<pid>\d+)(?P<suffix>\.[^.]*)?$")
_STALE_RE = re.compile(r"^\.(?P<name>.+)\.stale-(?:(?P<host>.+)-)?(?P<pid>\d+)$")


class DiskFullError(OSError):
    """No space left on the device while writing ``filename``; nothing was written under that
    name (the previous version, if any, is unchanged)."""

    def __init__(self, path: Path, cause: BaseException):
        super().__init__(errno.ENOSPC, "no space left on device", str(path))
        self.cause = cause

    def __str__(self) -> str:
        return (
            f"no space left on device while writing {self.filename}: nothing was written under "
            "that name and its previous version, if any, is unchanged; free some space and run "
            f"again ({type(self.cause).__name__}: {self.cause})"
        )


def _host() -> str:
    # a name without the path separator; '-' and '.' are fine (the pid is parsed from the end)
    return socket.gethostname().replace(os.sep, "_") or "localhost"


def _writer() -> str:
    return f"{_host()}-{os.getpid()}"


def temporary_name(path: Path) -> Path:
    """``dir/.name.tmp-<host>-<pid>.ext`` beside ``path``; the suffix is kept because writers
    such as soundfile and PyAV choose the format from it."""
    return path.with_name(f".{path.stem}{TMP_MARK}{_writer()}{path.suffix}")


def _stale_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{STALE_MARK}{_writer()}")


def is_temporary(path: Path) -> bool:
    """True for a leftover of an interrupted :func:`atomic_path`."""
    return path.name.startswith(".") and TMP_MARK in path.name


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a process of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _abandoned(host: str | None, pid: str) -> bool:
    """Whether the writer named in a leftover's name is a dead process of this host (a name
    without a host is of the older ``.tmp-<pid>`` form, always written on one host)."""
    if host is not None and host != _host():
        return False
    return int(pid) != os.getpid() and not process_alive(int(pid))


_swept: set[Path] = set()
_swept_lock = threading.Lock()


def sweep(folder: str | Path) -> list[Path]:
    """Clean ``folder`` of what killed writers of this host left: their temporaries are
    removed, and a stale folder goes back to its name when nothing took its place (removed
    otherwise). Returns what was removed or put back."""
    folder = Path(folder)
    done: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return done
    for entry in entries:
        if not entry.name.startswith("."):
            continue
        if (m := _STALE_RE.match(entry.name)) and _abandoned(m["host"], m["pid"]):
            final = folder / m["name"]
            if not os.path.lexists(final):
                os.replace(entry.path, final)  # the previous version, whole: keep it
            else:
                _remove(Path(entry.path))
            done.append(Path(entry.path))
        elif (m := _TMP_RE.match(entry.name)) and _abandoned(m["host"], m["pid"]):
            _remove(Path(entry.path))
            done.append(Path(entry.path))
    return done


def _sweep_once(folder: Path) -> None:
    """:func:`sweep` the first time this process writes into ``folder`` (a listing per write
    would cost quadratic time in a folder of many shards)."""
    key = folder.resolve()
    with _swept_lock:
        if key in _swept:
            return
        _swept.add(key)
    sweep(folder)


# renameat2 (Linux 3.15+, glibc 2.28+): RENAME_EXCHANGE swaps two paths in one step
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_renameat2: Any = None


def _load_renameat2() -> Any:
    global _renameat2
    if _renameat2 is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
            fn.argtypes += [ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (AttributeError, OSError):
            _renameat2 = False
    return _renameat2


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically; False where the system or file system cannot."""
    fn = _load_renameat2()
    if not fn:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _replace_folder(tmp: Path, path: Path) -> None:
    """Put the folder ``tmp`` in the place of the existing ``path``."""
    if _exchange(tmp, path):
        _remove(tmp)  # now the old version
        return
    stale = _stale_name(path)
    _remove(stale)
    os.replace(path, stale)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(stale, path)  # the previous version back under its name
        raise
    _remove(stale)


def _no_space(err: BaseException, folder: Path) -> bool:
    """Whether ``err`` comes from a full disk: an ENOSPC/EDQUOT in its chain, or a writer that
    lost the errno (torch, numpy) on a file system with (almost) no space left."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _NO_SPACE:
            return True
        seen = seen.__cause__ or seen.__context__
    if not isinstance(err, OSError | RuntimeError):
        return False
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < LOW_SPACE_BYTES


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write a file *or a folder* to; on success it replaces ``path``,
    on an error it is removed and ``path`` is left as it was (a full disk raises
    :class:`DiskFullError` naming ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path.parent)
    tmp = temporary_name(path)
    _remove(tmp)  # a leftover of an earlier, interrupted write by a process of this pid
    try:
        yield tmp
        if tmp.is_dir() and os.path.lexists(path):
            # os.replace cannot put a folder over a non-empty one
            _replace_folder(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException as err:
        full = isinstance(err, Exception) and _no_space(err, path.parent)  # before the removal
        _remove(tmp)
        if isinstance(err, DiskFullError):
            inner = Path(err.filename)
            if inner.is_relative_to(tmp):  # a file of this folder: named by its final path
                raise DiskFullError(path / inner.relative_to(tmp), err.cause) from err.cause
        elif full:
            raise DiskFullError(path, err) from err
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")
