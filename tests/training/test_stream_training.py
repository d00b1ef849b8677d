"""Training from the streaming reader (``train.reader: stream``): a run interrupted at any step
and resumed equals an uninterrupted one (weights, curve and the clips of every step), with 2
DataLoader workers, inside an epoch and across its end; every clip once an epoch per rank and
across ranks; a resume with another number of workers or ranks starts the next epoch; an npy
store is refused with a message that says how to get a WebDataset one.

The store is written straight in the format (no video decoding): 14 training clips in shards of
3 and 4 validation clips, so that the readers of a rank get unequal numbers of clips and run
out at different steps (the end of an epoch is where a resumed DataLoader's order differs).
"""

from __future__ import annotations

import itertools
import logging
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

from audioscope_kedro.data.batches import ClipSet
from audioscope_kedro.data.shard_format import AudioCodec, FrameCodec, TarCodec
from audioscope_kedro.data.store import ClipStore, clip_id, write_clip_store
from audioscope_kedro.data.streaming import MoMStream
from audioscope_kedro.models.separation import Separator
from audioscope_kedro.parameters import ParameterError, merge, parse
from audioscope_kedro.training import stream_batches
from audioscope_kedro.training.audioscope import TrainParams, fit_audioscope, training_setup
from audioscope_kedro.training.checkpoints import CheckpointStore, trained_settings
from audioscope_kedro.training.launch import DistributedSettings, run
from audioscope_kedro.training.separator import PretrainParams, pretrain_separator
from audioscope_kedro.training.stream_batches import StreamBatches, fingerprint_settings
from tests.helpers import TINY_CLIP_SECONDS, TINY_DECODE, TINY_MEDIA, tiny_config

CONFIG = tiny_config(clip_seconds=TINY_CLIP_SECONDS, media=TINY_MEDIA)
CODE_VERSION = "stream-tests"  # fixed: an edit elsewhere must not orphan the checkpoints
EXACT = TarCodec(AudioCodec.INT16, FrameCodec.RAW)
N_TRAIN = 14
STEPS = 16  # 2 steps of 4 MoMs per epoch is about 6 steps: the runs cross 2 epoch ends


def media(cid: str) -> tuple[np.ndarray, np.ndarray]:
    """Noise and frames seeded by the clip id (16-bit exact, so both readers read the same)."""
    rng = np.random.default_rng(int(cid[:8], 16))
    audio = (0.3 * rng.standard_normal(TINY_MEDIA.sample_rate)).clip(-1, 1).astype(np.float32)
    size = TINY_MEDIA.frame_height
    return audio, rng.integers(0, 256, (4, size, size, 3), dtype=np.uint8)


def clip_table() -> pd.DataFrame:
    rows = [(f"t/{i:03d}.mp4", "train", "onscreen" if i % 5 == 0 else "") for i in range(N_TRAIN)]
    rows += [(f"v/on{i}.mp4", "validate", "onscreen") for i in range(2)]
    rows += [(f"v/off{i}.mp4", "validate", "offscreen") for i in range(2)]
    paths, splits, labels = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "clip_id": [clip_id(p, 0.0, TINY_CLIP_SECONDS) for p in paths],
            "video_path": paths,
            "start_time": 0.0,
            "end_time": TINY_CLIP_SECONDS,
            "split": splits,
            "label": labels,
        }
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """The WebDataset store, its MoM table (2 (on, off) and an (off, off) validation MoM) and coincidence
    scores (every training clip kept, scores that differ)."""
    root = tmp_path_factory.mktemp("stream_training") / "store"
    table = clip_table()
    write_clip_store(root, table, media, TINY_DECODE, 3, EXACT, progress=False)
    on = table.query("label == 'onscreen' and split == 'validate'")["clip_id"].tolist()
    off = table.query("label == 'offscreen'")["clip_id"].tolist()
    moms = pd.DataFrame(
        {
            "mom_id": ["m0", "m1", "m2"],
            "split": "validate",
            "kind": ["on_off", "on_off", "off_off"],
            "clip_id_1": [*on, off[0]],
            "clip_id_2": [*off, off[1]],
        }
    )
    scores = table[["clip_id", "split"]].assign(
        kept=True, coincidence_score=np.linspace(0.2, 0.9, len(table))
    )
    return {"root": root, "moms": moms, "scores": scores}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, and no warning that 3 workers exceed this machine's 2 cores. Module
    scope: the module-scoped ``straight`` run must train on the same number of threads as the
    runs compared with it (another number rounds differently: 1e-6 apart after 16 steps)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        yield
    torch.set_num_threads(threads)


class Interrupted(Exception):
    """Raised by the batch source instead of the batch of a step: the run is killed there."""


def recording(log: list, interrupt_at: int | None):
    """A :class:`StreamBatches` that logs each step's clip ids and dies at ``interrupt_at``."""

    class Recording(StreamBatches):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.on_batch = lambda step, s: log.append((step, s.clip_ids_1, s.clip_ids_2))

        def __call__(self, step: int):
            if step == interrupt_at:
                raise Interrupted(step)
            return super().__call__(step)

    return Recording


def train_params(**extra) -> TrainParams:
    block = {
        "batch_size": 2,
        "eval_batch_size": 2,
        "crop_seconds": 0.5,
        "reader": "stream",
        "stream": {"workers": 2, "shuffle_buffer": 4},
        "device": "cpu",
        "loop": {"steps": STEPS, "warmup_steps": 2, "checkpoint_every": 1, "validate_every": 4},
    }
    return parse(TrainParams, merge(block, extra), "train")


def fit(world, folder: Path, interrupt_at: int | None = None, **extra):
    """``train`` in ``folder`` (resuming what is there): weights, curve and the clip ids of
    every step read."""
    log: list = []
    torch.manual_seed(3)
    separator = Separator(CONFIG.separator)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stream_batches, "StreamBatches", recording(log, interrupt_at))
        model, curve = fit_audioscope(
            ClipStore(world["root"]),
            world["moms"],
            world["scores"],
            separator,
            CheckpointStore(folder),
            train_params(**extra),
            CONFIG,
            code_version=CODE_VERSION,
        )
    return model.state_dict(), curve, log


@pytest.fixture(scope="module")
def straight(world, tmp_path_factory):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        return fit(world, tmp_path_factory.mktemp("straight"))


def assert_same_run(a, b) -> None:
    (weights_a, curve_a, _), (weights_b, curve_b, _) = a, b
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    drop = ["steps_per_s"]
    pd.testing.assert_frame_equal(curve_a.drop(columns=drop), curve_b.drop(columns=drop))


@pytest.mark.parametrize("k", [1, 3, 4, 5, 7, 11])
def test_an_interrupted_run_resumes_as_if_never_stopped(world, straight, tmp_path, k):
    """Killed after ``k`` steps (checkpointed at each), then resumed: the same clips at every
    step, the same weights and curve. The 2 workers of this run give 4 and 2 batches an epoch
    (epochs end after steps 6 and 12): at k = 1, 3 and 7 (odd: not a whole turn of the
    workers; 7 just after an epoch end) the resumed DataLoader, which starts its turn at
    worker 0, hands out the batches in another order, and these cases fail with the source's
    reordering removed; at 5 and 11 one worker has run out (the loader's order is right
    there), 4 is a whole turn."""
    with pytest.raises(Interrupted):
        fit(world, tmp_path, interrupt_at=k)
    assert max(int(p.stem.removeprefix("step-")) for p in CheckpointStore(tmp_path).paths()) == k
    weights, curve, resumed_log = fit(world, tmp_path)
    assert [step for step, *_ in resumed_log] == list(range(k, STEPS))
    assert resumed_log == straight[2][k:]
    assert_same_run(straight, (weights, curve, resumed_log))


LOOKS = {"picture_augmentation": {"enabled": True}}


def test_with_new_looks_a_stream_run_trains_on_them_and_resumes_as_if_never_stopped(
    world, straight, tmp_path
):
    """``train.picture_augmentation`` over the stream: the steps train on other pictures
    (other weights than ``straight``), and a run killed after 5 steps resumes with the
    uninterrupted run's clips and looks (the looks are a function of the step; the stream's
    state goes through the augmenting wrapper)."""
    looks = fit(world, tmp_path / "straight", **LOOKS)
    assert looks[2] == straight[2]  # the same clips
    assert any(not torch.equal(looks[0][k], straight[0][k]) for k in looks[0])
    with pytest.raises(Interrupted):
        fit(world, tmp_path / "resumed", interrupt_at=5, **LOOKS)
    assert_same_run(looks, fit(world, tmp_path / "resumed", **LOOKS))


def test_new_looks_reach_the_step_with_random_access(world, tmp_path):
    """The same with the random-access reader: other weights with the looks than without."""
    plain = fit(world, tmp_path / "plain", reader="random_access")
    looks = fit(world, tmp_path / "looks", reader="random_access", **LOOKS)
    assert any(not torch.equal(looks[0][k], plain[0][k]) for k in looks[0])


def epochs_of(source: StreamBatches, steps: int) -> list[tuple[int, list[str], list[str]]]:
    """``(epoch, clip ids 1, clip ids 2)`` of each of ``steps`` steps of ``source``."""
    out = []
    log: list = []
    source.on_batch = lambda step, s: log.append((s.clip_ids_1, s.clip_ids_2))
    for step in range(steps):
        source(step)
        epoch = source.state_dict(step + 1)["position"]["epoch"]
        out.append((epoch, *log[-1]))
    source.close()
    return out


def source(world, workers: int, batch_size: int = 2, rank: int = 0, world_size: int = 1):
    stream = MoMStream(
        str(world["root"]),
        seconds=TINY_CLIP_SECONDS,
        crop_seconds=0.5,
        seed=7,
        splits=["train"],
        shuffle_buffer=4,
        rank=rank,
        world_size=world_size,
    )
    return StreamBatches(stream, batch_size, workers)


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_source_resumes_at_every_step_with_a_batch_read_ahead(world, workers):
    """For every k: a source that has handed out the batches of steps 0..k (one read ahead,
    as the loop does on a GPU) saves its state at k; a new source resumed from it gives the
    batches the first gave from step k on, through two epoch ends."""
    steps = 16  # epochs of 7 steps with seed 7 (and 2 or 3 workers: they run out unevenly)
    expected = epochs_of(source(world, workers), steps)
    assert {e for e, *_ in expected} == {0, 1, 2}
    for k in range(steps - 1):
        first = source(world, workers)
        for step in range(k + 1):
            first(step)
        state = first.state_dict(k)
        first.close()
        resumed = source(world, workers)
        resumed.load_state_dict([state])
        log: list = []
        resumed.on_batch = lambda step, s, log=log: log.append((s.clip_ids_1, s.clip_ids_2))
        for step in range(k, steps):
            resumed(step)
        resumed.close()
        assert log == [(a, b) for _, a, b in expected[k:]], f"resumed at step {k}"


class Simulated(StreamBatches):
    """The source's ordering over a simulated loader whose worker ``w`` has ``counts[w]``
    batches an epoch (the same each epoch), with ``DataLoader``'s rule for an
    ``IterableDataset`` (torch/utils/data/dataloader.py, ``_try_put_index`` and
    ``_next_data``): the workers in turn from worker 0, those run out skipped. The tags are
    ``(epoch, worker, batch)``, so every order and buffer can be checked in milliseconds."""

    def __init__(self, counts: tuple[int, ...]):
        stream = SimpleNamespace(rank=0, world_size=1, seed=0, root="simulated")
        super().__init__(stream, batch_size=1, workers=len(counts))
        self.counts = counts
        self.most_waiting = 0

    def _loader(self):
        left = {w: list(range(self._skip.get(w, 0), n)) for w, n in enumerate(self.counts)}
        while any(left.values()):
            for w in range(len(self.counts)):
                if left[w]:
                    p = left[w].pop(0)
                    batch = (self._epoch, w, p)
                    yield SimpleNamespace(
                        batch=batch, worker=torch.tensor([w]), position=torch.tensor([p])
                    )

    def _take(self):
        taken = super()._take()
        if taken is not None:  # what waits, with the batch just taken from it
            waiting = 1 + sum(len(q) for q in self._waiting.values())
            self.most_waiting = max(self.most_waiting, waiting)
        return taken


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_resumed_order_is_the_uninterrupted_order_for_every_layout(workers):
    """Every layout of up to 3 batches per worker, resumed after every step of two epochs
    (one step read ahead): the resumed source gives the batches of the uninterrupted one, in
    its order (workers in turn from worker 0 each epoch, those run out skipped), and never
    holds more than a turn of the workers' batches."""
    for counts in itertools.product(range(4), repeat=workers):
        total = sum(counts)
        if not total:
            continue
        epoch = [(w, p) for p in range(max(counts)) for w in range(workers) if p < counts[w]]
        expected = [(e, w, p) for e in range(3) for w, p in epoch]
        straight = Simulated(counts)
        assert [straight(step) for step in range(3 * total)] == expected, counts
        for k in range(2 * total):
            first = Simulated(counts)
            for step in range(k + 1):
                first(step)
            resumed = Simulated(counts)
            resumed.load_state_dict([first.state_dict(k)])
            got = [resumed(step) for step in range(k, 3 * total)]
            assert got == expected[k:], (counts, k)
            assert resumed.most_waiting <= workers, (counts, k)


def one_epoch(steps: list[tuple[int, list[str], list[str]]], epoch: int) -> list[str]:
    return [c for e, ids, _ in steps if e == epoch for c in ids]


def test_every_clip_once_per_epoch_on_one_rank(world):
    """With batches of 1 nothing is dropped: each training clip exactly once an epoch, in
    another order each epoch. With batches of 2 each worker drops its last odd clip (drop_last)
    and no clip comes twice. Labels and weights are those random access reads; torch's random
    generator is left alone."""
    train = sorted(clip_table().query("split == 'train'")["clip_id"])
    steps = epochs_of(source(world, workers=2, batch_size=1), 2 * N_TRAIN + 1)
    assert steps[-1][0] == 2  # epochs 0 and 1 read whole
    assert sorted(one_epoch(steps, 0)) == train and sorted(one_epoch(steps, 1)) == train
    assert one_epoch(steps, 0) != one_epoch(steps, 1)
    pairs = epochs_of(source(world, workers=2, batch_size=2), 16)  # epochs of 7 steps
    assert pairs[-1][0] == 2
    for epoch in (0, 1):
        used = one_epoch(pairs, epoch)
        assert len(used) == len(set(used)) and set(used) <= set(train)
        assert N_TRAIN - len(used) < 2 * 2  # at most a clip of each worker's last batch
    # the labels and coincidence weights of the stream are those of random access
    store = ClipStore(world["root"])
    scores = world["scores"].set_index("clip_id")["coincidence_score"]
    clips = ClipSet.select(store, TINY_CLIP_SECONDS, splits=("train",), weights=scores)
    labels = dict(zip(clips.clip_ids, clips.labels.tolist(), strict=True))
    stream = MoMStream(
        str(world["root"]), seconds=1.0, splits=["train"], weights=scores.to_dict(), seed=1
    )
    got = StreamBatches(stream, 2, 0)
    got.on_batch = lambda step, s: (
        np.testing.assert_array_equal(s.batch.label.numpy(), [labels[c] for c in s.clip_ids_1]),
        np.testing.assert_allclose(s.batch.weight.numpy(), scores[s.clip_ids_1].to_numpy()),
    )
    rng = torch.get_rng_state()
    for step in range(4):
        got(step)
    got.close()
    # the loader draws its workers' seeds from its own generator, not from torch's (whose
    # state the checkpoint holds for the training step)
    assert torch.equal(torch.get_rng_state(), rng)
    assert {v for v in labels.values()} == {-1, 1}


def test_two_ranks_read_disjoint_clips_and_together_all(world):
    """Rank 0 and rank 1 of 2 (batches of 1, 2 workers each): in each epoch, every training
    clip exactly once across the two ranks."""
    train = sorted(clip_table().query("split == 'train'")["clip_id"])
    per_rank = [
        epochs_of(source(world, 2, batch_size=1, rank=r, world_size=2), 2 * N_TRAIN) for r in (0, 1)
    ]
    assert all(steps[-1][0] >= 2 for steps in per_rank)
    for epoch in (0, 1):
        parts = [one_epoch(steps, epoch) for steps in per_rank]
        assert all(parts), "each rank reads some clips"
        assert not set(parts[0]) & set(parts[1])
        assert sorted(parts[0] + parts[1]) == train


def test_another_number_of_workers_or_ranks_starts_the_next_epoch(world, caplog):
    """Saved by 2 workers of one rank: resumed with 3 workers, or as rank 0 of 2, the source
    warns and starts the epoch after the saved one (from its start); not a crash."""
    first = source(world, 2)
    for step in range(3):
        first(step)
    state = first.state_dict(3)
    first.close()
    assert state["position"]["epoch"] == 0 and state["position"]["consumed"]
    for other in (source(world, 3), source(world, 2, rank=0, world_size=2)):
        with caplog.at_level(logging.WARNING, logger=stream_batches.__name__):
            other.load_state_dict([state])
        assert "starts epoch 1" in caplog.text
        caplog.clear()
        assert other.state_dict(0)["position"] == {
            "epoch": 1,
            "num_workers": other.readers,
            "consumed": {},
            "world_size": other.stream.world_size,
        }
        other(0)
        assert other.state_dict(1)["position"]["epoch"] == 1
        other.close()


def test_an_npy_store_with_the_stream_reader_says_how_to_get_one(world, tmp_path):
    table = clip_table()
    write_clip_store(tmp_path / "npy", table, media, TINY_DECODE, 3, progress=False)
    npy = ClipStore(tmp_path / "npy")
    message = r"train.reader is stream, which reads a WebDataset clip store.*ingest.format=webdataset.*data.ingest convert"
    with pytest.raises(ParameterError, match=message):
        fit_audioscope(
            npy,
            world["moms"],
            world["scores"],
            Separator(CONFIG.separator),
            CheckpointStore(tmp_path / "ckpt"),
            train_params(),
            CONFIG,
        )
    with pytest.raises(ParameterError, match=message):
        training_setup({"loop": {"steps": 1}, "reader": "stream"}, {}, {}, npy, 1.0)
    params = parse(PretrainParams, {"loop": {"steps": 1}, "reader": "stream"}, "pretrain_audio")
    with pytest.raises(ParameterError, match="pretrain_audio.reader is stream"):
        pretrain_separator(
            npy, world["moms"], CheckpointStore(tmp_path / "p"), params, CONFIG.separator, 1.0
        )
    assert not (tmp_path / "ckpt").exists()
    with pytest.raises(ParameterError, match="train.reader: 'streaming' is not one of"):
        parse(TrainParams, {"loop": {"steps": 1}, "reader": "streaming"}, "train")
    with pytest.raises(ParameterError, match="stream.workers must be >= 0"):
        parse(TrainParams, {"loop": {"steps": 1}, "stream": {"workers": -1}}, "train")


def test_the_fingerprint_has_the_reader_and_the_stream_but_not_its_workers():
    def fingerprinted(**extra):
        return fingerprint_settings(trained_settings(train_params(**extra)))

    random_access = fingerprinted(reader="random_access")
    assert "reader" not in random_access and "stream" not in random_access  # as before
    assert fingerprinted(reader="random_access", stream={"shuffle_buffer": 9}) == random_access
    stream = fingerprinted()
    assert stream["reader"] == "stream" and stream != random_access | {"reader": "stream"}
    assert fingerprinted(stream={"workers": 0}) == stream
    assert fingerprinted(stream={"shuffle_buffer": 9}) != stream


def test_pretrain_audio_from_the_stream_resumes_exactly(world, tmp_path):
    """``pretrain_audio`` with ``reader: stream``, interrupted after 5 steps and resumed,
    ends with the weights and curve of an uninterrupted run."""
    block = {
        "batch_size": 2,
        "crop_seconds": 0.5,
        "reader": "stream",
        "stream": {"workers": 2, "shuffle_buffer": 4},
        "device": "cpu",
        "loop": {"steps": 9, "warmup_steps": 2, "checkpoint_every": 1, "validate_every": 3},
    }
    params = parse(PretrainParams, block, "pretrain_audio")

    def pretrain(folder, interrupt_at=None):
        log: list = []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(stream_batches, "StreamBatches", recording(log, interrupt_at))
            model, curve = pretrain_separator(
                ClipStore(world["root"]),
                world["moms"],
                CheckpointStore(folder),
                params,
                CONFIG.separator,
                TINY_CLIP_SECONDS,
                code_version=CODE_VERSION,
            )
        return model.state_dict(), curve, log

    straight_run = pretrain(tmp_path / "straight")
    with pytest.raises(Interrupted):
        pretrain(tmp_path / "resumed", interrupt_at=5)
    resumed = pretrain(tmp_path / "resumed")
    assert resumed[2] == straight_run[2][5:]
    assert_same_run(straight_run, resumed)


# ------------------------------------------------------------------- two gloo ranks, resumed


def ddp_job(world: dict, folder: Path, interrupt_at: int | None = None, steps: int = 10):
    """``train`` from the stream with global batches of 4 (2 rows a rank); on the main
    process the weights, the curve and every rank's clip ids per step. Run by
    ``training.launch.run`` in spawned workers, which import this module by name."""
    from audioscope_kedro import device as devices

    weights, curve, log = fit(
        world,
        folder,
        interrupt_at=interrupt_at if devices.is_main() else None,
        batch_size=4,
        loop={"steps": steps, "validate_every": 5},
    )
    return weights, curve, devices.gather(log)


@pytest.mark.slow
def test_two_ranks_resume_exactly_and_one_rank_goes_on_at_the_next_epoch(world, tmp_path, caplog):
    """2 DDP ranks (gloo), 2 DataLoader workers each: interrupted after 3 steps on rank 0 (the
    other is stopped by the launcher), resumed on 2 ranks: the same clips on each rank at every
    step and the same weights and curve as an uninterrupted 2-rank run; every checkpoint holds
    both ranks' stream positions (gathered on every rank); each rank reads each clip at most
    once an epoch and the two ranks disjoint clips. Resumed on 1 rank instead: a warning, and
    it trains on from the next epoch."""
    two = DistributedSettings(nproc_per_node=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        straight_run = run(two, ddp_job, world, tmp_path / "straight")
        with pytest.raises(ChildFailedError, match="Interrupted"):
            run(two, ddp_job, world, tmp_path / "killed", 3)
        saved = CheckpointStore(tmp_path / "killed").latest()
        assert saved["step"] == 3
        assert [s["position"]["world_size"] for s in saved["batches"]] == [2, 2]
        shutil.copytree(tmp_path / "killed", tmp_path / "one")
        resumed = run(two, ddp_job, world, tmp_path / "killed")
    for rank in (0, 1):
        assert resumed[2][rank] == straight_run[2][rank][3:], f"rank {rank}"
        steps = [set(ids) for _, ids, _ in straight_run[2][rank]]
        assert all(len(ids) == 2 for ids in steps)
    assert_same_run(straight_run, resumed)
    train = set(clip_table().query("split == 'train'")["clip_id"])
    first_epoch = [straight_run[2][r][:2] for r in (0, 1)]  # each rank's epoch has >= 2 steps
    ids = [{c for _, ids, _ in steps for c in ids} for steps in first_epoch]
    assert len(ids[0]) == len(ids[1]) == 4 and not ids[0] & ids[1] and ids[0] | ids[1] <= train

    with caplog.at_level(logging.WARNING, logger=stream_batches.__name__):
        weights, curve, logs = ddp_job(world, tmp_path / "one")
    assert "saved with 2 rank(s) x 2 DataLoader worker(s); this run has 1 x 2" in caplog.text
    assert [step for step, *_ in logs[0]] == list(range(3, 10))
    assert curve["step"].tolist() == [5, 10]
