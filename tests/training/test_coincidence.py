"""The coincidence recipe: held-out folds (no model scores a clip it trained on), per-fold
resumable training, the V1 filter on unlabelled training clips only, and the outputs the
catalog writes (the filtered list in the release format, one model folder per fold)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from kedro.io import AbstractDataset
from kedro_datasets.partitions import PartitionedDataset

from audioscope_kedro.data.lists import read_clip_list
from audioscope_kedro.data.store import clip_id
from audioscope_kedro.models.coincidence import CoincidenceModel
from audioscope_kedro.parameters import ParameterError, merge, parse
from audioscope_kedro.pipelines.coincidence.nodes import score_and_filter_clips
from audioscope_kedro.training import coincidence
from audioscope_kedro.training.checkpoints import CheckpointStore
from audioscope_kedro.training.coincidence import (
    HELD_OUT_STREAM,
    CoincidenceParams,
    Folds,
    score_and_filter,
    train_coincidence,
)
from tests.helpers import PROJECT_ROOT, TINY_CLIP_SECONDS

CATALOG = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog.yml").read_text())


class Killed(Exception):
    """The process dies here."""


def tiny_params(**overrides) -> CoincidenceParams:
    block = {
        "batch_size": 4,
        "held_out_pairs": 16,
        "loop": {"steps": 4, "warmup_steps": 1, "checkpoint_every": 2, "validate_every": 2},
        "model": {
            "dim": 8,
            "audio_window": 64,
            "audio_hop": 32,
            "audio_channels": 8,
            "image_channels": [8],
        },
    }
    return parse(CoincidenceParams, merge(block, overrides), "coincidence")


def constant_model(params: CoincidenceParams, logit: float) -> CoincidenceModel:
    """A coincidence model that gives every pair the probability sigmoid(logit)."""
    model = CoincidenceModel(params.model)
    with torch.no_grad():
        model.scale.zero_()
        model.bias.fill_(logit)
    return model


def train_ids(store) -> list[str]:
    return store.index.loc[store.index["split"] == "train", "clip_id"].tolist()


def test_folds_are_balanced_disjoint_and_independent_of_order():
    ids = [f"clip{i:02d}" for i in range(11)]
    folds = Folds.deal(ids, 3, seed=0)
    sizes = sorted(len(folds.held_out(k)) for k in range(3))
    assert sizes == [3, 4, 4]
    for k in range(3):
        assert not set(folds.held_out(k)) & set(folds.training(k))
        assert set(folds.held_out(k)) | set(folds.training(k)) == set(ids)
    assert Folds.deal(ids[::-1], 3, seed=0).fold_of == folds.fold_of  # order of the store
    assert Folds.deal(ids, 3, seed=1).fold_of != folds.fold_of  # the seed deals
    with pytest.raises(ValueError, match="cannot make 3 coincidence folds"):
        Folds.deal(ids[:5], 3, seed=0)
    with pytest.raises(ParameterError, match="folds must be at least 2"):
        tiny_params(folds=1)


@pytest.mark.slow
def test_no_model_scores_a_clip_it_trained_on(labelled_train_store, tmp_path, monkeypatch):
    """Every clip a model draws training pairs from, against every clip that model scores
    (alone or in the mean of several) and every clip of its held-out AUC pairs."""
    drawn: dict[int, set[str]] = {}  # training stream (= fold) -> clips its batches came from
    scored: list[tuple[list[int], set[str]]] = []  # (ids of the scoring models, clips)
    pair_batch, score_clips, pair_scores = (
        coincidence.pair_batch,
        coincidence.score_clips,
        coincidence.pair_scores,
    )

    def recording_pair_batch(clips, batch_size, seed, step, stream=0, **crop):
        if stream != HELD_OUT_STREAM:
            drawn.setdefault(stream, set()).update(clips.clip_ids)
        return pair_batch(clips, batch_size, seed, step, stream, **crop)

    def recording_score_clips(models, clips, *args):
        scored.append(([id(m) for m in models], set(clips.clip_ids)))
        return score_clips(models, clips, *args)

    def recording_pair_scores(models, clips, params):
        scored.append(([id(m) for m in models], set(clips.clip_ids)))
        return pair_scores(models, clips, params)

    monkeypatch.setattr(coincidence, "pair_batch", recording_pair_batch)
    monkeypatch.setattr(coincidence, "score_clips", recording_score_clips)
    monkeypatch.setattr(coincidence, "pair_scores", recording_pair_scores)
    params = tiny_params(filter=True, threshold=0.5)
    store = labelled_train_store
    models, curve = train_coincidence(store, CheckpointStore(tmp_path), params, TINY_CLIP_SECONDS)
    table, _, report = score_and_filter(store, models, params, TINY_CLIP_SECONDS)

    fold_of_model = {id(m): int(name.removeprefix("fold_")) for name, m in models.items()}
    assert sorted(drawn) == [0, 1] and set().union(*drawn.values()) == set(train_ids(store))
    assert all(len(d) < len(train_ids(store)) for d in drawn.values())
    assert scored
    for model_ids, clips in scored:
        for m in model_ids:
            seen = drawn[fold_of_model[m]]
            assert not clips & seen, f"fold {fold_of_model[m]} scored clips it trained on"
    # every training clip was scored by one model: the one of its fold
    train = table[table["split"] == "train"]
    assert (train["fold"] >= 0).all() and (table[table["split"] != "train"]["fold"] == -1).all()
    for _, row in train.iterrows():
        assert row["clip_id"] not in drawn[row["fold"]]
    assert table["coincidence_score"].between(0, 1).all()
    assert (
        sorted(report["held_out_auc_roc_per_fold"]) == ["fold_0", "fold_1"] and report["folds"] == 2
    )
    assert 0 <= report["held_out_auc_roc"] <= 1
    # the held-out curve: the mean over folds, and each fold's
    assert curve["step"].tolist() == [2, 4]
    assert {"val_auc_roc", "val_auc_roc_fold_0", "val_auc_roc_fold_1", "train_loss"} <= set(curve)
    np.testing.assert_allclose(
        curve["val_auc_roc"], curve[["val_auc_roc_fold_0", "val_auc_roc_fold_1"]].mean(axis=1)
    )


@pytest.mark.slow
def test_an_interrupted_run_resumes_fold_by_fold(labelled_train_store, tmp_path, monkeypatch):
    """Killed part-way through fold 1: the rerun leaves fold 0 as it was (no new step), resumes
    fold 1 from its checkpoint, and ends with the models and curve of an uninterrupted run."""
    params, store = tiny_params(), labelled_train_store
    pair_batch = coincidence.pair_batch
    steps: list[tuple[int, int]] = []  # (fold, step) of every training batch
    kill_at: list[tuple[int, int]] = [(1, 3)]

    def dying_pair_batch(clips, batch_size, seed, step, stream=0, **crop):
        if (stream, step) in kill_at:
            raise Killed
        if stream != HELD_OUT_STREAM:
            steps.append((stream, step))
        return pair_batch(clips, batch_size, seed, step, stream, **crop)

    monkeypatch.setattr(coincidence, "pair_batch", dying_pair_batch)
    with pytest.raises(Killed):
        train_coincidence(store, CheckpointStore(tmp_path / "killed"), params, TINY_CLIP_SECONDS)
    assert [p.name for p in CheckpointStore(tmp_path / "killed/fold_1").paths()] == [
        "step-0000002.pt"
    ]
    steps.clear()
    kill_at.clear()
    resumed, curve = train_coincidence(
        store, CheckpointStore(tmp_path / "killed"), params, TINY_CLIP_SECONDS
    )
    assert steps == [(1, 2), (1, 3)]  # fold 0 untouched, fold 1 from its checkpoint
    straight, straight_curve = train_coincidence(
        store, CheckpointStore(tmp_path / "straight"), params, TINY_CLIP_SECONDS
    )
    for name in ("fold_0", "fold_1"):
        a, b = resumed[name].state_dict(), straight[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(
        curve.drop(columns="steps_per_s"), straight_curve.drop(columns="steps_per_s")
    )


@pytest.mark.parametrize("logit", [-10.0, 10.0])
@pytest.mark.parametrize("filter_on", [True, False])
def test_filter_applies_to_unlabelled_training_clips_only(labelled_train_store, logit, filter_on):
    params = tiny_params(filter=filter_on, threshold=0.5)
    store = labelled_train_store
    model = constant_model(params, logit)
    table, kept, report = score_and_filter(
        store, {"fold_0": model, "fold_1": model}, params, TINY_CLIP_SECONDS
    )
    train = table["split"] == "train"
    labelled = table["label"] != ""
    assert set(table["clip_id"]) == set(store.index["clip_id"])  # every clip is scored
    assert not table.loc[~train, "kept"].any()  # only training clips are trained on
    assert table.loc[train & labelled, "kept"].all()  # labelled clips: always
    unlabelled_kept = table.loc[train & ~labelled, "kept"]
    if filter_on and logit < 0:  # V1 recipe, every score below the threshold
        assert not unlabelled_kept.any()
    else:  # filter off (V2: every clip), or every score above the threshold
        assert unlabelled_kept.all()
    assert len(kept) == report["train_clips_kept"] == int(table["kept"].sum())
    assert report["train_clips"] == 10 and report["train_clips_labelled"] == 4
    assert report["train_clips_unlabelled_above_threshold"] == (6 if logit > 0 else 0)
    assert report["filter"] is filter_on


def test_filtered_list_round_trips_through_the_list_reader(labelled_train_store, tmp_path):
    """`coincidence_filtered_clips` as the catalog writes it reads back with the project's own
    clip-list reader, as the same clips (ids from path and times)."""
    params = tiny_params(filter=True, threshold=0.5)
    model = constant_model(params, -10.0)
    table, kept, _ = score_and_filter(
        labelled_train_store, {"fold_0": model, "fold_1": model}, params, TINY_CLIP_SECONDS
    )
    entry = CATALOG["coincidence_filtered_clips"]
    path = tmp_path / "coincidence_filtered_train_clips.csv"
    AbstractDataset.from_config("filtered", {**entry, "filepath": str(path)}).save(kept)
    back = read_clip_list(path)
    assert len(back) == 4  # the labelled training clips
    assert [clip_id(*row) for row in back.itertuples(index=False)] == table.loc[
        table["kept"], "clip_id"
    ].tolist()


def test_fold_models_round_trip_through_the_catalog(labelled_train_store, tmp_path):
    """The partitioned model folder: one folder per fold, loaded back as lazy loaders that the
    scoring node takes; a smaller number of folds leaves no stale folder behind."""
    entry = {k: v for k, v in CATALOG["coincidence_models"].items() if k != "type"}
    assert CATALOG["coincidence_models"]["type"] == "partitions.PartitionedDataset"
    dataset = PartitionedDataset(**{**entry, "path": str(tmp_path / "coincidence")})
    params = tiny_params()
    models = {"fold_0": constant_model(params, -3.0), "fold_1": constant_model(params, 3.0)}
    models["fold_2"] = constant_model(params, 0.0)
    dataset.save(models)
    del models["fold_2"]
    dataset.save(models)
    assert sorted(p.name for p in (tmp_path / "coincidence").iterdir()) == [
        "fold_0_model",
        "fold_1_model",
    ]
    loaders = dataset.load()
    assert sorted(loaders) == ["fold_0", "fold_1"]
    for name, model in models.items():
        loaded = loaders[name]()
        assert isinstance(loaded, CoincidenceModel)
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    block = {
        "batch_size": 4,
        "held_out_pairs": 16,
        "loop": {"steps": 4},
        "model": {"dim": 8, "audio_window": 64, "audio_hop": 32, "audio_channels": 8},
    }
    block["model"]["image_channels"] = [8]
    table, _, _ = score_and_filter_clips(labelled_train_store, loaders, block, TINY_CLIP_SECONDS)
    train = table[table["split"] == "train"]
    expected = np.where(train["fold"] == 0, torch.sigmoid(torch.tensor(-3.0)).item(), 0.0)
    expected = np.where(train["fold"] == 1, torch.sigmoid(torch.tensor(3.0)).item(), expected)
    np.testing.assert_allclose(train["coincidence_score"], expected, rtol=1e-5)
    # clips no model trained on: the mean of the fold models
    others = table[table["split"] != "train"]["coincidence_score"]
    np.testing.assert_allclose(others, 0.5, rtol=1e-5)
    with pytest.raises(ValueError, match="are not those of 2 folds"):
        score_and_filter_clips(labelled_train_store, {"fold_0": loaders["fold_0"]}, block, 1.0)


class _LabelledStore:
    """A clip store stand-in whose every sample says where it is: audio sample ``t`` of clip
    ``i`` is ``1000 * i + t`` and every pixel of frame ``f`` of clip ``i`` is ``10 * i + f``."""

    class settings:  # noqa: N801 - read as an attribute, like ClipStore.settings
        sample_rate, fps, frame_height, frame_width = 80, 4.0, 2, 2

    def audio(self, row: int) -> np.ndarray:
        return (1000 * row + np.arange(80)).astype(np.float32)

    def frames(self, row: int) -> np.ndarray:
        return np.broadcast_to(
            10 * row + np.arange(4, dtype=np.uint8)[:, None, None, None], (4, 2, 2, 3)
        )


@pytest.mark.parametrize("seed", [0, 3])
def test_cropped_pairs_are_aligned_only_when_positive(seed):
    """With ``crop_seconds`` every pair is a crop of whole frames: a positive's soundtrack is
    its own clip's from the same start as its frames; a negative's is another clip's, or its
    own shifted within the crop; crops start at more than one place. Without it, whole clips."""
    from audioscope_kedro.data.batches import ClipSet

    clips = ClipSet(_LabelledStore(), np.arange(5), 1.0)  # 5 clips of 1 s: 4 frames, 80 samples
    audio, frames, target = coincidence.pair_batch(clips, 32, seed, 1, crop_seconds=0.5)
    assert audio.shape == (32, 40) and frames.shape == (32, 2, 2, 2, 3)
    first = frames[:, 0, 0, 0, 0].numpy().astype(np.int64)
    clip, start = first // 10, first % 10
    assert (frames[:, 1, 0, 0, 0].numpy() == 10 * clip + start + 1).all()  # consecutive frames
    expected = 1000 * clip[:, None] + 20 * start[:, None] + np.arange(40)  # 20 samples a frame
    aligned = (audio.numpy() == expected).all(axis=1)
    np.testing.assert_array_equal(aligned, target.numpy() == 1)
    negatives = audio.numpy()[target.numpy() == 0]
    own = negatives // 1000 == clip[target.numpy() == 0][:, None]
    assert own.all(axis=1).any() and (~own).all(axis=1).any()  # both kinds of negative
    assert len(set(start[target.numpy() == 1].tolist())) > 1  # not always the clip's start
    whole, whole_frames, _ = coincidence.pair_batch(clips, 32, seed, 1)
    assert whole.shape == (32, 80) and whole_frames.shape[1] == 4
