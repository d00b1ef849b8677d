"""The streaming reader of the WebDataset clip store: every clip once per epoch across ranks
and DataLoader workers, a seeded order, resumption inside an epoch, fsspec URLs."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from torch.utils.data import DataLoader

from audioscope_kedro.data import store as store_module
from audioscope_kedro.data.decode import DecodeSettings
from audioscope_kedro.data.shard_format import (
    AudioCodec,
    FrameCodec,
    TarCodec,
    tar_samples,
    to_pcm16,
)
from audioscope_kedro.data.store import ClipStore, TarClipStore, clip_id, write_clip_store
from audioscope_kedro.data.streaming import (
    ClipStream,
    Consumer,
    MoMStream,
    StreamPosition,
    assigned_shards,
    collate_moms,
)

SETTINGS = DecodeSettings(sample_rate=1000, fps=4.0, frame_height=8, frame_width=8)
EXACT = TarCodec(AudioCodec.INT16, FrameCodec.RAW)
N_TRAIN, N_VALIDATE = 26, 6  # 32 clips in 11 shards of 3: uneven shards and workers


def media(cid: str) -> tuple[np.ndarray, np.ndarray]:
    """Audio and frames that identify their clip (seeded by its id): 16-bit exact."""
    rng = np.random.default_rng(int(cid[:8], 16))
    audio = rng.integers(-20000, 20000, 1000).astype(np.float32) / 32768
    return audio, rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)


def clip_table(paths: list[str], split: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clip_id": [clip_id(p, 0.0, 1.0) for p in paths],
            "video_path": paths,
            "start_time": 0.0,
            "end_time": 1.0,
            "split": split,
            "label": ["onscreen" if i % 3 == 0 else "" for i in range(len(paths))],
        }
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stream") / "store"
    table = pd.concat(
        [
            clip_table([f"t/{i:03d}.mp4" for i in range(N_TRAIN)], "train"),
            clip_table([f"v/{i:03d}.mp4" for i in range(N_VALIDATE)], "validate"),
        ],
        ignore_index=True,
    )
    # index row groups of 5 rows: a shard's rows straddle row groups, as in a large store
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "INDEX_ROW_GROUP", 5)
        write_clip_store(root, table, media, SETTINGS, 3, EXACT, progress=False)
    assert pq.ParquetFile(root / "index.parquet").metadata.num_row_groups == 7
    return root


def as_list(examples):
    return examples


def stream_ids(dataset, num_workers: int) -> list[dict]:
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers, collate_fn=as_list)
    return list(loader)


def test_every_clip_once_per_epoch_across_two_ranks_and_two_workers(store):
    index = ClipStore(store).index
    train = index[index["split"] == "train"]
    shard_of = dict(zip(index["clip_id"], index["shard"], strict=True))
    for epoch in (0, 1):
        seen = []
        shards_of_consumer: dict[tuple[int, int], set[int]] = {}
        for rank in (0, 1):
            dataset = ClipStream(str(store), seed=5, splits=["train"], rank=rank, world_size=2)
            dataset.set_epoch(epoch)
            for example in stream_ids(dataset, num_workers=2):
                seen.append(example["clip_id"])
                key = (rank, example["worker"])
                shards_of_consumer.setdefault(key, set()).add(shard_of[example["clip_id"]])
                # decoded exactly as the store's random access reads it
                np.testing.assert_array_equal(example["audio"], media(example["clip_id"])[0])
                np.testing.assert_array_equal(example["frames"], media(example["clip_id"])[1])
        assert Counter(seen) == Counter(train["clip_id"]), "each training clip exactly once"
        assert len(shards_of_consumer) == 4  # every (rank, worker) read some shards ...
        consumers = list(shards_of_consumer.values())
        for i, a in enumerate(consumers):  # ... and no two read the same shard
            for b in consumers[i + 1 :]:
                assert not a & b


def test_shard_assignment_is_a_partition():
    shards = list(range(11))
    for world, workers in ((1, 1), (2, 2), (3, 2)):
        parts = [
            assigned_shards(shards, 1, 0, Consumer(r, world, w, workers))
            for r in range(world)
            for w in range(workers)
        ]
        assert sorted(s for p in parts for s in p) == shards


def mom_examples(store, seed=0, epoch=0, num_workers=2, **kwargs) -> list[dict]:
    dataset = MoMStream(
        str(store), seconds=1.0, seed=seed, splits=["train"], shuffle_buffer=4, **kwargs
    )
    dataset.set_epoch(epoch)
    return stream_ids(dataset, num_workers)


def test_moms_draw_partners_from_the_stream(store):
    examples = mom_examples(store, crop_seconds=0.5)
    train = set(ClipStore(store).index.query("split == 'train'")["clip_id"])
    assert Counter(e["clip_id_1"] for e in examples) == Counter(train)
    for e in examples:
        assert e["clip_id_2"] != e["clip_id_1"] and e["clip_id_2"] in train
        assert e["mix1"].shape == (500,) and e["frames"].shape == (2, 8, 8, 3)
        # the crops are whole frames of the two clips' own audio (clip 1's frames with it)
        start = int(
            np.flatnonzero([np.array_equal(e["frames"][0], f) for f in media(e["clip_id_1"])[1]])[0]
        )
        np.testing.assert_array_equal(
            e["mix1"], media(e["clip_id_1"])[0][start * 250 : start * 250 + 500]
        )
        partner = media(e["clip_id_2"])[0]
        assert any(np.array_equal(e["mix2"], partner[s * 250 : s * 250 + 500]) for s in range(3))
    assert len({e["clip_id_2"] for e in examples}) > len(train) // 2  # partners vary


def signature(examples):
    return [(e["worker"], e["position"], e["clip_id_1"], e["clip_id_2"]) for e in examples]


def test_order_is_a_function_of_seed_and_epoch(store):
    first = mom_examples(store, seed=3, crop_seconds=0.5)
    again = mom_examples(store, seed=3, crop_seconds=0.5)
    assert signature(first) == signature(again)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["mix1"], b["mix1"])
        np.testing.assert_array_equal(a["mix2"], b["mix2"])
    assert signature(mom_examples(store, seed=4)) != signature(first)
    next_epoch = mom_examples(store, seed=3, epoch=1)
    assert signature(next_epoch) != signature(first)
    assert sorted(e["clip_id_1"] for e in next_epoch) == sorted(e["clip_id_1"] for e in first)
    # shuffled: not the store's order, and the buffer mixes clips across shards
    ids = ClipStore(store).index.query("split == 'train'")["clip_id"].tolist()
    assert [e["clip_id_1"] for e in first if e["worker"] == 0] != [
        c for c in ids if c in {e["clip_id_1"] for e in first if e["worker"] == 0}
    ]


def test_resume_inside_an_epoch_continues_the_same_stream(store):
    def loader(dataset):
        return DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_moms)

    def stream():
        return MoMStream(str(store), seconds=1.0, seed=9, splits=["train"], shuffle_buffer=4)

    full = {
        (int(w), int(p)): (a, b)
        for batch in loader(stream())
        for w, p, a, b in zip(
            batch.worker, batch.position, batch.clip_ids_1, batch.clip_ids_2, strict=True
        )
    }
    position = StreamPosition(epoch=0, num_workers=2)
    consumed = {}
    for step, batch in enumerate(loader(stream())):
        if step == 5:  # killed here: batch 5 was fetched, never used
            break
        position.advance(batch.worker, batch.position)
        for w, p, a, b in zip(
            batch.worker, batch.position, batch.clip_ids_1, batch.clip_ids_2, strict=True
        ):
            consumed[(int(w), int(p))] = (a, b)
    saved = StreamPosition.from_dict(position.to_dict())
    resumed_stream = stream()
    resumed_stream.start_at(saved)
    resumed = {}
    for batch in loader(resumed_stream):
        for w, p, a, b in zip(
            batch.worker, batch.position, batch.clip_ids_1, batch.clip_ids_2, strict=True
        ):
            resumed[(int(w), int(p))] = (a, b)
    assert not consumed.keys() & resumed.keys()
    assert {**consumed, **resumed} == full
    # another number of ranks or workers cannot continue inside the epoch
    with pytest.raises(ValueError, match="saved with 1 ranks"):
        MoMStream(str(store), seconds=1.0, rank=0, world_size=2).start_at(saved)
    with pytest.raises(ValueError, match="2 DataLoader workers"):
        odd = stream()
        odd.start_at(saved)
        list(DataLoader(odd, batch_size=2, num_workers=0, collate_fn=collate_moms))


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_a_store_at_an_fsspec_url(store, scheme):
    if scheme == "memory":
        fs = fsspec.filesystem("memory")
        fs.put(str(store), "/fsspec-store", recursive=True)
        url = "memory://fsspec-store"
    else:
        url = store.as_uri()
    local = [e["clip_id"] for e in stream_ids(ClipStream(str(store), seed=2), 0)]
    remote = stream_ids(ClipStream(url, seed=2), 0)
    assert [e["clip_id"] for e in remote] == local
    reader = ClipStore(url)
    assert isinstance(reader, TarClipStore) and len(reader) == N_TRAIN + N_VALIDATE
    cid = reader.index["clip_id"].iat[7]
    np.testing.assert_array_equal(reader.audio(cid), media(cid)[0])
    np.testing.assert_array_equal(reader.frames(7), media(cid)[1])


def test_an_npy_store_is_not_streamed(tmp_path):
    table = clip_table(["a.mp4", "b.mp4"], "train")
    write_clip_store(tmp_path / "npy", table, media, SETTINGS, 2, progress=False)
    with pytest.raises(ValueError, match="streaming reads a WebDataset store"):
        ClipStream(str(tmp_path / "npy"))


def test_shards_are_webdataset_tars(store):
    """WebDataset's own tar reader sees every clip of a shard with the members the index
    points at (the streaming reader cuts them by offset) and its description."""
    reader = ClipStore(store)
    rows = reader.index[reader.index["shard"] == 2]
    samples = list(tar_samples(reader.shard_location(2)))
    assert [s["__key__"] for s in samples] == rows["clip_id"].tolist()
    for sample, row in zip(samples, rows.itertuples(), strict=True):
        audio, frames = media(row.clip_id)
        np.testing.assert_array_equal(np.load(io.BytesIO(sample["audio.npy"])), to_pcm16(audio))
        np.testing.assert_array_equal(np.load(io.BytesIO(sample["frames.npy"])), frames)
        assert json.loads(sample["json"]) == {
            "clip_id": row.clip_id,
            "num_samples": 1000,
            "num_frames": 4,
            "sample_rate": 1000,
            "fps": 4.0,
            "frame_height": 8,
            "frame_width": 8,
        }
