"""Errors on keypoints (no forward kinematics), with missing ground-truth points excluded.

Keypoint layouts (e.g. ``holistic``) store normalised points, so errors are in the layout's unit: **shoulder
widths** for the shipped layouts. For each part of the layout:

* ``kpe_<part>``: mean Euclidean distance between predicted and true points after translating both by the part's
  alignment point (left shoulder for the body, wrist for a hand), like SOKE's root/wrist-relative MPJPE;
* ``kpe_abs_<part>``: the same without translation (the points' positions in the sample's normalised frame).

A point missing in the ground truth contributes nothing; ``kpe_<part>`` also skips frames whose ground-truth
alignment point is missing (there is nothing to translate by). Results are sums and counts, so a metric can
average them exactly over frames, batches and processes.

Example:
    >>> import torch
    >>> from soke_lightning.core.feature_layout import load_feature_layout
    >>> layout = load_feature_layout("holistic")
    >>> gt = torch.zeros(2, layout.num_points, 3)
    >>> pred = gt.clone()
    >>> pred[:, list(layout.part_points["rhand"])[1:], 0] += 0.5  # right-hand fingers half a shoulder width off
    >>> visible = torch.ones(2, layout.num_points, dtype=torch.bool)
    >>> sums, counts = keypoint_errors(layout, pred, gt, visible)
    >>> names = keypoint_metric_names(layout)
    >>> round(float(sums[:, names.index("kpe_rhand")].sum() / counts[:, names.index("kpe_rhand")].sum()), 4)
    0.4762
    >>> float(sums[:, names.index("kpe_lhand")].sum())
    0.0
"""

from __future__ import annotations

import torch


def keypoint_metric_names(layout) -> list[str]:
    """``kpe_<part>`` then ``kpe_abs_<part>`` for every part of ``layout``, in part order."""
    parts = [p.name for p in layout.parts]
    return [f"kpe_{p}" for p in parts] + [f"kpe_abs_{p}" for p in parts]


def keypoint_errors(layout, pred: torch.Tensor, target: torch.Tensor,
                    visible: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame sums and counts of point errors for :func:`keypoint_metric_names`.

    Args:
        layout: a keypoint :class:`~soke_lightning.core.feature_layout.FeatureLayout`.
        pred: [N, K, 3] predicted points.
        target: [N, K, 3] ground-truth points.
        visible: bool [N, K], True where the ground-truth point was seen (None: all).

    Returns:
        (sums [N, M], counts [N, M]) float32, M = 2 x number of parts; mean error = sums.sum(0) / counts.sum(0).
    """
    with torch.autocast(device_type=pred.device.type, enabled=False):
        pred, target = pred.float(), target.float()
        if visible is None:
            visible = torch.ones(target.shape[:-1], dtype=torch.bool, device=target.device)
        vis = visible.to(pred.dtype)
        aligned_sums, aligned_counts, abs_sums, abs_counts = [], [], [], []
        for part in layout.parts:
            ids = list(layout.part_points[part.name])
            a = layout.align_points[part.name]
            p, g, v = pred[:, ids], target[:, ids], vis[:, ids]
            dist = (p - g).norm(dim=-1) * v
            abs_sums.append(dist.sum(-1))
            abs_counts.append(v.sum(-1))
            rel = ((p - pred[:, a:a + 1]) - (g - target[:, a:a + 1])).norm(dim=-1) * v * vis[:, a:a + 1]
            aligned_sums.append(rel.sum(-1))
            aligned_counts.append(v.sum(-1) * vis[:, a])
        sums = torch.stack(aligned_sums + abs_sums, dim=-1)
        counts = torch.stack(aligned_counts + abs_counts, dim=-1)
    return sums, counts


def masked_frame_cost(pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor | None,
                      align_index: int | None) -> torch.Tensor:
    """Frame-to-frame costs of one sequence pair for DTW: mean distance over the target frame's visible points.

    Args:
        pred: [Tp, J, 3]; target: [Tt, J, 3]; visible: bool [Tt, J] (None: all seen).
        align_index: translate every frame by this point first (a missing target point voids its frame), or None.

    Returns:
        [Tp, Tt] float64 costs; a target frame with no usable point costs 0 against every prediction frame.
    """
    pred, target = pred.double(), target.double()
    vis = torch.ones(target.shape[:-1], dtype=torch.bool, device=target.device) if visible is None else visible
    vis = vis.double()
    if align_index is not None:
        pred = pred - pred[:, align_index:align_index + 1]
        target = target - target[:, align_index:align_index + 1]
        vis = vis * vis[:, align_index:align_index + 1]
    dist = (pred[:, None] - target[None]).norm(dim=-1)  # [Tp, Tt, J]
    return (dist * vis[None]).sum(-1) / vis.sum(-1).clamp_min(1.0)[None]
