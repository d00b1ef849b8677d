"""The corpus of odd and bad list files (generated, never committed) and what each must give.

One entry per case: the bytes of the file and the expected outcome, either the rows read (by
their paths), the rows quarantined (line -> a word of the reason) and the duplicates, or a
:class:`ListFileError` whose message holds a phrase. docs/reliability.md lists the same cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rows:
    """The list is read: these paths in this order, these lines quarantined (line -> phrase of
    the reason), these duplicates (line -> the line it repeats)."""

    paths: list[str]
    quarantined: dict[int, str] = field(default_factory=dict)
    duplicates: dict[int, int] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)  # extra named columns kept


@dataclass(frozen=True)
class FileError:
    """The whole file is refused; the message names the file and holds ``phrase``."""

    phrase: str


GOOD = b"a.mp4,0,5\nb.mp4,5,10\n"

CLIP_CASES: dict[str, tuple[bytes, Rows | FileError]] = {
    # --- read as meant
    "no header (release form)": (GOOD, Rows(["a.mp4", "b.mp4"])),
    "header row": (b"video_path,start_time,end_time\n" + GOOD, Rows(["a.mp4", "b.mp4"])),
    "header, columns in another order": (
        b"end_time,video_path,start_time\n5,a.mp4,0\n10,b.mp4,5\n",
        Rows(["a.mp4", "b.mp4"]),
    ),
    "header in the user's own words": (
        b"path,start (s),end (s)\n" + GOOD,
        Rows(["a.mp4", "b.mp4"]),
    ),
    "CRLF line ends": (GOOD.replace(b"\n", b"\r\n"), Rows(["a.mp4", "b.mp4"])),
    "old Mac CR line ends": (GOOD.replace(b"\n", b"\r"), Rows(["a.mp4", "b.mp4"])),
    "UTF-8 byte-order mark": (b"\xef\xbb\xbf" + GOOD, Rows(["a.mp4", "b.mp4"])),
    "BOM, header and CRLF (Excel)": (
        b"\xef\xbb\xbfvideo_path,start_time,end_time\r\na.mp4,0,5\r\n",
        Rows(["a.mp4"]),
    ),
    "blank lines and spaces around fields": (
        b"\n a.mp4 , 0 , 5 \n\n\nb.mp4,5,10\n\n",
        Rows(["a.mp4", "b.mp4"]),
    ),
    "path with spaces and non-ASCII": (
        "dir with space/vid\u00e9o \u65e5\u672c.mp4,0,5\n".encode(),
        Rows(["dir with space/vid\u00e9o \u65e5\u672c.mp4"]),
    ),
    "extra named columns with a header": (
        b"video_path,start_time,end_time,label,note\na.mp4,0,5,on,x\n",
        Rows(["a.mp4"], extra=["label", "note"]),
    ),
    "'..' that stays inside": (b"x/../a.mp4,0,5\n", Rows(["x/../a.mp4"])),
    # --- one bad row: quarantined with its line and reason, the rest read
    "non-numeric time": (
        b"a.mp4,0,5\nb.mp4,abc,10\n",
        Rows(["a.mp4"], {2: "'abc' is not a number"}),
    ),
    "non-numeric time on the first row": (
        b"a.mp4,zero,5\nb.mp4,5,10\n",
        Rows(["b.mp4"], {1: "'zero' is not a number"}),
    ),
    "NaN time": (GOOD + b"c.mp4,nan,5\n", Rows(["a.mp4", "b.mp4"], {3: "not a number"})),
    "infinite time": (GOOD + b"c.mp4,0,inf\n", Rows(["a.mp4", "b.mp4"], {3: "not a finite"})),
    "negative time": (GOOD + b"c.mp4,-1,5\n", Rows(["a.mp4", "b.mp4"], {3: "is negative"})),
    "end before start": (
        GOOD + b"c.mp4,7,6\n",
        Rows(["a.mp4", "b.mp4"], {3: "end_time > start_time failed (start_time 7, end_time 6)"}),
    ),
    "end equal to start": (GOOD + b"c.mp4,5,5\n", Rows(["a.mp4", "b.mp4"], {3: "end_time >"})),
    "row with a missing field": (
        GOOD + b"c.mp4,0\n",
        Rows(["a.mp4", "b.mp4"], {3: "expected 3 fields"}),
    ),
    "row with an extra field": (
        GOOD + b"c.mp4,0,5,on\n",
        Rows(["a.mp4", "b.mp4"], {3: "expected 3 fields"}),
    ),
    "line numbers count blank lines": (
        b"a.mp4,0,5\n\n\nb.mp4,9,8\n",
        Rows(["a.mp4"], {4: "end_time > start_time"}),
    ),
    "path with '..' out of video_root": (
        GOOD + b"../../etc/passwd,0,5\n",
        Rows(["a.mp4", "b.mp4"], {3: "'..' climbs out of video_root"}),
    ),
    "Windows '..' out of video_root": (
        GOOD + b"..\\..\\secret.mp4,0,5\n",
        Rows(["a.mp4", "b.mp4"], {3: "'..' climbs out"}),
    ),
    "absolute path": (
        GOOD + b"/etc/passwd,0,5\n",
        Rows(["a.mp4", "b.mp4"], {3: "absolute path"}),
    ),
    "Windows absolute path": (
        GOOD + b"C:\\videos\\a.mp4,0,5\n",
        Rows(["a.mp4", "b.mp4"], {3: "absolute path"}),
    ),
    "empty path": (GOOD + b",0,5\n", Rows(["a.mp4", "b.mp4"], {3: "empty path"})),
    "NUL in a path": (GOOD + b"a\x00.mp4,0,5\n", Rows(["a.mp4", "b.mp4"], {3: "NUL character"})),
    "a repeated header row inside": (
        GOOD + b"video_path,start_time,end_time\n",
        Rows(["a.mp4", "b.mp4"], {3: "is not a number"}),
    ),
    "several problems on one row": (
        GOOD + b"../x.mp4,-2,-3\n",
        Rows(["a.mp4", "b.mp4"], {3: "climbs out"}),
    ),
    # --- exact duplicates of a clip: dropped, naming both lines
    "duplicate rows": (
        b"a.mp4,0,5\nb.mp4,5,10\na.mp4,0.0,5.000\na.mp4,0,5\n",
        Rows(["a.mp4", "b.mp4"], duplicates={3: 1, 4: 1}),
    ),
    # --- the file as a whole is no clip list: an error naming it
    "empty file (zero bytes)": (b"", FileError("empty: no rows")),
    "only blank lines": (b"\n\r\n  \n", FileError("empty: no rows")),
    "header only": (b"video_path,start_time,end_time\n", FileError("no rows after the header")),
    "header missing a column": (
        b"video_path,start_time\na.mp4,0\n",
        FileError("header lacks column(s) end_time"),
    ),
    "header repeating a column": (
        b"video_path,start_time,end_time,start_time\na.mp4,0,5,1\n",
        FileError("header repeats column(s) start_time"),
    ),
    "missing column, no header": (b"a.mp4,0\nb.mp4,5\n", FileError("no row has the 3 fields")),
    "extra column, no header": (
        b"a.mp4,0,5,on\nb.mp4,5,10,off\n",
        FileError("a header row naming extra columns keeps them"),
    ),
    "a MoM list read as a clip list": (
        b"a.mp4,0,5,b.mp4,0,5\n",
        FileError("no row has the 3 fields of a clip list"),
    ),
    "every row bad": (b"a.mp4,-1,5\nb.mp4,x,y\n", FileError("no usable row")),
    "Latin-1, not UTF-8": (
        "a.mp4,0,5\nvid\u00e9o.mp4,0,5\n".encode("latin-1"),
        FileError("not UTF-8 text: line 2"),
    ),
    "UTF-16 (Excel 'Unicode text')": (
        "a.mp4,0,5\n".encode("utf-16"),
        FileError("not UTF-8 text: line 1"),
    ),
    "random bytes": (bytes(range(256)) * 8, FileError("not UTF-8 text")),
}

MOM_GOOD = b"on.mp4,0,5,off.mp4,0,5\non.mp4,5,10,off2.mp4,0,5\n"

MOM_CASES: dict[str, tuple[bytes, Rows | FileError]] = {
    "release form": (MOM_GOOD, Rows(["on.mp4", "on.mp4"])),
    "BOM, header and CRLF": (
        b"\xef\xbb\xbf"
        + b"video_path_1,start_time_1,end_time_1,video_path_2,start_time_2,end_time_2\r\n"
        + MOM_GOOD.replace(b"\n", b"\r\n"),
        Rows(["on.mp4", "on.mp4"]),
    ),
    "clip 2 ends before it starts": (
        MOM_GOOD + b"on.mp4,0,5,off.mp4,6,5\n",
        Rows(["on.mp4", "on.mp4"], {3: "end_time_2 > start_time_2 failed"}),
    ),
    "clip 2 escapes video_root": (
        MOM_GOOD + b"on.mp4,0,5,../off.mp4,0,5\n",
        Rows(["on.mp4", "on.mp4"], {3: "video_path_2: '../off.mp4'"}),
    ),
    # a MoM list is a draw of pairs: a repeated pair is kept (and warned about)
    "duplicate MoM rows are kept": (
        MOM_GOOD + b"on.mp4,0,5,off.mp4,0,5\n",
        Rows(["on.mp4", "on.mp4", "on.mp4"], duplicates={3: 1}),
    ),
    "a clip list read as a MoM list": (
        b"a.mp4,0,5\n",
        FileError("no row has the 6 fields of a MoM list"),
    ),
    "empty file": (b"", FileError("empty")),
}
