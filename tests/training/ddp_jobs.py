"""What the distributed-training tests run, in a module that the worker processes can import
(``spawn`` workers unpickle functions by their module name; a test module's closures would not
travel): a small dataset, the three recipes' settings, and the jobs.

``python -m tests.training.ddp_jobs JOB.pkl`` runs a pickled ``(settings, fn, args)`` through
``training.launch.run``: the kill-and-resume test starts it as its own process group, to kill
the launcher and its workers with SIGKILL.
"""

from __future__ import annotations

import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from audioscope_kedro.data.clip_table import assemble_clip_table, assemble_mom_table
from audioscope_kedro.data.lists import MOM_COLUMNS, ListKey
from audioscope_kedro.data.store import ClipStore, ShardBatch, build_clip_store, plan_shards
from audioscope_kedro.data.video_io import write_mp4
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.models.coincidence import CoincidenceModel
from audioscope_kedro.models.separation import Separator
from audioscope_kedro.parameters import merge, parse
from audioscope_kedro.training import launch
from audioscope_kedro.training.audioscope import TrainParams, fit_audioscope, validate_audioscope
from audioscope_kedro.training.checkpoints import CheckpointStore
from audioscope_kedro.training.coincidence import (
    CoincidenceParams,
    train_coincidence,
    validate_fold,
)
from audioscope_kedro.training.separator import (
    PretrainParams,
    pretrain_separator,
    validate_separator,
)
from tests.helpers import TINY_CLIP_SECONDS, TINY_DECODE, TINY_MEDIA, tiny_config, tone_clip

# the source-code part of the checkpoints' fingerprint: fixed, so that an edit elsewhere in the
# package while the tests run does not make a checkpoint "another configuration's"
CODE_VERSION = "ddp-tests"
CONFIG = tiny_config(clip_seconds=TINY_CLIP_SECONDS, media=TINY_MEDIA)
# 8 unlabelled training clips (2 coincidence folds of 4), 3 on-screen and 3 off-screen
# validation clips: 3 (on, off) and 3 (off, off) MoMs, in batches of 2 (uneven shares)
TRAIN_CLIPS, VALIDATION_CLIPS = 8, 3


@dataclass(frozen=True)
class World:
    """The ingested dataset: the clip store's folder, the MoM table, coincidence scores."""

    store_root: Path
    moms: pd.DataFrame
    scores: pd.DataFrame

    @property
    def store(self) -> ClipStore:
        return ClipStore(self.store_root)


def build_world(root: Path) -> World:
    """Videos, clip store and tables under ``root``; every video its own tone and look."""
    paths: dict[str, list[str]] = {}
    k = 0
    for name, count in (
        ("train", TRAIN_CLIPS),
        ("validate_onscreen", VALIDATION_CLIPS),
        ("validate_offscreen", VALIDATION_CLIPS),
    ):
        paths[name] = []
        for i in range(count):
            path = f"videos/{name}_{i}.mp4"
            frames, audio = tone_clip(
                duration=1.5, sr=16000, fps=8.0, size=16, seed=k, freq=200.0 + 90.0 * k
            )
            write_mp4(root / "videos_root" / path, frames, 8.0, audio, 16000)
            paths[name].append(path)
            k += 1

    def clips(names: list[str]) -> pd.DataFrame:
        return pd.DataFrame({"video_path": names, "start_time": 0.0, "end_time": TINY_CLIP_SECONDS})

    def moms(pairs) -> pd.DataFrame:
        return pd.DataFrame(
            [(a, 0.0, TINY_CLIP_SECONDS, b, 0.0, TINY_CLIP_SECONDS) for a, b in pairs],
            columns=MOM_COLUMNS,
        )

    on, off = paths["validate_onscreen"], paths["validate_offscreen"]
    lists = {ListKey.parse(name): clips(p) for name, p in paths.items()}
    lists[ListKey.parse("validate")] = clips(on + off)
    lists[ListKey.parse("validate_on_off_mom")] = moms(zip(on, off, strict=True))
    lists[ListKey.parse("validate_off_off_mom")] = moms(
        (off[i], off[(i + 1) % len(off)]) for i in range(len(off))
    )
    table, mom_table = assemble_clip_table(lists), assemble_mom_table(lists)
    plans = plan_shards(table, str(root / "videos_root"), TINY_DECODE, 8)
    build_clip_store(ShardBatch(plans, 1, TINY_DECODE), root / "clip_store")
    store = ClipStore(root / "clip_store")
    scores = store.index[["clip_id", "split"]].assign(kept=True, coincidence_score=1.0)
    return World(root / "clip_store", mom_table, scores)


def loop(steps: int, **extra) -> dict:
    # validated every step: the curve holds every step's training losses
    return {"steps": steps, "warmup_steps": 2, "checkpoint_every": 2, "validate_every": 1, **extra}


def pretrain_params(**extra) -> PretrainParams:
    block = {"batch_size": 4, "loop": loop(4), "device": "cpu"}
    return parse(PretrainParams, merge(block, extra), "pretrain_audio")


def coincidence_params(**extra) -> CoincidenceParams:
    block = {
        "batch_size": 4,
        "held_out_pairs": 12,
        "loop": loop(4),
        "device": "cpu",
        "model": {
            "dim": 8,
            "audio_window": 64,
            "audio_hop": 32,
            "audio_channels": 8,
            "image_channels": [8],
        },
    }
    return parse(CoincidenceParams, merge(block, extra), "coincidence")


def train_params(**extra) -> TrainParams:
    """With picture augmentation: each worker's rows get the looks of their rows of the global
    batch, so that the workers train as one process does."""
    block = {"batch_size": 4, "eval_batch_size": 2, "loop": loop(6), "device": "cpu"}
    block["picture_augmentation"] = {"enabled": True}
    return parse(TrainParams, merge(block, extra), "train")


def states(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def three_trainings(world: World, folder: Path) -> dict:
    """``pretrain_audio``, ``coincidence`` and ``train`` in a row, each with its checkpoints
    in ``folder``: the final weights and the curve of each."""
    store, out = world.store, {}
    separator, curve = pretrain_separator(
        store,
        world.moms,
        CheckpointStore(folder / "pretrain"),
        pretrain_params(),
        CONFIG.separator,
        TINY_CLIP_SECONDS,
        code_version=CODE_VERSION,
    )
    out["pretrain_audio"] = (states(separator), curve)
    models, curve = train_coincidence(
        store,
        CheckpointStore(folder / "coincidence"),
        coincidence_params(),
        TINY_CLIP_SECONDS,
        code_version=CODE_VERSION,
    )
    out["coincidence"] = ({k: states(m) for k, m in models.items()}, curve)
    model, curve = fit_audioscope(
        store,
        world.moms,
        world.scores,
        separator,
        CheckpointStore(folder / "train"),
        train_params(),
        CONFIG,
        code_version=CODE_VERSION,
    )
    out["train"] = (states(model), curve)
    return out


def validation_rows(world: World) -> dict:
    """The validation row of each recipe for fixed (seeded) models, with the number of
    examples each process ran through each model (gathered on the main process)."""
    from audioscope_kedro import device as devices
    from audioscope_kedro.data.batches import ClipSet, MoMSet

    devices.init(torch.device("cpu"))  # as the training loop does before validating
    store = world.store
    torch.manual_seed(1)
    models = {
        "train": AudioScope(CONFIG),
        "pretrain_audio": Separator(CONFIG.separator),
        "coincidence": CoincidenceModel(coincidence_params().model),
    }
    examples = dict.fromkeys(models, 0)
    for name, m in models.items():
        m.register_forward_hook(
            lambda _, inputs, __, name=name: examples.update(
                {name: examples[name] + len(inputs[0])}
            )
        )
    moms = MoMSet.from_table(store, world.moms, TINY_CLIP_SECONDS, "validate")
    held_out = ClipSet.select(store, TINY_CLIP_SECONDS, splits=("train",))
    rows = {
        "train": validate_audioscope(models["train"], moms, 2, 15.0),
        "pretrain_audio": validate_separator(models["pretrain_audio"], moms, 2),
        "coincidence": validate_fold(models["coincidence"], held_out, coincidence_params()),
    }
    return {"rows": rows, "examples": devices.gather(examples)}


def trainings_and_validation(world: World, folder: Path) -> dict:
    """:func:`three_trainings`, then :func:`validation_rows` (one launch of workers for both)."""
    out = three_trainings(world, folder)
    with torch.no_grad():
        out["validation"] = validation_rows(world)
    return out


class RecordingStore(CheckpointStore):
    """A checkpoint folder that also logs, to ``log``, the rank of every process that reads
    it for resuming or writes or clears it."""

    def __init__(self, folder: str | Path, log: str | Path):
        super().__init__(folder)
        self.log = Path(log)

    def _record(self, what: str) -> None:
        with self.log.open("a") as f:
            f.write(f"{os.environ.get('RANK', '0')} {what}\n")

    def latest(self):
        self._record("latest")
        return super().latest()

    def save(self, step, state, keep=2):
        self._record(f"save {step}")
        return super().save(step, state, keep)

    def clear(self):
        self._record("clear")
        super().clear()


def train_job(world: World, checkpoints: CheckpointStore, steps: int) -> tuple:
    """``train`` for ``steps`` steps, checkpointed every 2, validated every 4: the weights
    and the curve."""
    params = train_params(loop=loop(steps, validate_every=4))
    torch.manual_seed(3)
    separator = Separator(CONFIG.separator)
    model, curve = fit_audioscope(
        world.store,
        world.moms,
        world.scores,
        separator,
        checkpoints,
        params,
        CONFIG,
        code_version=CODE_VERSION,
    )
    return states(model), curve


def main(job: str) -> None:
    settings, fn, args = pickle.loads(Path(job).read_bytes())
    result = launch.run(settings, fn, *args)
    Path(job).with_suffix(".out").write_bytes(pickle.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
