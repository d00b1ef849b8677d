"""Atomic writes: every file or folder the project writes appears complete or not at all.

The one idiom: write under a temporary name in the same folder (so the rename never crosses a
file system), then rename onto the final name. An interrupted writer leaves only a hidden
``.<stem>.tmp-<pid><suffix>`` entry that no reader looks for; the previous version of the
output stays intact until the rename.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"


def temporary_name(path: Path) -> Path:
    """``dir/.name.tmp-<pid>.ext`` beside ``path``; the suffix is kept because writers such as
    soundfile and PyAV choose the format from it."""
    return path.with_name(f".{path.stem}{TMP_MARK}{os.getpid()}{path.suffix}")


def is_temporary(path: Path) -> bool:
    """True for a leftover of an interrupted :func:`atomic_path`."""
    return path.name.startswith(".") and TMP_MARK in path.name


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write a file *or a folder* to; on success it replaces ``path``,
    on an error it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    _remove(tmp)  # a leftover of this pid's earlier, interrupted write
    try:
        yield tmp
        if tmp.is_dir() and path.exists():
            # os.replace cannot put a folder over a non-empty one: move the old one aside first
            stale = path.with_name(f".{path.name}.stale-{os.getpid()}")
            _remove(stale)
            os.replace(path, stale)
            os.replace(tmp, path)
            _remove(stale)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")
