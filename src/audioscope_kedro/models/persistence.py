"""A trained model is a folder: ``model.pt`` (a ``state_dict``) and ``config.json`` (the kind
of module and everything needed to rebuild it). Loading uses ``weights_only=True``; a
checkpoint that does not fit its config fails with a message naming the folder and the
mismatched parameters."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from audioscope_kedro.atomic import atomic_path, write_json

WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"


def _registry() -> dict:
    # imported here: the model modules import this one
    from audioscope_kedro.models.audioscope import AudioScope, AudioScopeConfig
    from audioscope_kedro.models.coincidence import CoincidenceModel
    from audioscope_kedro.models.embeddings import EmbeddingConfig
    from audioscope_kedro.models.separation import Separator, SeparatorConfig

    return {
        "audioscope": (AudioScope, AudioScopeConfig.from_dict),
        "separator": (Separator, lambda d: SeparatorConfig(**d)),
        "coincidence": (CoincidenceModel, EmbeddingConfig.from_dict),
    }


def kind_of(module: nn.Module) -> str:
    for kind, (cls, _) in _registry().items():
        if type(module) is cls:
            return kind
    raise TypeError(f"no saved form for {type(module).__name__}")


def save_model(module: nn.Module, folder: str | Path) -> None:
    """Write ``model.pt`` and ``config.json`` into ``folder``, each under a temporary name first."""
    folder = Path(folder)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        torch.save(module.state_dict(), tmp)
    write_json(folder / CONFIG_FILE, {"kind": kind_of(module), **dataclasses.asdict(module.config)})


def load_model(folder: str | Path, kind: str | None = None, map_location: str = "cpu") -> nn.Module:
    folder = Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder} is not a model folder (missing {name})")
    config = json.loads((folder / CONFIG_FILE).read_text())
    found = config.pop("kind", "audioscope")
    if kind is not None and found != kind:
        raise ValueError(f"{folder} holds a {found!r} model, expected {kind!r}")
    cls, make_config = _registry()[found]
    module = cls(make_config(config))
    state = torch.load(folder / WEIGHTS_FILE, map_location=map_location, weights_only=True)
    check_state_dict(module, state, str(folder))
    module.load_state_dict(state)
    return module.eval()


def weights_fingerprint(module: nn.Module) -> str:
    """Identity of a module's weights: a calibration or a resumed run refers to it."""
    digest = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_state_dict(model: nn.Module, state: dict, source: str) -> None:
    """Raise ``ValueError`` listing missing, unexpected and mis-shaped parameters."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append(
                "shape mismatch "
                + ", ".join(
                    f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shapes[:5]
                )
            )
        raise ValueError(
            f"checkpoint {source} does not match this model config: " + "; ".join(parts)
        )
