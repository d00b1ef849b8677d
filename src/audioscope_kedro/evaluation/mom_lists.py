"""Evaluating a released model on any AudioScope-format MoM lists, outside a Kedro project
(what ``audioscope evaluate`` runs): ingest the clips the lists name, evaluate, write the
metrics, figures and report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audioscope_kedro.atomic import write_bytes, write_json, write_text
from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.data.clip_table import assemble_clip_table, assemble_mom_table
from audioscope_kedro.data.decode import DecodeSettings
from audioscope_kedro.data.lists import ClipLabel, ListKey, Split, read_mom_list
from audioscope_kedro.data.store import ClipStore, ShardBatch, build_clip_store, plan_shards
from audioscope_kedro.evaluation import report
from audioscope_kedro.evaluation.calibration import RAW
from audioscope_kedro.evaluation.runner import evaluate
from audioscope_kedro.release import ReleasedModel


@dataclass
class ListsEvaluation:
    metrics: dict[str, float]
    ingest_summary: dict
    quarantine: list[str]  # one line per clip that could not be used, with the reason


def evaluate_mom_lists(
    release: ReleasedModel,
    video_root: str | Path,
    on_mom: str | Path,
    off_mom: str | Path,
    out: str | Path,
    workers: int = 2,
    batch_size: int = 16,
    examples: int = 3,
) -> ListsEvaluation:
    """Metrics of ``release`` on the (on, off) MoMs of ``on_mom`` and the (off, off) MoMs of
    ``off_mom``; writes ``metrics.json``, the figures, ``report.html`` and the decoded
    ``clip_store/`` into ``out``. Raises ``ListValidationError`` naming every bad row."""
    out = Path(out)
    model = release.model
    lists = {
        ListKey(Split.TEST, ClipLabel.ONSCREEN, ClipLabel.OFFSCREEN): read_mom_list(on_mom),
        ListKey(Split.TEST, ClipLabel.OFFSCREEN, ClipLabel.OFFSCREEN): read_mom_list(off_mom),
    }
    settings = DecodeSettings.for_media(model.config.media)
    plans = plan_shards(assemble_clip_table(lists), str(video_root), settings, 64)
    summary = build_clip_store(ShardBatch(plans, workers, settings), out / "clip_store")
    store = ClipStore(out / "clip_store")
    quarantine = [
        f"{r.video_path} [{r.start_time}-{r.end_time}]: {r.reason}"
        for r in store.quarantine.itertuples(index=False)
    ]
    moms = MoMSet.from_table(
        store, assemble_mom_table(lists), model.config.clip_seconds, Split.TEST
    )
    point = release.calibration.point if release.calibration else RAW
    result = evaluate(model, moms, point, batch_size, examples)
    write_json(out / "metrics.json", result.metrics)
    figures = report.evaluation_figures(result, release.calibration, model.config.media.sample_rate)
    for name, fig in zip(("trade_off", "roc", "examples"), figures, strict=True):
        write_bytes(out / f"{name}.png", report.figure_png(fig))
    write_text(
        out / "report.html",
        report.evaluation_report(result, release.calibration, model, "the given MoM lists"),
    )
    return ListsEvaluation(result.metrics, summary, quarantine)
