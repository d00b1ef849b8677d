"""The streaming shard format: WebDataset tar shards of compactly coded clips.

One shard is one POSIX tar file (``data.tar``) in the WebDataset layout, so any tar tool and
any WebDataset reader opens it: the members of one clip share its id as their key::

    <clip_id>.json         {"clip_id", "num_samples", "num_frames", "sample_rate", "fps", ...}
    <clip_id>.audio.flac   mono 16-bit FLAC             (or <clip_id>.audio.npy: int16 [T])
    <clip_id>.frames.jpg   the clip's frames stacked vertically into one RGB JPEG [F*H, W, 3]
                           (or <clip_id>.frames.npy: uint8 [F, H, W, 3])

Why these codings (measured in ``docs/scale.md``): float32 audio and raw frames are 810 kB a
5 s clip at 16 kHz, 8 fps, 64x64, about 3.9 TB for AudioScopeV2's 4.8 million clips; int16 halves
the audio, FLAC takes a little more off real soundtracks, and one JPEG of the stacked frames
(4:4:4, quality 90) is an eighth of the raw frames. Audio is quantised to 16 bits, the
precision of the AAC/PCM soundtracks it is decoded from; frames are lossy only with ``jpeg``.

Shards are written once: members are written with a fixed owner and time, so the same clips
give the same bytes (a rebuilt shard equals the first build). Every member's byte offset is
recorded in the index, so a shard is also read by random access (``pread`` on a local file,
a ranged read through fsspec elsewhere) as well as streamed start to end.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import soundfile as sf
import webdataset as wds
from PIL import Image

TAR_FILE = "data.tar"
# PCM scale of int16 audio: x = q / 2^15 (soundfile's convention; q in [-2^15, 2^15 - 1])
PCM_SCALE = 32768.0


class StoreFormat(StrEnum):
    """How the clip store keeps its shards (``ingest.format``)."""

    NPY = "npy"  # float32 audio and uint8 frames as memory-mapped .npy arrays (local disk only)
    WEBDATASET = (
        "webdataset"  # tar shards of coded clips, streamed or read by offset, any fsspec URL
    )


class AudioCodec(StrEnum):
    FLAC = "flac"  # lossless on the 16-bit samples, smaller on real soundtracks
    INT16 = "int16"  # raw 16-bit samples (.npy): no decoding cost at all


class FrameCodec(StrEnum):
    JPEG = "jpeg"  # one JPEG of the stacked frames (lossy)
    RAW = "raw"  # uint8 [F, H, W, 3] (.npy): exact


@dataclass(frozen=True)
class TarCodec:
    """How a clip is coded in a tar shard (``ingest.webdataset``); part of a shard's fingerprint."""

    audio: AudioCodec = AudioCodec.FLAC
    frames: FrameCodec = FrameCodec.JPEG
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, not {self.jpeg_quality}")

    @property
    def audio_member(self) -> str:
        return "audio.flac" if self.audio == AudioCodec.FLAC else "audio.npy"

    @property
    def frames_member(self) -> str:
        return "frames.jpg" if self.frames == FrameCodec.JPEG else "frames.npy"

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, StrEnum) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> TarCodec:
        return cls(AudioCodec(data["audio"]), FrameCodec(data["frames"]), int(data["jpeg_quality"]))


# ------------------------------------------------------------------------------- coding a clip


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio.astype(np.float64) * PCM_SCALE), -32768, 32767).astype(np.int16)


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def encode_audio(audio: np.ndarray, sample_rate: int, codec: TarCodec) -> bytes:
    pcm = to_pcm16(audio)
    if codec.audio == AudioCodec.INT16:
        return _npy_bytes(pcm)
    buf = io.BytesIO()
    sf.write(buf, pcm, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _npy_payload(data: bytes, dtype: type, count: int | None) -> np.ndarray:
    """The array of an ``.npy`` member: with its element ``count`` known (from the index), a
    view of the bytes after the header, without parsing the header (the costly part of
    ``np.load`` on small arrays)."""
    if count is None:
        return np.load(io.BytesIO(data), allow_pickle=False)
    size = count * np.dtype(dtype).itemsize
    return np.frombuffer(data, dtype, count, offset=len(data) - size)


def decode_audio(data: bytes, member: str, num_samples: int | None = None) -> np.ndarray:
    """float32 [T] from an ``audio.flac`` or ``audio.npy`` member."""
    if member.endswith(".npy"):
        pcm = _npy_payload(data, np.int16, num_samples)
    else:
        pcm, _ = sf.read(io.BytesIO(data), dtype="int16", always_2d=False)
    return (pcm.astype(np.float32) / np.float32(PCM_SCALE)).reshape(-1)


def encode_frames(frames: np.ndarray, codec: TarCodec) -> bytes:
    if codec.frames == FrameCodec.RAW:
        return _npy_bytes(np.ascontiguousarray(frames, np.uint8))
    f, h, w, _ = frames.shape
    buf = io.BytesIO()
    # 4:4:4 (no chroma subsampling): 8x8 blocks, so with H a multiple of 8 no block straddles
    # two frames and colours stay sharp at 64x64
    Image.fromarray(frames.reshape(f * h, w, 3)).save(
        buf, format="JPEG", quality=codec.jpeg_quality, subsampling=0
    )
    return buf.getvalue()


def decode_frames(
    data: bytes, member: str, num_frames: int, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """uint8 [F, H, W, 3] from a ``frames.jpg`` or ``frames.npy`` member (``shape``, when
    known, spares parsing the .npy header)."""
    if member.endswith(".npy"):
        if shape is None:
            return np.load(io.BytesIO(data), allow_pickle=False)
        # a writable copy: the payload is a view of the shard's bytes
        return _npy_payload(data, np.uint8, int(np.prod(shape))).reshape(shape).copy()
    with Image.open(io.BytesIO(data)) as image:
        stacked = np.asarray(image.convert("RGB"))
    return stacked.reshape(num_frames, stacked.shape[0] // num_frames, stacked.shape[1], 3)


@dataclass
class CodedClip:
    """One clip as the members of its tar sample."""

    clip_id: str
    meta: dict[str, Any]
    audio: bytes
    frames: bytes


def encode_clip(
    clip_id: str,
    audio: np.ndarray,
    frames: np.ndarray,
    sample_rate: int,
    fps: float,
    codec: TarCodec,
) -> CodedClip:
    meta = {
        "clip_id": clip_id,
        "num_samples": int(audio.size),
        "num_frames": int(len(frames)),
        "sample_rate": int(sample_rate),
        "fps": float(fps),
        "frame_height": int(frames.shape[1]),
        "frame_width": int(frames.shape[2]),
    }
    return CodedClip(
        clip_id, meta, encode_audio(audio, sample_rate, codec), encode_frames(frames, codec)
    )


# ------------------------------------------------------------------------ writing and reading


def write_tar(path: Path, clips: list[CodedClip], codec: TarCodec) -> list[dict[str, int]]:
    """Write ``clips`` as a WebDataset tar at ``path``; returns, per clip, the byte offset and
    size of its audio and frames members (for random access)."""
    # a fixed time and owner: the same clips give the same bytes, whoever builds the shard
    with (
        open(path, "wb") as stream,
        wds.TarWriter(
            stream, encoder=False, mtime=0.0, user="audioscope", group="audioscope"
        ) as tar,
    ):
        for clip in clips:
            tar.write(
                {
                    "__key__": clip.clip_id,
                    "json": json.dumps(clip.meta, sort_keys=True).encode(),
                    codec.audio_member: clip.audio,
                    codec.frames_member: clip.frames,
                }
            )
    offsets: dict[str, dict[str, int]] = {}
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            key, _, suffix = member.name.partition(".")
            entry = offsets.setdefault(key, {})
            if suffix == codec.audio_member:
                entry.update(audio_byte_offset=member.offset_data, audio_byte_size=member.size)
            elif suffix == codec.frames_member:
                entry.update(frames_byte_offset=member.offset_data, frames_byte_size=member.size)
    return [offsets[c.clip_id] for c in clips]


def is_url(location: str | Path) -> bool:
    return "://" in str(location)


def join(root: str | Path, *parts: str) -> str:
    """``root/part/...`` for a local folder or an fsspec URL."""
    return "/".join([str(root).rstrip("/"), *parts]) if is_url(root) else str(Path(root, *parts))


class ShardReader:
    """Byte ranges of shard files, local (``os.pread``: no shared file position, so safe in
    forked DataLoader workers) or through fsspec (one handle per process, reopened after a
    fork). Keeps at most ``max_open`` files open."""

    def __init__(self, max_open: int = 32):
        self.max_open = max_open
        self._files: dict[str, Any] = {}
        self._pid = os.getpid()

    def read(self, location: str, offset: int, size: int) -> bytes:
        if os.getpid() != self._pid:  # a forked worker: the parent's handles are not ours
            self._files, self._pid = {}, os.getpid()
        handle = self._files.pop(location, None)
        if handle is None:
            handle = (
                fsspec.open(location, "rb").open()
                if is_url(location)
                else os.open(location, os.O_RDONLY)
            )
            if len(self._files) >= self.max_open:
                self._close(self._files.pop(next(iter(self._files))))
        self._files[location] = handle  # most recently used last
        if isinstance(handle, int):
            return os.pread(handle, size, offset)
        handle.seek(offset)
        return handle.read(size)

    @staticmethod
    def _close(handle: Any) -> None:
        if isinstance(handle, int):
            os.close(handle)
        else:
            handle.close()

    def close(self) -> None:
        for handle in self._files.values():
            self._close(handle)
        self._files = {}

    def __getstate__(self) -> dict:  # pickled into spawned workers without open handles
        return {"max_open": self.max_open, "_files": {}, "_pid": -1}


def tar_samples(location: str):
    """The samples of one shard, in order, as WebDataset groups them: ``{"__key__": clip_id,
    "json": bytes, "audio.flac": bytes, "frames.jpg": bytes, ...}`` (undecoded)."""
    with fsspec.open(location, "rb") as stream:
        files = wds.tariterators.tar_file_expander([{"url": location, "stream": stream}])
        yield from wds.tariterators.group_by_keys(files)
