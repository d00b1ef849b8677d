"""Recipe: the audio-visual coincidence model (Jansen et al. 2020 style), the clip scores it
gives and AudioScope V1's clip filter. Trained on aligned against mismatched pairs.

Negatives are half another clip's soundtrack with these frames, half this clip's soundtrack
shifted in time against its frames (circularly, by at least a quarter of the clip), so the
model must learn synchrony, not only which sounds go with which looks.

**Held-out folds.** A model trained on a clip has seen that clip's aligned pair and would score
it higher than a clip it never saw, so a filter on its own training clips would keep what it
memorised. The training clips are dealt into ``folds`` folds; model ``k`` trains on every fold
but ``k`` and scores fold ``k`` only. Clips of the other splits, which no model trained on, get
the mean probability of the ``folds`` models. Each fold resumes from its own checkpoints.

**The filter** (``filter``: on for the AudioScope V1 recipe, off for AudioScopeV2, which trains
on unfiltered data) applies to unlabelled training clips only: labelled ones are always kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from audioscope_kedro import device as devices
from audioscope_kedro.data.batches import ClipSet
from audioscope_kedro.data.lists import CLIP_COLUMNS, ClipLabel, Split
from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.metrics import auc_roc
from audioscope_kedro.models.coincidence import CoincidenceModel
from audioscope_kedro.models.embeddings import EmbeddingConfig
from audioscope_kedro.training.checkpoints import CheckpointStore, config_fingerprint
from audioscope_kedro.training.launch import DistributedSettings
from audioscope_kedro.training.loop import LoopSettings, train_loop
from audioscope_kedro.training.sharding import gather_in_order, rank_rows, take_rows

# random streams of pair_batch: training batches of fold k use stream k, held-out pairs this one
HELD_OUT_STREAM = 1000


@dataclass(frozen=True)
class CoincidenceParams:
    """The ``coincidence`` parameter block."""

    loop: LoopSettings  # of each fold's model
    model: EmbeddingConfig = field(default_factory=EmbeddingConfig)  # its embedding networks
    seed: int = 0
    batch_size: int = 16
    folds: int = 2  # models; each trains on the other folds' clips and scores its own fold
    filter: bool = False  # keep only unlabelled training clips above threshold (V1: on, V2: off)
    threshold: float = 0.8  # AudioScope: 0.8
    validation_split: str = "validate"  # clips no model trains on, for a second held-out AUC
    held_out_pairs: int = 256  # pairs per held-out AUC (half aligned), in batches of batch_size
    # train on random crops of this length (whole frames; None: whole clips, as before). On a
    # small, varied set the model learns each clip's sounds and looks by heart, including
    # where in the clip its events are (docs/demo_real_training.md): crops take that away.
    # Held-out pairs and clip scores stay whole clips.
    crop_seconds: float | None = None
    # how the run computes, not what (not in training_settings; docs/scale.md)
    device: str = "auto"  # cpu, cuda, cuda:<n>, auto (CUDA when present)
    bf16: bool = True  # bf16 autocast of the training step on CUDA; ignored on the CPU
    distributed: DistributedSettings = field(default_factory=DistributedSettings)

    def __post_init__(self) -> None:
        if self.held_out_pairs < 2:
            raise ValueError(f"held_out_pairs must be at least 2, got {self.held_out_pairs}")
        if self.folds < 2:
            raise ValueError(
                f"folds must be at least 2 (a model never scores its own clips), got {self.folds}"
            )

    def training_settings(self) -> dict:
        """What a fold's model and curve depend on (not threshold or filter: changing them
        re-scores and re-filters without retraining)."""
        return {
            "loop": self.loop,
            "model": self.model,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "folds": self.folds,
            "held_out_pairs": self.held_out_pairs,
            # only when set: the fingerprints of whole-clip runs stay what they were
            **({"crop_seconds": self.crop_seconds} if self.crop_seconds is not None else {}),
        }


def fold_name(k: int) -> str:
    return f"fold_{k}"


@dataclass(frozen=True)
class Folds:
    """The training clips of the coincidence stage and the fold of each."""

    clip_ids: tuple[str, ...]
    fold: np.ndarray  # [len(clip_ids)] in 0..count-1
    count: int

    @classmethod
    def deal(cls, clip_ids: Sequence[str], count: int, seed: int) -> Folds:
        """A seeded shuffle of the sorted ids dealt round-robin: folds differ in size by at most
        one, and the folds do not depend on the order of the store."""
        ids = list(clip_ids)
        if len(ids) < 2 * count:
            raise ValueError(
                f"{len(ids)} training clips cannot make {count} coincidence folds of at least 2 "
                "clips each: lower coincidence.folds or add training clips"
            )
        order = np.argsort(np.asarray(ids))
        shuffled = order[np.random.default_rng([seed, 11]).permutation(len(ids))]
        fold = np.empty(len(ids), int)
        fold[shuffled] = np.arange(len(ids)) % count
        return cls(tuple(ids), fold, count)

    def held_out(self, k: int) -> list[str]:
        """The clips of fold ``k``: model ``k`` scores them and never trains on them."""
        return [c for c, f in zip(self.clip_ids, self.fold, strict=True) if f == k]

    def training(self, k: int) -> list[str]:
        """The clips model ``k`` trains on: every fold but ``k``."""
        return [c for c, f in zip(self.clip_ids, self.fold, strict=True) if f != k]

    @property
    def fold_of(self) -> dict[str, int]:
        """``clip_id -> fold``."""
        return dict(zip(self.clip_ids, self.fold.tolist(), strict=True))


def training_folds(clip_store: ClipStore, params: CoincidenceParams, seconds: float) -> Folds:
    """The folds of the store's training split."""
    train = ClipSet.select(clip_store, seconds, splits=(str(Split.TRAIN),))
    return Folds.deal(train.clip_ids, params.folds, params.seed)


def pair_batch(
    clips: ClipSet,
    batch_size: int,
    seed: int,
    step: int,
    stream: int = 0,
    crop_seconds: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(audio [B, T], frames [B, F, H, W, 3], target [B])``; half aligned (target 1).

    With ``crop_seconds`` (shorter than the clips) every pair is a random crop of whole frames,
    audio and frames from the same start; a mismatched soundtrack is the other clip's, or this
    clip's own, shifted circularly within the crop. Without it, the draws are those of
    before the option (whole clips)."""
    rng = np.random.default_rng([seed, stream, step, 7])
    n = len(clips)
    which = rng.integers(0, n, batch_size)
    starts = count = None
    if crop_seconds is not None and crop_seconds < clips.seconds:
        count = max(1, int(round(crop_seconds * clips.store.settings.fps)))
        starts = rng.integers(0, clips.num_frames - count + 1, batch_size)
    audio, frames = clips.audio(which, starts, count), clips.frames(which, starts, count)
    target = torch.ones(batch_size)
    half = batch_size // 2
    for k in range(half, batch_size):
        target[k] = 0.0
        if k % 2 == 0 and n > 1:  # another clip's soundtrack
            other = (which[k] + rng.integers(1, n)) % n
            crop = None if starts is None else starts[k : k + 1]
            audio[k] = clips.audio(np.array([other]), crop, count)[0]
        else:  # the same soundtrack, shifted against the frames
            t = audio.shape[1]
            shift = int(rng.integers(t // 4, t - t // 4 + 1))
            audio[k] = torch.roll(audio[k], shift)
    return audio, frames, target


def coincidence_step(model: CoincidenceModel, batch) -> tuple[torch.Tensor, dict[str, float]]:
    audio, frames, target = batch
    logits = model(audio, frames)
    loss = F.binary_cross_entropy_with_logits(logits, target)
    accuracy = ((logits > 0).float() == target).float().mean()
    return loss, {"loss": loss.item(), "accuracy": accuracy.item()}


def _probability(models: Sequence[CoincidenceModel], audio, frames) -> torch.Tensor:
    """Mean coincidence probability of ``models``."""
    return torch.stack([torch.sigmoid(m(audio, frames)) for m in models]).mean(0)


def score_clips(
    models: Sequence[CoincidenceModel], clips: ClipSet, batch_size: int = 32
) -> np.ndarray:
    """Coincidence probability of every clip with its own soundtrack (mean over ``models``)."""
    for m in models:
        m.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(clips), batch_size):
            which = np.arange(start, min(start + batch_size, len(clips)))
            out.append(_probability(models, clips.audio(which), clips.frames(which)))
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def pair_batch_count(params: CoincidenceParams) -> int:
    """Batches of the held-out pairs (:func:`pair_scores`)."""
    return -(-params.held_out_pairs // params.batch_size)


def pair_scores(
    models: Sequence[CoincidenceModel],
    clips: ClipSet,
    params: CoincidenceParams,
    batches: Iterable[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and targets of ``params.held_out_pairs`` aligned and mismatched pairs drawn
    from ``clips`` (both clips of a mismatched pair among them): for the AUC of clips the
    models did not train on. The same pairs on every call; ``batches`` (numbers below
    :func:`pair_batch_count`) takes some of their batches only."""
    for m in models:
        m.eval()
    scores, labels = [np.zeros(0, np.float32)], [np.zeros(0, np.float32)]
    with torch.no_grad():
        for b in range(pair_batch_count(params)) if batches is None else batches:
            start = b * params.batch_size
            size = min(params.batch_size, params.held_out_pairs - start)
            audio, frames, target = pair_batch(clips, size, params.seed, b, HELD_OUT_STREAM)
            scores.append(_probability(models, audio, frames).numpy())
            labels.append(target.numpy())
    return np.concatenate(scores), np.concatenate(labels)


def validate_fold(
    model: CoincidenceModel, held_out: ClipSet, params: CoincidenceParams
) -> dict[str, float]:
    """AUC of the held-out pairs of ``held_out``; with several processes each scores its
    share of the batches and the main process computes the AUC of all (the others get
    ``{}``)."""
    if devices.world_size() == 1:
        scores = pair_scores([model], held_out, params)
    else:
        scores = pair_scores([model], held_out, params, devices.part(pair_batch_count(params)))
    every = gather_in_order([scores])
    if every is None:
        return {}
    return {"val_auc_roc": auc_roc(*(np.concatenate(x) for x in zip(*every, strict=True)))}


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(ids).encode()).hexdigest()


def train_fold(
    clip_store: ClipStore,
    checkpoints: CheckpointStore,
    params: CoincidenceParams,
    clip_seconds: float,
    folds: Folds,
    k: int,
    code_version: str | None = None,
) -> tuple[CoincidenceModel, pd.DataFrame]:
    """Train (or resume) model ``k`` on every fold but ``k``; its curve is the AUC of pairs of
    fold ``k`` (clips it does not train on)."""
    torch.manual_seed(params.seed * 1000 + k)
    train_ids, held_out_ids = folds.training(k), folds.held_out(k)
    clips = ClipSet.select(clip_store, clip_seconds, clip_ids=train_ids)
    held_out = ClipSet.select(clip_store, clip_seconds, clip_ids=held_out_ids)
    model = CoincidenceModel(params.model)

    def make_batch(step: int):  # this process's rows of the global batch
        batch = pair_batch(
            clips, params.batch_size, params.seed, step, stream=k, crop_seconds=params.crop_seconds
        )
        return take_rows(batch, rank_rows(params.batch_size, "coincidence.batch_size"))

    curve = train_loop(
        model,
        coincidence_step,
        make_batch,
        params.loop,
        checkpoints,
        lambda m: validate_fold(m, held_out, params),
        desc=f"coincidence {fold_name(k)} of {folds.count}",
        fingerprint=config_fingerprint(
            params.training_settings(),
            k,
            clip_seconds,
            clip_store.settings.to_dict(),
            _ids_digest(train_ids),
        ),
        code_version=code_version,
        device=params.device,
        bf16=params.bf16,
    )
    return model, pd.DataFrame(curve)


def fold_curves(curves: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One row per validation step: the mean over folds of every column (``val_auc_roc``: the
    mean held-out AUC), and each fold's held-out AUC as ``val_auc_roc_fold_<k>``."""
    tagged = [c.assign(fold=k) for k, c in enumerate(curves)]
    long = pd.concat(tagged, ignore_index=True)
    table = long.drop(columns="fold").groupby("step", as_index=False).mean()
    per_fold = long.pivot(index="step", columns="fold", values="val_auc_roc")
    per_fold.columns = [f"val_auc_roc_{fold_name(k)}" for k in per_fold.columns]
    return table.merge(per_fold.reset_index(), on="step")


def train_coincidence(
    clip_store: ClipStore,
    checkpoints: CheckpointStore,
    params: CoincidenceParams,
    clip_seconds: float,
    code_version: str | None = None,
) -> tuple[dict[str, CoincidenceModel], pd.DataFrame]:
    """Train (or resume) the ``folds`` models, each with checkpoints in its own sub-folder;
    returns them by fold name and the held-out curve (``fold_curves``)."""
    folds = training_folds(clip_store, params, clip_seconds)
    models, curves = {}, []
    for k in range(folds.count):
        fold_checkpoints = CheckpointStore(checkpoints.folder / fold_name(k))
        model, curve = train_fold(
            clip_store, fold_checkpoints, params, clip_seconds, folds, k, code_version
        )
        models[fold_name(k)] = model
        curves.append(curve)
    return models, fold_curves(curves)


def score_and_filter(
    clip_store: ClipStore,
    models: Mapping[str, CoincidenceModel],
    params: CoincidenceParams,
    clip_seconds: float,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The per-clip table (``coincidence_score``; ``fold``: the model that scored a training
    clip, -1 for the mean of all; ``kept``: AudioScope trains on it), the kept training clips
    as a clip list in the release format, and the report (held-out AUCs, counts)."""
    folds = training_folds(clip_store, params, clip_seconds)
    expected = [fold_name(k) for k in range(folds.count)]
    if sorted(models) != expected:
        raise ValueError(
            f"coincidence models {sorted(models)} are not those of {folds.count} folds "
            f"({expected}): rerun the coincidence training"
        )
    fold_models = [models[name] for name in expected]
    every = ClipSet.select(clip_store, clip_seconds)
    table = clip_store.index.iloc[every.rows][["clip_id", *CLIP_COLUMNS, "split", "label"]]
    table = table.reset_index(drop=True)
    table["label"] = table["label"].fillna("")
    table["fold"] = table["clip_id"].map(folds.fold_of).fillna(-1).astype(int)
    score = pd.Series(np.nan, index=table["clip_id"].to_numpy())

    held_out_scores, held_out_labels, per_fold = [], [], {}
    for k, model in enumerate(fold_models):
        clips = ClipSet.select(clip_store, clip_seconds, clip_ids=folds.held_out(k))
        score[clips.clip_ids] = score_clips([model], clips)
        s, y = pair_scores([model], clips, params)
        held_out_scores.append(s)
        held_out_labels.append(y)
        per_fold[fold_name(k)] = _finite(auc_roc(s, y))
    others = ClipSet.select(clip_store, clip_seconds, clip_ids=table["clip_id"][table["fold"] < 0])
    score[others.clip_ids] = score_clips(fold_models, others)
    table["coincidence_score"] = score.loc[table["clip_id"]].to_numpy(np.float64)

    train = table["split"] == str(Split.TRAIN)
    labelled = table["label"] != str(ClipLabel.UNLABELLED)
    above = table["coincidence_score"] > params.threshold
    table["kept"] = train & (labelled | above) if params.filter else train
    kept = table[table["kept"]][CLIP_COLUMNS].reset_index(drop=True)

    validation = ClipSet.select(clip_store, clip_seconds, splits=(params.validation_split,))
    validate_auc = (
        _finite(auc_roc(*pair_scores(fold_models, validation, params)))
        if len(validation) > 1
        else None
    )
    on = table["label"] == str(ClipLabel.ONSCREEN)
    off = table["label"] == str(ClipLabel.OFFSCREEN)
    report = {
        "filter": params.filter,
        "threshold": params.threshold,
        "folds": folds.count,
        # aligned against mismatched pairs of training clips, each fold by the model that did
        # not train on it, pooled
        "held_out_auc_roc": _finite(
            auc_roc(np.concatenate(held_out_scores), np.concatenate(held_out_labels))
        ),
        "held_out_auc_roc_per_fold": per_fold,
        "validate_auc_roc": validate_auc,  # pairs of the validation split, mean of the models
        # does the score tell human-labelled on-screen-only clips from off-screen-only ones?
        "labelled_on_vs_off_auc_roc": _finite(
            auc_roc(table["coincidence_score"][on | off], on[on | off].to_numpy())
        ),
        "train_clips": int(train.sum()),
        "train_clips_labelled": int((train & labelled).sum()),
        "train_clips_unlabelled_above_threshold": int((train & ~labelled & above).sum()),
        "train_clips_kept": int(table["kept"].sum()),
        "mean_score": {
            str(split): float(group.mean())
            for split, group in table.groupby("split")["coincidence_score"]
        },
    }
    return table, kept, report
