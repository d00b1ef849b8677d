"""The training loop's per-submodule learning rates: a scale of 0 freezes a submodule, another
scale moves it at that fraction of the rate, and the rest trains as before."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from audioscope_kedro.training.checkpoints import CheckpointStore
from audioscope_kedro.training.loop import BatchSource, LoopSettings, map_batches, train_loop


class TwoParts(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 3)
        self.second = nn.Linear(3, 1)

    def forward(self, x):
        return self.second(self.first(x))


def step(model, batch):
    x, y = batch
    loss = ((model(x) - y) ** 2).mean()
    return loss, {"loss": loss.item()}


def batch(step: int):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(8, 3, generator=g)
    return x, x.sum(-1, keepdim=True)


def trained(tmp_path, lr_scales, steps=5):
    torch.manual_seed(0)
    model = TwoParts()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = LoopSettings(steps=steps, learning_rate=1e-2, warmup_steps=1, grad_clip=0.0)
    train_loop(model, step, batch, settings, CheckpointStore(tmp_path), lr_scales=lr_scales)
    moved = {k: (model.state_dict()[k] - v).abs().max().item() for k, v in before.items()}
    return model, moved


def test_scale_zero_freezes_the_submodule(tmp_path):
    model, moved = trained(tmp_path, {"first": 0.0})
    assert moved["first.weight"] == 0.0 and moved["first.bias"] == 0.0
    assert moved["second.weight"] > 0
    assert not any(p.requires_grad for p in model.first.parameters())


def test_scale_one_is_the_plain_loop(tmp_path):
    plain, _ = trained(tmp_path / "a", None)
    scaled, _ = trained(tmp_path / "b", {"first": 1.0})
    for a, b in zip(plain.parameters(), scaled.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_small_scale_moves_the_submodule_less(tmp_path):
    # Adam's first steps move each weight by about the learning rate, whatever its gradient
    _, full = trained(tmp_path / "a", None, steps=1)
    _, tenth = trained(tmp_path / "b", {"first": 0.1}, steps=1)
    assert tenth["first.weight"] == pytest.approx(0.1 * full["first.weight"], rel=1e-3)
    assert tenth["second.weight"] == pytest.approx(full["second.weight"], rel=1e-6)


def test_negative_scale_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'first' must be >= 0"):
        trained(tmp_path, {"first": -1.0})


class CountingSource:
    """A stateful batch source: batch ``k`` is the ``k``-th it hands out."""

    def __init__(self):
        self.given, self.closed, self.loaded = 0, False, None

    def __call__(self, step: int):
        self.given += 1
        return self.given

    def state_dict(self, done_steps: int) -> dict:
        return {"given": done_steps}

    def load_state_dict(self, states) -> None:
        self.loaded = list(states)

    def close(self) -> None:
        self.closed = True


def test_mapped_batches_keep_a_pure_source_pure_and_a_stateful_one_stateful():
    def tag(step, b):
        return (step, b)

    pure = map_batches(lambda step: step * 10, tag)
    assert not isinstance(pure, BatchSource)
    assert [pure(s) for s in (2, 0, 2)] == [(2, 20), (0, 0), (2, 20)]
    source = CountingSource()
    mapped = map_batches(source, tag)
    assert isinstance(mapped, BatchSource)
    assert [mapped(s) for s in range(3)] == [(0, 1), (1, 2), (2, 3)]
    assert mapped.state_dict(3) == {"given": 3}
    mapped.load_state_dict([{"given": 1}])
    mapped.close()
    assert source.loaded == [{"given": 1}] and source.closed
