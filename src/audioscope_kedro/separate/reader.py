"""Streaming decode of a user's video with PyAV: never the whole file in memory.

One pass over the container gives, in file order, blocks of

- the input's audio at its own rate and channels (float32 ``[C, n]``, what the outputs keep),
- the same audio as a mono downmix at the model's rate (float32 ``[n']``, what the model hears),
- video frames picked at the model's frame rate and resized to its frame size,
- and, for the remuxed video, every video packet as it was in the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from audioscope_kedro.data.decode import (
    BadClipError,
    container_duration,
    open_container,
    packed_channels,
    upright_rgb,
)
from audioscope_kedro.media import MediaFormat


@dataclass(frozen=True)
class InputInfo:
    """What a reader knows about its input before decoding."""

    path: Path
    sample_rate: int  # Hz of the input's audio
    channels: int
    duration: float | None  # seconds, from the container (None: unknown)
    video_codec: str


@dataclass
class Block:
    """What one demuxed packet gave: any of the three may be empty."""

    audio: np.ndarray | None = None  # float32 [C, n] at the input's rate
    model_audio: np.ndarray | None = None  # float32 [n'] mono at the model's rate
    frames: list[tuple[int, np.ndarray]] | None = None  # (index k: time k / fps, uint8 [H, W, 3])


def open_input(path: Path) -> av.container.InputContainer:
    """Open ``path`` for reading, or raise :class:`BadClipError` saying why not (the same
    checks and reasons as ingest: :func:`~audioscope_kedro.data.decode.open_container`)."""
    container = open_container(path)
    if not container.streams.audio:
        container.close()
        raise BadClipError("no audio stream")
    if not container.streams.video:
        container.close()
        raise BadClipError("no video stream")
    return container


def describe(container: av.container.InputContainer, path: Path) -> InputInfo:
    a, v = container.streams.audio[0], container.streams.video[0]
    return InputInfo(
        path=path,
        sample_rate=int(a.codec_context.sample_rate or a.rate),
        channels=int(a.codec_context.channels or 1),
        duration=container_duration(container),
        video_codec=v.codec_context.name,
    )


class FramePicker:
    """For each target time ``k / fps`` (k = 0, 1, ...), the decoded frame nearest to it,
    converted to RGB at the model's size. Frames are emitted as soon as they are decided."""

    def __init__(self, media: MediaFormat):
        self.media = media
        self.reformatter = VideoReformatter()  # one scaler context for the whole stream
        self.k = 0
        self.prev: tuple[float, av.VideoFrame] | None = None

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        return upright_rgb(self.reformatter, frame, self.media.frame_width, self.media.frame_height)

    def push(self, time: float, frame: av.VideoFrame) -> list[tuple[int, np.ndarray]]:
        out: list[tuple[int, np.ndarray]] = []
        cache: dict[int, np.ndarray] = {}
        while time >= self.k / self.media.fps:
            target = self.k / self.media.fps
            use_prev = self.prev is not None and (target - self.prev[0]) < (time - target)
            chosen = self.prev[1] if use_prev else frame
            key = id(chosen)
            if key not in cache:
                cache[key] = self._rgb(chosen)
            out.append((self.k, cache[key]))
            self.k += 1
        self.prev = (time, frame)
        return out

    def finish(self, end_time: float) -> list[tuple[int, np.ndarray]]:
        """Frames up to ``end_time`` past the last decoded one repeat it."""
        if self.prev is None:
            return []
        rgb = self._rgb(self.prev[1])
        out = []
        while self.k / self.media.fps < end_time:
            out.append((self.k, rgb))
            self.k += 1
        return out


def _samples(frame: av.AudioFrame) -> np.ndarray:
    """``[C, n]`` float32 of a resampled (packed ``flt``) frame: see ``packed_channels``."""
    return packed_channels(frame).astype(np.float32, copy=False)


def _input_samples(frame: av.AudioFrame, to_input: av.AudioResampler) -> list[np.ndarray]:
    """``[C, n]`` float32 blocks of a decoded frame at the input's rate and channels. A planar
    float frame (what FFmpeg's AAC, Opus and Vorbis decoders give) is read as it is, with no
    conversion pass; other formats, and planar frames of 8 channels (see ``packed_channels``),
    go through the packed resampler, which converts formats without delay, so the two paths
    can alternate within a stream without reordering samples."""
    if frame.format.name == "fltp" and frame.layout.nb_channels < 8:
        return [frame.to_ndarray()]
    return [_samples(f) for f in to_input.resample(frame)]


def _mono(frame: av.AudioFrame) -> np.ndarray:
    """``[n]`` float32 mean of a resampled frame's channels (``ndarray.mean`` costs more in
    Python than in arithmetic on frames this short, one per AAC packet)."""
    samples = _samples(frame)
    if samples.shape[0] == 1:
        return samples[0]
    return np.add.reduce(samples, axis=0) / np.float32(samples.shape[0])


def _check_finite(audio: np.ndarray, rate: int, offset: int) -> None:
    """NaN/inf samples (float PCM can carry them) are refused, never passed to the model or
    split: the outputs must sum to the input, and a NaN has no parts. ``offset``: samples of
    ``audio [C, n]`` before this block, at ``rate``."""
    # one sum first: finite for every block of real audio, and far cheaper than a mask
    if np.isfinite(audio.sum(dtype=np.float64)):
        return
    finite = np.isfinite(audio).all(axis=0)  # [n]
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise BadClipError(f"NaN/inf audio samples (first at {(offset + first) / rate:.2f} s)")


def read_blocks(
    container: av.container.InputContainer,
    media: MediaFormat,
    on_video_packet: Callable[[av.Packet], None] | None = None,
) -> Iterator[Block]:
    """Blocks of the whole file, in demux order (see the module docstring).

    ``on_video_packet`` is given every video packet before it is decoded (for remuxing).
    Raises :class:`BadClipError` when the file turns out corrupt or truncated part-way, has no
    media data or no decodable audio, or its audio holds NaN/inf samples.
    """
    astream, vstream = container.streams.audio[0], container.streams.video[0]
    vstream.thread_type = "AUTO"
    # Keep the channel layout through resampling and average the channels ourselves:
    # FFmpeg's own stereo-to-mono matrix adds L and R at -3 dB each, which clips.
    to_input = av.AudioResampler(format="flt")  # packed: see packed_channels
    to_model = av.AudioResampler(format="flt", rate=media.sample_rate)
    picker = FramePicker(media)
    audio_samples = 0
    # times are counted from the first audio sample: the outputs' sample 0
    t0 = float(astream.start_time * astream.time_base) if astream.start_time is not None else 0.0
    audio_rate = 0
    model_samples = 0
    last_frame_time = 0.0
    data_packets = 0

    def audio_block(original: list[np.ndarray], model: list[np.ndarray]) -> Block:
        nonlocal audio_samples, model_samples
        block = Block(
            audio=np.concatenate(original, axis=1) if original else None,
            model_audio=np.concatenate(model) if model else None,
        )
        if block.audio is not None:
            _check_finite(block.audio, audio_rate, audio_samples)
            audio_samples += block.audio.shape[1]
        if block.model_audio is not None:  # NaN/inf must never reach the model
            _check_finite(block.model_audio[None], media.sample_rate, model_samples)
            model_samples += block.model_audio.size
        return block

    try:
        for packet in container.demux(astream, vstream):
            data_packets += packet.size > 0
            if packet.stream.type == "video":
                frames = []
                for frame in packet.decode():
                    t = float(frame.time) - t0 if frame.time is not None else last_frame_time
                    last_frame_time = t
                    frames.extend(picker.push(t, frame))
                # after decoding: muxing hands the packet's data over to the output
                if on_video_packet is not None and packet.size > 0:
                    on_video_packet(packet)
                if frames:
                    yield Block(frames=frames)
                continue
            for frame in packet.decode():
                audio_rate = frame.sample_rate
                original = _input_samples(frame, to_input)
                model = [_mono(f) for f in to_model.resample(frame)]
                if original or model:
                    yield audio_block(original, model)
    except av.error.FFmpegError as err:
        raise BadClipError(f"corrupt or truncated file ({err})") from err
    if data_packets == 0:
        # streams and a duration in the header, nothing after it: a cut download
        raise BadClipError("no media data (only a header: truncated file?)")
    tail_in = [_samples(f) for f in to_input.resample(None)]
    tail_model = [_mono(f) for f in to_model.resample(None)]
    if tail_in or tail_model:
        yield audio_block(tail_in, tail_model)
    if audio_samples == 0:
        raise BadClipError("no decodable audio")
    end = max(last_frame_time, audio_samples / max(audio_rate, 1))
    last = picker.finish(end + 1.0 / media.fps)
    if last:
        yield Block(frames=last)
