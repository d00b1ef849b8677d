"""Nodes of ``ingest``: thin wrappers over :mod:`audioscope_kedro.data`."""

from __future__ import annotations

import logging

import pandas as pd

from audioscope_kedro.data.clip_table import (
    assemble_clip_table,
    assemble_mom_table,
    scan_video_folder,
)
from audioscope_kedro.data.ingest import ClipSource, IngestParams
from audioscope_kedro.data.lists import ListKey
from audioscope_kedro.data.store import ClipStore, IngestJob
from audioscope_kedro.parameters import parse

log = logging.getLogger(__name__)


def build_clip_table(
    lists: dict[ListKey, pd.DataFrame], params: dict, clip_seconds: float
) -> pd.DataFrame:
    """The clips to ingest: from the AudioScope lists, or by cutting a folder of videos into
    clips of ``clip_seconds``."""
    p = parse(IngestParams, params, "ingest")
    if p.source == ClipSource.SCAN:
        return scan_video_folder(
            p.video_root,
            clip_seconds,
            p.scan.hop_seconds,
            list(p.scan.extensions),
            p.scan.split,
            p.scan.min_clip_seconds,
        )
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


def plan_clip_store(clip_table: pd.DataFrame, params: dict) -> IngestJob:
    """The clips to decode, in which format, and this machine's part (``ingest.node_rank`` of
    ``ingest.num_nodes``); the clip-store dataset plans the shards against the store (appended
    clips go to new shards) and skips those already written."""
    p = parse(IngestParams, params, "ingest")
    if p.num_nodes > 1:
        log.info(
            "ingest node %d of %d: building shards with shard_id %% %d == %d",
            p.node_rank,
            p.num_nodes,
            p.num_nodes,
            p.node_rank,
        )
    return p.job(clip_table)


def summarise_ingest(clip_store: ClipStore) -> dict:
    """Counts per split and label, and quarantine reasons, for the log and for DVC."""
    index, bad = clip_store.index, clip_store.quarantine
    per_split = index.groupby(["split", "label"]).size() if len(index) else pd.Series(dtype=int)
    summary = {
        "format": str(clip_store.format),
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
