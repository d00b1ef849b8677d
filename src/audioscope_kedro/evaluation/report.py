"""Figures and the HTML evaluation report (matplotlib, no Kedro).

The report reads like a results section: labelled figures with units, 95% intervals and the
baselines beside them, the operating point in words, the trade-off at several calibration
targets, examples of every MoM kind with their own scores, the training and coincidence
curves, and what run produced it. It is one self-contained HTML file (figures and audio as
data URIs): it opens offline and can be mailed or archived as it is.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
from matplotlib.figure import Figure

from audioscope_kedro.evaluation.calibration import RAW, Calibration
from audioscope_kedro.evaluation.metric_names import Metric, ci_keys

# Figures are built as `Figure` objects, not through pyplot: no global backend is set and no
# figure is left open, so importing this module does not change a notebook's plotting.

SPECTROGRAM_RANGE_DB = 80.0  # colour range below each example's loudest bin


@dataclass
class RunInfo:
    """What produced a report: shown in its header."""

    date: str = ""
    commit: str = ""
    configuration: dict = field(default_factory=dict)  # parameter blocks, as run


def trade_off_figure(
    curve: list[dict],
    calibrated: dict,
    baselines: dict,
    target_db: float | None,
    targets: list[dict] | None = None,
) -> Figure:
    """On-screen SI-SNR against off-screen suppression over thresholds, the calibrated point,
    the points calibrated to the other targets, the mixture and oracle baselines."""
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.subplots()
    sup = [r[Metric.OFF_SCREEN_SUPPRESSION] for r in curve]
    si = [r[Metric.ON_SCREEN_SI_SNR] for r in curve]
    ax.plot(sup, si, "-o", ms=3, label="threshold sweep (test)")
    for row in targets or []:
        ax.plot(
            row[Metric.OFF_SCREEN_SUPPRESSION],
            row[Metric.ON_SCREEN_SI_SNR],
            "s",
            color="tab:orange",
        )
    if targets:
        ax.plot([], [], "s", color="tab:orange", label="calibrated to each report target")
    ax.plot(
        [calibrated[Metric.OFF_SCREEN_SUPPRESSION]],
        [calibrated[Metric.ON_SCREEN_SI_SNR]],
        "r*",
        ms=14,
        label="calibrated operating point",
    )
    ax.axhline(baselines[Metric.ORACLE_SI_SNR], color="g", ls="--", label="oracle selection")
    ax.axhline(baselines[Metric.MIXTURE_SI_SNR], color="k", ls=":", label="mixture")
    if target_db is not None:
        ax.axvline(target_db, color="r", ls=":", lw=1, label=f"target {target_db:g} dB")
    ax.set_xlabel("off-screen suppression (dB, off-screen MoMs)")
    ax.set_ylabel("on-screen SI-SNR (dB, on-screen MoMs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
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


def _db_spectrogram(audio: np.ndarray, sample_rate: int, n_fft: int = 256, hop: int = 64):
    """Power spectrogram in dB: ``(times s, frequencies Hz, [F, T] dB)``."""
    audio = np.asarray(audio, np.float64)
    if audio.size < n_fft:
        audio = np.pad(audio, (0, n_fft - audio.size))
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop]
    spec = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)) ** 2
    times = (np.arange(len(frames)) * hop + n_fft / 2) / sample_rate
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    return times, freqs, 10 * np.log10(spec.T + 1e-12)


def examples_figure(examples: list[dict], sample_rate: int) -> Figure:
    """Per example (a row): a video frame, then spectrograms of the mixture, the calibrated
    on-screen estimate and the reference, on ONE colour scale per example (set by the
    mixture), so that a silent estimate looks silent; axes in seconds and Hz."""
    n = max(1, len(examples))
    fig = Figure(figsize=(14, 2.7 * n))
    axes = fig.subplots(n, 4, squeeze=False)
    for row, ex in zip(axes, examples, strict=False):
        row[0].imshow(ex["frame"])
        row[0].set_title(f"{ex['kind']}: {ex['mom_id'][-10:]}", fontsize=8)
        row[0].axis("off")
        panels = [
            ("mixture", ex["mixture"]),
            (
                f"on-screen estimate ({ex['figure_name']} {ex['figure_db']:.1f} dB)",
                ex["calibrated_on_screen"],
            ),
            ("on-screen reference", ex["reference"]),
        ]
        _, _, mix_db = _db_spectrogram(ex["mixture"], sample_rate)
        vmax = float(mix_db.max())
        image = None
        for ax, (title, audio) in zip(row[1:], panels, strict=True):
            if audio is None:
                ax.text(0.5, 0.5, "nothing on screen", ha="center", va="center")
                ax.set_axis_off()
                continue
            times, freqs, db = _db_spectrogram(audio, sample_rate)
            image = ax.pcolormesh(
                times,
                freqs,
                db,
                vmin=vmax - SPECTROGRAM_RANGE_DB,
                vmax=vmax,
                cmap="magma",
                shading="auto",
            )
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("time (s)", fontsize=7)
            ax.set_ylabel("frequency (Hz)", fontsize=7)
            ax.tick_params(labelsize=6)
        if image is not None:
            fig.colorbar(image, ax=list(row[1:]), label="dB (per example)", shrink=0.9)
    return fig


def curves_figure(curve: list[dict], keys: list[str], title: str) -> Figure:
    """One panel per column of a training curve: figures in dB and AUC never share an axis."""
    fig = Figure(figsize=(3.6 * len(keys), 3))
    axes = fig.subplots(1, len(keys), squeeze=False)
    steps = [r["step"] for r in curve]
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(steps, [r.get(key, np.nan) for r in curve], "-o", ms=3)
        unit = "" if "auc" in key or "accuracy" in key else " (dB)" if "val_" in key else ""
        ax.set_title(key + unit, fontsize=9)
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


def _fmt(value, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if unit == "" else f"{value:.2f} {unit}"
    return f"{value} {unit}".strip()


def _ci(metrics: dict, key: str, unit: str) -> str:
    low, high = (metrics.get(k) for k in ci_keys(key))
    if low is None:
        return ""
    return f"[{_fmt(low)}, {_fmt(high)}]" + (f" {unit}" if unit else "")


def metrics_table(metrics: dict) -> str:
    """Headline figures with units: raw and calibrated values, the calibrated 95% interval."""
    rows = []
    for metric in (
        Metric.ON_SCREEN_SI_SNR,
        Metric.ON_SCREEN_SI_SNRI,
        Metric.OFF_SCREEN_SUPPRESSION,
        Metric.AUC_ROC,
    ):
        unit = metric.unit
        interval_key = metric.calibrated if metric is not Metric.AUC_ROC else str(metric)
        rows.append(
            (
                metric.description,
                _fmt(metrics.get(str(metric)), unit),
                _fmt(metrics.get(metric.calibrated), unit),
                _ci(metrics, interval_key, unit),
            )
        )
    for metric in (Metric.AUC_ROC_ON_SCREEN_MOMS, Metric.MIXTURE_SI_SNR, Metric.ORACLE_SI_SNR):
        value = _fmt(metrics.get(str(metric)), metric.unit)
        rows.append((metric.description, value, value, _ci(metrics, str(metric), metric.unit)))
    rows.append(
        (
            Metric.SHARE_AT_CAP.description,
            "",
            _fmt(metrics.get(Metric.SHARE_AT_CAP.calibrated)),
            "",
        )
    )
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    head = "<tr><th>figure</th><th>raw probabilities</th><th>calibrated</th><th>95% CI (calibrated)</th></tr>"
    return f"<table class='metrics'>{head}{body}</table>"


def per_kind_table(metrics: dict) -> str:
    """Figures per MoM kind: the mixture beside the estimate shows a clip-gating model."""
    rows = []
    for key, value in sorted(metrics.items()):
        if key.startswith(str(Metric.MIXTURE_SI_SNR) + "_") and not key.endswith(("_low", "_high")):
            kind = key.removeprefix(str(Metric.MIXTURE_SI_SNR) + "_")
            est = metrics.get(Metric.ON_SCREEN_SI_SNR.calibrated + f"_{kind}")
            rows.append(
                (kind, f"mixture {_fmt(value, 'dB')}", f"calibrated estimate {_fmt(est, 'dB')}")
            )
        prefix = Metric.OFF_SCREEN_SUPPRESSION.calibrated + "_"
        if key.startswith(prefix) and not key.endswith(("_low", "_high")):
            rows.append((key.removeprefix(prefix), "suppression (calibrated)", _fmt(value, "dB")))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr><th>MoM kind</th><th colspan=2>figures</th></tr>{body}</table>"


def targets_table(targets: list[dict]) -> str:
    """The operating points calibrated on validation to each target, measured on test."""
    if not targets:
        return "<p>No report targets in calibration.json.</p>"
    rows = "".join(
        "<tr>"
        f"<td>{t['target_db']:g} dB</td><td>T = {t['temperature']:g}, bias {t['bias']:.3f}</td>"
        f"<td>{_fmt(t[Metric.OFF_SCREEN_SUPPRESSION], 'dB')}</td>"
        f"<td>{_fmt(t[Metric.ON_SCREEN_SI_SNR], 'dB')}</td>"
        f"<td>{_fmt(t[Metric.ON_SCREEN_SI_SNRI], 'dB')}</td>"
        "</tr>"
        for t in targets
    )
    head = (
        "<tr><th>validation target</th><th>point</th><th>test suppression</th>"
        "<th>test on-screen SI-SNR</th><th>SI-SNRi</th></tr>"
    )
    return f"<table>{head}{rows}</table>"


def _examples_html(examples: list[dict], sample_rate: int) -> str:
    out = ""
    for ex in examples:
        kept = ", ".join(
            f"source {m}: p = {p:.2f}, weight {w:.2f}"
            for m, (p, w) in enumerate(zip(ex["probabilities"], ex["weights"], strict=True))
        )
        out += (
            f"<h4>{html.escape(ex['kind'])} MoM {html.escape(ex['mom_id'])}: "
            f"{html.escape(ex['figure_name'])} {ex['figure_db']:.1f} dB</h4>"
            f"<p class='sources'>{html.escape(kept)}</p><table><tr>"
        )
        for key, label in (
            ("mixture", "mixture"),
            ("calibrated_on_screen", "on-screen estimate"),
            ("reference", "on-screen reference"),
        ):
            if ex.get(key) is None:
                continue
            out += (
                f"<td>{label}<br><audio controls src='{_wav_uri(ex[key], sample_rate)}'>"
                "</audio></td>"
            )
        out += "</tr></table>"
    return out


def html_report(
    title: str,
    notes: list[str],
    sections: list[tuple[str, str]],
) -> str:
    """A self-contained page: a header of notes, then titled HTML sections."""
    note_html = "".join(f"<li>{n}</li>" for n in notes)
    body = "".join(f"<h2>{html.escape(name)}</h2>{content}" for name, content in sections)
    return f"""<!doctype html><html lang='en'><head><meta charset='utf-8'>
<title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 1em}}
td,th{{padding:3px 10px;text-align:left}} table{{border-collapse:collapse}}
tr:nth-child(even){{background:#f4f4f4}} img{{max-width:100%}} .sources{{font-size:90%}}</style>
</head><body><h1>{html.escape(title)}</h1><ul>{note_html}</ul>{body}</body></html>"""


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def evaluation_figures(
    result, calibration: Calibration | None, sample_rate: int
) -> tuple[Figure, Figure, Figure]:
    """Trade-off, ROC and examples figures of an :class:`Evaluation`."""
    m = result.metrics
    calibrated = {
        k.removeprefix("calibrated_"): v for k, v in m.items() if k.startswith("calibrated_")
    }
    trade = trade_off_figure(
        result.trade_off,
        calibrated,
        m,
        calibration.target_suppression_db if calibration else None,
        result.targets,
    )
    return (
        trade,
        roc_figure(*result.roc, m[Metric.AUC_ROC]),
        examples_figure(result.examples, sample_rate),
    )


def _point_in_words(calibration: Calibration | None) -> str:
    if calibration is None:
        return f"{RAW.describe()} (no calibration.json)"
    reached = (
        "reached"
        if calibration.reached
        else "NOT reached: the strongest suppression the family gives was taken"
    )
    return (
        f"{calibration.point.describe()}: chosen on the {calibration.split} MoMs so that the "
        f"mean off-screen suppression equals {calibration.target_suppression_db:g} dB ({reached})"
    )


def evaluation_report(
    result,
    calibration: Calibration | None,
    model,
    split: str,
    train_curve: list[dict] | None = None,
    coincidence_curve: list[dict] | None = None,
    run: RunInfo | None = None,
) -> str:
    """The HTML report of an :class:`Evaluation` of ``model`` (an ``AudioScope``)."""
    config, m = model.config, result.metrics
    sample_rate = config.media.sample_rate
    trade, roc, examples = evaluation_figures(result, calibration, sample_rate)
    run = run or RunInfo()
    notes = [
        f"run: {html.escape(run.date or 'date unknown')}, commit "
        f"{html.escape(run.commit or 'unknown')}",
        f"model: {config.attention.variant} attention, {config.separator.num_sources} sources, "
        f"{sample_rate} Hz, {config.media.fps:g} fps, {config.media.frame_height}x"
        f"{config.media.frame_width} frames, "
        f"{sum(p.numel() for p in model.parameters()) / 1e3:.0f}k parameters",
        f"operating point: {html.escape(_point_in_words(calibration))}",
        f"evaluated on {html.escape(split)}: {m[Metric.NUM_ON_SCREEN_MOMS]} MoMs with an "
        f"on-screen-only clip 1 and {m[Metric.NUM_OFF_SCREEN_MOMS]} with an off-screen-only "
        "clip 1; 95% intervals: bootstrap over MoMs; per-MoM suppression capped at 60 dB",
    ]
    sections = [
        ("Results", metrics_table(m)),
        ("Per MoM kind", per_kind_table(m)),
        ("Trade-off at several calibration targets", targets_table(result.targets)),
        (
            "Figures",
            _img(figure_png(trade), "trade-off: on-screen SI-SNR against suppression")
            + _img(figure_png(roc), "ROC of on-screen source classification"),
        ),
    ]
    keys = [
        "train_mixit",
        Metric.ON_SCREEN_SI_SNR.validation,
        Metric.OFF_SCREEN_SUPPRESSION.validation,
        Metric.AUC_ROC.validation,
    ]
    if train_curve and any(k in train_curve[0] for k in keys):
        present = [k for k in keys if k in train_curve[0]]
        png = figure_png(curves_figure(train_curve, present, "training (validation MoMs)"))
        sections.append(("Training", _img(png, "training curves")))
    if coincidence_curve and "val_auc_roc" in coincidence_curve[0]:
        png = figure_png(
            curves_figure(coincidence_curve, ["val_auc_roc"], "coincidence model, held-out AUC")
        )
        sections.append(("Coincidence model", _img(png, "coincidence held-out AUC")))
    sections.append(
        (
            "Examples",
            _img(figure_png(examples), "spectrograms of examples")
            + _examples_html(result.examples, sample_rate),
        )
    )
    if run.configuration:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(str(v))}</code></td></tr>"
            for k, v in sorted(run.configuration.items())
        )
        sections.append(("Configuration", f"<table>{rows}</table>"))
    return html_report("AudioScope evaluation", notes, sections)
