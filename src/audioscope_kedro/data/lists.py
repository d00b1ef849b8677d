"""Clip and MoM lists in the AudioScope release format: schemas, readers and file-name rules.

The public lists have no header and positional columns; users' lists may have a header. Every
reader returns a DataFrame indexed by the 1-based line number in the file, so that any message
names the row a user can open in an editor.

What a reader does with each kind of problem (docs/reliability.md has the whole table):

- the file as a whole cannot be a list (empty, not UTF-8 text, a header without the required
  columns, no usable row at all): :class:`ListFileError`, naming the file and the reason;
- a bad row (wrong number of fields, a time that is not a finite number, a negative time, an
  end before its start, a path that leaves ``video_root``): quarantined with its line number and
  reason by :func:`read_list_rows`, the rest of the list goes on; :func:`read_clip_list` and
  :func:`read_mom_list` are the strict forms, raising :class:`ListValidationError` naming every
  bad row;
- an exact repeat of an earlier row: in a clip list dropped, with a warning naming both lines
  (a list of clips is a set; the clip table would merge them anyway); in a MoM list kept, with
  the same warning: a MoM list is a draw of pairs, which may draw one pair twice (the test demo
  does), and dropping it would change the benchmark;
- CRLF line ends, a UTF-8 byte-order mark, blank lines, spaces around fields, a header row with
  the columns in any order: read as meant.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from audioscope_kedro.data.paths import is_safe_relative_path, lexical_problem

log = logging.getLogger(__name__)

CLIP_COLUMNS = ["video_path", "start_time", "end_time"]
MOM_COLUMNS = [
    "video_path_1",
    "start_time_1",
    "end_time_1",
    "video_path_2",
    "start_time_2",
    "end_time_2",
]
# the quarantine report of list rows: which file, which line, why
LIST_QUARANTINE_COLUMNS = ["file", "row", "reason"]
MAX_LISTED = 20  # rows named in one message; the report has them all


class ListValidationError(ValueError):
    """A list file has bad rows; the message names every bad row and the reason."""

    def __init__(self, source: str, problems: list[tuple[int, str]]):
        self.source = source
        self.problems = sorted(problems)
        lines = [f"{source}: row {row}: {reason}" for row, reason in self.problems]
        super().__init__(f"{len(self.problems)} bad row(s) in {source}:\n" + "\n".join(lines))


class ListFileError(ListValidationError):
    """A file that cannot be read as a list at all; the message names the file and the reason
    (and the first bad rows, when no row was usable)."""

    def __init__(self, source: str, reason: str, problems: list[tuple[int, str]] | None = None):
        self.source = source
        self.reason = reason
        self.problems = sorted(problems or [])
        lines = [f"{source}: row {row}: {why}" for row, why in self.problems[:MAX_LISTED]]
        if len(self.problems) > MAX_LISTED:
            lines.append(f"... and {len(self.problems) - MAX_LISTED} more")
        ValueError.__init__(self, "\n".join([f"{source}: {reason}", *lines]))


def _finite_number(series: pd.Series) -> pd.Series:
    return series.map(lambda v: isinstance(v, float) and math.isfinite(v))


class ClipListSchema(pa.DataFrameModel):
    """One clip per row: ``video_path, start_time, end_time`` (seconds)."""

    video_path: Series[str] = pa.Field(nullable=False)
    start_time: Series[float] = pa.Field(ge=0, nullable=False)
    end_time: Series[float] = pa.Field(gt=0, nullable=False)

    @pa.check("video_path", name="path stays inside video_root")
    def _path_inside_root(cls, path: Series[str]) -> Series[bool]:
        return path.map(is_safe_relative_path)

    @pa.check("start_time", "end_time", name="finite number")
    def _finite(cls, value: Series[float]) -> Series[bool]:
        return _finite_number(value)

    @pa.dataframe_check(name="end_time > start_time")
    def _ordered(cls, df: pd.DataFrame) -> Series[bool]:
        return df["end_time"] > df["start_time"]

    class Config:
        coerce = True
        strict = False  # extra named columns (labels, notes) are kept


class MomListSchema(pa.DataFrameModel):
    """One mixture of mixtures per row: frames of clip 1, audio of clip 1 + clip 2."""

    video_path_1: Series[str] = pa.Field(nullable=False)
    start_time_1: Series[float] = pa.Field(ge=0, nullable=False)
    end_time_1: Series[float] = pa.Field(gt=0, nullable=False)
    video_path_2: Series[str] = pa.Field(nullable=False)
    start_time_2: Series[float] = pa.Field(ge=0, nullable=False)
    end_time_2: Series[float] = pa.Field(gt=0, nullable=False)

    @pa.check("video_path_1", "video_path_2", name="path stays inside video_root")
    def _path_inside_root(cls, path: Series[str]) -> Series[bool]:
        return path.map(is_safe_relative_path)

    @pa.check("start_time_1", "end_time_1", "start_time_2", "end_time_2", name="finite number")
    def _finite(cls, value: Series[float]) -> Series[bool]:
        return _finite_number(value)

    @pa.dataframe_check(name="end_time_1 > start_time_1")
    def _ordered_1(cls, df: pd.DataFrame) -> Series[bool]:
        return df["end_time_1"] > df["start_time_1"]

    @pa.dataframe_check(name="end_time_2 > start_time_2")
    def _ordered_2(cls, df: pd.DataFrame) -> Series[bool]:
        return df["end_time_2"] > df["start_time_2"]

    class Config:
        coerce = True
        strict = False


def _is_time(column: str) -> bool:
    return column.startswith(("start_time", "end_time"))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _looks_like_header(row: list[str], columns: list[str]) -> bool:
    """A first row that names a known column, or whose time fields are all words and whose path
    field is no file name (no ``/`` or ``.``), is a header. A bad *data* row (``a.mp4,abc,5``)
    is not one: it must be quarantined with its reason, not swallowed as a header."""
    fields = [f.strip() for f in row]
    if set(fields) & set(columns):
        return True
    times = [fields[i] for i, c in enumerate(columns) if _is_time(c) and i < len(fields)]
    path = fields[0] if fields else ""
    return bool(times) and not any(map(_is_number, times)) and not re.search(r"[./\\]", path)


def _first_undecodable_line(path: str | Path) -> tuple[int, str]:
    """Line number and message of the first line of ``path`` that is not UTF-8 (only looked for
    once decoding has failed, so the common case reads the file once)."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                return number, f"byte 0x{line[err.start]:02x} at column {err.start + 1}"
    return 0, "undecodable text"


def _csv_rows(path: str | Path, source: str) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a CSV file with their 1-based line numbers. ``utf-8-sig`` drops a
    byte-order mark (Excel writes one) and ``newline=""`` lets the csv module take CRLF, LF or CR
    line ends; a file that is not UTF-8 text or not CSV is a :class:`ListFileError`."""
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for fields in reader:
                if any(f.strip() for f in fields):
                    rows.append((reader.line_num, fields))
    except UnicodeDecodeError:
        line, what = _first_undecodable_line(path)
        raise ListFileError(source, f"not UTF-8 text: line {line}: {what}") from None
    except csv.Error as err:
        raise ListFileError(source, f"not a CSV file: {err}") from None
    return rows


def _column_names(header: list[str], columns: list[str], source: str) -> list[str]:
    """The names of a file's columns from its header row: the required columns by name in any
    order when the header names them all, else positionally (a header of the user's own words,
    ``path,start,end``); extra named columns are kept."""
    names = [h.strip() for h in header]
    named = [c for c in columns if c in names]
    if named and len(named) < len(columns):
        missing = [c for c in columns if c not in names]
        raise ListFileError(source, f"header lacks column(s) {', '.join(missing)}")
    duplicated = sorted({n for n in names if names.count(n) > 1 and n})
    if duplicated:
        raise ListFileError(source, f"header repeats column(s) {', '.join(duplicated)}")
    if named:
        return names
    if len(names) < len(columns):
        raise ListFileError(
            source, f"header has {len(names)} fields, a list needs {len(columns)}: {columns}"
        )
    return columns + names[len(columns) :]


def read_positional_csv(
    path: str | Path, columns: list[str], source: str | None = None
) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Read a CSV with or without a header into string columns, indexed by line number.

    Returns the frame (columns in the order of ``columns``, then any extra named ones) and the
    rows left out for a wrong number of fields. Without a header a row must have exactly
    ``len(columns)`` fields; with one, as many as the header names.
    """
    source = source or str(path)
    rows = _csv_rows(path, source)
    if not rows:
        raise ListFileError(source, "empty: no rows (remove the file if the list is meant to be)")
    names = list(columns)
    if _looks_like_header(rows[0][1], columns):
        names = _column_names(rows[0][1], columns, source)
        rows = rows[1:]
        if not rows:
            raise ListFileError(source, "no rows after the header")
    problems: list[tuple[int, str]] = []
    good: list[list[str]] = []
    index: list[int] = []
    for line, fields in rows:
        if len(fields) != len(names):
            problems.append(
                (line, f"expected {len(names)} fields ({', '.join(names)}), got {len(fields)}")
            )
            continue
        good.append([f.strip() for f in fields])
        index.append(line)
    frame = pd.DataFrame(good, columns=names, index=pd.Index(index, name="row"), dtype=object)
    extra = [n for n in names if n not in columns]
    return frame[columns + extra], problems


def _parse_times(frame: pd.DataFrame, problems: list[tuple[int, str]]) -> pd.DataFrame:
    """Turn the time columns into floats; a row with a field that is not a number is reported
    once, with that field, and left out of the schema checks (which would only repeat it)."""
    bad_rows: set[int] = set()
    for column in [c for c in frame.columns if _is_time(c)]:
        parsed = pd.to_numeric(frame[column], errors="coerce")
        for row in frame.index[parsed.isna()]:
            problems.append((int(row), f"{column}: {frame.at[row, column]!r} is not a number"))
            bad_rows.add(int(row))
        frame[column] = parsed.astype(float)
    return frame.drop(index=sorted(bad_rows))


def _reason(case: pd.Series, frame: pd.DataFrame) -> str:
    """A schema failure in words a user acts on."""
    check, column, value = str(case["check"]), case["column"], case["failure_case"]
    if case["schema_context"] == "DataFrameSchema":  # end > start, across two columns
        end, start = (c.strip() for c in check.split(">"))
        row = case["index"]
        return f"{check} failed ({start} {frame.at[row, start]:g}, {end} {frame.at[row, end]:g})"
    if check == "path stays inside video_root":
        return f"{column}: {value!r}: {lexical_problem(value)}"
    if check.startswith("greater_than_or_equal_to(0"):
        return f"{column}: {value:g} is negative"
    if check.startswith("greater_than(0"):
        return f"{column}: {value:g} is not after 0"
    if check == "finite number":
        return f"{column}: {value!r} is not a finite number"
    return f"{column}: {check} failed for value {value!r}"


def _schema_problems(
    frame: pd.DataFrame, schema: type[pa.DataFrameModel]
) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """The rows that pass ``schema`` (coerced) and the reasons of those that do not."""
    try:
        return schema.validate(frame, lazy=True), []
    except pa.errors.SchemaErrors as err:
        problems = []
        for _, case in err.failure_cases.iterrows():
            row = case["index"]
            if row is None or (isinstance(row, float) and math.isnan(row)):
                # a failure of the whole frame, not of a row: nothing to quarantine
                raise ListFileError(frame.attrs.get("source", "list"), str(err)) from None
            problems.append((int(row), _reason(case, frame)))
    bad = sorted({row for row, _ in problems})
    return schema.validate(frame.drop(index=bad), lazy=True), problems


@dataclass
class ListRows:
    """A list as read: its usable rows, and the rows refused or dropped on the way."""

    source: str
    frame: pd.DataFrame  # the usable rows, indexed by their 1-based line number
    quarantined: list[tuple[int, str]] = field(default_factory=list)  # (line, reasons)
    # line -> the earlier line it repeats exactly (dropped from a clip list, kept in a MoM list)
    duplicates: dict[int, int] = field(default_factory=dict)

    def strict(self) -> pd.DataFrame:
        """The rows, or :class:`ListValidationError` naming every bad row."""
        if self.quarantined:
            raise ListValidationError(self.source, self.quarantined)
        return self.frame

    def report(self) -> pd.DataFrame:
        """The quarantine report of this list: ``file, row, reason``, one line per bad row."""
        return pd.DataFrame(
            [(self.source, row, why) for row, why in self.quarantined],
            columns=LIST_QUARANTINE_COLUMNS,
        )


def _duplicates(
    frame: pd.DataFrame, source: str, drop: bool
) -> tuple[pd.DataFrame, dict[int, int]]:
    """Exact repeats of an earlier row (same path, same times once parsed: ``5`` is ``5.0``),
    dropped or kept as ``drop`` says, with a warning either way."""
    repeated = frame.duplicated(keep="first")
    if not repeated.any():
        return frame, {}
    first_line = {}
    for line, values in zip(frame.index, frame.itertuples(index=False), strict=True):
        first_line.setdefault(tuple(values), int(line))
    duplicates = {
        int(line): first_line[tuple(values)]
        for line, values in zip(
            frame.index[repeated], frame[repeated].itertuples(index=False), strict=True
        )
    }
    shown = ", ".join(f"row {a} repeats row {b}" for a, b in list(duplicates.items())[:MAX_LISTED])
    what = "dropped" if drop else "kept (each counts in the averages)"
    log.warning("%s: %d duplicate row(s) %s: %s", source, len(duplicates), what, shown)
    return (frame[~repeated] if drop else frame), duplicates


def _read_rows(
    path: str | Path, columns: list[str], schema: type[pa.DataFrameModel], source: str
) -> ListRows:
    frame, problems = read_positional_csv(path, columns, source)
    frame.attrs["source"] = source
    frame = _parse_times(frame, problems)
    frame, failures = _schema_problems(frame, schema)
    by_row: dict[int, list[str]] = {}
    for row, why in sorted(set(problems + failures)):
        by_row.setdefault(row, []).append(why)
    quarantined = [(row, "; ".join(reasons)) for row, reasons in by_row.items()]
    if frame.empty:
        reason = "no usable row: every row is bad"
        if all(why.startswith("expected ") for _, why in quarantined):
            kind = "MoM" if len(columns) == len(MOM_COLUMNS) else "clip"
            reason = (
                f"no row has the {len(columns)} fields of a {kind} list ({', '.join(columns)}): "
                "a list of another kind? (a header row naming extra columns keeps them)"
            )
        raise ListFileError(source, reason, quarantined)
    frame, duplicates = _duplicates(frame, source, drop=schema is ClipListSchema)
    frame.attrs.clear()
    return ListRows(source, frame, quarantined, duplicates)


def read_clip_rows(path: str | Path, source: str | None = None) -> ListRows:
    """Read a clip list, quarantining bad rows (see the module docstring)."""
    return _read_rows(path, CLIP_COLUMNS, ClipListSchema, source or Path(path).name)


def read_mom_rows(path: str | Path, source: str | None = None) -> ListRows:
    """Read a MoM list, quarantining bad rows (see the module docstring)."""
    return _read_rows(path, MOM_COLUMNS, MomListSchema, source or Path(path).name)


def read_clip_list(path: str | Path, source: str | None = None) -> pd.DataFrame:
    """Read and validate a clip list; raises :class:`ListValidationError` naming every bad row."""
    return read_clip_rows(path, source).strict()


def read_mom_list(path: str | Path, source: str | None = None) -> pd.DataFrame:
    """Read and validate a MoM list; raises :class:`ListValidationError` naming every bad row."""
    return read_mom_rows(path, source).strict()


class Split(StrEnum):
    TRAIN = "train"
    VALIDATE = "validate"
    TEST = "test"


class ClipLabel(StrEnum):
    """A human judgement of a clip, as the labelled lists carry it ("" for unlabelled)."""

    ONSCREEN = "onscreen"  # every sound of the clip is on screen
    OFFSCREEN = "offscreen"  # every sound of the clip is off screen
    UNLABELLED = ""

    @property
    def short(self) -> str:
        return {"onscreen": "on", "offscreen": "off", "": ""}[self.value]

    @classmethod
    def from_short(cls, short: str) -> ClipLabel:
        return {"on": cls.ONSCREEN, "off": cls.OFFSCREEN}[short]

    @property
    def code(self) -> int:
        """1 on-screen, 0 off-screen, -1 unlabelled: the targets of the supervised loss."""
        return {"onscreen": 1, "offscreen": 0, "": -1}[self.value]


class Partner(StrEnum):
    """What clip 2 of a MoM list is, as the list's file name says."""

    ONSCREEN = "onscreen_unanimous"  # (not in either release, accepted for symmetry)
    OFFSCREEN = "offscreen_unanimous"  # AudioScope (V1): an off-screen-only clip
    RANDOM = "random_unfiltered"  # AudioScopeV2: a random unfiltered clip, no human label

    @property
    def label(self) -> ClipLabel:
        """Its human label in the clip table: a random partner has none."""
        return {
            Partner.ONSCREEN: ClipLabel.ONSCREEN,
            Partner.OFFSCREEN: ClipLabel.OFFSCREEN,
            Partner.RANDOM: ClipLabel.UNLABELLED,
        }[self]

    @property
    def short(self) -> str:
        return {Partner.ONSCREEN: "on", Partner.OFFSCREEN: "off", Partner.RANDOM: "random"}[self]

    @classmethod
    def from_short(cls, short: str) -> Partner:
        return {"on": cls.ONSCREEN, "off": cls.OFFSCREEN, "random": cls.RANDOM}[short]


class MomKind(StrEnum):
    """What the two clips of an evaluation MoM are (frames always of clip 1).

    For evaluation only clip 1's label matters: when clip 1 is on-screen only, its soundtrack
    is the on-screen reference and clip 2 plays the off-screen role, whatever it is; when clip 1
    is off-screen only, nothing in the MoM is on screen and it measures suppression.
    """

    ON_OFF = "on_off"  # V1: on-screen-only clip 1 + off-screen-only clip 2
    OFF_OFF = "off_off"  # V1: two off-screen-only clips
    ON_RANDOM = "on_random"  # V2: on-screen-only clip 1 + a random unfiltered clip 2
    OFF_RANDOM = "off_random"  # V2: off-screen-only clip 1 + a random unfiltered clip 2
    ON_ON = "on_on"  # in no release; accepted for symmetry

    @classmethod
    def of(cls, label_1: ClipLabel, partner: Partner) -> MomKind:
        return cls(f"{label_1.short}_{partner.short}")

    @property
    def first_label(self) -> ClipLabel:
        """The human label of clip 1."""
        return ClipLabel.from_short(self.value.split("_")[0])

    @property
    def partner(self) -> Partner:
        return Partner.from_short(self.value.split("_")[1])

    @property
    def has_on_screen_reference(self) -> bool:
        """Clip 1 is on-screen only: its soundtrack is the on-screen reference. Otherwise the
        whole mixture is off-screen and the MoM measures suppression."""
        return self.first_label is ClipLabel.ONSCREEN


@dataclass(frozen=True, order=True)
class ListKey:
    """Which list a file is, whatever its prefix: split, human label, and for a MoM list what
    clip 2 is. ``str(key)`` is the short form used in logs: ``train``, ``test_onscreen``,
    ``test_on_off_mom``, ``validate_off_random_mom``."""

    split: Split
    label: ClipLabel = ClipLabel.UNLABELLED
    partner: Partner | None = None  # MoM lists only

    def __post_init__(self) -> None:
        if isinstance(self.partner, ClipLabel):  # a V1 partner given by its label
            object.__setattr__(self, "partner", Partner(f"{self.partner}_unanimous"))
        elif self.partner is not None and not isinstance(self.partner, Partner):
            raise TypeError(f"a MoM list's partner is a Partner, not {self.partner!r}")
        if self.partner is not None and self.label is ClipLabel.UNLABELLED:
            raise ValueError("a MoM list's clip 1 is labelled on- or off-screen")

    @property
    def is_mom(self) -> bool:
        return self.partner is not None

    @property
    def mom_kind(self) -> MomKind:
        if self.partner is None:
            raise ValueError(f"{self} is not a MoM list")
        return MomKind.of(self.label, self.partner)

    def __str__(self) -> str:
        if self.partner is not None:
            return f"{self.split}_{self.mom_kind}_mom"
        return f"{self.split}_{self.label}" if self.label else str(self.split)

    @classmethod
    def parse(cls, text: str) -> ListKey:
        """Inverse of ``str``: ``"test_on_off_mom"`` -> ``ListKey(TEST, ONSCREEN, OFFSCREEN)``."""
        parts = text.split("_")
        try:
            if len(parts) == 4 and parts[-1] == "mom":
                label = ClipLabel.from_short(parts[1])
                return cls(Split(parts[0]), label, Partner.from_short(parts[2]))
            if len(parts) == 2:
                return cls(Split(parts[0]), ClipLabel(parts[1]))
            if len(parts) == 1:
                return cls(Split(parts[0]))
        except (KeyError, ValueError):
            pass
        raise ValueError(f"not a list key: {text!r}")

    def file_name(self, prefix: str) -> str:
        """The release file name, e.g.
        ``filtered_test_onscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv`` or
        ``unfiltered_test_offscreen_unanimous_plus_random_unfiltered_mom_clips.csv``."""
        parts = [prefix, str(self.split)]
        if self.label:
            parts.append(f"{self.label}_unanimous")
        if self.partner is not None:
            parts.append(f"plus_{self.partner}_mom")
        return "_".join(parts) + "_clips.csv"


_LIST_NAME = re.compile(
    r"^(?P<prefix>[A-Za-z0-9]+)_(?P<split>train|validate|test)"
    r"(?:_(?P<label>onscreen|offscreen)_unanimous"
    r"(?:_plus_(?P<partner>onscreen_unanimous|offscreen_unanimous|random_unfiltered)_mom)?)?"
    r"_clips\.csv$"
)


@dataclass(frozen=True)
class ListName:
    """What the AudioScope release file name of a list says about it."""

    prefix: str  # "filtered" (AudioScope) or "unfiltered" (AudioScopeV2), or a user's own
    key: ListKey

    def file_name(self) -> str:
        return self.key.file_name(self.prefix)


def parse_list_name(file_name: str) -> ListName | None:
    """Parse a release list name such as ``filtered_test_onscreen_unanimous_clips.csv``."""
    match = _LIST_NAME.match(file_name)
    if not match:
        return None
    partner = Partner(match["partner"]) if match["partner"] else None
    key = ListKey(Split(match["split"]), ClipLabel(match["label"] or ""), partner)
    return ListName(prefix=match["prefix"], key=key)


def release_list_names(prefix: str) -> list[str]:
    """Every list file name of a release: ``filtered`` (AudioScope) or ``unfiltered``
    (AudioScopeV2), as their READMEs name them."""
    partner = {"filtered": Partner.OFFSCREEN, "unfiltered": Partner.RANDOM}[prefix]
    keys = [ListKey(s, label) for s in Split for label in ClipLabel]
    keys += [
        ListKey(s, label, partner)
        for s in (Split.VALIDATE, Split.TEST)
        for label in (ClipLabel.ONSCREEN, ClipLabel.OFFSCREEN)
    ]
    return [k.file_name(prefix) for k in keys]


@dataclass
class FoundLists:
    """The lists of one prefix in a folder, and the files that look like lists but are not."""

    lists: dict[ListKey, Path]
    unrecognised: list[Path]


def find_lists(folder: str | Path, prefix: str) -> dict[ListKey, Path]:
    """All lists with the given prefix in ``folder``, keyed by :class:`ListKey`."""
    return scan_lists(folder, prefix).lists


def scan_lists(folder: str | Path, prefix: str) -> FoundLists:
    """Lists with ``prefix`` in ``folder``; a ``<prefix>_*.csv`` file whose name matches no
    list name of either release is returned as unrecognised (the caller warns), never
    silently skipped."""
    found: dict[ListKey, Path] = {}
    unrecognised: list[Path] = []
    for path in sorted(Path(folder).glob(f"{prefix}_*.csv")):
        name = parse_list_name(path.name)
        if name is not None and name.prefix == prefix:
            found[name.key] = path
        else:
            unrecognised.append(path)
    return FoundLists(found, unrecognised)


def read_list(path: str | Path, key: ListKey, source: str | None = None) -> pd.DataFrame:
    """The strict MoM or clip list reader, as ``key`` says."""
    return (read_mom_list if key.is_mom else read_clip_list)(path, source)


def read_list_rows(path: str | Path, key: ListKey, source: str | None = None) -> ListRows:
    """The MoM or clip list reader that quarantines bad rows, as ``key`` says."""
    return (read_mom_rows if key.is_mom else read_clip_rows)(path, source)
