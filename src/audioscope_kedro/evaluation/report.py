"""Figures and the HTML evaluation report (matplotlib, no Kedro).

The report is one self-contained HTML file: figures and audio are embedded as data URIs, so it
opens offline and can be mailed or archived as it is.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import soundfile as sf
from matplotlib.figure import Figure

from audioscope_kedro.evaluation.calibration import RAW, Calibration
from audioscope_kedro.evaluation.metric_names import Metric

# Figures are built as `Figure` objects, not through pyplot: no global backend is set and no
# figure is left open, so importing this module does not change a notebook's plotting.


def trade_off_figure(
    curve: list[dict], calibrated: dict, baselines: dict, target_db: float | None
) -> Figure:
    """On-screen SI-SNR against off-screen suppression over thresholds, the calibrated point,
    the mixture and oracle baselines."""
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    sup = [r[Metric.OFF_SCREEN_SUPPRESSION] for r in curve]
    si = [r[Metric.ON_SCREEN_SI_SNR] for r in curve]
    ax.plot(sup, si, "-o", ms=3, label="threshold sweep")
    ax.plot(
        [calibrated[Metric.OFF_SCREEN_SUPPRESSION]],
        [calibrated[Metric.ON_SCREEN_SI_SNR]],
        "r*",
        ms=14,
        label="calibrated",
    )
    ax.axhline(baselines[Metric.ORACLE_SI_SNR], color="g", ls="--", label="oracle selection")
    ax.axhline(baselines[Metric.MIXTURE_SI_SNR], color="k", ls=":", label="mixture")
    if target_db is not None:
        ax.axvline(target_db, color="r", ls=":", lw=1, label=f"target {target_db:g} dB")
    ax.set_xlabel("off-screen suppression (dB, off+off MoMs)")
    ax.set_ylabel("on-screen SI-SNR (dB, on+off MoMs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def roc_figure(fpr: np.ndarray, tpr: np.ndarray, auc: float) -> Figure:
    fig = Figure(figsize=(4.2, 4.2))
    ax = fig.subplots()
    ax.plot(fpr, tpr, label=f"AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("on-screen source classification")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def _spectrogram(ax, audio: np.ndarray, sample_rate: int, title: str) -> None:
    # a faint fixed dither keeps an all-zero estimate (everything removed) plottable in dB
    dither = 1e-7 * np.random.default_rng(0).standard_normal(audio.size)
    ax.specgram(audio + dither, NFFT=256, Fs=sample_rate, noverlap=192, cmap="magma")
    ax.set_title(title, fontsize=9)
    ax.set_yticks([])


def examples_figure(examples: list[dict], sample_rate: int) -> Figure:
    """Per example: a video frame, then spectrograms of the mixture, the calibrated on-screen
    estimate and the on-screen reference."""
    n = max(1, len(examples))
    fig = Figure(figsize=(13, 2.4 * n))
    axes = fig.subplots(n, 4, squeeze=False)
    for row, ex in zip(axes, examples, strict=False):
        row[0].imshow(ex["frame"])
        row[0].set_title(ex["mom_id"][-12:], fontsize=8)
        row[0].axis("off")
        _spectrogram(row[1], ex["mixture"], sample_rate, "mixture (on + off)")
        _spectrogram(
            row[2], ex["calibrated_on_screen"], sample_rate, "on-screen estimate (calibrated)"
        )
        _spectrogram(row[3], ex["reference"], sample_rate, "on-screen reference")
    fig.tight_layout()
    return fig


def curves_figure(curve: list[dict], keys: list[str], title: str) -> Figure:
    fig = Figure(figsize=(4 * len(keys), 3))
    axes = fig.subplots(1, len(keys), squeeze=False)
    steps = [r["step"] for r in curve]
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(steps, [r.get(key, np.nan) for r in curve], "-o", ms=3)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _wav_uri(audio: np.ndarray, sample_rate: int) -> str:
    buffer = io.BytesIO()
    peak = max(1e-9, float(np.abs(audio).max()))
    sf.write(
        buffer,
        (audio / max(1.0, peak)).astype(np.float32),
        sample_rate,
        format="WAV",
        subtype="PCM_16",
    )
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


def html_report(
    title: str,
    metrics: dict,
    figures: dict[str, bytes],
    examples: list[dict],
    sample_rate: int,
    notes: list[str],
) -> str:
    """Metrics table, figures and audio players in one HTML page."""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.3f}</td></tr>"
        if isinstance(v, float)
        else f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in metrics.items()
    )
    imgs = "".join(
        f"<h3>{html.escape(name)}</h3><img src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        for name, png in figures.items()
    )
    players = ""
    for ex in examples:
        probs = ", ".join(f"{p:.2f}" for p in ex["probabilities"])
        players += (
            f"<h4>{html.escape(ex['mom_id'])} (source probabilities: {probs})</h4><table><tr>"
        )
        for key, label in (
            ("mixture", "mixture"),
            ("calibrated_on_screen", "on-screen estimate"),
            ("reference", "reference"),
        ):
            players += f"<td>{label}<br><audio controls src='{_wav_uri(ex[key], sample_rate)}'></audio></td>"
        players += "</tr></table>"
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} td{{padding:2px 10px}} img{{max-width:100%}}</style>
</head><body><h1>{html.escape(title)}</h1><ul>{note_html}</ul><h2>Metrics</h2><table>{rows}</table>
<h2>Figures</h2>{imgs}<h2>Examples</h2>{players}</body></html>"""


def evaluation_figures(
    result, calibration: Calibration | None, sample_rate: int
) -> tuple[Figure, Figure, Figure]:
    """Trade-off, ROC and examples figures of an :class:`Evaluation`."""
    m = result.metrics
    calibrated = {
        k.removeprefix("calibrated_"): v for k, v in m.items() if k.startswith("calibrated_")
    }
    trade = trade_off_figure(
        result.trade_off, calibrated, m, calibration.target_suppression_db if calibration else None
    )
    return (
        trade,
        roc_figure(*result.roc, m["auc_roc"]),
        examples_figure(result.examples, sample_rate),
    )


def evaluation_report(
    result,
    calibration: Calibration | None,
    model,
    split: str,
    train_curve: list[dict] | None = None,
) -> str:
    """The HTML report of an :class:`Evaluation` of ``model`` (an ``AudioScope``)."""
    config = model.config
    trade, roc, examples = evaluation_figures(result, calibration, config.media.sample_rate)
    figures = {
        "trade-off: on-screen SI-SNR against off-screen suppression": figure_png(trade),
        "ROC": figure_png(roc),
        "examples": figure_png(examples),
    }
    keys = (
        "train_mixit",
        Metric.ON_SCREEN_SI_SNR.validation,
        Metric.OFF_SCREEN_SUPPRESSION.validation,
        Metric.AUC_ROC.validation,
    )
    if train_curve and any(k in train_curve[0] for k in keys):
        present = [k for k in keys if k in train_curve[0]]
        figures["training curves"] = figure_png(curves_figure(train_curve, present, "training"))
    notes = [
        f"model: {config.attention.variant} attention, {config.separator.num_sources} sources, "
        f"{config.media.sample_rate} Hz, {sum(p.numel() for p in model.parameters()) / 1e3:.0f}k parameters",
        f"operating point: {(calibration.point if calibration else RAW).describe()}"
        + (
            f" (calibrated to {calibration.target_suppression_db} dB on {calibration.split}, "
            f"target reached: {calibration.reached})"
            if calibration
            else " (no calibration.json: raw probabilities)"
        ),
        f"evaluated on {split}: {result.metrics[Metric.NUM_ON_OFF_MOMS]} on+off and "
        f"{result.metrics[Metric.NUM_OFF_OFF_MOMS]} off+off MoMs",
    ]
    return html_report(
        "AudioScope evaluation",
        result.metrics,
        figures,
        result.examples,
        config.media.sample_rate,
        notes,
    )
