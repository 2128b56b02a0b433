"""Evaluation metrics: DTW joint errors (functional core + torchmetrics) and back-translation BLEU/ROUGE."""

from soke_lightning.metrics.dtw import JointPart, SignMotionMetrics, name_hash, parts_from_joint_sets
from soke_lightning.metrics.functional import VARIANTS, dtw_joint_error, dtw_jpe, dtw_mje, dtw_pa_jpe

__all__ = [
    "VARIANTS",
    "JointPart",
    "SignMotionMetrics",
    "dtw_joint_error",
    "dtw_jpe",
    "dtw_mje",
    "dtw_pa_jpe",
    "name_hash",
    "parts_from_joint_sets",
]
