"""``separate_file``: one input video in, its output folder out (what the command runs per
input). Decoding, the model, the stitching and every writer run in one streaming pass."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np
import torch

from audioscope_kedro import device as devices
from audioscope_kedro.atomic import atomic_path, write_text
from audioscope_kedro.evaluation.calibration import OperatingPoint
from audioscope_kedro.models.audioscope import AudioScope, AudioScopeConfig
from audioscope_kedro.separate import page
from audioscope_kedro.separate.engine import (
    Chunk,
    Geometry,
    Separated,
    Separator,
    Stitcher,
    Window,
    Windower,
    model_separator,
)
from audioscope_kedro.separate.reader import InputInfo, describe, open_input, read_blocks
from audioscope_kedro.separate.writers import AudioWriter, ProbabilityCsv, RemuxWriter

# what a folder is walked for (a file named on the command line is tried whatever its name)
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts"}
    | {".m2ts", ".flv", ".wmv", ".3gp", ".ogv", ".mxf"}
)


@dataclass(frozen=True)
class SeparateOptions:
    """How to separate: the operating point, the windows, the outputs."""

    point: OperatingPoint
    window_seconds: float | None = None  # None: the model's clip_seconds
    hop_seconds: float | None = None  # None: half the window
    batch_size: int = 4  # windows per model call
    audio_format: str = "wav"  # or "flac"
    video: bool = True  # write the remuxed video
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def window_and_hop(self, clip_seconds: float) -> tuple[float, float]:
        window = self.window_seconds or clip_seconds
        hop = self.hop_seconds or window / 2
        if window <= 0 or not 0 < hop <= window:
            raise ValueError(f"need 0 < hop <= window, got window={window} s, hop={hop} s")
        return window, hop


@dataclass
class Timings:
    """Seconds spent in each stage of one input."""

    decode: float = 0.0  # demuxing, decoding, resampling, frame conversion
    model: float = 0.0  # the separator
    split: float = 0.0  # alignment, cross-fade, mask onto the input's channels
    remux: float = 0.0  # the video packets copied, the on-screen AAC encoded and muxed
    files: float = 0.0  # stems, CSV, spectrogram, figures and page

    @property
    def total(self) -> float:
        return self.decode + self.model + self.split + self.remux + self.files


@dataclass
class SeparationReport:
    """What was made of one input."""

    input: Path
    folder: Path
    duration: float  # seconds of audio written
    sample_rate: int
    channels: int
    windows: int
    files: list[Path]
    timings: Timings


def output_folder(out_root: Path, video: Path) -> Path:
    """``<out>/<stem>-<8 hex digits of the resolved path>``: two inputs of the same name (in
    different folders) never share a folder; the same input always gets the same one."""
    digest = hashlib.sha1(str(video.resolve()).encode()).hexdigest()[:8]
    return out_root / f"{video.stem}-{digest}"


class _Clock:
    def __init__(self, timings: Timings):
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            setattr(self.timings, stage, getattr(self.timings, stage) + time.perf_counter() - t0)


def separate_file(
    model: AudioScope,
    video: str | Path,
    out_root: str | Path,
    options: SeparateOptions,
    progress: Callable[[int, int], None] | None = None,
    separator: Separator | None = None,
) -> SeparationReport:
    """Separate ``video`` into ``<out_root>/<stem>-<hash>/`` (see :func:`output_folder`).

    Writes ``on_screen.<fmt>``, ``off_screen.<fmt>`` (the input's rate and channels; they sum to
    the input), ``sources/source_<k>.<fmt>`` (the model's rate, mono), ``on_screen.mp4`` (the
    video stream copied, on-screen audio as AAC; unless ``options.video`` is false),
    ``probabilities.csv``, ``spectrogram.png``, ``probabilities.png``, ``separation.json`` and
    ``index.html``. The folder appears complete or not at all.

    ``progress(done, total)`` is called after every window (``total`` estimated from the
    container's duration). ``separator`` replaces the model (tests). Raises
    :class:`~audioscope_kedro.data.decode.BadClipError` for an input that cannot be used.
    """
    video, out_root = Path(video), Path(out_root)
    if separator is None:
        separator = model_separator(devices.move(model, options.device).eval(), options.device)
    timings = Timings()
    clock = _Clock(timings)
    t_start = time.perf_counter()
    with clock("decode"):
        container = open_input(video)
    with container:
        info = describe(container, video)
        folder = output_folder(out_root, video)
        with atomic_path(folder) as tmp:
            tmp.mkdir(parents=True)
            job = _Job(model.config, info, options, tmp, container, clock)
            job.stream(container, separator, progress)
            job.write_summary(video, time.perf_counter() - t_start)
            files = sorted(p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file())
    return SeparationReport(
        input=video,
        folder=folder,
        duration=job.samples / info.sample_rate,
        sample_rate=info.sample_rate,
        channels=info.channels,
        windows=len(job.stitcher.records),
        files=[folder / f for f in files],
        timings=timings,
    )


class _Job:
    """One input's streaming pass into the temporary folder ``tmp``: windows in, the writers
    fed as soon as the stitcher has finished samples, then the figures, page and summary."""

    def __init__(
        self,
        config: AudioScopeConfig,
        info: InputInfo,
        options: SeparateOptions,
        tmp: Path,
        container: av.container.InputContainer,
        clock: _Clock,
    ):
        self.config = config
        self.info = info
        self.options = options
        self.tmp = tmp
        self.clock = clock
        self.window_s, self.hop_s = options.window_and_hop(config.clip_seconds)
        media = config.media
        g = Geometry.create(media, info.sample_rate, self.window_s, self.hop_s)
        self.total = g.plan.count(media.num_samples(info.duration or 0.0))
        self.windower = Windower(g, info.channels, (media.frame_height, media.frame_width))
        self.stitcher = Stitcher(g, options.point, info.channels)
        fmt = options.audio_format
        expected = int((info.duration or 0) * info.sample_rate)
        self.tracks = {
            name: AudioWriter(tmp / f"{name}.{fmt}", info.sample_rate, info.channels, fmt, expected)
            for name in ("on_screen", "off_screen")
        }
        self.sources: list[AudioWriter] = []  # opened with the first chunk: M known then
        self.csv = ProbabilityCsv(tmp / "probabilities.csv")
        self.csv_records = 0  # stitcher records already in the CSV
        self.spectrogram = page.SpectrogramAccumulator(info.sample_rate)
        self.remux: RemuxWriter | None = None
        if options.video:
            astream = container.streams.audio[0]
            start = float(astream.start_time * astream.time_base) if astream.start_time else 0.0
            with clock("remux"):
                self.remux = RemuxWriter(
                    tmp / "on_screen.mp4",
                    container.streams.video[0],
                    info.sample_rate,
                    info.channels,
                    start,
                )
        self.done = 0

    @property
    def samples(self) -> int:
        return self.tracks["on_screen"].samples

    def stream(
        self,
        container: av.container.InputContainer,
        separator: Separator,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        """Decode, separate and write the whole input; the writers are closed even on error."""
        clock = self.clock
        try:
            batch: list[Window] = []
            on_packet = self._video_packet if self.remux is not None else None
            blocks = read_blocks(container, self.config.media, on_packet)
            while True:
                with clock("decode"):
                    block = next(blocks, None)
                if block is None:
                    break
                batch.extend(self.windower.push(block))
                if len(batch) >= self.options.batch_size:
                    self._run_batch(batch, separator, progress)
            batch.extend(self.windower.finish())
            self._run_batch(batch, separator, progress)
            with clock("split"):
                chunks = self.stitcher.finish(self.windower.input_total, self.windower.model_total)
            self._write(chunks)
        finally:
            for writer in [*self.tracks.values(), *self.sources, self.csv]:
                writer.close()
            if self.remux is not None:
                with clock("remux"):
                    self.remux.close()

    def _video_packet(self, packet: av.Packet) -> None:
        t0 = time.perf_counter()
        self.remux.video_packet(packet)
        spent = time.perf_counter() - t0
        self.clock.timings.remux += spent
        self.clock.timings.decode -= spent  # it ran inside decode's clock

    def _run_batch(
        self,
        batch: list[Window],
        separator: Separator,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        if not batch:
            return
        with self.clock("model"):
            sources, logits = separator(batch)
        if not (np.isfinite(sources).all() and np.isfinite(logits).all()):
            # never written out: NaN in a stem would also break on + off == input
            start = batch[0].index * self.hop_s
            raise RuntimeError(
                f"the model gave NaN/inf for the windows from {start:.2f} s (its input was "
                "finite: a model or device fault)"
            )
        for window, s, lg in zip(batch, sources, logits, strict=True):
            with self.clock("split"):
                chunks = self.stitcher.push(Separated(window, s, lg))
            self._write(chunks)
            self.done += 1
            if progress is not None:
                progress(self.done, max(self.total, self.done))
        batch.clear()

    def _write(self, chunks: list[Chunk]) -> None:
        fmt = self.options.audio_format
        for chunk in chunks:
            if self.remux is not None:
                with self.clock("remux"):
                    self.remux.audio_chunk(chunk.on_screen)
            with self.clock("files"):
                self.tracks["on_screen"].write(chunk.on_screen)
                self.tracks["off_screen"].write(chunk.off_screen)
                if not self.sources:
                    self.sources.extend(
                        AudioWriter(
                            self.tmp / "sources" / f"source_{m}.{fmt}",
                            self.config.media.sample_rate,
                            1,
                            fmt,
                        )
                        for m in range(chunk.sources.shape[0])
                    )
                for m, writer in enumerate(self.sources):
                    writer.write(chunk.sources[m : m + 1])
                self.spectrogram.push(
                    chunk.original.mean(0), chunk.on_screen.mean(0), chunk.off_screen.mean(0)
                )
        with self.clock("files"):
            for record in self.stitcher.records[self.csv_records :]:
                self.csv.write(record.start, record.end, record.probabilities, record.weights)
            self.csv_records = len(self.stitcher.records)

    def write_summary(self, video: Path, wall_seconds: float) -> None:
        """The two figures, ``index.html`` and ``separation.json``."""
        c, info, tmp, fmt = self.config, self.info, self.tmp, self.options.audio_format
        with self.clock("files"):
            records = self.stitcher.records
            spectrogram_png = page.spectrogram_png(self.spectrogram)
            probability_png = page.probability_png(
                np.array([r.start for r in records]),
                np.array([r.end for r in records]),
                np.stack([r.probabilities for r in records]),
                np.stack([r.weights for r in records]),
                duration=self.samples / info.sample_rate,
            )
            # inside the temporary folder that is renamed into place when the input is done
            (tmp / "spectrogram.png").write_bytes(spectrogram_png)
            (tmp / "probabilities.png").write_bytes(probability_png)
            spectrogram_uri = page.png_data_uri(spectrogram_png)
            probability_uri = page.png_data_uri(probability_png)
            windows = f"{len(records)} of {self.window_s:g} s every {self.hop_s:g} s"
            facts = {
                "input": str(video),
                "duration": f"{self.samples / info.sample_rate:.2f} s",
                "audio": f"{info.sample_rate} Hz, {info.channels} channel(s)",
                "video codec": f"{info.video_codec} (copied, not re-encoded)",
                "windows": windows,
                "model": f"{c.media.sample_rate} Hz mono, {c.separator.num_sources} sources",
            }
            video_name = self.remux.path.name if self.remux is not None else None
            content = page.PageContent(
                title=video.name,
                video=video_name,
                on_screen=f"on_screen.{fmt}",
                off_screen=f"off_screen.{fmt}",
                spectrogram_uri=spectrogram_uri,
                probability_uri=probability_uri,
                point=self.options.point.describe(),
                facts=facts,
            )
            write_text(tmp / "index.html", page.render_page(content))
            meta = {
                "input": str(video),
                "sample_rate": info.sample_rate,
                "channels": info.channels,
                "samples": self.samples,
                "model_sample_rate": c.media.sample_rate,
                "window_seconds": self.window_s,
                "hop_seconds": self.hop_s,
                "windows": len(records),
                "operating_point": self.options.point.to_dict(),
                "video": video_name,
                "timings": asdict(self.clock.timings),
                "wall_seconds": wall_seconds,
            }
            write_text(tmp / "separation.json", json.dumps(meta, indent=2) + "\n")


def find_videos(path: Path) -> list[Path]:
    """``path`` itself when it is a file (whatever its name), else the video files under it
    (by extension), sorted."""
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
        )
    return [path]
