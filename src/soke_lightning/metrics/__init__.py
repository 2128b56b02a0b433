"""Evaluation metrics: DTW joint errors (functional core + torchmetrics), back-translation BLEU/ROUGE and the SLRTP
2025 challenge's scores (FastDTW DTW-MJE, wrist distance and duration ratios, chrF, WER)."""

from soke_lightning.metrics.dtw import JointPart, SignMotionMetrics, name_hash, parts_from_joint_sets
from soke_lightning.metrics.functional import VARIANTS, dtw_joint_error, dtw_jpe, dtw_mje, dtw_pa_jpe
from soke_lightning.metrics.slrtp import (
    SLRTP_SCORES,
    ChrF,
    DurationRatio,
    SlrtpDtwMje,
    SLRTPMotionMetrics,
    WordErrorRate,
    WristDistanceRatio,
)

__all__ = [
    "SLRTP_SCORES",
    "VARIANTS",
    "ChrF",
    "DurationRatio",
    "JointPart",
    "SLRTPMotionMetrics",
    "SignMotionMetrics",
    "SlrtpDtwMje",
    "WordErrorRate",
    "WristDistanceRatio",
    "dtw_joint_error",
    "dtw_jpe",
    "dtw_mje",
    "dtw_pa_jpe",
    "name_hash",
    "parts_from_joint_sets",
]
