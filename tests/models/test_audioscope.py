import json
import time

import pytest
import torch

from audioscope_kedro.losses import exact_assignment_loss, mixit
from audioscope_kedro.models.attention import ATTENTION_VARIANTS, AttentionConfig
from audioscope_kedro.models.audioscope import AudioScope, AudioScopeConfig
from audioscope_kedro.models.embeddings import EmbeddingConfig
from tests.helpers import tiny_config


@pytest.mark.parametrize("variant", sorted(ATTENTION_VARIANTS))
@pytest.mark.parametrize("seconds, frames, size", [(0.5, 4, 16), (1.0, 8, 32), (2.0, 16, 24)])
def test_forward_shapes_and_estimates(variant, seconds, frames, size):
    torch.manual_seed(0)
    model = AudioScope(tiny_config(variant)).eval()
    mix = torch.randn(2, int(seconds * 8000))
    out = model(mix, torch.randint(0, 256, (2, frames, size, size, 3), dtype=torch.uint8))
    assert out.sources.shape == (2, 4, mix.shape[1]) and out.logits.shape == (2, 4)
    torch.testing.assert_close(out.on_screen + out.off_screen, mix)
    torch.testing.assert_close(
        (out.probabilities.unsqueeze(-1) * out.sources).sum(1), out.on_screen
    )
    torch.testing.assert_close(out.sources.sum(1), mix, atol=1e-5, rtol=0)


def test_eight_sources_train_step_in_seconds():
    torch.manual_seed(0)
    model = AudioScope(tiny_config(num_sources=8))
    mix1, mix2 = torch.randn(4, 8000), torch.randn(4, 8000)
    frames = torch.randint(0, 256, (4, 8, 32, 32, 3), dtype=torch.uint8)
    start = time.perf_counter()
    out = model(mix1 + mix2, frames)
    loss, assignment = mixit(out.sources, mix1, mix2)
    total = loss.mean() + exact_assignment_loss(out.logits, assignment).mean()
    total.backward()
    assert time.perf_counter() - start < 10
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_batch_elements_do_not_leak():
    torch.manual_seed(0)
    model = AudioScope(tiny_config("cma")).eval()
    mix = torch.randn(2, 4000)
    frames = torch.randint(0, 256, (2, 4, 16, 16, 3), dtype=torch.uint8)
    alone = model(mix[:1], frames[:1])
    frames2 = frames.clone()
    frames2[1] = 255 - frames2[1]
    both = model(torch.stack([mix[0], 3 * torch.randn(4000)]), frames2)
    torch.testing.assert_close(both.logits[:1], alone.logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(both.sources[:1], alone.sources, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("basis", ["learned", "stft"])
def test_save_and_reload_identical(tmp_path, basis):
    torch.manual_seed(0)
    model = AudioScope(tiny_config("pool", basis=basis)).eval()
    with torch.no_grad():  # move weights away from their initial values
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save(tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} == {"model.pt", "config.json"}
    loaded = AudioScope.load(tmp_path / "model").eval()
    mix, frames = torch.randn(1, 4000), torch.randint(0, 256, (1, 4, 16, 16, 3), dtype=torch.uint8)
    a, b = model(mix, frames), loaded(mix, frames)
    assert torch.equal(a.sources, b.sources) and torch.equal(a.logits, b.logits)


def test_checkpoint_from_another_config_is_refused(tmp_path):
    AudioScope(tiny_config(num_sources=4)).save(tmp_path / "m")
    other = AudioScope(tiny_config(num_sources=8))
    other.save(tmp_path / "other")
    # put the 4-source weights next to the 8-source config
    (tmp_path / "other" / "model.pt").write_bytes((tmp_path / "m" / "model.pt").read_bytes())
    with pytest.raises(ValueError, match=r"does not match this model config: .*shape mismatch"):
        AudioScope.load(tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="missing config.json"):
        AudioScope.load(tmp_path / "nowhere")


def test_saved_model_loads_without_the_files_it_started_from(tmp_path):
    """The image network's starting weights are a training input, not part of the model: a
    model folder loads on a machine that never had them."""
    model = AudioScope(tiny_config("pool"))
    torch.save(model.image_embedding.state_dict(), tmp_path / "img.pt")
    model.image_embedding.load_weights(tmp_path / "img.pt")
    model.save(tmp_path / "m")
    (tmp_path / "img.pt").unlink()
    assert "image_weights" not in (tmp_path / "m" / "config.json").read_text()
    AudioScope.load(tmp_path / "m")


def test_config_round_trip():
    cfg = tiny_config("sep_cma")
    assert AudioScopeConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="must equal"):
        AudioScopeConfig(embedding=EmbeddingConfig(dim=32), attention=AttentionConfig(dim=64))
    with pytest.raises(ValueError, match="unknown keys .*: num_speakers"):
        AudioScopeConfig.from_dict({**cfg.to_dict(), "num_speakers": 3})


@pytest.mark.parametrize("variant, loads", [("pool", True), ("sep_sa", False)])
def test_a_config_json_of_the_local_window_era(tmp_path, variant, loads):
    """Models saved before the separable variants attended globally over time carry
    `attention.time_window`: where the architecture is unchanged they load, otherwise the
    error names the field."""
    AudioScope(tiny_config(variant)).save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    config["attention"]["time_window"] = 8
    path.write_text(json.dumps(config))
    if loads:
        AudioScope.load(tmp_path / "m")
    else:
        with pytest.raises(ValueError, match="time_window"):
            AudioScope.load(tmp_path / "m")


@pytest.mark.parametrize("option", ["sync", "motion_sync"])
def test_sync_features_are_part_of_the_model_and_of_its_saved_form(tmp_path, option):
    torch.manual_seed(0)
    config = tiny_config("sep_sa")
    setattr(config.attention, option, True)
    model = AudioScope(config).eval()
    assert any(name.startswith(f"{option}.") for name, _ in model.named_parameters())
    module = getattr(model, option)
    sources = torch.randn(1, 4, 8000) * torch.rand(1, 4, 8).repeat_interleave(1000, -1)
    frames = torch.randint(0, 256, (1, 8, 16, 16, 3), dtype=torch.uint8)
    logits = model.classify(sources, frames)
    logits.sum().backward()
    assert module.out[-1].weight.grad.abs().sum() > 0  # trained with the rest
    with torch.no_grad():
        module.out[-1].weight.add_(torch.randn_like(module.out[-1].weight))
    assert not torch.allclose(model.classify(sources, frames), logits)  # and used
    model.save(tmp_path / "model")
    loaded = AudioScope.load(tmp_path / "model").eval()
    assert getattr(loaded.config.attention, option)
    assert torch.equal(loaded.classify(sources, frames), model.classify(sources, frames))


def test_motion_cues_survive_the_saved_form(tmp_path):
    """config.json holds the cues as a list; the loaded model has the same cues, the same
    input width of the motion path and the same outputs."""
    torch.manual_seed(0)
    config = tiny_config("sep_sa")
    config.attention.motion_sync = True
    config.attention.motion_cues = ("level", "level_change")
    model = AudioScope(config).eval()
    model.save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["attention"]["motion_cues"] == ["level", "level_change"]
    loaded = AudioScope.load(tmp_path / "model").eval()
    assert loaded.config.attention.motion_cues == ("level", "level_change")
    assert loaded.motion_sync.out[0].in_features == 4
    sources = torch.randn(1, 4, 8000) * torch.rand(1, 4, 8).repeat_interleave(1000, -1)
    frames = torch.randint(0, 256, (1, 8, 16, 16, 3), dtype=torch.uint8)
    assert torch.equal(loaded.classify(sources, frames), model.classify(sources, frames))


@pytest.mark.parametrize(
    "missing",
    [("sync", "motion_sync", "motion_cues"), ("motion_sync", "motion_cues"), ("motion_cues",)],
    ids=["before-sync", "before-motion", "before-cues"],
)
def test_a_calibration_written_before_sync_existed_still_names_its_model(tmp_path, missing):
    """Versions before ``model.attention.sync`` (or ``motion_sync``, or ``motion_cues``) wrote
    config.json without it and fingerprinted that record in calibration.json: such a model
    folder still loads with its calibration."""
    import dataclasses
    import hashlib

    from audioscope_kedro.evaluation.calibration import (
        Calibration,
        CalibrationMismatchError,
        OperatingPoint,
        PointKind,
    )
    from audioscope_kedro.models.persistence import config_fingerprint, kind_of, weights_fingerprint
    from audioscope_kedro.release import ReleasedModel

    torch.manual_seed(0)
    config = tiny_config("sep_sa")
    # a model saved between two additions is one with the earlier options on (with one off,
    # the version that added it left it out of the fingerprint too)
    config = dataclasses.replace(
        config,
        attention=dataclasses.replace(
            config.attention, sync="sync" not in missing, motion_sync="motion_sync" not in missing
        ),
    )
    model = AudioScope(config)
    record = {"kind": kind_of(model), **dataclasses.asdict(model.config)}
    for name in missing:
        del record["attention"][name]
    old = hashlib.sha1(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
    assert config_fingerprint(model) == old

    model.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for name in missing:
        del config["attention"][name]
    (tmp_path / "config.json").write_text(json.dumps(config))
    point = OperatingPoint(PointKind.AFFINE, threshold=0.5, temperature=0.5, bias=-1.0)
    calibration = Calibration(
        point, 15.0, True, "validate", weights_fingerprint(model), config_fingerprint=old
    )
    (tmp_path / "calibration.json").write_text(json.dumps(calibration.to_json()))
    assert ReleasedModel.load(tmp_path).calibration.point == point

    # the same weights with the missing option at another setting are another model
    synced_config = tiny_config("sep_sa")
    synced_config.attention.sync = True
    synced_config.attention.motion_sync = True
    synced_config.attention.motion_cues = ("level",)
    synced = AudioScope(synced_config)
    assert config_fingerprint(synced) != old
    with pytest.raises(CalibrationMismatchError):
        calibration.check_model(weights_fingerprint(model), config=config_fingerprint(synced))
