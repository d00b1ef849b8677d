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
    # AUC on the sources of the MoMs with an on-screen clip 1 alone (no all-off-screen MoMs)
    AUC_ROC_ON_SCREEN_MOMS = "auc_roc_on_screen_moms"
    # share of the all-off-screen MoMs whose suppression is at the 60 dB cap (nothing kept)
    SHARE_AT_CAP = "share_at_cap"
    NUM_ON_SCREEN_MOMS = "num_on_screen_moms"  # MoMs whose clip 1 is on-screen only
    NUM_OFF_SCREEN_MOMS = "num_off_screen_moms"  # MoMs whose clip 1 is off-screen only

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
        if self in (Metric.AUC_ROC, Metric.AUC_ROC_ON_SCREEN_MOMS, Metric.SHARE_AT_CAP):
            return ""
        if self in (Metric.NUM_ON_SCREEN_MOMS, Metric.NUM_OFF_SCREEN_MOMS):
            return "MoMs"
        return "dB"

    def at_target(self, target_db: float) -> str:
        """The key of this figure at the point calibrated to ``target_db`` of suppression."""
        return f"at_{target_db:g}db_{self.value}"

    def of_kind(self, kind: str) -> str:
        """The key of this figure on the MoMs of one kind (``on_off``, ``on_random``...)."""
        return f"{self.value}_{kind}"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


def ci_keys(key: str) -> tuple[str, str]:
    """The keys of the bootstrap 95% confidence interval of the figure ``key``."""
    return f"{key}_ci95_low", f"{key}_ci95_high"


_DESCRIPTIONS = {
    Metric.ON_SCREEN_SI_SNR: "on-screen SI-SNR",
    Metric.ON_SCREEN_SI_SNRI: "on-screen SI-SNR improvement over the mixture",
    Metric.OFF_SCREEN_SUPPRESSION: "off-screen suppression",
    Metric.AUC_ROC: "AUC of on-screen source classification",
    Metric.MIXTURE_SI_SNR: "mixture SI-SNR (keep everything)",
    Metric.ORACLE_SI_SNR: "oracle selection SI-SNR (bound of the selection stage)",
    Metric.AUC_ROC_ON_SCREEN_MOMS: "AUC on the MoMs with an on-screen clip only",
    Metric.SHARE_AT_CAP: "share of off-screen MoMs at the 60 dB suppression cap",
    Metric.NUM_ON_SCREEN_MOMS: "MoMs with an on-screen-only clip 1",
    Metric.NUM_OFF_SCREEN_MOMS: "MoMs with an off-screen-only clip 1",
}

# What `tune` maximises and what the training curve of `train` plots.
TUNE_OBJECTIVE = f"val_{Metric.ON_SCREEN_SI_SNR.calibrated}"
# `validation_figures` also says whether the calibration target was reached there.
CALIBRATION_REACHED = "val_calibration_reached"
