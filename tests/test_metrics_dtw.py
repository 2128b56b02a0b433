"""Functional DTW: hand-computed cases, a slow obviously-correct reference, tslearn, Procrustes vs per-frame SVD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soke_lightning.metrics.functional import (
    dtw_from_cost,
    dtw_joint_error,
    dtw_jpe,
    dtw_mje,
    dtw_pa_jpe,
    pairwise_frame_cost,
    procrustes_align,
)


def _line(values) -> torch.Tensor:
    """Frames of one joint moving along x: [T, 1, 3]."""
    out = torch.zeros(len(values), 1, 3, dtype=torch.float64)
    out[:, 0, 0] = torch.tensor(values, dtype=torch.float64)
    return out


def _reference_dtw(cost: np.ndarray) -> float:
    """Textbook DTW with a full (n+1) x (m+1) table."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    return float(acc[n, m])


def _umeyama_fit(x: np.ndarray, y: np.ndarray):
    """Similarity transform (scale, rotation, x centroid, y centroid) of x onto y: numpy SVD, reflection fixed."""
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    u, s, vt = np.linalg.svd(yc.T @ xc)
    d = np.ones(3)
    if np.linalg.det(u @ vt) < 0:
        d[2] = -1
    rot = u @ np.diag(d) @ vt
    scale = (s * d).sum() / (xc**2).sum()
    return scale, rot, mx, my


def _umeyama(x: np.ndarray, y: np.ndarray, fit=slice(None)) -> np.ndarray:
    """x aligned onto y with the transform fitted on joints ``fit``."""
    scale, rot, mx, my = _umeyama_fit(x[fit], y[fit])
    return scale * (x - mx) @ rot.T + my


def _reference_joint_error(pred, target, align, eval_joints=None, align_joints=None):
    """Per-cell loop: align with numpy, mean joint distance, textbook DTW."""
    n, m = len(pred), len(target)
    ev = slice(None) if eval_joints is None else eval_joints
    cost = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            x, y = pred[i], target[j]
            if align == "root":
                x, y = x - x[0], y - y[0]
            elif align == "procrustes":
                x = _umeyama(x, y, slice(None) if align_joints is None else align_joints)
            cost[i, j] = np.linalg.norm(x[ev] - y[ev], axis=-1).mean()
    return _reference_dtw(cost), cost


def test_hand_computed_case():
    pred, target = _line([0.0, 1.0, 2.0]), _line([0.0, 2.0])
    # cost = |p_i - t_j| = [[0, 2], [1, 1], [2, 0]]; D[2,1] = 0 + min(D[1,0]=1, D[1,1]=1, D[2,0]=3) = 1
    value, res = dtw_joint_error(pred, target, align="none", return_path=True)
    assert value.ndim == 0 and value.item() == pytest.approx(1.0)
    np.testing.assert_array_equal(res.paths[0], [[0, 0], [1, 0], [2, 1]])
    assert res.path_length.tolist() == [3]
    assert dtw_joint_error(pred, target, align="none", normalize="path").item() == pytest.approx(1 / 3)
    assert dtw_joint_error(pred, target, align="none", normalize="target").item() == pytest.approx(1 / 2)
    # DTW-MJE: L1 over coordinates; same numbers here (one joint on a line), divided by the target length
    assert dtw_mje(pred, target).item() == pytest.approx(0.5)


def test_root_alignment_ignores_translation_and_counts_root():
    target = torch.tensor([[[0.0, 0, 0], [0.3, 0.4, 0]]], dtype=torch.float64)  # one frame, 2 joints
    pred = target.clone()
    pred[..., 1, :] += torch.tensor([0.0, 0.0, 0.1], dtype=torch.float64)
    pred = pred + 5.0  # a global shift is removed by the root alignment
    # joint errors after root alignment: 0 (root) and 0.1 -> mean 0.05 on one cell
    assert dtw_jpe(pred, target).item() == pytest.approx(0.05)
    assert dtw_jpe(pred, target, eval_joints=[1]).item() == pytest.approx(0.1)
    # Procrustes of two joints matches them exactly (scale + rotation), no error left
    assert dtw_pa_jpe(pred, target).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("align", ["root", "none", "procrustes"])
def test_equals_slow_reference_with_unequal_lengths(align):
    g = torch.Generator().manual_seed(1)
    bsz, tp, tt, nj = 4, 9, 7, 6
    pred = torch.randn(bsz, tp, nj, 3, generator=g, dtype=torch.float64)
    target = torch.randn(bsz, tt, nj, 3, generator=g, dtype=torch.float64)
    lp, lt = torch.tensor([9, 3, 5, 1]), torch.tensor([7, 7, 2, 4])
    kw = dict(align=align, eval_joints=[1, 2, 4], align_joints=[0, 1, 2, 3, 5] if align == "procrustes" else None)
    ours = dtw_joint_error(pred, target, lp, lt, **kw)
    ours_torch = dtw_joint_error(pred, target, lp, lt, engine="torch", **kw)
    for b in range(bsz):
        ref, _ = _reference_joint_error(pred[b, : lp[b]].numpy(), target[b, : lt[b]].numpy(), align,
                                        eval_joints=[1, 2, 4], align_joints=kw["align_joints"])
        assert ours[b].item() == pytest.approx(ref, rel=1e-9, abs=1e-12)
        assert ours_torch[b].item() == pytest.approx(ref, rel=1e-9, abs=1e-12)
    # padding invariance: garbage after the valid lengths changes nothing
    pred2, target2 = pred.clone(), target.clone()
    for b in range(bsz):
        pred2[b, lp[b]:] = 1e3
        target2[b, lt[b]:] = -7.0
    torch.testing.assert_close(dtw_joint_error(pred2, target2, lp, lt, **kw), ours, rtol=0, atol=0)
    # a shorter padded length gives the same values as well
    short = dtw_joint_error(pred[:, : lp.max()], target[:, : lt.max()], lp, lt, **kw)
    torch.testing.assert_close(short, ours, rtol=0, atol=0)


def test_float32_inputs_match_float64_reference():
    g = torch.Generator().manual_seed(2)
    pred = torch.randn(3, 20, 12, 3, generator=g) * 0.2
    target = torch.randn(3, 17, 12, 3, generator=g) * 0.2
    ours = dtw_jpe(pred, target)
    assert ours.dtype == torch.float64
    ref = dtw_jpe(pred.double(), target.double(), engine="torch")
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)


def test_equals_tslearn_on_precomputed_costs():
    tslearn_metrics = pytest.importorskip("tslearn.metrics")
    g = torch.Generator().manual_seed(3)
    pred = torch.randn(5, 30, 21, 3, generator=g, dtype=torch.float64)
    target = torch.randn(5, 24, 21, 3, generator=g, dtype=torch.float64)
    lp, lt = torch.tensor([30, 12, 25, 7, 1]), torch.tensor([24, 20, 3, 24, 9])
    cost = pairwise_frame_cost(pred, target, align="root", pred_lengths=lp, target_lengths=lt)
    res = dtw_from_cost(cost, lp, lt, return_path=True)
    wave = dtw_from_cost(cost, lp, lt, engine="torch")
    for b in range(5):
        c = cost[b, : lp[b], : lt[b]].numpy()
        path, value = tslearn_metrics.dtw_path_from_metric(c, metric="precomputed")
        assert res.cost[b].item() == pytest.approx(float(value), rel=1e-12)
        assert res.path_length[b].item() == len(path) == len(res.paths[b])
        assert res.cost[b].item() == pytest.approx(sum(c[i, j] for i, j in res.paths[b]), rel=1e-12)
    torch.testing.assert_close(wave.cost, res.cost, rtol=1e-12, atol=0)
    assert wave.path_length.tolist() == res.path_length.tolist()


def test_procrustes_cost_equals_per_frame_svd():
    g = torch.Generator().manual_seed(4)
    pred = torch.randn(2, 6, 15, 3, generator=g, dtype=torch.float64)
    # targets: rotated, scaled, shifted and noised copies, plus an exactly reflected frame
    rot = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))[0]
    rot = rot * torch.sign(torch.linalg.det(rot))
    target = 1.3 * pred @ rot.T + 0.5 + 0.01 * torch.randn(pred.shape, generator=g, dtype=torch.float64)
    target[0, 2] = pred[0, 2] * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    align = [0, 2, 3, 5, 7, 11, 13]
    cost = pairwise_frame_cost(pred, target, align="procrustes", align_joints=align)
    for b in range(2):
        for i in range(6):
            for j in range(6):
                x, y = pred[b, i], target[b, j]
                moved = procrustes_align(x, y, align_joints=align)
                expected = (moved - y).norm(dim=-1).mean().item()
                assert cost[b, i, j].item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
                ref = _umeyama(x.numpy(), y.numpy(), align)
                np.testing.assert_allclose(moved.numpy(), ref, rtol=1e-9, atol=1e-12)
    # matching frames (noise only) align almost perfectly
    assert cost[0, 0, 0].item() < 0.02


def test_procrustes_degenerate_frames():
    frame = torch.randn(1, 1, 10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    assert dtw_pa_jpe(frame, frame).item() == pytest.approx(0.0, abs=1e-12)
    collinear = torch.zeros(1, 1, 10, 3, dtype=torch.float64)
    collinear[..., 0] = torch.linspace(0, 1, 10, dtype=torch.float64)
    value = dtw_pa_jpe(collinear, collinear * 2 + 1).item()
    assert value == pytest.approx(0.0, abs=1e-9)
    zero = torch.zeros(1, 1, 10, 3, dtype=torch.float64)  # everything collapses to the target centroid
    expected = (frame[0, 0] - frame[0, 0].mean(0)).norm(dim=-1).mean().item()
    assert dtw_pa_jpe(zero, frame).item() == pytest.approx(expected, rel=1e-12)
    assert dtw_pa_jpe(zero, frame, engine="torch").item() == pytest.approx(expected, rel=1e-12)


def test_errors_name_the_problem():
    x = torch.zeros(2, 5, 4, 3)
    with pytest.raises(ValueError, match="align must be one of"):
        dtw_joint_error(x, x, align="pa")
    with pytest.raises(ValueError, match=r"pred_lengths must lie in \[1, 5\]"):
        dtw_joint_error(x, x, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="eval_joints"):
        dtw_joint_error(x, x, eval_joints=[4])
    with pytest.raises(ValueError, match=r"\[B, T, J, 3\]"):
        dtw_joint_error(x[..., :2], x[..., :2])


@pytest.mark.parametrize("flatness", [0.0, 1e-7, 1e-3])
def test_procrustes_planar_and_reflected_frames_match_svd(flatness):
    # flat hands are (nearly) planar point sets; mirrored targets need the reflection fix
    g = torch.Generator().manual_seed(6)
    pred = torch.randn(3, 8, 21, 3, generator=g, dtype=torch.float64)
    pred[..., 2] *= flatness
    target = pred.flip(1) * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    target = target + 0.05 * torch.randn(target.shape, generator=g, dtype=torch.float64)
    ours = pairwise_frame_cost(pred, target, align="procrustes")
    svd = pairwise_frame_cost(pred, target, align="procrustes", engine="torch")
    torch.testing.assert_close(ours, svd, rtol=1e-9, atol=1e-12)
