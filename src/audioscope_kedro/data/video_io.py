"""Write audio-visual clips as real ``.mp4`` files (H.264 video + AAC audio) with PyAV."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from audioscope_kedro.atomic import atomic_path

AUDIO_CHUNK = 1024  # AAC frame size


@dataclass
class AVClip:
    """A clip in memory: what :func:`write_mp4` encodes."""

    frames: np.ndarray  # uint8 [F, H, W, 3]
    fps: float
    audio: np.ndarray  # float32 [T]
    sample_rate: int


@dataclass
class Waveform:
    """Mono audio with its sample rate: what a ``.wav`` stem holds."""

    audio: np.ndarray  # float32 [T]
    sample_rate: int


def write_mp4(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray,
    sample_rate: int,
    crf: int = 18,
    audio_bitrate: int = 96_000,
) -> None:
    """Encode ``frames`` (uint8 [F, H, W, 3] RGB, even H and W) and mono ``audio`` (float32
    [T], in [-1, 1]) into ``path``, written under a temporary name and renamed when complete.

    x264 runs single-threaded so that the same input gives the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [F, H, W, 3], got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError("H.264 with yuv420p needs even frame height and width")
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        # mbtree off: with it x264 gave different bytes for the same frames from run to run
        video.options = {
            "crf": str(crf),
            "preset": "veryfast",
            "threads": "1",
            "x264-params": "mbtree=0",
        }
        sound = container.add_stream("aac", rate=sample_rate, layout="mono")
        sound.bit_rate = audio_bitrate
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            container.mux(video.encode(frame))
        container.mux(video.encode())
        samples = np.clip(audio, -1, 1).astype(np.float32)
        for start in range(0, samples.size, AUDIO_CHUNK):
            chunk = samples[None, start : start + AUDIO_CHUNK]
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk), format="fltp", layout="mono"
            )
            frame.sample_rate = sample_rate
            frame.pts = start
            frame.time_base = Fraction(1, sample_rate)
            container.mux(sound.encode(frame))
        container.mux(sound.encode())
