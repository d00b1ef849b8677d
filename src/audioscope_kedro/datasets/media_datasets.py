"""Kedro datasets for single media files: an ``.mp4`` clip and a ``.wav`` stem.

Used as the underlying datasets of ``partitions.PartitionedDataset`` for the demo dataset; their
``save`` takes what the rendering node produces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from kedro.io import AbstractDataset

from audioscope_kedro.atomic import atomic_path
from audioscope_kedro.data.decode import DecodeSettings, decode_clip, probe_duration
from audioscope_kedro.data.video_io import AVClip, Waveform, write_mp4


class VideoDataset(AbstractDataset[AVClip, AVClip]):
    """An ``.mp4`` file (H.264 + AAC). Loading decodes it whole at its own frame size."""

    def __init__(
        self, filepath: str, load_args: dict[str, Any] | None = None, metadata: dict | None = None
    ):
        self._filepath = Path(filepath)
        self._load_args = {"sample_rate": 16000, "fps": 8.0, **(load_args or {})}
        self.metadata = metadata

    def load(self) -> AVClip:
        duration = probe_duration(self._filepath)
        args = self._load_args
        settings = DecodeSettings(
            sample_rate=args["sample_rate"],
            fps=args["fps"],
            frame_height=args.get("frame_height", 64),
            frame_width=args.get("frame_width", 64),
            short_audio="pad",
            silence_db=-1000.0,
        )
        clip = decode_clip(self._filepath, 0.0, duration, settings)
        return AVClip(clip.frames, settings.fps, clip.audio, settings.sample_rate)

    def save(self, data: AVClip) -> None:
        write_mp4(self._filepath, data.frames, data.fps, data.audio, data.sample_rate)

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class AudioDataset(AbstractDataset[Waveform, Waveform]):
    """A mono WAV file, written as 32-bit float so that stems sum exactly to their mixture."""

    def __init__(self, filepath: str, metadata: dict | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> Waveform:
        audio, sample_rate = sf.read(str(self._filepath), dtype="float32")
        return Waveform(audio if audio.ndim == 1 else audio.mean(axis=1), sample_rate)

    def save(self, data: Waveform) -> None:
        with atomic_path(self._filepath) as tmp:
            sf.write(
                str(tmp), np.asarray(data.audio, np.float32), data.sample_rate, subtype="FLOAT"
            )

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
