"""The pieces of distributed training that run in one process: how work is shared among
ranks (simulated through ``RANK``/``WORLD_SIZE``, as torchrun sets them), the one-process
identity of every collective and of the GPU path on the CPU, the run settings kept out of the
checkpoint fingerprint, the batch read-ahead, and the torchrun entry point's arguments. The
real multi-process runs are in test_distributed.py."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
import torch
from torch import nn

from audioscope_kedro import device as devices
from audioscope_kedro.data.batches import ClipSet, MoMSet, random_mom_batch
from audioscope_kedro.distributed import TRAINING_NODES, main, parse_params
from audioscope_kedro.evaluation.runner import (
    OFF_SCREEN_KINDS,
    ON_SCREEN_KINDS,
    MoMOutputs,
    run_on_moms,
    validation_figures,
)
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.parameters import ParameterError, parse
from audioscope_kedro.training import loop
from audioscope_kedro.training.audioscope import TrainParams
from audioscope_kedro.training.checkpoints import trained_settings
from audioscope_kedro.training.coincidence import CoincidenceParams
from audioscope_kedro.training.launch import DistributedSettings, run
from audioscope_kedro.training.separator import PretrainParams
from audioscope_kedro.training.sharding import rank_rows, shard_moms, take_rows
from tests.helpers import TINY_CLIP_SECONDS, TINY_MEDIA, tiny_config
from tests.training.test_audioscope import shipped

RECIPES = {"train": TrainParams, "pretrain_audio": PretrainParams, "coincidence": CoincidenceParams}


@contextlib.contextmanager
def as_rank(rank: int, world: int):
    """This process seen as worker ``rank`` of ``world`` (no process group: the environment
    alone, which is what the sharding reads)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RANK", str(rank))
        patch.setenv("WORLD_SIZE", str(world))
        yield


def test_one_process_is_left_alone():
    """With one process every collective and every GPU-path step is the identity: the numbers
    of a single-process run are those of the code before distributed training."""
    model, batch = nn.Linear(2, 2), (torch.ones(3, 2), {"x": torch.zeros(3)})
    cpu = torch.device("cpu")
    values = {"loss": 1.5, "accuracy": 0.25}
    assert devices.world_size() == 1 and not devices.init(cpu)
    assert devices.mean_over_ranks(values) is values
    assert devices.gather(values) == [values] and devices.broadcast(values) is values
    assert devices.part(5) == range(5)
    assert devices.wrap(model) is model and devices.on_device(model, cpu) is model
    assert devices.to_device(batch, cpu) is batch and devices.pin(batch, cpu) is batch
    with devices.autocast(cpu, bf16=True):
        assert not torch.is_autocast_enabled()
        assert (model(batch[0])).dtype == torch.float32
    assert rank_rows(16, "train.batch_size") == slice(0, 16)
    assert take_rows(batch, slice(0, 1)) is batch


@pytest.mark.parametrize("n", [0, 1, 5, 8])
@pytest.mark.parametrize("world", [2, 3])
def test_shares_cover_every_item_once(n, world):
    shares = []
    for r in range(world):
        with as_rank(r, world):
            shares.append(devices.part(n))
    assert [i for share in shares for i in share] == list(range(n))  # contiguous, in order
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


@pytest.mark.parametrize("read_only_rows", [False, True])
@pytest.mark.parametrize("crop", [None, TINY_CLIP_SECONDS / 2])
def test_each_rank_takes_its_rows_of_the_global_batch(tiny_data, read_only_rows, crop):
    """Cut after reading (take_rows) or read only the rows (random_mom_batch(rows=...), what
    the recipes do): either way the rows of the one global batch of the step."""
    clips = ClipSet.select(tiny_data.store, TINY_CLIP_SECONDS)
    whole = random_mom_batch(clips, 4, seed=3, step=7, crop_seconds=crop)
    parts = []
    for r in range(2):
        with as_rank(r, 2):
            rows = rank_rows(4, "train.batch_size")
            if read_only_rows:
                parts.append(random_mom_batch(clips, 4, 3, 7, crop, rows=rows))
            else:
                parts.append(take_rows(random_mom_batch(clips, 4, 3, 7, crop), rows))
    for name in ("mix1", "mix2", "frames", "label", "weight"):
        joined = torch.cat([getattr(p, name) for p in parts])
        assert torch.equal(joined, getattr(whole, name)), name
    assert not torch.equal(parts[0].mix1, parts[1].mix1)
    with as_rank(0, 4), pytest.raises(ValueError, match=r"train.batch_size = 6 .* 4 processes"):
        rank_rows(6, "train.batch_size")


@pytest.mark.parametrize("world", [2, 3])
def test_validation_shares_are_whole_batches_of_one_pass(tiny_data, world):
    """Every rank runs whole batches, each exactly as one process batches them, both groups
    of MoMs on every rank that works; concatenated in rank order, the outputs are those of
    one pass (so are the validation figures)."""
    moms = MoMSet.from_table(tiny_data.store, tiny_data.mom_table, TINY_CLIP_SECONDS, "validate")
    groups = (ON_SCREEN_KINDS, OFF_SCREEN_KINDS)
    torch.manual_seed(0)
    model = AudioScope(tiny_config(clip_seconds=TINY_CLIP_SECONDS, media=TINY_MEDIA)).eval()

    def batches(m: MoMSet, kinds) -> list[list[str]]:
        return [[m.mom_ids[i] for i in pos] for pos, _ in m.batches(1, kinds)]

    shares = []
    for r in range(world):
        with as_rank(r, world):
            shares.append(shard_moms(moms, 1, groups))
    working = [s for s in shares if s is not None]
    # 2 (on, off) and 3 (off, off) MoMs in batches of 1: 2 ranks can hold both groups
    assert len(working) == 2 and shares[0] is not None
    for kinds in groups:
        assert all(batches(s, kinds) for s in working)
        assert [b for s in working for b in batches(s, kinds)] == batches(moms, kinds)
    with torch.no_grad():
        one = run_on_moms(model, moms, 1)
        joined = MoMOutputs.concat([run_on_moms(model, s, 1) for s in working])
    assert joined.on_ids == one.on_ids and joined.off_ids == one.off_ids
    assert torch.equal(joined.on_logits, one.on_logits)
    assert validation_figures(joined, 15.0) == validation_figures(one, 15.0)


def test_run_settings_are_not_in_the_fingerprint():
    """A checkpoint written on 2 GPUs resumes on 4, or on the CPU."""
    base = parse(TrainParams, {"loop": {"steps": 4}}, "train")
    other = parse(
        TrainParams,
        {
            "loop": {"steps": 4},
            "device": "cpu",
            "bf16": False,
            "distributed": {"nproc_per_node": 4},
        },
        "train",
    )
    assert trained_settings(base) == trained_settings(other)
    assert "device" not in trained_settings(base) and "loop" in trained_settings(base)
    assert trained_settings(base) != trained_settings(
        parse(TrainParams, {"loop": {"steps": 5}}, "train")
    )


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_shipped_run_settings(recipe):
    """conf/base: CUDA when present, bf16 autocast there, one process (today's behaviour); a
    misspelt key of the distributed block is an error that names it."""
    params = parse(RECIPES[recipe], shipped(recipe, "base"), recipe)
    assert params.device == "auto" and params.bf16 is True
    assert params.distributed == DistributedSettings(nproc_per_node=1)
    with pytest.raises(ParameterError, match=rf"{recipe}.distributed.nprocs"):
        parse(RECIPES[recipe], {**shipped(recipe, "base"), "distributed": {"nprocs": 2}}, recipe)


def test_batches_are_read_ahead_for_a_gpu(monkeypatch):
    """On a GPU the next batch is read (and pinned) while the current step runs: the loop
    still gets every step's batch once, in order. On the CPU each batch is read in line."""
    monkeypatch.setattr(devices, "pin", lambda batch, device: ("pinned", batch))
    asked = []

    def make_batch(step):
        asked.append(step)
        return step * 10

    got = list(loop._batches(make_batch, range(3, 7), torch.device("cuda")))
    assert got == [("pinned", 30), ("pinned", 40), ("pinned", 50), ("pinned", 60)]
    assert sorted(asked) == [3, 4, 5, 6]
    asked.clear()
    lazily = loop._batches(make_batch, range(3, 7), torch.device("cpu"))
    assert next(lazily) == 30 and asked == [3]


def test_one_process_runs_in_line():
    """``nproc_per_node`` 1 runs in this process; so does any setting inside a worker that
    torchrun started (its ``--nproc-per-node`` decides: no workers started from workers)."""
    assert run(DistributedSettings(), os.getpid) == os.getpid()
    with as_rank(0, 1):
        assert run(DistributedSettings(nproc_per_node=2), os.getpid) == os.getpid()
    with pytest.raises(ValueError, match="at least 1"):
        DistributedSettings(nproc_per_node=0)


def test_on_device_view_moves_inputs_and_outputs():
    model = nn.Linear(3, 2)
    view = devices.OnDevice(model, torch.device("cpu"))
    x = torch.randn(4, 3)
    assert torch.equal(view(x), model(x))
    assert view.eval() is view and not model.training and view.weight is model.weight


def test_entry_point_arguments(capsys):
    assert parse_params("train.loop.steps=4,train.device=cpu") == {
        "train": {"loop": {"steps": 4}, "device": "cpu"}
    }
    with pytest.raises(SystemExit, match="not KEY=VALUE"):
        parse_params("train.loop.steps")
    assert main(["train"]) == 2  # not under torchrun
    assert "started by torchrun" in capsys.readouterr().err


@pytest.mark.parametrize("pipeline", sorted(TRAINING_NODES))
def test_entry_point_names_each_pipelines_training_node(pipeline):
    import importlib

    module = importlib.import_module(f"audioscope_kedro.pipelines.{pipeline}.pipeline")
    names = {n.name for n in module.create_pipeline().nodes}
    assert TRAINING_NODES[pipeline] in names


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the GPU path)")
def test_gpu_steps_run_in_bf16_and_resume(tmp_path):
    """On CUDA the step runs under bf16 autocast on batches copied to the GPU, the model comes
    back to the CPU, and a run resumes from the checkpoint it wrote (GPU RNG state included)."""
    from audioscope_kedro.training.checkpoints import CheckpointStore
    from audioscope_kedro.training.loop import LoopSettings, train_loop

    seen = []

    def step(model, batch):
        x, y = batch
        out = model(x)
        seen.append((x.device.type, out.dtype))
        loss = ((out.float() - y) ** 2).mean()
        return loss, {"loss": loss.item()}

    def make_batch(s):
        g = torch.Generator().manual_seed(s)
        x = torch.randn(8, 3, generator=g)
        return x, x.sum(-1, keepdim=True)

    def train(steps):
        settings = LoopSettings(steps=steps, warmup_steps=1, checkpoint_every=2, validate_every=2)
        return train_loop(
            model, step, make_batch, settings, CheckpointStore(tmp_path), device="cuda", bf16=True
        )

    model = nn.Linear(3, 1)
    train(2)
    assert next(model.parameters()).device.type == "cpu"
    curve = train(4)  # resumes at step 2: two more steps
    assert seen == [("cuda", torch.bfloat16)] * 4
    assert [r["step"] for r in curve] == [2, 4]
    assert np.isfinite([r["train_loss"] for r in curve]).all()
