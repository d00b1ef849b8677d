"""Separating a whole video with a released model (what ``audioscope separate`` runs).

The video is decoded to the model's media format and processed in clip-length chunks; each
chunk's sources are weighted by the operating point (the saved calibration by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audioscope_kedro import device as devices
from audioscope_kedro.atomic import atomic_path, write_json
from audioscope_kedro.data.decode import DecodeSettings, decode_clip, probe_duration
from audioscope_kedro.evaluation.calibration import RAW, OperatingPoint
from audioscope_kedro.release import ReleasedModel


@dataclass
class Separation:
    mixture: np.ndarray  # [T] mono at the model's sample rate
    on_screen: np.ndarray  # [T]
    off_screen: np.ndarray  # [T], mixture - on_screen
    sample_rate: int
    chunk_probabilities: list[list[float]]  # per chunk, per source
    point: OperatingPoint


def separate_video(
    release: ReleasedModel,
    video: str | Path,
    point: OperatingPoint | None = None,
    device: torch.device | None = None,
) -> Separation:
    """On-screen and off-screen soundtracks of a whole video, in clip-length chunks.

    Raises :class:`~audioscope_kedro.data.decode.BadClipError` for a video that cannot be read.
    """
    model, c = release.model, release.model.config
    point = point or (release.calibration.point if release.calibration else RAW)
    device = device or torch.device("cpu")
    model = devices.move(model, device).eval()
    settings = DecodeSettings.for_media(
        c.media, short_audio="pad", max_pad_seconds=1e9, silence_db=-1e9
    )
    clip = decode_clip(Path(video), 0.0, probe_duration(video), settings)
    frames_per_chunk = c.media.num_frames(c.clip_seconds)
    on = np.zeros_like(clip.audio)
    probabilities = []
    with torch.no_grad():
        for f0 in range(0, len(clip.frames), frames_per_chunk):
            f1 = min(len(clip.frames), f0 + frames_per_chunk)
            a0 = int(round(f0 * c.media.samples_per_frame))
            last = f1 == len(clip.frames)
            a1 = clip.audio.size if last else int(round(f1 * c.media.samples_per_frame))
            if a1 - a0 < c.separator.window:  # too short a tail to separate: keep as is
                on[a0:a1] = clip.audio[a0:a1]
                continue
            audio = devices.move(torch.from_numpy(clip.audio[a0:a1]).unsqueeze(0), device)
            frames = torch.from_numpy(np.ascontiguousarray(clip.frames[f0:f1])).unsqueeze(0)
            out = model(audio, devices.move(frames, device))
            weights = point.weights(out.logits)
            on[a0:a1] = (weights.unsqueeze(-1) * out.sources).sum(1)[0].cpu().numpy()
            probabilities.append(torch.sigmoid(out.logits)[0].cpu().tolist())
    return Separation(clip.audio, on, clip.audio - on, c.media.sample_rate, probabilities, point)


def write_separation(result: Separation, out: Path, stem: str, video: Path) -> list[Path]:
    """``<stem>.on_screen.wav``, ``<stem>.off_screen.wav`` and ``<stem>.json`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, audio in (("on_screen", result.on_screen), ("off_screen", result.off_screen)):
        path = out / f"{stem}.{name}.wav"
        with atomic_path(path) as tmp:
            sf.write(str(tmp), audio.astype(np.float32), result.sample_rate, subtype="FLOAT")
        written.append(path)
    write_json(
        out / f"{stem}.json",
        {
            "video": str(video),
            "sample_rate": result.sample_rate,
            "chunk_source_probabilities": result.chunk_probabilities,
            "operating_point": result.point.to_dict(),
        },
    )
    return written + [out / f"{stem}.json"]
