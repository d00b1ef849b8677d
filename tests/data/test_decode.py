from pathlib import Path

import numpy as np
import pytest

from audioscope_kedro.data.decode import (
    BadClipError,
    DecodeSettings,
    decode_all,
    decode_clip,
    probe_duration,
)
from audioscope_kedro.data.video_io import write_mp4
from tests.helpers import tone_clip, write_raw_container

S16 = DecodeSettings(sample_rate=16000, fps=10.0, frame_height=16, frame_width=16)


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


def test_decode_whole_clip_matches_source(tone_mp4):
    path, frames, audio = tone_mp4
    clip = decode_clip(path, 0.0, 3.0, S16)
    assert clip.audio.dtype == np.float32 and clip.audio.shape == (48000,)
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (30, 16, 16, 3)
    assert snr_db(audio, clip.audio) > 25  # AAC at 96 kbit/s; also proves alignment
    # Brightness ramps with time, so frame k must come from source frame k.
    np.testing.assert_allclose(
        clip.frames.mean(axis=(1, 2, 3)), frames.mean(axis=(1, 2, 3)), atol=4
    )


def test_cut_from_the_middle(tone_mp4):
    path, frames, audio = tone_mp4
    clip = decode_clip(path, 1.0, 2.0, S16)
    assert clip.audio.shape == (16000,) and len(clip.frames) == 10
    assert snr_db(audio[16000:32000], clip.audio) > 25
    np.testing.assert_allclose(
        clip.frames.mean(axis=(1, 2, 3)), frames[10:20].mean(axis=(1, 2, 3)), atol=4
    )


def test_resample_and_frame_rate(tone_mp4):
    path, *_ = tone_mp4
    clip = decode_clip(
        path, 0.5, 2.5, DecodeSettings(sample_rate=8000, fps=4.0, frame_height=8, frame_width=12)
    )
    assert clip.audio.shape == (16000,)
    assert clip.frames.shape == (8, 8, 12, 3)
    # 440 Hz tone survives resampling to 8 kHz: spectral peak at 440 Hz
    spectrum = np.abs(np.fft.rfft(clip.audio))
    assert abs(np.argmax(spectrum) * 8000 / clip.audio.size - 440) < 5


@pytest.mark.parametrize(
    "channels, rate", [(1, 44100), (2, 22050), (2, 48000), (6, 16000), (1, 11025)]
)
def test_odd_rates_and_channel_counts_are_downmixed_by_mean(tmp_path, channels, rate):
    t = np.arange(2 * rate) / rate
    base = 0.25 * np.sin(2 * np.pi * 300 * t)
    audio = np.stack([base * (c + 1) / channels for c in range(channels)]).astype(np.float32)
    frames, _ = tone_clip(duration=2.0, sr=rate)
    path = write_raw_container(
        tmp_path / "odd.mkv", audio if channels > 1 else audio[0], rate, frames
    )
    clip = decode_clip(path, 0.0, 2.0, S16)
    expected_peak = 0.25 * np.mean([(c + 1) / channels for c in range(channels)])
    assert clip.audio.shape == (32000,)
    assert abs(np.abs(clip.audio[1000:-1000]).max() - expected_peak) < 0.02


def test_missing_and_zero_byte_files(tmp_path):
    with pytest.raises(BadClipError, match="missing file"):
        decode_clip(tmp_path / "nope.mp4", 0, 1, S16)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(BadClipError, match="zero bytes"):
        decode_clip(tmp_path / "empty.mp4", 0, 1, S16)


def test_corrupt_container(tmp_path):
    (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(BadClipError, match="corrupt"):
        decode_clip(tmp_path / "junk.mp4", 0, 1, S16)


def test_truncated_file_is_rejected_or_short(tone_mp4, tmp_path):
    path, *_ = tone_mp4
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(BadClipError) as info:
        decode_clip(cut, 0.0, 3.0, S16)
    assert info.value.reason.split(" (")[0] in {
        "corrupt or unreadable container",
        "audio shorter than the clip",
        "corrupt or truncated audio stream",
        "corrupt or truncated video stream",
        "no audio in the clip range",
    }


def test_no_audio_stream_and_no_video_stream(tmp_path):
    frames, audio = tone_clip(duration=1.0)
    video_only = write_raw_container(tmp_path / "v.mkv", None, frames=frames)
    with pytest.raises(BadClipError, match="no audio stream"):
        decode_clip(video_only, 0, 1, S16)
    audio_only = write_raw_container(tmp_path / "a.mkv", audio)
    with pytest.raises(BadClipError, match="no video stream"):
        decode_clip(audio_only, 0, 1, S16)


def test_clip_beyond_the_end(tone_mp4):
    path, *_ = tone_mp4
    with pytest.raises(BadClipError, match="beyond the end"):
        decode_clip(path, 5.0, 10.0, S16)


def test_short_audio_quarantine_or_pad(tmp_path):
    frames, audio = tone_clip(duration=3.0)
    path = tmp_path / "short.mp4"
    write_mp4(path, frames, 10.0, audio[: 16000 * 2], 16000)  # audio stops at 2 s, video at 3 s
    with pytest.raises(BadClipError, match="audio shorter than the clip"):
        decode_clip(path, 0.0, 3.0, S16)
    padded = decode_clip(path, 0.0, 3.0, DecodeSettings(**{**S16.to_dict(), "short_audio": "pad"}))
    assert padded.audio.shape == (48000,) and padded.padded_seconds == pytest.approx(1.0, abs=0.1)
    assert np.all(padded.audio[-8000:] == 0)
    assert len(padded.frames) == 30


def test_trailing_digital_silence_counts_as_short_audio(tmp_path):
    frames, audio = tone_clip(duration=3.0)
    audio[16000:] = 0.0  # content stops at 1 s, stream goes on
    path = write_raw_container(tmp_path / "zeros.mkv", audio, 16000, frames)
    with pytest.raises(BadClipError, match="audio shorter than the clip"):
        decode_clip(path, 0.0, 3.0, S16)
    assert decode_clip(path, 0.0, 0.9, S16).padded_seconds == 0.0


def test_silent_and_nan_audio(tmp_path):
    frames, audio = tone_clip(duration=1.0)
    quiet = write_raw_container(tmp_path / "quiet.mkv", audio * 1e-5, 16000, frames)
    with pytest.raises(BadClipError, match="silent audio"):
        decode_clip(quiet, 0, 1, S16)
    nan = audio.copy()
    nan[100:200] = np.nan
    path = write_raw_container(tmp_path / "nan.mkv", nan, 16000, frames)
    with pytest.raises(BadClipError, match="NaN/inf"):
        decode_clip(path, 0, 1, S16)


def test_probe_and_raw_decode(tone_mp4):
    path, *_ = tone_mp4
    assert probe_duration(path) == pytest.approx(3.0, abs=0.15)
    samples, frames = decode_all(path)
    assert frames == 30 and samples >= 48000


def test_settings_validation():
    with pytest.raises(ValueError, match="short_audio"):
        DecodeSettings(short_audio="stretch")
    assert DecodeSettings.from_params({"sample_rate": 8000, "unrelated": 1}).sample_rate == 8000


def test_path_type_accepted(tone_mp4):
    path, *_ = tone_mp4
    assert (
        decode_clip(str(path), 0, 1, S16).audio.size
        == decode_clip(Path(path), 0, 1, S16).audio.size
    )


def test_a_rotated_video_is_decoded_upright(tmp_path):
    """Display rotation (a phone's portrait video): ingest sees what a player shows, as
    ``audioscope separate`` does (tests/separate/test_run.py)."""
    from tests.separate.helpers import write_video

    rng = np.random.default_rng(0)
    video = write_video(
        tmp_path / "portrait.mp4", 0.1 * rng.standard_normal((1, 32000)), 16000, rotation=90
    )  # frames 32 wide, 16 high, left quarter white; shown as 16 wide, 32 high
    clip = decode_clip(video, 0.0, 1.5, S16)
    rows = clip.frames[..., 0].astype(float).mean(axis=(0, 2))
    assert clip.frames.shape == (15, 16, 16, 3)
    assert rows[-3:].min() > 250 and rows[:-6].max() < 250  # white at the bottom only
