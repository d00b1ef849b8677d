"""The released model folder: what ``audioscope separate`` and ``evaluate`` load.

``model.pt`` + ``config.json`` (the trained model, as ``train`` wrote it) and
``calibration.json`` (the operating point ``calibrate`` chose *for those weights*). ``train``
and ``calibrate`` each write their own output; ``calibrate`` then assembles this folder, and
loading checks that the calibration was made for these weights, so a stale calibration (from
before a retraining) is refused instead of silently applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from audioscope_kedro.atomic import write_json
from audioscope_kedro.evaluation.calibration import Calibration
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.models.persistence import weights_fingerprint

CALIBRATION_FILE = "calibration.json"


@dataclass
class ReleasedModel:
    model: AudioScope
    calibration: Calibration | None  # None: no calibration.json (raw probabilities)

    @classmethod
    def assemble(cls, model: AudioScope, calibration: Calibration) -> ReleasedModel:
        calibration.check_model(weights_fingerprint(model))
        return cls(model, calibration)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.model.save(folder)
        if self.calibration is None:
            (folder / CALIBRATION_FILE).unlink(missing_ok=True)
        else:
            write_json(folder / CALIBRATION_FILE, self.calibration.to_json())

    @classmethod
    def load(cls, folder: str | Path, map_location: str = "cpu") -> ReleasedModel:
        """The model and its calibration; a calibration of other weights is an error."""
        folder = Path(folder)
        model = AudioScope.load(folder, map_location=map_location)
        path = folder / CALIBRATION_FILE
        if not path.exists():
            return cls(model, None)
        calibration = Calibration.from_json(json.loads(path.read_text()))
        calibration.check_model(weights_fingerprint(model), str(path))
        return cls(model, calibration)
