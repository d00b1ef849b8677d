"""Read Qt resource bundles (``.rcc``), the form in which GCompris ships its images and sounds.

A bundle is a header (``qres``, format version, offsets of the tree, the data and the names), a
tree of fixed-size nodes (directories list their children, files point into the data), the
names as UTF-16, and the file data, each optionally zlib-compressed the way ``qCompress`` does
it (a 4-byte big-endian length, then a zlib stream). Format versions 1 to 3 differ only in the
node size (version 2 adds an 8-byte modification time) and a flags word after the header.
Zstandard-compressed entries (Qt 6 option) are reported, not read: GCompris does not use them.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

_COMPRESSED, _DIRECTORY, _COMPRESSED_ZSTD = 0x01, 0x02, 0x04


@dataclass(frozen=True)
class _Entry:
    flags: int
    offset: int  # of the data, after its 4-byte size
    size: int


class RccArchive:
    """The files of one ``.rcc`` bundle, by their path inside it (``a/b/c.webp``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._bytes = self.path.read_bytes()
        self._entries: dict[str, _Entry] = {}
        try:
            self._index()
        except (struct.error, IndexError, UnicodeDecodeError) as err:
            raise ValueError(f"{self.path}: not a readable Qt resource bundle ({err})") from err

    def _index(self) -> None:
        b = self._bytes
        if b[:4] != b"qres":
            raise ValueError(f"{self.path}: not a Qt resource bundle (no 'qres' header)")
        version, tree, data, names = struct.unpack(">IIII", b[4:20])
        if version not in (1, 2, 3):
            raise ValueError(f"{self.path}: Qt resource format version {version} is not known")
        node_size = 14 if version == 1 else 22

        def name(offset: int) -> str:
            (length,) = struct.unpack(">H", b[names + offset : names + offset + 2])
            start = names + offset + 6  # after the length and a 4-byte hash
            return b[start : start + 2 * length].decode("utf-16-be")

        stack = [(0, "")]
        while stack:
            index, prefix = stack.pop()
            at = tree + index * node_size
            name_offset, flags = struct.unpack(">IH", b[at : at + 6])
            path = prefix + name(name_offset) if index else ""
            if flags & _DIRECTORY:
                count, first = struct.unpack(">II", b[at + 6 : at + 14])
                stack.extend((first + c, f"{path}/" if path else "") for c in range(count))
            else:
                (data_offset,) = struct.unpack(">I", b[at + 10 : at + 14])
                (size,) = struct.unpack(">I", b[data + data_offset : data + data_offset + 4])
                self._entries[path] = _Entry(flags, data + data_offset + 4, size)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def read(self, name: str) -> bytes:
        """The bytes of one file of the bundle, decompressed."""
        entry = self._entries.get(name)
        if entry is None:
            raise KeyError(f"{self.path} has no file {name!r}")
        raw = self._bytes[entry.offset : entry.offset + entry.size]
        if entry.flags & _COMPRESSED_ZSTD:
            raise ValueError(f"{self.path}: {name} is Zstandard-compressed, which is not read")
        if entry.flags & _COMPRESSED:
            return zlib.decompress(raw[4:])
        return raw


__all__ = ["RccArchive"]
