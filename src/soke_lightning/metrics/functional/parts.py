"""Per-part DTW scoring: how each part (body, left hand, right hand) is cut from the skeleton, aligned and scored.

:class:`JointPart` says which joints a part selects, which joint anchors its translation, which joints its
Procrustes fit uses and which it scores; :func:`parts_from_joint_sets` builds SOKE's three parts from a joint
backend; :func:`score_parts` is the one loop that scores a batch of sequences per variant and part. The torchmetrics
class (:class:`soke_lightning.metrics.dtw.SignMotionMetrics`), the baselines and the report all call it.

Example:
    >>> import torch
    >>> parts = parts_from_joint_sets({"body": [1, 2], "lhand": [3, 4], "rhand": [5, 6]})
    >>> [p.name for p in parts]
    ['body', 'lhand', 'rhand']
    >>> joints = torch.zeros(2, 8, 7, 3)
    >>> score_parts(joints, joints + 0.01, None, None, parts, ["dtw_jpe"]).shape
    torch.Size([2, 1, 3])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from soke_lightning.metrics.functional.dtw import VARIANTS, dtw_from_cost, dtw_joint_error
from soke_lightning.metrics.functional.keypoints import masked_frame_cost


@dataclass(frozen=True)
class JointPart:
    """How one part is scored on the backend's joints.

    Attributes:
        name: "body", "lhand", "rhand", ...
        select: joints taken from the full skeleton first (None: all); the indices below refer to this selection.
        align_index: joint of the root/wrist translation (DTW-JPE).
        align_joints: joints the Procrustes fit uses (None: all selected).
        eval_joints: joints the per-frame error averages over (None: all selected).
    """

    name: str
    select: tuple[int, ...] | None
    align_index: int = 0
    align_joints: tuple[int, ...] | None = None
    eval_joints: tuple[int, ...] | None = None

    def num_eval_joints(self, total: int | None = None) -> int:
        if self.eval_joints is not None:
            return len(self.eval_joints)
        if self.select is not None:
            return len(self.select)
        if total is None:
            raise ValueError(f"part {self.name!r} evaluates all joints; pass the skeleton's joint count")
        return total


def parts_from_joint_sets(joint_sets: Mapping[str, Sequence[int]]) -> tuple[JointPart, ...]:
    """SOKE's parts from a joint backend's ``joint_sets`` (docs/evaluation.md).

    body: translate by joint 0 (pelvis) of the full skeleton, fit Procrustes on ``body_align`` (all joints),
    score the ``body`` joints; lhand / rhand: select the 21 hand joints, translate by the wrist (their joint 0),
    fit and score on all 21.
    """
    missing = [k for k in ("body", "lhand", "rhand") if k not in joint_sets]
    if missing:
        raise KeyError(f"joint_sets lacks {missing}; it has {sorted(joint_sets)}")
    align = joint_sets.get("body_align")
    return (
        JointPart("body", None, 0, None if align is None else tuple(int(i) for i in align),
                  tuple(int(i) for i in joint_sets["body"])),
        JointPart("lhand", tuple(int(i) for i in joint_sets["lhand"])),
        JointPart("rhand", tuple(int(i) for i in joint_sets["rhand"])),
    )


def keypoint_parts(layout) -> tuple[JointPart, ...]:
    """One part per part of a keypoint feature layout: its points, translated by its alignment point."""
    return tuple(JointPart(p.name, tuple(layout.part_points[p.name]),
                           layout.part_points[p.name].index(layout.align_points[p.name]))
                 for p in layout.parts)


#: DTW variants that work with missing ground-truth points (per-frame translation or none; mean distances).
MASKABLE_VARIANTS = ("dtw_jpe", "dtw_jpe_per_step")


def score_parts(pred_joints: torch.Tensor, target_joints: torch.Tensor, pred_lengths: torch.Tensor | None,
                target_lengths: torch.Tensor | None, parts: Sequence[JointPart], variants: Sequence[str],
                engine: str = "auto", target_visible: torch.Tensor | None = None) -> torch.Tensor:
    """DTW scores of a batch for every variant and part.

    Args:
        pred_joints: [B, Tp, J, 3] predicted joints (metres).
        target_joints: [B, Tt, J, 3] ground-truth joints.
        pred_lengths, target_lengths: [B] valid frame counts (None: full length).
        parts: how each part is scored.
        variants: names of :data:`soke_lightning.metrics.functional.dtw.VARIANTS`.
        engine: DTW engine ("auto": numba on CPU, wavefront on GPU).
        target_visible: optional bool [B, Tt, J], False on missing ground-truth points (keypoint corpora): each
            frame cost then averages over the target frame's visible points only (see
            :func:`~soke_lightning.metrics.functional.keypoints.masked_frame_cost`); only
            :data:`MASKABLE_VARIANTS` are defined then.

    Returns:
        [B, V, P] float64 scores on the joints' device.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown DTW variants {unknown}; valid: {sorted(VARIANTS)}")
    if target_visible is not None:
        return _score_masked(pred_joints, target_joints, pred_lengths, target_lengths, parts, variants,
                             target_visible)
    bsz = pred_joints.shape[0]
    scores = torch.empty(bsz, len(variants), len(parts), dtype=torch.float64, device=pred_joints.device)
    for p, part in enumerate(parts):
        pred, target = pred_joints, target_joints
        if part.select is not None:
            pred, target = pred[:, :, list(part.select)], target[:, :, list(part.select)]
        for v, variant in enumerate(variants):
            kw = dict(VARIANTS[variant])
            if kw["align"] == "procrustes":
                kw["align_joints"] = part.align_joints
            kw["align_index"] = part.align_index
            scores[:, v, p] = dtw_joint_error(pred, target, pred_lengths, target_lengths,
                                              eval_joints=part.eval_joints, engine=engine, **kw).to(scores.device)
    return scores


def _score_masked(pred_joints, target_joints, pred_lengths, target_lengths, parts, variants, visible):
    bad = [v for v in variants if v not in MASKABLE_VARIANTS]
    if bad:
        raise ValueError(f"DTW variants {bad} are not defined with missing points; use {list(MASKABLE_VARIANTS)}")
    bsz, tp, tt = pred_joints.shape[0], pred_joints.shape[1], target_joints.shape[1]
    lp = torch.full((bsz,), tp) if pred_lengths is None else pred_lengths.cpu()
    lt = torch.full((bsz,), tt) if target_lengths is None else target_lengths.cpu()
    scores = torch.empty(bsz, len(variants), len(parts), dtype=torch.float64, device=pred_joints.device)
    for p, part in enumerate(parts):
        sel = list(part.select) if part.select is not None else slice(None)
        for b in range(bsz):
            n, m = int(lp[b]), int(lt[b])
            cost = masked_frame_cost(pred_joints[b, :n][:, sel], target_joints[b, :m][:, sel],
                                     visible[b, :m][:, sel], part.align_index)
            res = dtw_from_cost(cost.cpu(), engine="numba")
            for v, variant in enumerate(variants):
                total = float(res.cost[0])
                scores[b, v, p] = total / float(res.path_length[0]) if VARIANTS[variant]["normalize"] == "path" \
                    else total
    return scores
