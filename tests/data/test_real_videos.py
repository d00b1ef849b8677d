"""Ingest the real clips of ../shared/data/real_videos (skipped when ../shared is absent)."""

import numpy as np
import pytest

from audioscope_kedro.data.clip_table import assemble_clip_table
from audioscope_kedro.data.decode import BadClipError, DecodeSettings, decode_clip
from audioscope_kedro.data.lists import ListKey, Split, read_clip_list
from audioscope_kedro.data.store import ClipStore, ShardBatch, build_clip_store, plan_shards

pytestmark = pytest.mark.real_data
SETTINGS = DecodeSettings(sample_rate=16000, fps=8.0, frame_height=32, frame_width=32)
AIRPLANE = "moviepy_airplane_flyover_audio_truncated.mp4"


def test_ingest_every_labelled_real_clip(shared_data, tmp_path):
    root = shared_data / "real_videos"
    labels = read_clip_list(root / "labels.csv")  # has a header and extra label/note columns
    table = assemble_clip_table({ListKey(Split.TEST): labels})
    batch = ShardBatch(plan_shards(table, str(root), SETTINGS, 8), 2, SETTINGS)
    summary = build_clip_store(batch, tmp_path / "store")
    store = ClipStore(tmp_path / "store")
    with_audio = labels[labels["label"] != "no_audio"]
    assert summary["clips_ingested"] == len(with_audio) == 23
    assert store.quarantine[["video_path", "reason"]].values.tolist() == [
        ["samaudio_cows_masked_15pi8h_bHQE_mask.mp4", "no audio stream"]
    ]
    for i, row in store.index.iterrows():
        duration = row.end_time - row.start_time
        audio = store.audio(i)
        assert audio.shape == (round(duration * 16000),) and np.isfinite(audio).all()
        # Channels are averaged, not summed (+3 dB); resampling a full-scale track may overshoot a little.
        assert np.abs(audio).max() <= 1.1
        assert store.frames(i).shape == (round(duration * 8), 32, 32, 3)
    assert store.index.set_index("video_path").loc[AIRPLANE, "padded_seconds"] == 0.0


def test_airplane_audio_that_stops_early(shared_data):
    """The airplane clip's soundtrack turns to digital silence after ~4.6 s while the video
    goes on to 11.3 s. The listed clip (0-4.5 s) is whole; a clip that reaches past 4.6 s is
    quarantined with short_audio=quarantine (the default) and zero-padded with short_audio=pad."""
    path = shared_data / "real_videos" / AIRPLANE
    assert decode_clip(path, 0.0, 4.5, SETTINGS).padded_seconds == 0.0
    with pytest.raises(
        BadClipError, match=r"audio shorter than the clip \(4\.[5-7]\d s of 10\.00 s\)"
    ):
        decode_clip(path, 0.0, 10.0, SETTINGS)
    padded = decode_clip(
        path, 0.0, 10.0, DecodeSettings(**{**SETTINGS.to_dict(), "short_audio": "pad"})
    )
    assert padded.padded_seconds == pytest.approx(5.4, abs=0.15)
    assert padded.audio.shape == (160000,) and not padded.audio[-16000:].any()


def test_three_speaker_mixture_matches_ground_truth(shared_data):
    """The decoded soundtrack of each VASP video is close to the sum of its speakers' stems."""
    import soundfile as sf

    root = shared_data / "real_videos" / "vasp_3speakers"
    for n in ("001", "002", "003"):
        clip = decode_clip(root / f"combine{n}.mp4", 0.0, 5.0, SETTINGS)
        stems = [
            sf.read(root / f"{n}_{side}.wav", dtype="float32")[0]
            for side in ("left", "middle", "right")
        ]
        length = min(min(s.size for s in stems), clip.audio.size)
        reference = np.sum([s[:length] for s in stems], axis=0)
        # Same signal up to a gain: normalised correlation close to 1.
        corr = (
            np.dot(reference, clip.audio[:length])
            / np.linalg.norm(reference)
            / np.linalg.norm(clip.audio[:length])
        )
        assert corr > 0.9, (n, corr)
