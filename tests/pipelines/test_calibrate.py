"""The `calibrate` pipeline on an in-memory catalog (``MemoryDataset``s run by the
``SequentialRunner``): a tiny untrained model, the tiny clip store and its MoM table.

The released folder on disk, its loading and the command's refusal of a stale calibration are
checked on the whole chain (tests/pipelines/test_training_chain.py)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from kedro.io import MemoryDataset

from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.evaluation.calibration import CalibrationMismatchError
from audioscope_kedro.evaluation.metric_names import Metric
from audioscope_kedro.evaluation.runner import figures_at, run_on_moms
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.models.persistence import weights_fingerprint
from audioscope_kedro.pipelines.calibrate import create_pipeline
from audioscope_kedro.release import ReleasedModel
from tests.helpers import (
    TINY_CLIP_SECONDS,
    TINY_MEDIA,
    conf_parameters,
    run_in_memory,
    tiny_config,
)


@pytest.fixture(scope="module")
def model() -> AudioScope:
    torch.manual_seed(0)
    return AudioScope(tiny_config("pool", clip_seconds=TINY_CLIP_SECONDS, media=TINY_MEDIA)).eval()


@pytest.fixture(scope="module")
def calibrated(model, tiny_data) -> dict:
    """The outputs of the whole pipeline, run once for the module."""
    return run_in_memory(
        create_pipeline(),
        {
            "trained_model": model,
            "clip_store": MemoryDataset(tiny_data.store, copy_mode="assign"),  # memory maps
            "mom_table": tiny_data.mom_table,
            "params:calibrate": conf_parameters("test")["calibrate"],
        },
    )


def assemble(model, calibration) -> ReleasedModel:
    """The `assemble_release` node alone, as the pipeline wires it."""
    only = create_pipeline().filter(node_names=["assemble_release"])
    inputs = {"trained_model": model, "calibration": calibration}
    return run_in_memory(only, inputs)["audioscope_model"]


def test_calibration_is_made_for_the_model_on_the_validation_moms(model, calibrated, tiny_data):
    assert set(calibrated) == {"audioscope_model", "calibration_curve"}
    release = calibrated["audioscope_model"]
    calibration = release.calibration
    assert isinstance(release, ReleasedModel) and calibration is not None
    assert calibration.model_fingerprint == weights_fingerprint(model)
    assert weights_fingerprint(release.model) == weights_fingerprint(model)
    params = conf_parameters("test")["calibrate"]
    assert calibration.split == params["validation_split"] == "validate"
    assert calibration.target_suppression_db == params["target_suppression_db"]
    assert calibration.point.kind == "affine"
    assert calibration.point.temperature in params["temperatures"]
    assert set(calibration.points_by_target) == set(params["report_targets"])
    # the figures recorded are the model's on the validation MoMs at the point chosen
    validation = MoMSet.from_table(
        tiny_data.store, tiny_data.mom_table, TINY_CLIP_SECONDS, "validate"
    )
    expected = figures_at(run_on_moms(model, validation), calibration.point)
    assert calibration.validation == pytest.approx({str(k): v for k, v in expected.items()})
    # V2: the suppression there EQUALS the target (within 0.25 dB), when reachable
    suppression = calibration.validation[str(Metric.OFF_SCREEN_SUPPRESSION)]
    if calibration.reached:
        assert suppression == pytest.approx(params["target_suppression_db"], abs=0.25)
    # the curve is the bias sweep of the chosen temperature, suppression falling with the bias
    curve = calibrated["calibration_curve"]
    assert (curve["temperature"] == calibration.point.temperature).all()
    assert curve["bias"].is_monotonic_increasing


def test_assemble_release_refuses_a_calibration_of_other_weights(model, calibrated):
    calibration = calibrated["audioscope_model"].calibration
    retrained = copy.deepcopy(model)  # `train` rerun, `calibrate` not
    with torch.no_grad():
        next(retrained.parameters()).add_(0.01)
    with pytest.raises(CalibrationMismatchError, match="made for another model"):
        assemble(retrained, calibration)
    other = dataclasses.replace(calibration, model_fingerprint="0" * 40)
    with pytest.raises(CalibrationMismatchError, match="made for another model"):
        assemble(model, other)


def test_assemble_release_accepts_its_own_calibration(model, calibrated):
    calibration = calibrated["audioscope_model"].calibration
    release = assemble(model, calibration)
    assert release.calibration == calibration
    assert weights_fingerprint(release.model) == calibration.model_fingerprint
