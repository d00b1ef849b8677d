"""Broken model folders through every loader: ``load_model`` (``train``'s output, read by
``calibrate``), ``ReleasedModel.load`` (``evaluate``, the ``audioscope`` command), the Kedro
datasets that the catalog names, and ``audioscope separate`` / ``audioscope evaluate``.

Expected behaviour (docs/reliability.md): a clear error naming the folder or file and the
reason (the command: one ``audioscope: ...`` line and exit code 2, no traceback), nothing
written, and the folder left as it was. Two older forms stay readable: a folder without the
weights checksum, and a calibration without the configuration fingerprint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from kedro.io import DataCatalog, DatasetError

from audioscope_kedro import command
from audioscope_kedro.evaluation.calibration import (
    Calibration,
    CalibrationMismatchError,
    OperatingPoint,
    PointKind,
)
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.models.persistence import (
    CHECKSUM_KEY,
    ModelFolderError,
    load_model,
    weights_fingerprint,
)
from audioscope_kedro.release import CALIBRATION_FILE, ReleasedModel
from tests.helpers import TINY_MEDIA, tiny_config

DATASETS = "audioscope_kedro.datasets.model_datasets"


def tiny_model(seed: int = 0, **config) -> AudioScope:
    torch.manual_seed(seed)
    return AudioScope(tiny_config(clip_seconds=1.0, media=TINY_MEDIA, **config)).eval()


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A released folder as ``calibrate`` assembles it (weights, config, calibration)."""
    model = tiny_model()
    point = OperatingPoint(PointKind.AFFINE, temperature=0.5, bias=-0.5)
    calibration = Calibration(point, 15.0, True, "validate", weights_fingerprint(model))
    folder = tmp_path_factory.mktemp("release") / "model"
    ReleasedModel.assemble(model, calibration).save(folder)
    return folder


@pytest.fixture(scope="module")
def others(tmp_path_factory) -> dict[str, Path]:
    """Folders of other models: another configuration, the same one trained otherwise."""
    base = tmp_path_factory.mktemp("others")
    tiny_model(num_sources=8).save(base / "eight_sources")
    tiny_model(seed=1).save(base / "same_config_other_weights")
    return {p.name: p for p in base.iterdir()}


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def flip_middle(path: Path) -> None:
    """One byte of tensor data changed: a zip member's content, not its directory."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0x55
    path.write_bytes(bytes(data))


def other_calibration(folder: Path, others: dict[str, Path]) -> None:
    model = load_model(others["same_config_other_weights"])
    calibration = Calibration(OperatingPoint(), 15.0, True, "validate", weights_fingerprint(model))
    (folder / CALIBRATION_FILE).write_text(json.dumps(calibration.to_json()))


# case -> (how the folder is broken, what is raised, a phrase of the message, whether the case
# is about calibration.json, which only the released-model loaders read)
CASES: dict[str, tuple[Callable[[Path, dict], None], type, str, bool]] = {
    "config.json of another configuration (8 sources)": (
        lambda f, o: shutil.copy(o["eight_sources"] / "model.pt", f / "model.pt"),
        ModelFolderError,
        "does not match this model config",
        False,
    ),
    "model.pt of another model with the same shapes": (
        lambda f, o: shutil.copy(o["same_config_other_weights"] / "model.pt", f / "model.pt"),
        ModelFolderError,
        "is not the file config.json was written with",
        False,
    ),
    "model.pt truncated": (
        lambda f, o: (f / "model.pt").write_bytes((f / "model.pt").read_bytes()[:5000]),
        ModelFolderError,
        "is truncated or not a PyTorch weights file",
        False,
    ),
    "model.pt of zero bytes": (
        lambda f, o: (f / "model.pt").write_bytes(b""),
        ModelFolderError,
        "is truncated or not a PyTorch weights file",
        False,
    ),
    "model.pt damaged in the middle": (
        lambda f, o: flip_middle(f / "model.pt"),
        ModelFolderError,
        "is not the file config.json was written with",
        False,
    ),
    "model.pt missing": (
        lambda f, o: (f / "model.pt").unlink(),
        FileNotFoundError,
        "is not a model folder (missing model.pt)",
        False,
    ),
    "config.json not JSON": (
        lambda f, o: (f / "config.json").write_text('{"kind": "audioscope",'),
        ModelFolderError,
        "config.json is not valid JSON",
        False,
    ),
    "config.json of an unknown kind": (
        lambda f, o: edit_json(f / "config.json", lambda d: d.update(kind="transformer")),
        ModelFolderError,
        "unknown model kind 'transformer'",
        False,
    ),
    "config.json of another kind of model": (
        lambda f, o: edit_json(f / "config.json", lambda d: d.update(kind="separator")),
        ModelFolderError,
        "holds a 'separator' model, expected 'audioscope'",
        False,
    ),
    "config.json with an unknown field": (
        lambda f, o: edit_json(f / "config.json", lambda d: d["separator"].update(colour="blue")),
        ModelFolderError,
        "config.json does not describe a model of kind 'audioscope'",
        False,
    ),
    "calibration.json of another model": (
        other_calibration,
        CalibrationMismatchError,
        "calibration.json was made for another model (weights",
        True,
    ),
    "calibration.json of these weights under another configuration": (
        # two attention heads instead of one: no weight changes shape, the outputs do
        lambda f, o: edit_json(f / "config.json", lambda d: d["attention"].update(heads=1)),
        CalibrationMismatchError,
        "was made for another model (these weights, but configuration",
        True,
    ),
    "calibration.json without a model fingerprint": (
        lambda f, o: edit_json(f / CALIBRATION_FILE, lambda d: d.pop("model_fingerprint")),
        ModelFolderError,
        "calibration.json is not a usable calibration: calibration.json lacks",
        True,
    ),
    "calibration.json not JSON": (
        lambda f, o: (f / CALIBRATION_FILE).write_text("point: threshold\n"),
        ModelFolderError,
        "calibration.json is not a usable calibration",
        True,
    ),
}


def broken(release: Path, others: dict, tmp_path: Path, case: str) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(release, folder)
    CASES[case][0](folder, others)
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def catalog_load(dataset: str, folder: Path, **extra):
    """Load ``folder`` as the project's catalog would (``trained_model``, ``audioscope_model``)."""
    config = {"m": {"type": f"{DATASETS}.{dataset}", "path": str(folder), **extra}}
    return DataCatalog.from_config(config).load("m")


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_model_folder_is_refused_by_every_loader(release, others, tmp_path, case):
    _, error, phrase, calibration_case = CASES[case]
    folder = broken(release, others, tmp_path, case)
    before = snapshot(folder)
    loaders = {
        "ReleasedModel.load": lambda: ReleasedModel.load(folder),
        "ReleasedModelDataset": lambda: catalog_load("ReleasedModelDataset", folder),
    }
    if not calibration_case:
        loaders["load_model"] = lambda: load_model(folder, "audioscope")
        loaders["ModelFolderDataset"] = lambda: catalog_load(
            "ModelFolderDataset", folder, kind="audioscope"
        )
    for name, load in loaders.items():
        expected = DatasetError if name.endswith("Dataset") else error
        with pytest.raises(expected) as info:
            load()
        assert phrase in str(info.value), (name, str(info.value))
        assert str(folder) in str(info.value), name  # names the folder or its file
    assert snapshot(folder) == before  # a refused folder is left as it was


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("subcommand", ["separate", "evaluate"])
def test_the_command_refuses_a_broken_model_folder_in_one_line(
    release, others, tmp_path, case, subcommand, capsys
):
    _, _, phrase, _ = CASES[case]
    folder = broken(release, others, tmp_path, case)
    out = tmp_path / "out"
    args = {
        "separate": ["separate", str(tmp_path / "clip.mp4"), "--model", str(folder)],
        "evaluate": ["evaluate", "--video-root", str(tmp_path), "--on-mom", "on.csv"]
        + ["--off-mom", "off.csv", "--model", str(folder)],
    }[subcommand]
    assert command.main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("audioscope: ") and phrase in err and "Traceback" not in err
    assert not out.exists()


def test_older_forms_stay_readable(release, tmp_path):
    """A folder written before the weights checksum, with a calibration written before the
    configuration fingerprint, loads with the checks that remain (shapes, weights)."""
    folder = tmp_path / "model"
    shutil.copytree(release, folder)
    edit_json(folder / "config.json", lambda d: d.pop(CHECKSUM_KEY))
    edit_json(folder / CALIBRATION_FILE, lambda d: d.pop("config_fingerprint"))
    loaded = ReleasedModel.load(folder)
    assert loaded.calibration is not None and loaded.calibration.config_fingerprint == ""
    # without the checksum, a damaged model.pt is loaded as it is: what the checksum is for
    flip_middle(folder / "model.pt")
    damaged = load_model(folder)
    reference = load_model(release)
    assert not all(
        torch.equal(a, b)
        for a, b in zip(damaged.state_dict().values(), reference.state_dict().values(), strict=True)
    )


def test_assemble_records_and_save_keeps_the_binding(release):
    """What the checks rest on: the released folder's calibration names both fingerprints and
    config.json the checksum of its model.pt."""
    data = json.loads((release / CALIBRATION_FILE).read_text())
    assert data["model_fingerprint"] and data["config_fingerprint"]
    config = json.loads((release / "config.json").read_text())
    assert config[CHECKSUM_KEY] == hashlib.sha256((release / "model.pt").read_bytes()).hexdigest()
    loaded = ReleasedModel.load(release)
    again = ReleasedModel.assemble(loaded.model, dataclasses.replace(loaded.calibration))
    assert again.calibration == loaded.calibration


@pytest.mark.parametrize(
    "case", ["calibration.json without a model fingerprint", "calibration.json not JSON"]
)
def test_calibrate_s_own_calibration_file_is_read_with_the_same_care(
    release, others, tmp_path, case
):
    """``calibration`` (06_models/calibration.json, read by ``calibrate``'s assemble step) is
    refused as clearly as the released folder's copy."""
    folder = broken(release, others, tmp_path, case)
    path = folder / CALIBRATION_FILE
    with pytest.raises(DatasetError) as info:
        DataCatalog.from_config(
            {"c": {"type": f"{DATASETS}.CalibrationDataset", "filepath": str(path)}}
        ).load("c")
    assert f"{path} is not a usable calibration" in str(info.value)
