"""The released model folder: what ``audioscope separate`` and ``evaluate`` load.

``model.pt`` + ``config.json`` (the trained model, as ``train`` wrote it) and
``calibration.json`` (the operating point ``calibrate`` chose *for that model*). ``train``
and ``calibrate`` each write their own output; ``calibrate`` then assembles this folder, and
loading checks that the calibration was made for this model, so a stale calibration (from
before a retraining) or one copied from another model is refused instead of silently applied.

The binding: ``calibration.json`` records the fingerprint of the weights (always) and of the
configuration (written by :meth:`ReleasedModel.assemble`). A file without a weights
fingerprint is refused (nothing ties it to any model); one without a configuration fingerprint
(written before it was recorded) is accepted on the weights alone: the same weights under
another configuration need a hand-edited ``config.json``, and refusing every older release
would force recalibrating models whose calibration is right.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from audioscope_kedro.atomic import write_json
from audioscope_kedro.evaluation.calibration import Calibration, CalibrationMismatchError
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.models.persistence import (
    ModelFolderError,
    config_fingerprint,
    weights_fingerprint,
)

CALIBRATION_FILE = "calibration.json"


def read_calibration(path: str | Path) -> Calibration:
    """A ``calibration.json``; :class:`ModelFolderError` naming the file when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"a {type(data).__name__}, not a JSON object")
        return Calibration.from_json(data)
    except CalibrationMismatchError:
        raise
    except (UnicodeDecodeError, ValueError, TypeError, KeyError) as err:
        raise ModelFolderError(f"{path} is not a usable calibration: {err}") from None


@dataclass
class ReleasedModel:
    model: AudioScope
    calibration: Calibration | None  # None: no calibration.json (raw probabilities)

    @classmethod
    def assemble(cls, model: AudioScope, calibration: Calibration) -> ReleasedModel:
        """The folder's content; refuses a calibration of other weights and records the
        model's configuration in it."""
        config = config_fingerprint(model)
        calibration.check_model(weights_fingerprint(model), config=config)
        return cls(model, dataclasses.replace(calibration, config_fingerprint=config))

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.model.save(folder)
        if self.calibration is None:
            (folder / CALIBRATION_FILE).unlink(missing_ok=True)
        else:
            write_json(folder / CALIBRATION_FILE, self.calibration.to_json())

    @classmethod
    def load(cls, folder: str | Path, map_location: str = "cpu") -> ReleasedModel:
        """The model and its calibration; a calibration of another model is an error."""
        folder = Path(folder)
        model = AudioScope.load(folder, map_location=map_location)
        path = folder / CALIBRATION_FILE
        if not path.exists():
            return cls(model, None)
        calibration = read_calibration(path)
        calibration.check_model(weights_fingerprint(model), str(path), config_fingerprint(model))
        return cls(model, calibration)
