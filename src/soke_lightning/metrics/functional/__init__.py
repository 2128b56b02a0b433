"""Functional metrics: batched DTW (numba on CPU, wavefront on GPU), frame alignments and the SLRTP scores."""

from soke_lightning.metrics.functional.alignment import (
    procrustes_align,
    similarity_from_covariance,
    translate_to_joint,
)
from soke_lightning.metrics.functional.dtw import (
    VARIANTS,
    DTWResult,
    dtw_from_cost,
    dtw_joint_error,
    dtw_jpe,
    dtw_mje,
    dtw_pa_jpe,
    pairwise_frame_cost,
)
from soke_lightning.metrics.functional.slrtp import (
    chrf,
    duration_ratio,
    slrtp_dtw_mje,
    wer,
    wrist_distance_ratio,
)

__all__ = [
    "VARIANTS",
    "chrf",
    "duration_ratio",
    "DTWResult",
    "dtw_from_cost",
    "dtw_joint_error",
    "dtw_jpe",
    "dtw_mje",
    "dtw_pa_jpe",
    "pairwise_frame_cost",
    "procrustes_align",
    "slrtp_dtw_mje",
    "similarity_from_covariance",
    "translate_to_joint",
    "wer",
    "wrist_distance_ratio",
]
