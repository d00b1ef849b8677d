"""What a person looks at: the spectrograms, the probability plot and ``index.html``.

The spectrogram is accumulated while the audio streams past, at a bounded number of columns
(pairs of columns are merged when a long input would exceed it), so a one-hour input costs the
same memory as a one-minute one.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_COLUMNS = 1024
MAX_ROWS = 256
DYNAMIC_RANGE_DB = 80.0
TRACKS = ("mixture", "on-screen", "off-screen")


class SpectrogramAccumulator:
    """Power spectrograms of the mono mixture, on-screen and off-screen audio, fed in chunks.

    ``push(mixture [n], on [n], off [n])``; ``power`` is ``[3, rows, columns]``; each column
    covers ``seconds_per_column`` s."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self.n_fft = 1 << int(round(np.log2(0.032 * sample_rate)))
        self.window = np.hanning(self.n_fft).astype(np.float32)
        self.pending = np.zeros((3, 0), np.float32)
        self.columns: list[np.ndarray] = []  # [3, rows] each
        self.frames_per_column = 1
        self.partial: list[np.ndarray] = []
        bins = self.n_fft // 2 + 1
        self.pool = max(1, int(np.ceil(bins / MAX_ROWS)))
        self.rows = int(np.ceil(bins / self.pool))

    def _frame_power(self, frames: np.ndarray) -> np.ndarray:
        spec = np.abs(np.fft.rfft(frames * self.window, axis=-1)) ** 2  # [3, k, bins]
        pad = self.rows * self.pool - spec.shape[-1]
        spec = np.pad(spec, ((0, 0), (0, 0), (0, pad)))
        return spec.reshape(3, spec.shape[1], self.rows, self.pool).mean(-1)  # [3, k, rows]

    def push(self, mixture: np.ndarray, on: np.ndarray, off: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, np.stack([mixture, on, off])], axis=1)
        k = self.pending.shape[1] // self.n_fft
        if not k:
            return
        frames = self.pending[:, : k * self.n_fft].reshape(3, k, self.n_fft)
        self.pending = self.pending[:, k * self.n_fft :]
        for column in self._frame_power(frames).transpose(1, 0, 2):
            self.partial.append(column)
            if len(self.partial) == self.frames_per_column:
                self.columns.append(np.mean(self.partial, axis=0))
                self.partial = []
                if len(self.columns) > MAX_COLUMNS:  # halve the time resolution
                    pairs = self.columns[: len(self.columns) // 2 * 2]
                    merged = [(a + b) / 2 for a, b in zip(pairs[::2], pairs[1::2], strict=True)]
                    self.columns = merged + self.columns[len(pairs) :]
                    self.frames_per_column *= 2

    @property
    def seconds_per_column(self) -> float:
        return self.frames_per_column * self.n_fft / self.sample_rate

    @property
    def power(self) -> np.ndarray:
        cols = self.columns + ([np.mean(self.partial, axis=0)] if self.partial else [])
        if not cols:
            return np.zeros((3, self.rows, 1), np.float32)
        return np.stack(cols, axis=-1)


def spectrogram_figure(acc: SpectrogramAccumulator) -> plt.Figure:
    """Mixture, on-screen and off-screen, one shared colour scale, axes in s and Hz.

    ``imshow`` on a fixed layout: the grid is uniform, and ``pcolormesh`` with matplotlib's
    constrained layout took 0.3 s per input, most of a short video's separation after the
    model."""
    db = 10 * np.log10(acc.power + 1e-12)
    top = float(db.max())
    extent = (
        0.0,
        db.shape[-1] * acc.seconds_per_column,
        0.0,
        db.shape[1] * acc.pool * acc.sample_rate / acc.n_fft,  # past Nyquist: pooling pads
    )
    fig = plt.figure(figsize=(10, 7.5))
    grid = fig.add_gridspec(
        3, 2, width_ratios=(1, 0.02), left=0.08, right=0.92, top=0.96, bottom=0.07,
        hspace=0.25, wspace=0.03,
    )  # fmt: skip
    axes = [fig.add_subplot(grid[row, 0]) for row in range(3)]
    image = None
    for ax, name, panel in zip(axes, TRACKS, db, strict=True):
        image = ax.imshow(
            panel, origin="lower", aspect="auto", extent=extent, interpolation="nearest",
            vmin=top - DYNAMIC_RANGE_DB, vmax=top, cmap="magma",
        )  # fmt: skip
        ax.set_ylim(0, acc.sample_rate / 2)
        ax.set_title(name)
        ax.set_ylabel("frequency (Hz)")
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(image, cax=fig.add_subplot(grid[:, 1]), label="power (dB)")
    return fig


def probability_figure(
    starts: np.ndarray, ends: np.ndarray, probabilities: np.ndarray, weights: np.ndarray
) -> plt.Figure:
    """On-screen probability of every source over time (at the window centres), and the weight
    the operating point gave it (dashed)."""
    centres = (starts + ends) / 2
    fig, ax = plt.subplots(figsize=(10, 3))
    fig.subplots_adjust(left=0.08, right=0.98, top=0.95, bottom=0.16)  # fixed: see above
    for m in range(probabilities.shape[1]):
        (line,) = ax.plot(centres, probabilities[:, m], marker=".", label=f"source {m}")
        ax.plot(centres, weights[:, m], "--", color=line.get_color(), alpha=0.5)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("on-screen probability")
    ax.legend(loc="upper right", fontsize="small", ncol=min(4, probabilities.shape[1]))
    return fig


def png_data_uri(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    # zlib level 1, not 6: 0.06 s less per figure (of about 0.25 s per input, which dominates
    # the cost of a short video) for a file 10% larger
    fig.savefig(buf, format="png", dpi=100, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@dataclass
class PageContent:
    title: str
    video: str | None  # file name of the remuxed video beside the page, None with --no-video
    on_screen: str  # file names of the soundtracks beside the page
    off_screen: str
    spectrogram_uri: str
    probability_uri: str
    point: str  # the operating point, in words
    facts: dict[str, str]


_SCRIPT = """
const video = document.getElementById('video');
const on = document.getElementById('on'), off = document.getElementById('off');
const master = video || on;
const followers = video ? [on, off] : [off];
const gains = {original: [1, 1], on: [1, 0], off: [0, 1]};
function choose(kind) {
  on.volume = gains[kind][0]; off.volume = gains[kind][1];
  document.querySelectorAll('input[name=track]').forEach(r => { r.checked = r.value === kind; });
}
document.querySelectorAll('input[name=track]').forEach(
  r => r.addEventListener('change', () => choose(r.value)));
function sync() {
  followers.forEach(a => { if (Math.abs(a.currentTime - master.currentTime) > 0.08) {
    a.currentTime = master.currentTime; } });
}
master.addEventListener('play', () => { sync(); followers.forEach(a => a.play().catch(() => {})); });
master.addEventListener('pause', () => followers.forEach(a => a.pause()));
master.addEventListener('seeked', sync);
master.addEventListener('timeupdate', sync);
function report() {
  const media = Array.from(document.querySelectorAll('video, audio'));
  document.getElementById('media-status').textContent = JSON.stringify(
    media.map(m => ({id: m.id, duration: m.duration, error: m.error ? m.error.code : null})));
}
document.querySelectorAll('video, audio').forEach(m => {
  m.addEventListener('loadedmetadata', report); m.addEventListener('error', report); });
choose('on');
report();
"""


def render_page(content: PageContent) -> str:
    """``index.html``: self-contained (no network; the figures inlined), it plays the media
    files beside it. The video is muted: its sound is the two soundtracks, mixed by the switch
    (original = on-screen + off-screen, exactly)."""
    e = html.escape
    video = (
        f'<video id="video" src="{e(content.video)}" controls muted preload="metadata" '
        "playsinline></video>"
        if content.video
        else ""
    )
    controls = "" if content.video else " controls"
    facts = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in content.facts.items())
    radios = "".join(
        f'<label><input type="radio" name="track" value="{v}"> {label}</label> '
        for v, label in (("original", "original"), ("on", "on-screen"), ("off", "off-screen"))
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(content.title)}: on-screen / off-screen</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em auto; max-width: 1000px; color: #222; }}
video {{ max-width: 100%; max-height: 60vh; background: #000; display: block; }}
img {{ max-width: 100%; }} th {{ text-align: left; padding-right: 1em; }}
.switch {{ margin: 0.6em 0; font-size: 1.1em; }} #media-status {{ display: none; }}
</style></head><body>
<h1>{e(content.title)}</h1>
{video}
<audio id="on" src="{e(content.on_screen)}" preload="metadata"{controls}></audio>
<audio id="off" src="{e(content.off_screen)}" preload="metadata"></audio>
<div class="switch">soundtrack: {radios}</div>
<p>Operating point: {e(content.point)}.</p>
<h2>Spectrograms</h2>
<img alt="spectrograms of the mixture, on-screen and off-screen sound" src="{content.spectrogram_uri}">
<h2>On-screen probability over time</h2>
<img alt="on-screen probability of each source over time" src="{content.probability_uri}">
<h2>Details</h2><table>{facts}</table>
<pre id="media-status"></pre>
<script>{_SCRIPT}</script>
</body></html>
"""
