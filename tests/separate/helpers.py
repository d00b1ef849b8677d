"""Helpers of the separation tests: a tiny model trained in the run, synthetic inputs, reading
outputs back."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from audioscope_kedro.evaluation.calibration import Calibration, OperatingPoint, PointKind
from audioscope_kedro.losses import mixit
from audioscope_kedro.media import MediaFormat
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.models.persistence import weights_fingerprint
from audioscope_kedro.release import ReleasedModel
from tests.helpers import tiny_config

MEDIA = MediaFormat(sample_rate=8000, fps=4.0, frame_height=32, frame_width=32)
CLIP_SECONDS = 2.0  # the model's window: 2 s windows every 1 s by default
POINT_15 = OperatingPoint(PointKind.AFFINE, temperature=0.5, bias=-0.5)
POINT_6 = OperatingPoint(PointKind.AFFINE, temperature=1.0, bias=0.5)


def tones(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    f = rng.uniform(150, 2500)
    env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t + rng.uniform(0, 6))
    return (0.3 * env * np.sin(2 * np.pi * f * t)).astype(np.float32)


def train_release(folder: Path, steps: int = 12, seed: int = 0) -> Path:
    """A few MixIT steps on mixtures of mixtures of tones, then the released folder with a
    calibration made for these weights (points at 6 and 15 dB)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = AudioScope(tiny_config(clip_seconds=CLIP_SECONDS, media=MEDIA))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    n = MEDIA.num_samples(CLIP_SECONDS)
    frames = torch.zeros(4, MEDIA.num_frames(CLIP_SECONDS), 32, 32, 3, dtype=torch.uint8)
    for _ in range(steps):
        mix1 = torch.from_numpy(
            np.stack([tones(n, 8000, rng) + tones(n, 8000, rng) for _ in range(4)])
        )
        mix2 = torch.from_numpy(np.stack([tones(n, 8000, rng) for _ in range(4)]))
        out = model(mix1 + mix2, frames)
        loss, _ = mixit(out.sources, mix1, mix2)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    model.eval()
    calibration = Calibration(
        point=POINT_15,
        target_suppression_db=15.0,
        reached=True,
        split="validate",
        model_fingerprint=weights_fingerprint(model),
        points_by_target={6.0: POINT_6, 15.0: POINT_15},
    )
    ReleasedModel.assemble(model, calibration).save(folder)
    return folder


def write_video(
    path: Path,
    audio: np.ndarray,
    sample_rate: int,
    fps: int = 4,
    size: int = 16,
    container: str = "mp4",
    audio_codec: str = "aac",
    rotation: int | None = None,
) -> Path:
    """A cheap video: ``audio [C, T]`` (float32) and grey frames that brighten over time, at
    ``fps`` (H.264 in ``container``). PCM codecs need ``container="matroska"``.

    ``rotation`` (degrees counter-clockwise) stores a display rotation, as phones do for
    portrait video, and stores frames twice as wide as high whose left quarter is white."""
    audio = np.atleast_2d(audio)
    channels = audio.shape[0]
    layout = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 6: "5.1", 8: "7.1"}[channels]
    duration = audio.shape[1] / sample_rate
    with av.open(str(path), "w", format=container) as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height = (2 * size, size) if rotation is not None else (size, size)
        v.pix_fmt = "yuv420p"
        if rotation is not None:
            v.set_display_rotation(rotation)
        v.options = {"preset": "ultrafast", "threads": "1"}
        a = c.add_stream(audio_codec, rate=sample_rate, layout=layout)
        n_frames = max(1, int(round(duration * fps)))
        step = 1024

        def mux_audio(start: int) -> None:
            chunk = np.ascontiguousarray(audio[:, start : start + step], np.float32)
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            af.sample_rate, af.pts = sample_rate, start
            af.time_base = Fraction(1, sample_rate)
            c.mux(a.encode(af))

        ai = 0
        for i in range(n_frames):
            level = int(255 * i / max(1, n_frames - 1))
            image = np.full((v.height, v.width, 3), level, np.uint8)
            if rotation is not None:
                image[:, : v.width // 4] = 255
            frame = av.VideoFrame.from_ndarray(image, "rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            c.mux(v.encode(frame))
            # interleave the audio up to this frame's time
            while ai < audio.shape[1] and ai / sample_rate <= (i + 1) / fps:
                mux_audio(ai)
                ai += step
        c.mux(v.encode())
        for start in range(ai, audio.shape[1], step):  # what is left after the last frame
            mux_audio(start)
        c.mux(a.encode())
    return path


def decoded_audio(path: Path) -> tuple[np.ndarray, int]:
    """The whole first audio stream of ``path`` at its own rate and channels: ``[C, T]``."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")
        parts = [
            f.to_ndarray()
            for packet in c.demux(stream)
            for frame in packet.decode()
            for f in resampler.resample(frame)
        ]
        parts += [f.to_ndarray() for f in resampler.resample(None)]
        return np.concatenate(parts, axis=1), stream.codec_context.sample_rate


def video_packets(path: Path) -> list[bytes]:
    """The bytes of every packet of the first video stream."""
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]
