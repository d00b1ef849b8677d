"""A trained model is a folder: ``model.pt`` (a ``state_dict``) and ``config.json`` (the kind
of module, everything needed to rebuild it, and the SHA-256 of the ``model.pt`` it was written
with). Loading uses ``weights_only=True``: a file that holds anything but tensors and plain
containers (a pickled object, which could run code) is refused. Every way a folder can be
wrong ends in :class:`ModelFolderError` naming the folder and the reason: ``config.json`` not
JSON or of an unknown kind, ``model.pt`` truncated or not a PyTorch file, weights that do not
fit the config (naming the parameters), or a ``model.pt`` that is not the file ``config.json``
was written with (replaced, or damaged in the middle: ``torch.load`` does not notice that, it
loads wrong numbers). Folders written before the checksum load with the other checks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from pathlib import Path

import torch
from torch import nn

from audioscope_kedro.atomic import atomic_path, write_json

WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"
CHECKSUM_KEY = "weights_sha256"  # in config.json: the model.pt it was written with


class ModelFolderError(ValueError, RuntimeError):
    """A model folder that cannot be loaded as it is; the message names the folder and why.

    A ``ValueError`` (the folder's content is wrong) and a ``RuntimeError`` (what ``torch.load``
    raises for an unreadable file, and what the ``audioscope`` command reports in one line)."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    """Write ``model.pt`` and then ``config.json`` (with the checksum of that ``model.pt``) into
    ``folder``, each under a temporary name first. Interrupted between the two, the folder holds
    new weights and the old config, whose checksum then refuses them."""
    folder = Path(folder)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        with open(tmp, "wb") as handle:
            # a file object, not the path: torch names the archive's records after the file
            # (here the temporary name, with its pid), so the same weights would give other
            # bytes (and another checksum) in every process
            torch.save(module.state_dict(), handle)
        checksum = file_sha256(tmp)
    config = {"kind": kind_of(module), **dataclasses.asdict(module.config), CHECKSUM_KEY: checksum}
    write_json(folder / CONFIG_FILE, config)


def _read_config(folder: Path) -> dict:
    path = folder / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFolderError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise ModelFolderError(f"{path} holds a {type(config).__name__}, not a JSON object")
    return config


def _read_weights(folder: Path, map_location: str) -> dict:
    path = folder / WEIGHTS_FILE
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only=True refused an object that is not a tensor or a plain container: loading
        # it would run whatever its pickle names. Nothing of it was executed.
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise ModelFolderError(
            f"{path} holds more than weights (a pickled Python object); refused: model files "
            f"are loaded with weights_only=True. ({first})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFolderError(
            f"{path} is truncated or not a PyTorch weights file ({first})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFolderError(f"{path} is not a state_dict (a mapping of names to tensors)")
    return state


def load_model(folder: str | Path, kind: str | None = None, map_location: str = "cpu") -> nn.Module:
    """The module of a model folder, in eval mode; :class:`ModelFolderError` naming the folder
    and the reason when it cannot be (``FileNotFoundError`` when a file is missing)."""
    folder = Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder} is not a model folder (missing {name})")
    config = _read_config(folder)
    found = config.pop("kind", "audioscope")
    checksum = config.pop(CHECKSUM_KEY, None)
    registry = _registry()
    if found not in registry:
        raise ModelFolderError(
            f"{folder / CONFIG_FILE}: unknown model kind {found!r} (known: {sorted(registry)})"
        )
    if kind is not None and found != kind:
        raise ModelFolderError(f"{folder} holds a {found!r} model, expected {kind!r}")
    cls, make_config = registry[found]
    try:
        module = cls(make_config(config))
    except (TypeError, ValueError, KeyError) as err:
        raise ModelFolderError(
            f"{folder / CONFIG_FILE} does not describe a model of kind {found!r}: {err}"
        ) from None
    state = _read_weights(folder, map_location)
    check_state_dict(module, state, str(folder))
    # after the shape check, whose message says more when the weights are of another config
    if checksum is not None and file_sha256(folder / WEIGHTS_FILE) != checksum:
        raise ModelFolderError(
            f"{folder / WEIGHTS_FILE} is not the file {CONFIG_FILE} was written with (SHA-256 "
            f"differs): replaced by other weights, or damaged; save the model again"
        )
    module.load_state_dict(state)
    return module.eval()


def weights_fingerprint(module: nn.Module) -> str:
    """Identity of a module's weights: a calibration or a resumed run refers to it."""
    digest = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# Configuration fields added after models were saved without them, with the value that rebuilds
# those models. At that value a field is left out of the fingerprint: a calibration written
# before the field existed still names its model (the fingerprint is the one it recorded).
ADDED_FIELDS: dict[tuple[str, str], object] = {
    ("attention", "sync"): False,
    ("attention", "motion_sync"): False,
    ("attention", "motion_cues"): ("log_level",),
}


def config_fingerprint(module: nn.Module) -> str:
    """Identity of a module's configuration (kind and every field, as ``config.json`` records
    them): with :func:`weights_fingerprint` it names the model a calibration was made for.
    Settings that change no weight's shape (the sample rate, the clip length, the number of
    attention heads) change what the same weights compute. Fields of ``ADDED_FIELDS`` at their
    listed value are left out."""
    record = {"kind": kind_of(module), **dataclasses.asdict(module.config)}
    for (block, name), value in ADDED_FIELDS.items():
        fields = record.get(block)
        if isinstance(fields, dict) and name in fields and fields[name] == value:
            del fields[name]
    return hashlib.sha1(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def check_state_dict(model: nn.Module, state: dict, source: str) -> None:
    """Raise :class:`ModelFolderError` (a ``ValueError``) listing missing, unexpected and
    mis-shaped parameters."""
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
        raise ModelFolderError(
            f"checkpoint {source} does not match this model config: " + "; ".join(parts)
        )
