"""The media corpus of the reliability tests: bad and odd input files, generated (never committed).

Every case is a :class:`MediaCase`: a generator that writes one small file (16x16 frames, about
two seconds, PyAV's bundled encoders; the whole corpus takes about a second) and what each
stage must make of it: ``ingest`` (:class:`IngestOutcome`: decoded correctly, or quarantined
with a reason) and ``audioscope separate`` (:class:`SeparateOutcome`: separated with the output
invariants, or refused with a reason while the other inputs of the same command go on).

A decoded clip is checked against the generator's :class:`Truth` (the tone's level, each
written frame's time and grey level), never against what the code under test produced. The
sound is one 440 Hz tone on every channel, channel ``c`` of ``C`` at gain ``(c + 1) / C``, so a
mono downmix by the mean has a known level; frames are uniform grey, a different level each.
Nothing in a file's content tells a decoder which case it is.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd

from audioscope_kedro.data.lists import CLIP_COLUMNS
from audioscope_kedro.data.store import clip_id
from tests.separate.helpers import write_video

DURATION = 2.0  # seconds of a generated file
CLIP = (0.0, 1.5)  # the clip that ingest cuts from a file (seconds)
TONE_HZ = 440.0
TONE_AMPLITUDE = 0.3
FPS = 8  # frames per second written (the constant-rate cases)
SIZE = 16  # frame height and width written (the odd-size case has its own)
# channel count -> FFmpeg layout, for every count from 1 to 8
LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


class IngestOutcome(Enum):
    DECODED = "decoded"  # in the index: audio and frames match the generator's truth
    QUARANTINED = "quarantined"  # a quarantine.csv row with the file and reason; batch goes on


class SeparateOutcome(Enum):
    SEPARATED = "separated"  # an output folder: on + off == input at its rate and channels
    REFUSED = "refused"  # "<file>: <reason>" on stderr, no output folder, exit code 1
    NOT_APPLICABLE = "n/a"  # clip times are an ingest notion: separate reads whole files


@dataclass(frozen=True)
class Truth:
    """What a generator wrote, to check a decoded clip against."""

    frame_times: tuple[float, ...]  # seconds of every written frame
    frame_levels: tuple[int, ...]  # the grey level of each (the frames are uniform)
    amplitude: float  # peak of the tone in the mono downmix
    rotated: bool = False  # display rotation: the picture is checked upright instead

    def levels_at(self, start: float, count: int, fps: float) -> np.ndarray:
        """The level of the written frame nearest to each time ``start + k / fps``."""
        times = np.asarray(self.frame_times)
        targets = start + np.arange(count) / fps
        nearest = np.abs(times[None, :] - targets[:, None]).argmin(axis=1)
        return np.asarray(self.frame_levels, float)[nearest]


@dataclass(frozen=True)
class Written:
    """A generated file (relative to the corpus root) and its truth, when it has one."""

    path: str
    truth: Truth | None = None


@dataclass(frozen=True)
class MediaCase:
    name: str
    description: str
    make: Callable[[Path], Written]  # writes under the corpus root, says what it wrote
    ingest: IngestOutcome
    separate: SeparateOutcome
    reason: str = ""  # in the quarantine reason and in the command's message
    ingest_reason: str | None = None  # ingest's, where it differs (separate reads whole files)
    clip: tuple[float, float] = CLIP
    # "permission": needs a user that file modes apply to; "long": the one-hour input
    tags: frozenset[str] = field(default_factory=frozenset)

    @property
    def quarantine_reason(self) -> str:
        return self.reason if self.ingest_reason is None else self.ingest_reason


# ------------------------------------------------------------------------------ writing media


def tone(rate: int, channels: int, seconds: float = DURATION) -> np.ndarray:
    """float32 ``[channels, n]``: the tone, channel ``c`` at gain ``(c + 1) / channels``."""
    t = np.arange(int(round(seconds * rate))) / rate
    wave = TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)
    gains = (np.arange(channels) + 1) / channels
    return (gains[:, None] * wave[None]).astype(np.float32)


def grey_levels(count: int) -> tuple[int, ...]:
    """Levels far apart from frame to frame, so that a wrong pick shows."""
    return tuple(int(v) for v in np.linspace(16, 235, count).round())


@dataclass(frozen=True)
class VideoSpec:
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    width: int = SIZE
    height: int = SIZE
    times: tuple[float, ...] = tuple(k / FPS for k in range(int(DURATION * FPS)))
    time_base: Fraction = Fraction(1, FPS)


@dataclass(frozen=True)
class AudioSpec:
    codec: str = "aac"
    rate: int = 16000
    channels: int = 1
    seconds: float = DURATION
    # samples [start, stop) of every channel set to a value (NaN, inf, 0): float PCM keeps it
    poison: tuple[int, int, float] | None = None


ENCODER_OPTIONS = {
    "libx264": {"preset": "ultrafast", "threads": "1"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "threads": "1"},
}


def write_av(
    path: Path,
    fmt: str,
    video: VideoSpec | None = VideoSpec(),
    audio: AudioSpec | None = AudioSpec(),
    container_options: dict[str, str] | None = None,
) -> Truth | None:
    """Write ``path`` in container format ``fmt``: grey frames at ``video.times`` and the tone,
    interleaved by time as a muxer expects. Returns the truth (None without video)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    levels = grey_levels(len(video.times)) if video is not None else ()
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as c:
        events: list[tuple[float, int, int]] = []  # (time, 0 video / 1 audio, index)
        if video is not None:
            v = c.add_stream(video.codec, rate=round(1 / video.time_base))
            v.width, v.height, v.pix_fmt = video.width, video.height, video.pix_fmt
            v.codec_context.time_base = video.time_base
            v.options = ENCODER_OPTIONS.get(video.codec, {})
            events += [(t, 0, i) for i, t in enumerate(video.times)]
        if audio is not None:
            layout = LAYOUTS[audio.channels]
            a = c.add_stream(audio.codec, rate=audio.rate, layout=layout)
            samples = tone(audio.rate, audio.channels, audio.seconds)
            if not audio.codec.startswith("pcm_"):
                # a lossy codec keeps only the lowest frequencies of an LFE channel: no tone
                samples[lfe_channels(layout)] = 0.0
            if audio.poison is not None:
                start, stop, value = audio.poison
                samples[:, start:stop] = value
            step = 1024
            events += [(s / audio.rate, 1, s) for s in range(0, samples.shape[1], step)]
        for _, kind, i in sorted(events):
            if kind == 0:
                image = np.full((video.height, video.width, 3), levels[i], np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = int(round(video.times[i] / video.time_base))
                frame.time_base = video.time_base
                c.mux(v.encode(frame))
            else:
                # packed samples: PyAV 18 miscounts the planes of an 8-channel planar frame
                chunk = np.ascontiguousarray(samples[:, i : i + step].T).reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout=layout)
                frame.sample_rate, frame.pts = audio.rate, i
                frame.time_base = Fraction(1, audio.rate)
                c.mux(a.encode(frame))
        if video is not None:
            c.mux(v.encode())
        if audio is not None:
            c.mux(a.encode())
    if video is None:
        return None
    if audio is None:
        return Truth(video.times, levels, 0.0)
    gains = (np.arange(audio.channels) + 1) / audio.channels
    if not audio.codec.startswith("pcm_"):
        gains[lfe_channels(LAYOUTS[audio.channels])] = 0.0
    return Truth(video.times, levels, TONE_AMPLITUDE * float(np.mean(gains)))


def lfe_channels(layout: str) -> list[int]:
    return [i for i, ch in enumerate(av.AudioLayout(layout).channels) if ch.name == "LFE"]


def read_input_audio(path: Path) -> tuple[np.ndarray, int]:
    """The whole first audio stream of ``path`` at its own rate and channels: ``[C, T]``
    float32 (what ``separate``'s outputs must sum to)."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        resampler = av.AudioResampler(format="flt")  # packed: see write_av
        frames = [f for p in c.demux(stream) for d in p.decode() for f in resampler.resample(d)]
        frames += resampler.resample(None)
        channels = stream.codec_context.channels
        data = np.concatenate([f.to_ndarray().reshape(-1, channels) for f in frames])
        return data.T, stream.codec_context.sample_rate


# ---------------------------------------------------------------------------- the generators


def _av(name: str, fmt: str, **streams) -> Callable[[Path], Written]:
    def make(root: Path) -> Written:
        return Written(name, write_av(root / name, fmt, **streams))

    return make


def _mp4_bytes(root: Path, **container_options) -> bytes:
    """The bytes of a good 2 s mp4 (written beside, then removed)."""
    scratch = root / ".scratch.mp4"
    write_av(scratch, "mp4", container_options=container_options or None)
    data = scratch.read_bytes()
    scratch.unlink()
    return data


def _truncated(root: Path) -> Written:
    """A download cut in half: the mp4 index (moov), which PyAV's muxer writes last, is lost."""
    data = _mp4_bytes(root)
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    return Written("truncated.mp4")


def _truncated_faststart(root: Path) -> Written:
    """Index first (``movflags=faststart``) and the media data cut at 40 %: the file opens, has
    both streams and says it lasts 2 s, and its packets break off at about 0.5 s."""
    data = _mp4_bytes(root, movflags="faststart")
    (root / "truncated_faststart.mp4").write_bytes(data[: int(len(data) * 0.4)])
    return Written("truncated_faststart.mp4")


def _top_level_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of an mp4's top-level boxes."""
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:  # 64-bit size
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append((kind, offset, size))
        offset += max(size, 8)
    return boxes


def _header_only(root: Path) -> Written:
    """``ftyp`` and ``moov`` of a faststart mp4, and not a byte of media data."""
    data = _mp4_bytes(root, movflags="faststart")
    offset, size = next((o, s) for kind, o, s in _top_level_boxes(data) if kind == b"moov")
    (root / "header_only.mp4").write_bytes(data[: offset + size])
    return Written("header_only.mp4")


def _zero_bytes(root: Path) -> Written:
    (root / "zero_bytes.mp4").write_bytes(b"")
    return Written("zero_bytes.mp4")


def _random_bytes(root: Path) -> Written:
    (root / "random_bytes.mp4").write_bytes(np.random.default_rng(13).bytes(20_000))
    return Written("random_bytes.mp4")


def _rotated(root: Path) -> Written:
    """A phone's portrait video: frames twice as wide as high whose left quarter is white, and
    a display rotation of 90 degrees (tests/separate/helpers.write_video)."""
    write_video(root / "rotated.mp4", tone(16000, 1), 16000, fps=FPS, size=SIZE, rotation=90)
    return Written("rotated.mp4", Truth((), (), TONE_AMPLITUDE, rotated=True))


# Frames at irregular times: no target time of ingest (k / 4 s) is equally far from two of
# them, so "the nearest written frame" names one frame.
VFR_TIMES = (0.0, 0.1, 0.32, 0.45, 0.8, 0.83, 1.1, 1.37, 1.6, 1.9)


def _past_end(name: str) -> Callable[[Path], Written]:
    """A good 2 s file, for a clip that runs past its end."""
    return _av(name, "mp4")


def _unreadable(root: Path) -> Written:
    """A file that its reader may not open (mode 000; root reads it all the same)."""
    path = root / "unreadable" / "unreadable.mp4"
    write_av(path, "mp4")
    path.chmod(0)
    return Written("unreadable/unreadable.mp4")


def _folder(root: Path) -> Written:
    (root / "a_folder.mp4").mkdir()
    return Written("a_folder.mp4")


def _missing(root: Path) -> Written:
    return Written("missing.mp4")


HOUR_SECONDS = 3600
HOUR_RATE = 8000  # Hz, mono 16-bit PCM
HOUR_CLIP = (1800.0, 1801.5)  # what ingest cuts from it: a seek half an hour in


def hour_amplitude(second: int) -> float:
    """The tone's peak in each second of the hour: five levels, changing every minute, so that
    a block of output in the wrong place shows."""
    return 0.05 + 0.2 * ((second // 60) % 5) / 4


def hour_level(second: int) -> int:
    """The grey level of the frame at ``second`` (one frame a second)."""
    return (second // 60) * 4


def write_one_hour(path: Path) -> Path:
    """An hour of video, made cheaply (about 0.5 s, 58 MB): 16x16 H.264 frames at 1 fps and
    8 kHz mono 16-bit PCM in one-second packets, in Matroska."""
    with av.open(str(path), "w", format="matroska") as c:
        v = c.add_stream("libx264", rate=1)
        v.width = v.height = SIZE
        v.pix_fmt = "yuv420p"
        v.options = {**ENCODER_OPTIONS["libx264"], "g": "600"}  # a keyframe every 10 minutes
        a = c.add_stream("pcm_s16le", rate=HOUR_RATE, layout="mono")
        wave = np.sin(2 * np.pi * TONE_HZ * np.arange(HOUR_RATE) / HOUR_RATE)
        for s in range(HOUR_SECONDS):
            image = np.full((SIZE, SIZE, 3), hour_level(s), np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = s, Fraction(1, 1)
            c.mux(v.encode(frame))
            samples = (hour_amplitude(s) * wave)[None].astype(np.float32)
            af = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            af.sample_rate, af.pts, af.time_base = HOUR_RATE, s * HOUR_RATE, Fraction(1, HOUR_RATE)
            c.mux(a.encode(af))
        c.mux(v.encode())
        c.mux(a.encode())
    return path


def _one_hour(root: Path) -> Written:
    write_one_hour(root / "one_hour.mkv")
    around = range(int(HOUR_CLIP[0]) - 1, int(HOUR_CLIP[1]) + 2)
    truth = Truth(
        tuple(float(s) for s in around),
        tuple(hour_level(s) for s in around),
        hour_amplitude(int(HOUR_CLIP[0])),
    )
    return Written("one_hour.mkv", truth)


# ------------------------------------------------------------------------------- the table

D, Q = IngestOutcome.DECODED, IngestOutcome.QUARANTINED
S, R, NA = SeparateOutcome.SEPARATED, SeparateOutcome.REFUSED, SeparateOutcome.NOT_APPLICABLE
CORRUPT = "corrupt or unreadable container"

CASES: list[MediaCase] = [
    MediaCase("zero_bytes", "zero-byte file", _zero_bytes, Q, R, "zero bytes"),
    MediaCase("truncated_mp4", "mp4 cut in half (index lost)", _truncated, Q, R, CORRUPT),
    MediaCase(
        "truncated_faststart",
        "faststart mp4 whose media data breaks off at 40 %",
        _truncated_faststart,
        Q,
        R,
        "corrupt or truncated file",
    ),
    MediaCase(
        "header_only_mp4",
        "mp4 header (ftyp + moov) without media data",
        _header_only,
        Q,
        R,
        "no media data",
    ),
    MediaCase("random_bytes", "random bytes named .mp4", _random_bytes, Q, R, CORRUPT),
    MediaCase(
        "audio_only",
        "AAC only, no video stream (mp4)",
        _av("audio_only.mp4", "mp4", video=None),
        Q,
        R,
        "no video stream",
    ),
    MediaCase(
        "video_only",
        "H.264 only, no audio stream (mp4)",
        _av("video_only.mp4", "mp4", audio=None),
        Q,
        R,
        "no audio stream",
    ),
    *[
        MediaCase(
            f"rate_{rate}",
            f"AAC at {rate / 1000:g} kHz",
            _av(f"rate_{rate}.mp4", "mp4", audio=AudioSpec(rate=rate)),
            D,
            S,
        )
        for rate in (8000, 11025, 22050, 44100, 48000, 96000)
    ],
    *[
        MediaCase(
            f"channels_{n}",
            f"{n} channel(s) ({LAYOUTS[n]}), 16-bit PCM in Matroska",
            _av(f"channels_{n}.mkv", "matroska", audio=AudioSpec(codec="pcm_s16le", channels=n)),
            D,
            S,
        )
        for n in range(1, 9)
    ],
    MediaCase(
        "aac_7_1",
        "8-channel (7.1) AAC in mp4",
        _av("aac_7_1.mp4", "mp4", audio=AudioSpec(channels=8)),
        D,
        S,
    ),
    MediaCase(
        "variable_frame_rate",
        "variable frame rate (10 frames at irregular times, Matroska)",
        _av("vfr.mkv", "matroska", video=VideoSpec(times=VFR_TIMES, time_base=Fraction(1, 1000))),
        D,
        S,
    ),
    MediaCase("rotated", "display rotation of 90 degrees (portrait video)", _rotated, D, S),
    MediaCase(
        "ten_bit",
        "10-bit H.264 (yuv420p10le)",
        _av("ten_bit.mp4", "mp4", video=VideoSpec(pix_fmt="yuv420p10le")),
        D,
        S,
    ),
    MediaCase(
        "odd_size",
        "odd frame size 17x11 (H.264 4:4:4)",
        _av("odd_size.mp4", "mp4", video=VideoSpec(pix_fmt="yuv444p", width=17, height=11)),
        D,
        S,
    ),
    *[
        MediaCase(
            f"vp9_opus_{ext}",
            f"VP9 and Opus (48 kHz stereo) in {ext}",
            _av(
                f"vp9_opus.{ext}",
                fmt,
                video=VideoSpec(codec="libvpx-vp9"),
                audio=AudioSpec(codec="libopus", rate=48000, channels=2),
            ),
            D,
            S,
        )
        for ext, fmt in (("mkv", "matroska"), ("webm", "webm"))
    ],
    MediaCase(
        "shorter_than_window",
        "0.6 s file: shorter than the 1.5 s clip and than one 2 s model window",
        _av(
            "short.mp4",
            "mp4",
            video=VideoSpec(times=tuple(k / FPS for k in range(5))),
            audio=AudioSpec(seconds=0.6),
        ),
        Q,
        S,
        ingest_reason="audio shorter than the clip",
    ),
    MediaCase(
        "start_past_end",
        "clip 5.0-6.5 s of a 2 s file",
        _past_end("past_end_start.mp4"),
        Q,
        NA,
        ingest_reason="clip beyond the end",
        clip=(5.0, 6.5),
    ),
    MediaCase(
        "end_past_end",
        "clip 1.0-3.0 s of a 2 s file",
        _past_end("past_end_end.mp4"),
        Q,
        NA,
        ingest_reason="the clip ends at 3.00 s, the file at 2.00 s",
        clip=(1.0, 3.0),
    ),
    MediaCase(
        "silent",
        "all-silent audio (digital zeros, 16-bit PCM, stereo)",
        _av(
            "silent.mkv",
            "matroska",
            audio=AudioSpec(codec="pcm_s16le", channels=2, poison=(0, 10**9, 0.0)),
        ),
        Q,
        S,
        ingest_reason="silent audio",
    ),
    MediaCase(
        "nan_samples",
        "float PCM with NaN samples at 0.5-0.6 s (Matroska)",
        _av("nan.mkv", "matroska", audio=AudioSpec("pcm_f32le", poison=(8000, 9600, np.nan))),
        Q,
        R,
        "NaN/inf audio samples",
    ),
    MediaCase(
        "inf_samples",
        "float PCM with +inf samples at 1.0 s (Matroska)",
        _av("inf.mkv", "matroska", audio=AudioSpec("pcm_f32le", poison=(16000, 16010, np.inf))),
        Q,
        R,
        "NaN/inf audio samples",
    ),
    MediaCase(
        "odd_path",
        "path with spaces and non-ASCII characters",
        _av("dir with spaces/vidéo ünï 日本 clip.mp4", "mp4"),
        D,
        S,
    ),
    MediaCase("missing", "path that does not exist", _missing, Q, R, "missing file"),
    MediaCase(
        "folder",
        "path of a folder (named .mp4, holding no video)",
        _folder,
        Q,
        R,
        "no video files in this folder",
        ingest_reason="a folder, not a video file",
    ),
    MediaCase(
        "unreadable",
        "file its user may not read (mode 000)",
        _unreadable,
        Q,
        R,
        "unreadable file (permission denied)",
        tags=frozenset({"permission"}),
    ),
    MediaCase(
        "one_hour",
        "one-hour video (16x16 at 1 fps, 8 kHz PCM)",
        _one_hour,
        D,
        S,
        clip=HOUR_CLIP,
        tags=frozenset({"long"}),
    ),
]
BY_NAME = {c.name: c for c in CASES}
assert len(BY_NAME) == len(CASES), "case names must be unique"


# root reads a file whatever its mode: the permission case then runs as another user
RUNNING_AS_ROOT = os.geteuid() == 0


def in_batch(case: MediaCase) -> bool:
    """Whether the session's batch runs (one ingest, one ``audioscope separate`` over the
    corpus) hold ``case``; the one-hour input and, as root, the permission case have tests of
    their own."""
    return "long" not in case.tags and not ("permission" in case.tags and RUNNING_AS_ROOT)


@dataclass(frozen=True)
class Corpus:
    """The generated corpus: its root (ingest's video_root) and each case's file."""

    root: Path
    written: dict[str, Written]

    def path(self, case: MediaCase) -> Path:
        return self.root / self.written[case.name].path

    def clip_list(self, cases: list[MediaCase]) -> pd.DataFrame:
        """``video_path, start_time, end_time`` of each case's clip, as a clip list has them."""
        rows = [(self.written[c.name].path, *c.clip) for c in cases]
        return pd.DataFrame(rows, columns=CLIP_COLUMNS)

    def clip_table(self, cases: list[MediaCase]) -> pd.DataFrame:
        """The same clips as ingest's clip table has them (ids, split ``train``, no label)."""
        table = self.clip_list(cases)
        ids = [clip_id(*row) for row in table.itertuples(index=False)]
        return table.assign(split="train", label="").assign(clip_id=ids)[
            ["clip_id", *CLIP_COLUMNS, "split", "label"]
        ]


def generate(root: Path, cases: list[MediaCase] = CASES) -> Corpus:
    """Write ``cases`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    return Corpus(root, {c.name: c.make(root) for c in cases})
