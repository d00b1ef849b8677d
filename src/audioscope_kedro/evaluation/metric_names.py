"""The names of every figure the project reports, in one place.

``metrics.json`` (``evaluate``), the validation columns of the training curves, the Optuna
objective, the report's table and the DVC plots all read their keys from here.
"""

from __future__ import annotations

from enum import StrEnum


class Metric(StrEnum):
    ON_SCREEN_SI_SNR = "on_screen_si_snr"  # on (on, off) MoMs, against clip 1's soundtrack
    ON_SCREEN_SI_SNRI = "on_screen_si_snri"  # the same, minus the mixture's SI-SNR
    OFF_SCREEN_SUPPRESSION = "off_screen_suppression"  # on (off, off) MoMs
    AUC_ROC = "auc_roc"  # on-screen classification of the active sources
    MIXTURE_SI_SNR = "mixture_si_snr"  # baseline: keep everything
    ORACLE_SI_SNR = "oracle_si_snr"  # bound: best binary selection of the separated sources
    NUM_ON_OFF_MOMS = "num_on_off_moms"
    NUM_OFF_OFF_MOMS = "num_off_off_moms"

    @property
    def calibrated(self) -> str:
        """The key of this figure at the calibrated operating point."""
        return f"calibrated_{self.value}"

    @property
    def validation(self) -> str:
        """The column of this figure in a training curve (measured on the validation MoMs)."""
        return f"val_{self.value}"

    @property
    def unit(self) -> str:
        if self is Metric.AUC_ROC:
            return ""
        if self in (Metric.NUM_ON_OFF_MOMS, Metric.NUM_OFF_OFF_MOMS):
            return "MoMs"
        return "dB"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Metric.ON_SCREEN_SI_SNR: "on-screen SI-SNR",
    Metric.ON_SCREEN_SI_SNRI: "on-screen SI-SNR improvement over the mixture",
    Metric.OFF_SCREEN_SUPPRESSION: "off-screen suppression",
    Metric.AUC_ROC: "AUC of on-screen source classification",
    Metric.MIXTURE_SI_SNR: "mixture SI-SNR (keep everything)",
    Metric.ORACLE_SI_SNR: "oracle selection SI-SNR (bound of the selection stage)",
    Metric.NUM_ON_OFF_MOMS: "on+off MoMs",
    Metric.NUM_OFF_OFF_MOMS: "off+off MoMs",
}

# What `tune` maximises and what the training curve of `train` plots.
TUNE_OBJECTIVE = f"val_{Metric.ON_SCREEN_SI_SNR.calibrated}"
# `validation_figures` also says whether the calibration target was reached there.
CALIBRATION_REACHED = "val_calibration_reached"
