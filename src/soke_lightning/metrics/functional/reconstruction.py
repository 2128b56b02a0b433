"""Per-frame joint errors of a reconstruction (stage 1): MPJPE and Procrustes-aligned MPJPE of body and hands.

Body errors are root-relative (body) or after a similarity fit on the body-alignment joints (body PA); hand errors
are wrist-relative or after a per-hand similarity fit. All values are in metres, one per frame.
"""

from __future__ import annotations

import torch

from soke_lightning.metrics.functional.alignment import procrustes_align, translate_to_joint


def joint_errors(backend, target_feats: torch.Tensor, pred_feats: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frame joint errors (metres) of denormalised features [N, 133] -> {metric: [N]}.

    Always float32 with autocast off: under a bf16-mixed trainer the kinematics and the Procrustes fit (det/SVD)
    would otherwise run in bfloat16, which has no determinant and far too few digits for millimetres.
    """
    with torch.autocast(device_type=target_feats.device.type, enabled=False):
        return _joint_errors(backend, target_feats.float(), pred_feats.float())


def _joint_errors(backend, target_feats: torch.Tensor, pred_feats: torch.Tensor) -> dict[str, torch.Tensor]:
    gt, pred = backend.from_features(target_feats), backend.from_features(pred_feats)
    body_ids = list(backend.joint_sets["body"])
    gt_root, pred_root = translate_to_joint(gt, 0), translate_to_joint(pred, 0)
    out = {"mpjpe_body": (pred_root[..., body_ids, :] - gt_root[..., body_ids, :]).norm(dim=-1).mean(-1)}
    aligned = procrustes_align(pred, gt, list(backend.joint_sets["body_align"]))
    out["mpjpe_pa_body"] = (aligned[..., body_ids, :] - gt[..., body_ids, :]).norm(dim=-1).mean(-1)
    hand, hand_pa = [], []
    for side in ("lhand", "rhand"):
        g, p = backend.select(gt, side), backend.select(pred, side)
        hand.append((translate_to_joint(p, 0) - translate_to_joint(g, 0)).norm(dim=-1).mean(-1))
        hand_pa.append((procrustes_align(p, g) - g).norm(dim=-1).mean(-1))
    out["mpjpe_hand"] = torch.stack(hand).mean(0)
    out["mpjpe_pa_hand"] = torch.stack(hand_pa).mean(0)
    return out
