"""Parameter blocks parsed into dataclasses: a misspelt or unknown key is an error naming it."""

from __future__ import annotations

import pytest
import yaml

from audioscope_kedro.evaluation.runner import CalibrateParams, EvaluateParams
from audioscope_kedro.losses import ClassificationLoss
from audioscope_kedro.parameters import ParameterError, merge, parse
from audioscope_kedro.training.audioscope import TrainParams
from audioscope_kedro.training.coincidence import CoincidenceParams
from audioscope_kedro.training.separator import PretrainParams
from audioscope_kedro.tuning.study import TuneParams
from tests.helpers import PROJECT_ROOT

BLOCKS = {
    "coincidence": CoincidenceParams,
    "pretrain_audio": PretrainParams,
    "train": TrainParams,
    "calibrate": CalibrateParams,
    "evaluate": EvaluateParams,
    "tune": TuneParams,
}


def _block(name: str, env: str = "base") -> dict:
    base = yaml.safe_load((PROJECT_ROOT / f"conf/base/parameters_{name}.yml").read_text())[name]
    if env == "base":
        return base
    files = sorted((PROJECT_ROOT / "conf" / env).glob("parameters*.yml"))
    for file in files:
        block = (yaml.safe_load(file.read_text()) or {}).get(name)
        if block:
            base = merge(base, block)
    return base


@pytest.mark.parametrize("env", ["base", "demo", "demo_real", "test"])
@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_every_shipped_block_parses(name, env):
    block = _block(name, env)
    if name == "tune":  # the storage URL interpolates ${globals:data_root}
        block = {**block, "storage": "sqlite:///x.db"}
    parsed = parse(BLOCKS[name], block, name)
    assert isinstance(parsed, BLOCKS[name])


@pytest.mark.parametrize(
    "name, path",
    [
        ("train", ("loop", "stpes")),
        ("train", ("clasification_loss",)),
        ("coincidence", ("model", "dimm")),
        ("calibrate", ("split",)),
        ("tune", ("pruner", "n_warmup")),
        ("pretrain_audio", ("splits",)),
    ],
)
def test_unknown_key_is_named(name, path):
    block = _block(name)
    if name == "tune":
        block = {**block, "storage": "sqlite:///x.db"}
    node = block = merge(block, {})
    for part in path[:-1]:
        node[part] = dict(node[part])
        node = node[part]
    node[path[-1]] = 1
    with pytest.raises(ParameterError, match=rf"unknown parameter\(s\) {name}\.{'.'.join(path)}"):
        parse(BLOCKS[name], block, name)


def test_values_are_typed():
    train = parse(TrainParams, _block("train"), "train")
    assert train.classification_loss is ClassificationLoss.EXACT
    assert isinstance(train.loop.learning_rate, float)
    calibrate = parse(CalibrateParams, {"temperatures": [1, 0.5]}, "calibrate")
    assert calibrate.temperatures == (1.0, 0.5)
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) evaluate.bootstrapp"):
        parse(EvaluateParams, {"bootstrapp": 3}, "evaluate")
    with pytest.raises(ParameterError, match=r"missing parameter train.loop"):
        parse(TrainParams, {}, "train")
    pretrain = parse(PretrainParams, {"loop": {"steps": 3}, "train_splits": ["a"]}, "p")
    assert pretrain.train_splits == ("a",)


def test_merge_is_deep_and_leaves_its_inputs():
    base = {"loop": {"steps": 5, "learning_rate": 1.0}, "seed": 0}
    out = merge(base, {"loop": {"learning_rate": 2.0}})
    assert out == {"loop": {"steps": 5, "learning_rate": 2.0}, "seed": 0}
    assert base["loop"]["learning_rate"] == 1.0


@pytest.mark.parametrize(
    "override, message",
    [
        ({"loop": {"steps": "many"}}, "train.loop.steps: expected int, got 'many'"),
        ({"loop": {"steps": 2.5}}, "train.loop.steps: expected int"),
        ({"loop": {"learning_rate": "fast"}}, "train.loop.learning_rate: expected float"),
        ({"loop": {"learning_rate": True}}, "train.loop.learning_rate: expected float"),
        ({"mask_inactive": "yes"}, "train.mask_inactive: expected bool, got 'yes'"),
        ({"validation_split": 3}, "train.validation_split: expected str, got 3"),
    ],
)
def test_a_value_of_the_wrong_type_is_named(override, message):
    with pytest.raises(ParameterError, match=message.replace(".", r"\.")):
        parse(TrainParams, merge(_block("train"), override), "train")


def test_a_number_that_yaml_read_as_a_string_is_taken():
    """YAML 1.1 reads ``3e-4`` (no dot) as a string; for a float setting it can only mean 3e-4."""
    block = merge(_block("train"), yaml.safe_load("loop: {learning_rate: 3e-4, steps: 10}"))
    assert parse(TrainParams, block, "train").loop.learning_rate == 3e-4
