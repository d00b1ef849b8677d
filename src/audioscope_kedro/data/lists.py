"""Clip and MoM lists in the AudioScope release format: schemas, readers and file-name rules.

The public lists have no header and positional columns; users' lists may have a header. Every
reader returns a DataFrame indexed by the 1-based line number in the file, so that any error
names the row a user can open in an editor.
"""

from __future__ import annotations

import csv
import math
import posixpath
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

CLIP_COLUMNS = ["video_path", "start_time", "end_time"]
MOM_COLUMNS = [
    "video_path_1",
    "start_time_1",
    "end_time_1",
    "video_path_2",
    "start_time_2",
    "end_time_2",
]


class ListValidationError(ValueError):
    """A list file has bad rows; the message names every bad row and the reason."""

    def __init__(self, source: str, problems: list[tuple[int, str]]):
        self.source = source
        self.problems = sorted(problems)
        lines = [f"{source}: row {row}: {reason}" for row, reason in self.problems]
        super().__init__(f"{len(self.problems)} bad row(s) in {source}:\n" + "\n".join(lines))


def is_safe_relative_path(path: str) -> bool:
    """True when ``path`` is relative and stays inside the folder it is relative to."""
    if not isinstance(path, str) or not path or path.startswith(("/", "\\")):
        return False
    if re.match(r"^[A-Za-z]:", path):  # Windows drive letter
        return False
    normalised = posixpath.normpath(path.replace("\\", "/"))
    return normalised != ".." and not normalised.startswith("../")


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


def _looks_like_header(row: list[str], columns: list[str]) -> bool:
    """A first row whose time field is not a number, or that repeats column names, is a header."""
    if [c.strip() for c in row[: len(columns)]] == columns:
        return True
    try:
        float(row[1])
    except (ValueError, IndexError):
        return True
    return False


def read_positional_csv(
    path: str | Path, columns: list[str], source: str | None = None
) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Read a CSV with or without a header into string columns, indexed by line number.

    Returns the frame and the structural problems (wrong number of fields) found on the way.
    Without a header a row must have exactly ``len(columns)`` fields; with one, extra named
    columns are kept (a labelled list may carry ``label`` or ``note`` columns).
    """
    source = source or str(path)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [(i + 1, r) for i, r in enumerate(csv.reader(handle)) if any(f.strip() for f in r)]
    problems: list[tuple[int, str]] = []
    names = list(columns)
    if rows and _looks_like_header(rows[0][1], columns):
        header = [h.strip() for h in rows[0][1]]
        if len(header) < len(columns):
            problems.append((rows[0][0], f"header has {len(header)} fields, need {columns}"))
        else:
            names = columns + header[len(columns) :]
        rows = rows[1:]
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
    return frame, problems


def _parse_times(frame: pd.DataFrame, problems: list[tuple[int, str]]) -> pd.DataFrame:
    """Turn the time columns into floats; a row with a field that is not a number is reported
    once, with that field, and left out of the schema checks (which would only repeat it)."""
    bad_rows: set[int] = set()
    for column in [c for c in frame.columns if c.startswith(("start_time", "end_time"))]:
        parsed = pd.to_numeric(frame[column], errors="coerce")
        for row in frame.index[parsed.isna()]:
            problems.append((int(row), f"{column}: {frame.at[row, column]!r} is not a number"))
            bad_rows.add(int(row))
        frame[column] = parsed.astype(float)
    return frame.drop(index=sorted(bad_rows))


def _validate(
    frame: pd.DataFrame,
    schema: type[pa.DataFrameModel],
    problems: list[tuple[int, str]],
    source: str,
) -> pd.DataFrame:
    frame = _parse_times(frame, problems)
    try:
        validated = schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        for _, case in cases.iterrows():
            row = case["index"]
            if case["schema_context"] == "DataFrameSchema":  # a check across columns
                reason = f"{case['check']} failed"
            else:
                reason = (
                    f"{case['column']}: {case['check']} failed for value {case['failure_case']!r}"
                )
            if row is None or (isinstance(row, float) and math.isnan(row)):
                problems.append((0, reason))
            else:
                problems.append((int(row), reason))
        validated = None
    if problems:
        raise ListValidationError(source, _dedupe(problems))
    return validated


def _dedupe(problems: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return sorted(set(problems))


def read_clip_list(path: str | Path, source: str | None = None) -> pd.DataFrame:
    """Read and validate a clip list; raises :class:`ListValidationError` naming every bad row."""
    source = source or Path(path).name
    frame, problems = read_positional_csv(path, CLIP_COLUMNS, source)
    return _validate(frame, ClipListSchema, problems, source)


def read_mom_list(path: str | Path, source: str | None = None) -> pd.DataFrame:
    """Read and validate a MoM list; raises :class:`ListValidationError` naming every bad row."""
    source = source or Path(path).name
    frame, problems = read_positional_csv(path, MOM_COLUMNS, source)
    return _validate(frame, MomListSchema, problems, source)


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
    """The MoM or clip list reader, as ``key`` says."""
    return (read_mom_list if key.is_mom else read_clip_list)(path, source)
