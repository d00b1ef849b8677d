"""The clip store: shards decoded from a clip table, resumable, quarantining bad clips."""

import json
import pickle
import shutil

import numpy as np
import pandas as pd

from audioscope_kedro.data.decode import DecodeSettings, decode_clip
from audioscope_kedro.data.shard_format import AudioCodec, FrameCodec, StoreFormat, TarCodec
from audioscope_kedro.data.store import (
    SHARD_DIR,
    ClipStore,
    ShardBatch,
    TarClipStore,
    build_clip_store,
    clip_id,
    convert_store,
    plan_shards,
)

SETTINGS = DecodeSettings(sample_rate=8000, fps=4.0, frame_height=8, frame_width=8)


def clip_table(paths):
    rows = [(clip_id(p, 0.0, 1.5), p, 0.0, 1.5, "train", "") for p in paths]
    return pd.DataFrame(
        rows, columns=["clip_id", "video_path", "start_time", "end_time", "split", "label"]
    )


def test_store_round_trip_and_quarantine(video_root, tmp_path):
    table = clip_table(["v0.mp4", "empty.mp4", "v1.mp4", "missing.mp4", "../escape.mp4", "v2.mp4"])
    batch = ShardBatch(plan_shards(table, str(video_root), SETTINGS, 4), 1, SETTINGS)
    summary = build_clip_store(batch, tmp_path / "store")
    assert summary == {
        "shards_built": 2,
        "shards_skipped": 0,
        "clips_ingested": 3,
        "clips_quarantined": 3,
    }
    store = ClipStore(tmp_path / "store")
    assert store.index["video_path"].tolist() == ["v0.mp4", "v1.mp4", "v2.mp4"]
    reasons = dict(zip(store.quarantine["video_path"], store.quarantine["reason"], strict=True))
    assert reasons == {
        "empty.mp4": "zero bytes",
        "missing.mp4": "missing file",
        "../escape.mp4": "path escapes video_root",
    }
    for i, path in enumerate(["v0.mp4", "v1.mp4", "v2.mp4"]):
        expected = decode_clip(video_root / path, 0.0, 1.5, SETTINGS)
        np.testing.assert_array_equal(store.audio(i), expected.audio)
        np.testing.assert_array_equal(store.frames(store.index["clip_id"].iat[i]), expected.frames)
    assert [cid for cid, *_ in store] == store.index["clip_id"].tolist()


def shard_mtimes(root):
    return {p.name: p.stat().st_mtime_ns for p in (root / SHARD_DIR).iterdir()}


def test_rerun_skips_and_interrupted_run_resumes(video_root, tmp_path):
    table = clip_table([f"v{i}.mp4" for i in range(5)])
    batch = ShardBatch(plan_shards(table, str(video_root), SETTINGS, 2), 1, SETTINGS)
    root = tmp_path / "store"
    build_clip_store(batch, root)
    reference = ClipStore(root)
    ref_audio = [reference.audio(i).copy() for i in range(len(reference))]
    before = shard_mtimes(root)

    again = build_clip_store(batch, root)
    assert again["shards_built"] == 0 and again["shards_skipped"] == 3
    assert shard_mtimes(root) == before

    # An interrupted run: one shard never finished (only its temporary folder is there).
    shutil.rmtree(root / SHARD_DIR / "shard-00001")
    (root / SHARD_DIR / "shard-00001.tmp-999").mkdir()
    resumed = build_clip_store(batch, root)
    assert resumed["shards_built"] == 1
    after = shard_mtimes(root)
    assert (
        after["shard-00000"] == before["shard-00000"]
        and after["shard-00002"] == before["shard-00002"]
    )
    assert not list((root / SHARD_DIR).glob("*.tmp-*"))
    store = ClipStore(root)
    for i, audio in enumerate(ref_audio):
        np.testing.assert_array_equal(store.audio(i), audio)


def test_video_replaced_at_the_same_path_is_decoded_again(video_root, tmp_path):
    table = clip_table([f"v{i}.mp4" for i in range(4)])
    batch = ShardBatch(plan_shards(table, str(video_root), SETTINGS, 2), 1, SETTINGS)
    root = tmp_path / "store"
    build_clip_store(batch, root)
    before = shard_mtimes(root)
    # v1.mp4 re-rendered: another video's content under the same name (a new size or mtime)
    shutil.copyfile(video_root / "v4.mp4", video_root / "v1.mp4")
    summary = build_clip_store(batch, root)
    assert summary["shards_built"] == 1 and summary["shards_skipped"] == 1
    assert shard_mtimes(root)["shard-00001"] == before["shard-00001"]
    store = ClipStore(root)
    expected = decode_clip(video_root / "v4.mp4", 0.0, 1.5, SETTINGS)
    np.testing.assert_array_equal(store.audio(1), expected.audio)
    np.testing.assert_array_equal(store.frames(1), expected.frames)


def test_shards_written_before_media_signatures_stay_current(video_root, tmp_path):
    table = clip_table(["v0.mp4", "v1.mp4"])
    batch = ShardBatch(plan_shards(table, str(video_root), SETTINGS, 2), 1, SETTINGS)
    root = tmp_path / "store"
    build_clip_store(batch, root)
    manifest = root / SHARD_DIR / "shard-00000" / "manifest.json"
    written = json.loads(manifest.read_text())
    assert written["media"]  # recorded now
    del written["media"]  # as an earlier version wrote it
    manifest.write_text(json.dumps(written))
    (video_root / "v1.mp4").touch()  # a new mtime: nothing recorded to compare it with
    assert build_clip_store(batch, root)["shards_built"] == 0


def test_changed_settings_rebuild(video_root, tmp_path):
    table = clip_table(["v0.mp4", "v1.mp4"])
    root = tmp_path / "store"
    build_clip_store(
        ShardBatch(plan_shards(table, str(video_root), SETTINGS, 2), 1, SETTINGS), root
    )
    other = DecodeSettings(**{**SETTINGS.to_dict(), "sample_rate": 4000})
    summary = build_clip_store(
        ShardBatch(plan_shards(table, str(video_root), other, 2), 1, other), root
    )
    assert summary["shards_built"] == 1
    store = ClipStore(root)
    assert store.audio(0).size == 6000 and store.settings.sample_rate == 4000
    assert json.loads((root / "settings.json").read_text())["sample_rate"] == 4000


def test_process_pool_gives_the_same_store(video_root, tmp_path):
    table = clip_table([f"v{i}.mp4" for i in range(5)])
    plans = plan_shards(table, str(video_root), SETTINGS, 2)
    build_clip_store(ShardBatch(plans, 1, SETTINGS), tmp_path / "serial")
    build_clip_store(ShardBatch(plans, 2, SETTINGS), tmp_path / "pool")
    a, b = ClipStore(tmp_path / "serial"), ClipStore(tmp_path / "pool")
    pd.testing.assert_frame_equal(a.index, b.index)
    for i in range(len(a)):
        np.testing.assert_array_equal(a.audio(i), b.audio(i))


def test_webdataset_store_holds_the_same_clips(video_root, tmp_path):
    """The tar format keeps the npy store's clips: 16-bit audio (FLAC is lossless on it), raw
    frames exact and JPEG frames close; a converted npy store equals one ingested as tars."""
    table = clip_table(["v0.mp4", "empty.mp4", "v1.mp4", "v2.mp4", "v3.mp4"])
    stores = {}
    for name, codec in {
        "npy": None,
        "exact": TarCodec(AudioCodec.INT16, FrameCodec.RAW),
        "compact": TarCodec(AudioCodec.FLAC, FrameCodec.JPEG),
    }.items():
        plans = plan_shards(table, str(video_root), SETTINGS, 2, codec)
        build_clip_store(ShardBatch(plans, 1, SETTINGS, codec), tmp_path / name)
        stores[name] = ClipStore(tmp_path / name)
    npy, exact, compact = stores["npy"], stores["exact"], stores["compact"]
    assert isinstance(exact, TarClipStore) and exact.format == StoreFormat.WEBDATASET
    pd.testing.assert_frame_equal(npy.quarantine, compact.quarantine)
    assert exact.index["clip_id"].tolist() == npy.index["clip_id"].tolist()
    for cid in npy.index["clip_id"]:
        np.testing.assert_allclose(exact.audio(cid), npy.audio(cid), atol=1 / 32768)
        np.testing.assert_array_equal(compact.audio(cid), exact.audio(cid))
        np.testing.assert_array_equal(exact.frames(cid), npy.frames(cid))
        error = np.abs(compact.frames(cid).astype(int) - npy.frames(cid)).mean()
        assert compact.frames(cid).shape == npy.frames(cid).shape and error < 4
    assert (tmp_path / "compact/shards/shard-00000/data.tar").stat().st_size < (
        tmp_path / "exact/shards/shard-00000/data.tar"
    ).stat().st_size
    convert_store(tmp_path / "npy", tmp_path / "converted", TarCodec())
    converted = ClipStore(tmp_path / "converted")
    columns = ["clip_id", "video_path", "split", "shard", "num_samples", "num_frames"]
    pd.testing.assert_frame_equal(converted.index[columns], compact.index[columns])
    for cid in npy.index["clip_id"]:
        np.testing.assert_array_equal(converted.audio(cid), compact.audio(cid))
        np.testing.assert_array_equal(converted.frames(cid), compact.frames(cid))


def test_a_store_pickles_by_its_folder(video_root, tmp_path):
    """A store sent to a DataLoader or DDP worker travels as its folder: the pickle does not
    grow with the clips this process has read, and the other side reads the same clips."""
    table = clip_table(["v0.mp4", "v1.mp4", "v2.mp4"])
    for name, codec in {"npy": None, "tar": TarCodec(AudioCodec.INT16, FrameCodec.RAW)}.items():
        plans = plan_shards(table, str(video_root), SETTINGS, 2, codec)
        build_clip_store(ShardBatch(plans, 1, SETTINGS, codec), tmp_path / name)
        store = ClipStore(tmp_path / name)
        fresh = len(pickle.dumps(store))
        for i in range(len(store)):
            store.audio(i), store.frames(i)  # map or read every shard
        payload = pickle.dumps(store)
        assert len(payload) == fresh < 1000
        back = pickle.loads(payload)
        assert type(back) is type(store) and back.root == store.root
        for i in range(len(store)):
            np.testing.assert_array_equal(back.audio(i), store.audio(i))
            np.testing.assert_array_equal(back.frames(i), store.frames(i))
