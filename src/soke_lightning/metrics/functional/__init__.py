"""Functional joint-error metrics: batched DTW (numba on CPU, wavefront on GPU) and frame alignments."""

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

__all__ = [
    "VARIANTS",
    "DTWResult",
    "dtw_from_cost",
    "dtw_joint_error",
    "dtw_jpe",
    "dtw_mje",
    "dtw_pa_jpe",
    "pairwise_frame_cost",
    "procrustes_align",
    "similarity_from_covariance",
    "translate_to_joint",
]
