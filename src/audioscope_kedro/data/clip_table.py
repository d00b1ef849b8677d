"""From AudioScope lists (or a folder of videos) to the table of clips to ingest and the MoMs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from audioscope_kedro.data.decode import BadClipError, probe_duration
from audioscope_kedro.data.lists import CLIP_COLUMNS, ClipLabel, ListKey, Split
from audioscope_kedro.data.paths import OutsideRootError, resolve_inside
from audioscope_kedro.data.store import clip_id

CLIP_TABLE_COLUMNS = ["clip_id", *CLIP_COLUMNS, "split", "label"]
MOM_TABLE_COLUMNS = ["mom_id", "split", "kind", "clip_id_1", "clip_id_2"]


def _with_ids(frame: pd.DataFrame, split: Split, label: ClipLabel) -> pd.DataFrame:
    out = frame[["video_path", "start_time", "end_time"]].copy()
    out["start_time"] = out["start_time"].astype(float)
    out["end_time"] = out["end_time"].astype(float)
    out.insert(0, "clip_id", [clip_id(*r) for r in out.itertuples(index=False)])
    out["split"], out["label"] = str(split), str(label)
    return out


def _mom_halves(key: ListKey, moms: pd.DataFrame) -> list[pd.DataFrame]:
    halves = []
    # a random partner (V2) has no human label: it is not "offscreen" in the clip table
    for n, label in ((1, key.label), (2, key.partner.label)):
        half = moms[[f"{c}_{n}" for c in CLIP_COLUMNS]]
        half.columns = CLIP_COLUMNS
        halves.append(_with_ids(half, key.split, label))
    return halves


def assemble_clip_table(lists: dict[ListKey, pd.DataFrame]) -> pd.DataFrame:
    """Every distinct clip named by any list, with its split and human label.

    ``label`` is ``onscreen`` / ``offscreen`` for clips of the labelled lists (or of the MoM
    lists, whose names carry the labels) and empty for unlabelled clips. A clip listed both
    unlabelled and labelled keeps its label.
    """
    parts = []
    for key, frame in lists.items():
        if key.is_mom:
            parts.extend(_mom_halves(key, frame))
        else:
            parts.append(_with_ids(frame, key.split, key.label))
    if not parts:
        return pd.DataFrame(columns=CLIP_TABLE_COLUMNS)
    table = pd.concat(parts, ignore_index=True)
    # Labelled rows first, so that drop_duplicates keeps the label of a clip listed twice.
    table["_unlabelled"] = table["label"] == ""
    table = table.sort_values(["_unlabelled"], kind="stable").drop_duplicates("clip_id")
    return (
        table.drop(columns="_unlabelled")
        .sort_values(["split", "video_path", "start_time"], kind="stable")
        .reset_index(drop=True)
    )


def assemble_mom_table(lists: dict[ListKey, pd.DataFrame]) -> pd.DataFrame:
    """One row per MoM: ``mom_id, split, kind, clip_id_1, clip_id_2`` (kind: a
    :class:`MomKind` value)."""
    rows = []
    for key, frame in lists.items():
        if not key.is_mom:
            continue
        first, second = _mom_halves(key, frame)
        for i, (a, b) in enumerate(zip(first["clip_id"], second["clip_id"], strict=True)):
            rows.append(
                {
                    "mom_id": f"{key}_{i:06d}",
                    "split": str(key.split),
                    "kind": str(key.mom_kind),
                    "clip_id_1": a,
                    "clip_id_2": b,
                }
            )
    return pd.DataFrame(rows, columns=MOM_TABLE_COLUMNS)


def scan_video_folder(
    video_root: str | Path,
    clip_seconds: float,
    hop_seconds: float,
    extensions: list[str],
    split: Split = Split.TRAIN,
    min_clip_seconds: float = 1.0,
) -> pd.DataFrame:
    """Cut every video under ``video_root`` into clips of ``clip_seconds`` every ``hop_seconds``.

    A video shorter than one clip gives one clip of its whole length (if at least
    ``min_clip_seconds``). A video that cannot be probed still gets one row, so that ingestion
    quarantines it with its reason rather than dropping it without a word; so does a symlink
    that leads out of ``video_root``, which is never opened (not even to probe it).
    """
    root = Path(video_root)
    exts = {e.lower() for e in extensions}
    rows = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts):
        rel = path.relative_to(root).as_posix()
        try:
            duration = probe_duration(resolve_inside(root, rel))
        except (BadClipError, OutsideRootError):
            rows.append((rel, 0.0, clip_seconds))
            continue
        if duration < clip_seconds:
            if duration >= min_clip_seconds:
                rows.append((rel, 0.0, round(duration, 3)))
            continue
        starts = np.arange(0.0, duration - clip_seconds + 1e-6, hop_seconds)
        rows.extend((rel, round(float(s), 3), round(float(s) + clip_seconds, 3)) for s in starts)
    frame = pd.DataFrame(rows, columns=["video_path", "start_time", "end_time"])
    return _with_ids(frame, split, ClipLabel.UNLABELLED)
