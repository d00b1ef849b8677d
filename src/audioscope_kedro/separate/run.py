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

import numpy as np
import torch

from audioscope_kedro import device as devices
from audioscope_kedro.atomic import atomic_path, write_text
from audioscope_kedro.evaluation.calibration import OperatingPoint
from audioscope_kedro.models.audioscope import AudioScope
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
from audioscope_kedro.separate.reader import describe, open_input, read_blocks
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
    encode: float = 0.0  # writing audio files, AAC + remux, figures and page


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
    c = model.config
    window_s, hop_s = options.window_and_hop(c.clip_seconds)
    if separator is None:
        separator = model_separator(devices.move(model, options.device).eval(), options.device)
    timings = Timings()
    clock = _Clock(timings)
    t_start = time.perf_counter()
    with clock("decode"):
        container = open_input(video)
    with container:
        info = describe(container, video)
        g = Geometry.create(c.media, info.sample_rate, window_s, hop_s)
        total = g.plan.count(c.media.num_samples(info.duration or 0.0))
        windower = Windower(g, info.channels, (c.media.frame_height, c.media.frame_width))
        stitcher = Stitcher(g, options.point, info.channels)
        folder = output_folder(out_root, video)
        fmt = options.audio_format
        with atomic_path(folder) as tmp:
            tmp.mkdir(parents=True)
            expected = int((info.duration or 0) * info.sample_rate)
            writers: dict[str, AudioWriter] = {
                name: AudioWriter(
                    tmp / f"{name}.{fmt}", info.sample_rate, info.channels, fmt, expected
                )
                for name in ("on_screen", "off_screen")
            }
            sources: list[AudioWriter] = []
            csv = ProbabilityCsv(tmp / "probabilities.csv")
            spectrogram = page.SpectrogramAccumulator(info.sample_rate)
            remux = None
            astream = container.streams.audio[0]
            if options.video:
                start = float(astream.start_time * astream.time_base) if astream.start_time else 0.0
                with clock("encode"):
                    remux = RemuxWriter(
                        tmp / "on_screen.mp4",
                        container.streams.video[0],
                        info.sample_rate,
                        info.channels,
                        start,
                    )

            def on_packet(packet) -> None:
                t0 = time.perf_counter()
                remux.video_packet(packet)
                timings.encode += time.perf_counter() - t0
                timings.decode -= time.perf_counter() - t0  # counted inside decode's clock

            def write(chunks: list[Chunk]) -> None:
                with clock("encode"):
                    for chunk in chunks:
                        writers["on_screen"].write(chunk.on_screen)
                        writers["off_screen"].write(chunk.off_screen)
                        if not sources:
                            sources.extend(
                                AudioWriter(
                                    tmp / "sources" / f"source_{m}.{fmt}",
                                    c.media.sample_rate,
                                    1,
                                    fmt,
                                )
                                for m in range(chunk.sources.shape[0])
                            )
                        for m, writer in enumerate(sources):
                            writer.write(chunk.sources[m : m + 1])
                        if remux is not None:
                            remux.audio_chunk(chunk.on_screen)
                        spectrogram.push(
                            chunk.original.mean(0),
                            chunk.on_screen.mean(0),
                            chunk.off_screen.mean(0),
                        )
                    for record in stitcher.records[written_records[0] :]:
                        csv.write(record.start, record.end, record.probabilities, record.weights)
                    written_records[0] = len(stitcher.records)

            written_records = [0]
            done = [0]

            def run_batch(batch: list[Window]) -> None:
                if not batch:
                    return
                with clock("model"):
                    srcs, logits = separator(batch)
                for w, s, lg in zip(batch, srcs, logits, strict=True):
                    with clock("split"):
                        chunks = stitcher.push(Separated(w, s, lg))
                    write(chunks)
                    done[0] += 1
                    if progress is not None:
                        progress(done[0], max(total, done[0]))
                batch.clear()

            try:
                batch: list[Window] = []
                blocks = read_blocks(container, c.media, on_packet if remux else None)
                while True:
                    with clock("decode"):
                        block = next(blocks, None)
                    if block is None:
                        break
                    batch.extend(windower.push(block))
                    if len(batch) >= options.batch_size:
                        run_batch(batch)
                batch.extend(windower.finish())
                run_batch(batch)
                with clock("split"):
                    chunks = stitcher.finish(windower.input_total, windower.model_total)
                write(chunks)
            finally:
                for w in [*writers.values(), *sources, csv]:
                    w.close()
                if remux is not None:
                    with clock("encode"):
                        remux.close()

            with clock("encode"):
                records = stitcher.records
                spectrogram_uri = page.png_data_uri(page.spectrogram_figure(spectrogram))
                probability_fig = page.probability_figure(
                    np.array([r.start for r in records]),
                    np.array([r.end for r in records]),
                    np.stack([r.probabilities for r in records]),
                    np.stack([r.weights for r in records]),
                )
                probability_uri = page.png_data_uri(probability_fig)
                _write_data_uri(tmp / "spectrogram.png", spectrogram_uri)
                _write_data_uri(tmp / "probabilities.png", probability_uri)
                samples = writers["on_screen"].samples
                facts = {
                    "input": str(video),
                    "duration": f"{samples / info.sample_rate:.2f} s",
                    "audio": f"{info.sample_rate} Hz, {info.channels} channel(s)",
                    "video codec": f"{info.video_codec} (copied, not re-encoded)",
                    "windows": f"{len(records)} of {window_s:g} s every {hop_s:g} s",
                    "model": f"{c.media.sample_rate} Hz mono, {c.separator.num_sources} sources",
                }
                video_name = remux.path.name if remux is not None else None
                write_text(
                    tmp / "index.html",
                    page.render_page(
                        page.PageContent(
                            title=video.name,
                            video=video_name,
                            on_screen=f"on_screen.{fmt}",
                            off_screen=f"off_screen.{fmt}",
                            spectrogram_uri=spectrogram_uri,
                            probability_uri=probability_uri,
                            point=options.point.describe(),
                            facts=facts,
                        )
                    ),
                )
                meta = {
                    "input": str(video),
                    "sample_rate": info.sample_rate,
                    "channels": info.channels,
                    "samples": samples,
                    "model_sample_rate": c.media.sample_rate,
                    "window_seconds": window_s,
                    "hop_seconds": hop_s,
                    "windows": len(records),
                    "operating_point": options.point.to_dict(),
                    "video": video_name,
                    "timings": asdict(timings),
                    "wall_seconds": time.perf_counter() - t_start,
                }
                write_text(tmp / "separation.json", json.dumps(meta, indent=2) + "\n")
            files = sorted(p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file())
    return SeparationReport(
        input=video,
        folder=folder,
        duration=samples / info.sample_rate,
        sample_rate=info.sample_rate,
        channels=info.channels,
        windows=len(records),
        files=[folder / f for f in files],
        timings=timings,
    )


def _write_data_uri(path: Path, uri: str) -> None:
    import base64

    path.write_bytes(base64.b64decode(uri.split(",", 1)[1]))


def find_videos(path: Path) -> list[Path]:
    """``path`` itself when it is a file (whatever its name), else the video files under it
    (by extension), sorted."""
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
        )
    return [path]
