"""Evaluating a released model on any AudioScope-format MoM lists, outside a Kedro project
(what ``audioscope evaluate`` runs): ingest the clips the lists name, evaluate, write the
metrics, figures and report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from audioscope_kedro.atomic import atomic_path, write_bytes, write_json, write_text
from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.data.clip_table import assemble_clip_table, assemble_mom_table
from audioscope_kedro.data.decode import DecodeSettings
from audioscope_kedro.data.lists import (
    ClipLabel,
    ListKey,
    Partner,
    Split,
    parse_list_name,
    read_mom_rows,
)
from audioscope_kedro.data.store import ClipStore, ShardBatch, build_clip_store, plan_shards
from audioscope_kedro.evaluation import report
from audioscope_kedro.evaluation.calibration import RAW
from audioscope_kedro.evaluation.runner import evaluate
from audioscope_kedro.release import ReleasedModel


def _key(path: str | Path, first: ClipLabel) -> ListKey:
    """The MoM kind of a list from its release file name (V1: partner off-screen only; V2:
    random unfiltered); a file named otherwise is taken as V1."""
    name = parse_list_name(Path(path).name)
    if name is not None and name.key.is_mom and name.key.label is first:
        return ListKey(Split.TEST, first, name.key.partner)
    return ListKey(Split.TEST, first, Partner.OFFSCREEN)


@dataclass
class ListsEvaluation:
    metrics: dict[str, float]
    ingest_summary: dict
    # one line per list row or clip that could not be used, with the reason
    quarantine: list[str]


def evaluate_mom_lists(
    release: ReleasedModel,
    video_root: str | Path,
    on_mom: str | Path,
    off_mom: str | Path,
    out: str | Path,
    workers: int = 2,
    batch_size: int = 16,
    examples: int = 1,
) -> ListsEvaluation:
    """Metrics of ``release`` on the (on, off) MoMs of ``on_mom`` and the (off, off) MoMs of
    ``off_mom`` (or their V2 counterparts, told by the file names); writes ``metrics.json``,
    ``per_mom.parquet``, the figures, ``report.html``, the decoded ``clip_store/`` and
    ``list_quarantine.csv`` (the list rows left out) into ``out``.

    A bad row of a list is left out with its line and reason (in ``quarantine`` and
    ``list_quarantine.csv``) and the rest is evaluated; a file that is no MoM list at all raises
    ``ListFileError`` naming it. Paths are opened only inside ``video_root``."""
    out = Path(out)
    model = release.model
    read = {
        _key(on_mom, ClipLabel.ONSCREEN): read_mom_rows(on_mom, str(on_mom)),
        _key(off_mom, ClipLabel.OFFSCREEN): read_mom_rows(off_mom, str(off_mom)),
    }
    lists = {key: rows.frame for key, rows in read.items()}
    report_rows = pd.concat([rows.report() for rows in read.values()], ignore_index=True)
    with atomic_path(out / "list_quarantine.csv") as tmp:
        report_rows.to_csv(tmp, index=False)
    quarantine = [f"{r.file}: row {r.row}: {r.reason}" for r in report_rows.itertuples()]
    settings = DecodeSettings.for_media(model.config.media)
    plans = plan_shards(assemble_clip_table(lists), str(video_root), settings, 64)
    summary = build_clip_store(ShardBatch(plans, workers, settings), out / "clip_store")
    store = ClipStore(out / "clip_store")
    quarantine += [
        f"{r.video_path} [{r.start_time}-{r.end_time}]: {r.reason}"
        for r in store.quarantine.itertuples(index=False)
    ]
    moms = MoMSet.from_table(
        store, assemble_mom_table(lists), model.config.clip_seconds, Split.TEST
    )
    calibration = release.calibration
    result = evaluate(
        model,
        moms,
        calibration.point if calibration else RAW,
        batch_size,
        examples,
        calibration.points_by_target if calibration else None,
    )
    write_json(out / "metrics.json", result.metrics)
    with atomic_path(out / "per_mom.parquet") as tmp:
        result.per_mom.to_parquet(tmp, index=False)
    figures = report.evaluation_figures(result, release.calibration, model.config.media.sample_rate)
    for name, fig in zip(("trade_off", "roc", "examples"), figures, strict=True):
        write_bytes(out / f"{name}.png", report.figure_png(fig))
    write_text(
        out / "report.html",
        report.evaluation_report(result, release.calibration, model, "the given MoM lists"),
    )
    return ListsEvaluation(result.metrics, summary, quarantine)
