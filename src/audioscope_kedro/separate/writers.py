"""Streaming writers of a separation's files: audio stems, the remuxed video, the CSV.

Each writer takes its data chunk by chunk as the windows are finished, so no output is ever
held whole in memory. They write into the output folder while it still has its temporary name
(:func:`audioscope_kedro.atomic.atomic_path` on the folder): a file under a final name is
always complete.
"""

from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np
import soundfile as sf

# channel count -> FFmpeg layout name for the AAC soundtrack
LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24")}
WAV_LIMIT = 3_500_000_000  # bytes: above this, RF64 (plain WAV stops at 4 GiB)


class AudioWriter:
    """A sound file written in chunks ``[C, n]`` (float32 WAV, or 24-bit FLAC)."""

    def __init__(
        self, path: Path, sample_rate: int, channels: int, fmt: str, expected_samples: int = 0
    ):
        container, subtype = FORMATS[fmt]
        if container == "WAV" and expected_samples * channels * 4 > WAV_LIMIT:
            container = "RF64"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = sf.SoundFile(
            str(path), "w", samplerate=sample_rate, channels=channels, format=container,
            subtype=subtype,
        )  # fmt: skip
        self.samples = 0

    def write(self, chunk: np.ndarray) -> None:
        if chunk.shape[-1]:
            self.file.write(np.ascontiguousarray(chunk.T, dtype=np.float32))
            self.samples += chunk.shape[-1]

    def close(self) -> None:
        self.file.close()


class RemuxWriter:
    """The input's video stream copied packet by packet (never re-encoded) with a new AAC
    soundtrack given in chunks ``[C, n]`` at the input's rate.

    MP4 when the video codec fits in one, else Matroska (``path`` with ``.mkv``): see ``path``.
    """

    def __init__(
        self,
        path: Path,
        video: av.video.stream.VideoStream,
        sample_rate: int,
        channels: int,
        start_time: float,
        bit_rate: int = 160_000,
    ):
        self.path = path
        try:
            self._open(path, "mp4", video, sample_rate, channels, bit_rate)
        except (av.error.FFmpegError, ValueError):
            if getattr(self, "container", None) is not None:
                self.container.close()
            path.unlink(missing_ok=True)
            self.path = path.with_suffix(".mkv")
            self._open(self.path, "matroska", video, sample_rate, channels, bit_rate)
        self.sample_rate = sample_rate
        self.pts = int(round(start_time * sample_rate))  # keeps the input's audio-video sync

    def _open(self, path, fmt, video, sample_rate, channels, bit_rate) -> None:
        self.container = av.open(str(path), "w", format=fmt)
        self.video = self.container.add_stream_from_template(video)
        self.layout = LAYOUTS.get(channels, "stereo")
        self.audio = self.container.add_stream("aac", rate=sample_rate, layout=self.layout)
        self.audio.bit_rate = bit_rate * max(1, channels) // 2
        # FFmpeg's "fast" AAC coder instead of its default two-loop search: 1.7x faster on
        # the real soundtracks of ../shared (2.4x on noise, slower on pure tones; the encoder
        # was the costliest step after the model) for a soundtrack meant to be watched, not
        # archived; benchmarks/separate.py times the ffmpeg command line with the same coder
        self.audio.options = {"aac_coder": "fast"}
        self.container.start_encoding()  # fails here for a codec the format cannot hold
        self.downmix = LAYOUTS.get(channels) is None

    def video_packet(self, packet: av.Packet) -> None:
        if packet.dts is None:  # demuxer's flush packet
            return
        packet.stream = self.video
        self.container.mux(packet)

    def audio_chunk(self, chunk: np.ndarray) -> None:
        if not chunk.shape[-1]:
            return
        if self.downmix:  # more channels than AAC layouts name: stereo from the mean
            chunk = np.repeat(chunk.mean(0, keepdims=True), 2, axis=0)
        # packed samples (the encoder's resampler makes them planar): PyAV 18 miscounts the
        # planes of an 8-channel planar frame and writes past the array given
        packed = np.ascontiguousarray(chunk.T, dtype=np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=self.layout)
        frame.sample_rate, frame.pts = self.sample_rate, self.pts
        self.pts += chunk.shape[-1]
        self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        self.container.mux(self.audio.encode(None))
        self.container.close()


class ProbabilityCsv:
    """``probabilities.csv``: one row per source per window."""

    COLUMNS = ("source", "window_start", "window_end", "probability", "weight")

    def __init__(self, path: Path):
        self.file = path.open("w", newline="", encoding="utf-8")
        self.csv = csv.writer(self.file)
        self.csv.writerow(self.COLUMNS)

    def write(
        self, start: float, end: float, probabilities: np.ndarray, weights: np.ndarray
    ) -> None:
        for m, (p, w) in enumerate(zip(probabilities, weights, strict=True)):
            self.csv.writerow((m, f"{start:.4f}", f"{end:.4f}", f"{p:.6f}", f"{w:.6f}"))

    def close(self) -> None:
        self.file.close()
