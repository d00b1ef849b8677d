"""Paths named by lists stay inside ``video_root``: the one containment check.

A list is data a user may have downloaded, not code: a row such as ``../../home/me/.ssh/id_rsa``
or a symlink planted in the video folder must not make ingestion read (and copy into the clip
store) a file outside the folder the user pointed us at. Two layers, one rule:

- :func:`lexical_problem` looks at the text alone (list readers use it, before any file
  exists): a path is relative, has no NUL, and its ``..`` never climb above the root;
- :func:`resolve_inside` resolves the path against the real root, following symlinks, and
  refuses anything that ends outside it (what opens the file uses it).
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

_DRIVE = re.compile(r"^[A-Za-z]:")  # a Windows drive letter: absolute on the machine that wrote it


class OutsideRootError(ValueError):
    """A path that would leave ``video_root``; ``reason`` says how, ``symlink`` whether its text
    stayed inside and a symlink led out."""

    def __init__(self, path: str, reason: str, symlink: bool = False):
        self.path = path
        self.reason = reason
        self.symlink = symlink
        super().__init__(f"{path!r}: {reason}")


def lexical_problem(path: object) -> str | None:
    """Why ``path`` (as a list spells it) cannot name a file inside the root, or None.

    Backslashes count as separators: a list written on Windows must not escape either."""
    if not isinstance(path, str) or not path.strip():
        return "empty path"
    if "\x00" in path:
        return "path contains a NUL character"
    if path.startswith(("/", "\\")) or _DRIVE.match(path):
        return "absolute path: paths in a list are relative to video_root"
    normalised = posixpath.normpath(path.replace("\\", "/"))
    if normalised == ".." or normalised.startswith("../"):
        return "'..' climbs out of video_root"
    return None


def is_safe_relative_path(path: object) -> bool:
    """True when ``path`` is relative and its ``..`` stay inside the folder it is relative to."""
    return lexical_problem(path) is None


def resolve_inside(root: str | Path, path: str | Path) -> Path:
    """The real path of ``path`` under ``root`` (symlinks followed), or :class:`OutsideRootError`.

    ``path`` is relative to ``root``; an absolute path is accepted only when it lies inside the
    root. The root itself may be a symlink (``data/videos -> /mnt/big/videos``): containment is
    judged between real paths. The real path is returned so that the caller opens exactly what
    was checked, not a symlink that could be swapped in between.
    """
    text = os.fspath(path)
    if "\x00" in text:
        raise OutsideRootError(text, "path contains a NUL character")
    real_root = Path(os.path.realpath(root))
    if os.path.isabs(text):
        candidate = Path(text)
    else:
        problem = lexical_problem(text)
        if problem is not None:
            raise OutsideRootError(text, problem)
        candidate = real_root / text
    real = Path(os.path.realpath(candidate))
    if not _inside(real, real_root):
        if not _inside(Path(os.path.normpath(candidate)), real_root):
            raise OutsideRootError(text, f"absolute path outside video_root {real_root}")
        raise OutsideRootError(
            text, f"resolves through a symlink to {real}, outside video_root {real_root}", True
        )
    return real


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)
