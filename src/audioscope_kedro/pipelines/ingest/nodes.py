"""Nodes of ``ingest``: thin wrappers over :mod:`audioscope_kedro.data`."""

from __future__ import annotations

import logging

import pandas as pd

from audioscope_kedro.data.clip_table import (
    assemble_clip_table,
    assemble_mom_table,
    scan_video_folder,
)
from audioscope_kedro.data.decode import DecodeSettings
from audioscope_kedro.data.lists import ListKey, Split
from audioscope_kedro.data.store import ClipStore, ShardBatch, plan_shards

log = logging.getLogger(__name__)


def build_clip_table(
    lists: dict[ListKey, pd.DataFrame], params: dict, clip_seconds: float
) -> pd.DataFrame:
    """The clips to ingest: from the AudioScope lists, or by cutting a folder of videos into
    clips of ``clip_seconds``."""
    if params["source"] == "scan":
        scan = params["scan"]
        return scan_video_folder(
            params["video_root"],
            clip_seconds,
            scan["hop_seconds"],
            scan["extensions"],
            Split(scan.get("split", "train")),
            scan.get("min_clip_seconds", 1.0),
        )
    if params["source"] != "lists":
        raise ValueError(f"ingest.source must be 'lists' or 'scan', not {params['source']!r}")
    if not lists:
        raise ValueError(
            "ingest.source is 'lists' but no AudioScope list was found (check lists_dir and list_prefix)"
        )
    table = assemble_clip_table(lists)
    log.info("%d clips from %d lists", len(table), len(lists))
    return table


def build_mom_table(lists: dict[ListKey, pd.DataFrame]) -> pd.DataFrame:
    """The mixtures of mixtures named by the MoM lists, as pairs of clip ids."""
    return assemble_mom_table(lists)


def plan_clip_store(clip_table: pd.DataFrame, params: dict) -> ShardBatch:
    """Shards to decode; the clip-store dataset skips those already written."""
    settings = DecodeSettings.from_params(params["decode"])
    plans = plan_shards(clip_table, params["video_root"], settings, int(params["shard_size"]))
    return ShardBatch(plans, int(params["num_workers"]), settings)


def summarise_ingest(clip_store: ClipStore) -> dict:
    """Counts per split and label, and quarantine reasons, for the log and for DVC."""
    index, bad = clip_store.index, clip_store.quarantine
    per_split = index.groupby(["split", "label"]).size() if len(index) else pd.Series(dtype=int)
    summary = {
        "clips_ingested": int(len(index)),
        "clips_quarantined": int(len(bad)),
        "hours": round(
            float(index["num_samples"].sum()) / clip_store.settings.sample_rate / 3600, 4
        )
        if len(index)
        else 0.0,
        "per_split_label": {
            f"{s}/{lab or 'unlabelled'}": int(n) for (s, lab), n in per_split.items()
        },
        "quarantine_reasons": bad["reason"].value_counts().to_dict() if len(bad) else {},
    }
    for row in bad.itertuples(index=False):
        log.warning(
            "quarantined %s [%s-%s]: %s", row.video_path, row.start_time, row.end_time, row.reason
        )
    return summary
