"""The AudioScope training recipe: labelled examples get the supervised term only, training
runs on the clips the coincidence stage kept, and the shipped recipes (V2 in conf/base, V1's
filter in conf/demo, no coincidence weighting)."""

from __future__ import annotations

import pytest
import torch
import yaml

from audioscope_kedro.data.batches import MoMBatch
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.parameters import ParameterError, merge, parse
from audioscope_kedro.training.audioscope import (
    TrainParams,
    audioscope_step,
    training_clips,
    training_setup,
)
from audioscope_kedro.training.coincidence import CoincidenceParams
from tests.helpers import PROJECT_ROOT, TINY_CLIP_SECONDS, TINY_MEDIA, tiny_config


def shipped(block: str, env: str) -> dict:
    """A parameter block of conf/base, with conf/<env>'s override laid over (env "base": none)."""
    base = yaml.safe_load((PROJECT_ROOT / f"conf/base/parameters_{block}.yml").read_text())[block]
    override = PROJECT_ROOT / f"conf/{env}/parameters_{block}.yml"
    if env != "base" and override.exists():
        base = merge(base, (yaml.safe_load(override.read_text()) or {}).get(block) or {})
    return base


def mom_batch(labels: list[int], seed: int = 0) -> MoMBatch:
    g = torch.Generator().manual_seed(seed)
    b, t = len(labels), int(TINY_CLIP_SECONDS * TINY_MEDIA.sample_rate)
    frames = int(TINY_CLIP_SECONDS * TINY_MEDIA.fps)
    shape = (b, frames, TINY_MEDIA.frame_height, TINY_MEDIA.frame_width, 3)
    return MoMBatch(
        mix1=0.1 * torch.randn(b, t, generator=g),
        mix2=0.1 * torch.randn(b, t, generator=g),
        frames=torch.randint(0, 256, shape, generator=g, dtype=torch.uint8),
        label=torch.tensor(labels),
        weight=torch.full((b,), 0.5),
    )


@pytest.mark.parametrize("loss", ["exact", "active_combinations"])
def test_labelled_examples_get_no_pseudo_label_loss(loss):
    """On a batch of human-labelled examples the pseudo-label weight changes nothing (their
    pseudo-label term is 0); on unlabelled examples it does, and there is no supervised term."""
    torch.manual_seed(0)
    model = AudioScope(tiny_config(clip_seconds=TINY_CLIP_SECONDS, media=TINY_MEDIA))

    def step(labels, classification_weight, **extra):
        params = parse(
            TrainParams,
            {
                "loop": {"steps": 1},
                "classification_loss": loss,
                "classification_weight": classification_weight,
                **extra,
            },
            "train",
        )
        total, logs = audioscope_step(model, mom_batch(labels), params)
        return total.item(), logs

    labelled = [1, 0, 1, 0]
    for extra in ({}, {"coincidence_weighting": True}):
        with_pseudo, logs = step(labelled, 1.0, **extra)
        without, _ = step(labelled, 0.0, **extra)
        assert logs["cls"] == 0.0 and logs["sup"] > 0
        assert with_pseudo == without
    unlabelled = [-1, -1, -1, -1]
    with_pseudo, logs = step(unlabelled, 1.0)
    without, _ = step(unlabelled, 0.0)
    assert logs["sup"] == 0.0 and logs["cls"] > 0 and with_pseudo != without
    # coincidence weighting (an option, off by default) scales the pseudo-label term
    _, weighted = step(unlabelled, 1.0, coincidence_weighting=True)
    assert weighted["cls"] == pytest.approx(0.5 * logs["cls"], rel=1e-5)


def test_training_runs_on_the_clips_the_coincidence_stage_kept(labelled_train_store):
    index = labelled_train_store.index
    scores = index[["clip_id", "split", "label"]].copy()
    scores["coincidence_score"] = [0.1 * (k % 10) for k in range(len(scores))]
    train = scores["split"] == "train"
    # kept: the labelled training clips and two unlabelled ones; a validation clip marked kept
    # by mistake is still not trained on
    scores["kept"] = train & (scores["label"] != "")
    scores.loc[scores.index[train & (scores["label"] == "")][:2], "kept"] = True
    scores.loc[scores.index[~train][0], "kept"] = True
    clips = training_clips(labelled_train_store, scores, TINY_CLIP_SECONDS)
    assert sorted(clips.clip_ids) == sorted(scores.loc[train & scores["kept"], "clip_id"])
    weights = scores.set_index("clip_id")["coincidence_score"]
    assert clips.weights.tolist() == pytest.approx(weights[clips.clip_ids].tolist())
    scores["kept"] = False
    scores.loc[scores.index[train][0], "kept"] = True
    with pytest.raises(ValueError, match="kept only 1 training clips"):
        training_clips(labelled_train_store, scores, TINY_CLIP_SECONDS)


def test_the_old_filter_setting_names_its_new_home():
    with pytest.raises(ParameterError, match="train.use_coincidence_filter is now coincidence"):
        training_setup({"loop": {"steps": 1}, "use_coincidence_filter": True}, {}, {}, None, 1.0)


def test_shipped_recipes():
    """conf/base follows AudioScopeV2 (no filter: it trains on unfiltered data), conf/demo keeps
    AudioScope V1's filter (the demo uses the V1 release layout); coincidence weighting, which
    the papers do not have, is off everywhere."""
    assert parse(CoincidenceParams, shipped("coincidence", "base"), "c").filter is False
    demo = parse(CoincidenceParams, shipped("coincidence", "demo"), "c")
    assert demo.filter is True and demo.folds >= 2
    for env in ("base", "demo"):
        assert parse(TrainParams, shipped("train", env), "t").coincidence_weighting is False
    assert TrainParams.__dataclass_fields__["coincidence_weighting"].default is False
