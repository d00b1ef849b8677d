"""Decode one clip of a video file into mono float32 audio and RGB frames, with PyAV.

PyAV bundles its own FFmpeg, so no system package is needed. Audio and video are demuxed in one
pass over the file; only the frames that are kept get converted and resized.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from audioscope_kedro.media import MediaFormat


class BadClipError(Exception):
    """A clip that cannot be used; ``reason`` is the short text written to the quarantine."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _media_fields(media: MediaFormat) -> dict:
    """The media-format fields of ``media`` (a ``MediaFormat`` or any subclass)."""
    return {k: getattr(media, k) for k in MediaFormat.__dataclass_fields__}


@dataclass(frozen=True)
class DecodeSettings(MediaFormat):
    """How clips are decoded: the media format they are stored in, and what to do with clips
    that do not fit it. Part of the clip-store fingerprint: change one, re-ingest."""

    # Audio that ends before the clip does (the stream stops, or its content turns into digital
    # silence): a shortfall up to `max_pad_seconds` is padded with zeros (codecs often end a
    # few ms early); a longer one is padded when `short_audio` is "pad" and quarantined when
    # it is "quarantine".
    short_audio: str = "quarantine"
    max_pad_seconds: float = 0.1
    # Clips whose RMS level is below this (dBFS) are quarantined as "silent audio".
    silence_db: float = -70.0
    decode_threads: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.short_audio not in ("pad", "quarantine"):
            raise ValueError(f"short_audio must be 'pad' or 'quarantine', not {self.short_audio!r}")

    @classmethod
    def from_params(cls, params: dict) -> DecodeSettings:
        known = {k: params[k] for k in cls.__dataclass_fields__ if k in params}
        return cls(**known)

    @classmethod
    def for_media(cls, media: MediaFormat, **options) -> DecodeSettings:
        """Decode to ``media`` (e.g. a model's input format) with the given options."""
        return cls(**_media_fields(media), **options)

    @property
    def media(self) -> MediaFormat:
        return MediaFormat(**_media_fields(self))


@dataclass
class DecodedClip:
    audio: np.ndarray  # float32 [T], mono, settings.sample_rate
    frames: np.ndarray  # uint8 [F, H, W, 3], RGB, one frame per 1/fps from the clip start
    padded_seconds: float  # zeros appended at the end of the audio


def check_readable(path: Path) -> None:
    """Raise :class:`BadClipError` when ``path`` is not a file this process can read, or is
    empty: the reasons a user can act on, before FFmpeg gives a vaguer one."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise BadClipError("missing file") from None
    except PermissionError:  # a folder on the way that this user may not enter
        raise BadClipError("unreadable file (permission denied)") from None
    except OSError as err:  # a name too long, a loop of links, ...
        raise BadClipError(f"unreadable file ({err.strerror or err})") from None
    if stat.S_ISDIR(info.st_mode):
        raise BadClipError("a folder, not a video file")
    # root passes os.access whatever the mode: opening is then the test (av.open says why)
    if not os.access(path, os.R_OK):
        raise BadClipError("unreadable file (permission denied)")
    if info.st_size == 0:
        raise BadClipError("zero bytes")


def open_container(path: Path) -> av.container.InputContainer:
    """``path`` opened for demuxing, or :class:`BadClipError` saying why not."""
    check_readable(path)
    try:
        return av.open(str(path), metadata_errors="ignore")
    except PermissionError:
        raise BadClipError("unreadable file (permission denied)") from None
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as err:
        raise BadClipError(f"corrupt or unreadable container ({err})") from err


def packed_channels(frame: av.AudioFrame) -> np.ndarray:
    """float32 ``[channels, samples]`` of a *packed* float frame (``flt``).

    Resamplers here always ask for packed samples: PyAV 18 counts one plane too many in a
    planar (``fltp``) frame of exactly 8 channels, and ``to_ndarray`` then reads a stray
    pointer and kills the process (a 7.1 soundtrack segfaulted ingest and ``separate``)."""
    channels = frame.layout.nb_channels
    return frame.to_ndarray().reshape(-1, channels).T


def container_duration(container: av.container.InputContainer) -> float | None:
    """Duration in seconds from the container, else from the longest stream; None if unknown."""
    if container.duration is not None:
        return container.duration / av.time_base
    durations = [
        float(s.duration * s.time_base)
        for s in container.streams
        if s.duration is not None and s.time_base is not None
    ]
    return max(durations) if durations else None


def probe_duration(path: str | Path) -> float:
    """Duration of a video file in seconds; raises :class:`BadClipError` when unreadable."""
    with open_container(Path(path)) as container:
        duration = container_duration(container)
    if duration is None:
        raise BadClipError("unknown duration")
    return duration


def upright_rgb(
    reformatter: VideoReformatter, frame: av.VideoFrame, width: int, height: int
) -> np.ndarray:
    """``frame`` as uint8 RGB ``[height, width, 3]``, turned upright as a player shows it.

    Phones store portrait video as landscape frames with a display rotation (the container's
    display matrix; PyAV's ``frame.rotation``, degrees counter-clockwise): the model must see
    what a viewer sees. The frame is scaled first (to the swapped size for a quarter turn), so
    the rotation moves as few pixels as possible. One reformatter per stream keeps its scaler
    context: ``frame.to_ndarray(width=...)`` builds a new one per frame, which cost 30x more.
    AREA averages when shrinking.
    """
    turns = round((frame.rotation or 0) / 90) % 4
    w, h = (height, width) if turns % 2 else (width, height)
    rgb = reformatter.reformat(
        frame, width=w, height=h, format="rgb24", interpolation="AREA"
    ).to_ndarray()
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


class _FramePicker:
    """Keeps, for each target time k / fps, the decoded frame nearest to it."""

    def __init__(self, start: float, num_frames: int, fps: float, width: int, height: int):
        self.targets = start + np.arange(num_frames) / fps
        self.width, self.height = width, height
        self.reformatter = VideoReformatter()
        self.out: list[np.ndarray | None] = [None] * num_frames
        self.k = 0
        self.prev: tuple[float, av.VideoFrame] | None = None
        self.prev_rgb: np.ndarray | None = None

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        return upright_rgb(self.reformatter, frame, self.width, self.height)

    def push(self, time: float, frame: av.VideoFrame) -> None:
        rgb = None
        while self.k < len(self.targets) and time >= self.targets[self.k]:
            target = self.targets[self.k]
            if self.prev is not None and (target - self.prev[0]) < (time - target):
                if self.prev_rgb is None:
                    self.prev_rgb = self._rgb(self.prev[1])
                self.out[self.k] = self.prev_rgb
            else:
                rgb = self._rgb(frame) if rgb is None else rgb
                self.out[self.k] = rgb
            self.k += 1
        self.prev, self.prev_rgb = (time, frame), rgb

    @property
    def done(self) -> bool:
        return self.k >= len(self.targets)

    def finish(self) -> np.ndarray:
        """Frames past the end of the video repeat the last one."""
        if self.k < len(self.targets):
            if self.prev is None:
                raise BadClipError("no video frames in the clip range")
            last = self.prev_rgb if self.prev_rgb is not None else self._rgb(self.prev[1])
            for k in range(self.k, len(self.targets)):
                self.out[k] = last
        return np.stack(self.out)


def _mono(frame: av.AudioFrame) -> np.ndarray:
    samples = packed_channels(frame)  # [channels, samples]
    return samples[0] if samples.shape[0] == 1 else samples.mean(axis=0, dtype=np.float32)


def _frame_time(frame: av.frame.Frame, fallback: float) -> float:
    if frame.pts is None or frame.time_base is None:
        return fallback
    return float(frame.pts * frame.time_base)


def decode_clip(
    path: str | Path, start: float, end: float, settings: DecodeSettings
) -> DecodedClip:
    """Decode ``[start, end)`` seconds of ``path``.

    Returns exactly ``settings.num_samples(end - start)`` audio samples and
    ``settings.num_frames(end - start)`` frames, or raises :class:`BadClipError` with the reason
    (missing, unreadable or empty file, corrupt container, no audio stream, no video stream, no
    media data, clip beyond the end, a file that breaks off inside the clip, audio shorter than
    the clip, silent audio, NaN/inf samples).
    """
    path = Path(path)
    if not (math.isfinite(start) and math.isfinite(end)) or end <= start or start < 0:
        raise BadClipError(f"bad clip times {start}..{end}")
    container = open_container(path)
    with container:
        if not container.streams.audio:
            raise BadClipError("no audio stream")
        if not container.streams.video:
            raise BadClipError("no video stream")
        duration = container_duration(container)
        if duration is not None and start >= duration:
            raise BadClipError(
                f"clip beyond the end (starts at {start:.2f} s, video lasts {duration:.2f} s)"
            )
        astream = container.streams.audio[0]
        vstream = container.streams.video[0]
        vstream.thread_type = "AUTO"
        vstream.codec_context.thread_count = settings.decode_threads
        n_samples = settings.num_samples(end - start)
        picker = _FramePicker(
            start,
            settings.num_frames(end - start),
            settings.fps,
            settings.frame_width,
            settings.frame_height,
        )
        # Keep the channel layout through resampling and average the channels ourselves:
        # FFmpeg's own stereo-to-mono matrix adds L and R at -3 dB each, which clips.
        resampler = av.AudioResampler(format="flt", rate=settings.sample_rate)
        chunks: list[np.ndarray] = []
        audio_t0: float | None = None
        audio_have = 0  # resampled samples kept in chunks
        if start > 0:
            container.seek(int(start * av.time_base), backward=True, any_frame=False)
        audio_done = False
        decode_error: str | None = None
        data_packets = 0
        try:
            for packet in container.demux(astream, vstream):
                data_packets += packet.size > 0
                if packet.stream.type == "audio":
                    if audio_done:
                        continue
                    for frame in packet.decode():
                        if audio_t0 is None:
                            audio_t0 = _frame_time(frame, 0.0)
                        for out in resampler.resample(frame):
                            chunk = _mono(out)
                            chunks.append(chunk)
                            audio_have += chunk.size
                    if (
                        audio_t0 is not None
                        and audio_t0 + audio_have / settings.sample_rate >= end + 0.05
                    ):
                        audio_done = True
                elif not picker.done:
                    for frame in packet.decode():
                        picker.push(_frame_time(frame, start), frame)
                if audio_done and picker.done:
                    break
        except av.error.FFmpegError as err:
            # A truncated file ends in an error; what decoded before it is still usable, and the
            # length checks below decide whether it is enough.
            decode_error = str(err)
        if not audio_done:
            chunks.extend(_mono(out) for out in resampler.resample(None))
        if data_packets == 0:
            # streams and a duration in the header, nothing after it: a cut download
            raise BadClipError("no media data in the clip range (only a header: truncated file?)")
        if decode_error is not None and not picker.done:
            # frames are missing because the file breaks off, not because its video ended
            raise BadClipError(
                f"corrupt or truncated file: the video breaks off inside the clip ({decode_error})"
            )
        frames = picker.finish()
    if audio_t0 is None:
        raise BadClipError(
            f"corrupt or truncated audio stream ({decode_error})"
            if decode_error
            else "no audio in the clip range"
        )
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    offset = int(round((start - audio_t0) * settings.sample_rate))
    if offset < 0:  # the stream starts after the clip start: pad the front
        audio = np.concatenate([np.zeros(-offset, np.float32), audio])
        offset = 0
    audio = audio[offset : offset + n_samples]
    bad = np.flatnonzero(~np.isfinite(audio))
    if bad.size:
        # (resampling smears a non-finite sample over the filter's length: "near")
        at = start + bad[0] / settings.sample_rate
        raise BadClipError(f"NaN/inf audio samples (near {at:.2f} s)")
    # Trailing digital silence (exact zeros) is audio that ended early, e.g. a stream whose
    # content stops while its container goes on: count it as missing, like a short stream.
    nonzero = np.flatnonzero(audio)
    if nonzero.size == 0:
        raise BadClipError("silent audio (digital silence)")
    audio = audio[: nonzero[-1] + 1]
    shortfall = n_samples - audio.size
    padded = shortfall / settings.sample_rate
    if shortfall > 0:
        if padded > settings.max_pad_seconds and decode_error is not None:
            # audio missing because the file breaks off: not silence, so never padded
            have = audio.size / settings.sample_rate
            raise BadClipError(
                f"corrupt or truncated file: the audio breaks off {have:.2f} s into the "
                f"{end - start:.2f} s clip ({decode_error})"
            )
        if padded > settings.max_pad_seconds and settings.short_audio == "quarantine":
            have = audio.size / settings.sample_rate
            past = (
                f"; the clip ends at {end:.2f} s, the file at {duration:.2f} s"
                if duration is not None and end > duration + settings.max_pad_seconds
                else ""
            )
            raise BadClipError(
                f"audio shorter than the clip ({have:.2f} s of {end - start:.2f} s{past})"
            )
        audio = np.concatenate([audio, np.zeros(shortfall, np.float32)])
    rms_db = 10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-20)
    if rms_db < settings.silence_db:
        raise BadClipError(f"silent audio (RMS {rms_db:.0f} dBFS)")
    return DecodedClip(
        audio=audio.astype(np.float32, copy=False), frames=frames, padded_seconds=max(padded, 0.0)
    )


def decode_all(path: str | Path) -> tuple[int, int]:
    """Decode every audio and video frame of a file and nothing else: the raw-decode baseline.

    Returns (audio samples, video frames) decoded, so callers can check the work was done.
    """
    samples = frames = 0
    with av.open(str(path)) as container:
        streams = [s for s in (container.streams.audio[:1] + container.streams.video[:1])]
        for s in streams:
            if s.type == "video":
                s.thread_type = "AUTO"
                s.codec_context.thread_count = 1
        for packet in container.demux(*streams):
            for frame in packet.decode():
                if packet.stream.type == "audio":
                    samples += frame.samples
                else:
                    frames += 1
    return samples, frames


__all__ = [
    "BadClipError",
    "DecodeSettings",
    "DecodedClip",
    "decode_all",
    "decode_clip",
    "probe_duration",
]
