"""Batched QCP (one source frame against a row of target frames) vs the scalar QCP and the SVD, degenerate cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soke_lightning.metrics.functional import pairwise_frame_cost
from soke_lightning.metrics.functional.alignment import (
    centre_on,
    qcp_similarity,
    qcp_similarity_row,
    similarity_from_covariance,
)


def _row_inputs(source: torch.Tensor, targets: torch.Tensor):
    """Centred source [K, 3] and targets [n, K, 3] -> (cov [9, n], gx, gy [n]) as the DTW kernels build them."""
    xc, _ = centre_on(source.double())
    yc, _ = centre_on(targets.double())
    cov = torch.einsum("kc,nka->nca", xc, yc).reshape(-1, 9).T.contiguous()
    return cov.numpy(), float((xc * xc).sum()), (yc * yc).sum((-1, -2)).numpy(), xc, yc


def _degenerate_targets(source: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Targets covering the easy and the hard cells, mixed in one row (the batched steps must hand the hard ones on)."""
    k = source.shape[0]
    turn = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))[0]
    turn = turn * torch.sign(torch.linalg.det(turn))
    collinear = torch.zeros(k, 3, dtype=torch.float64)
    collinear[:, 0] = torch.linspace(-1, 1, k, dtype=torch.float64)
    planar = source.clone()
    planar[:, 2] = 0.0
    return torch.stack([
        source,  # identical
        2.0 * source @ turn.T + 0.3,  # exact similarity
        source * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64),  # mirror image: reflection fix needed
        -source,  # rotation by pi: repeated top eigenvalue for symmetric sets
        collinear,  # rank-1 covariance
        planar,  # rank-2 covariance
        planar * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64),  # mirrored plane
        torch.zeros(k, 3, dtype=torch.float64),  # no spread: scale 0
        torch.full((k, 3), 0.7, dtype=torch.float64),  # one point repeated
        torch.randn(k, 3, generator=g, dtype=torch.float64),  # unrelated
        source + 1e-9 * torch.randn(k, 3, generator=g, dtype=torch.float64),  # nearly identical
    ])


@pytest.mark.parametrize("case", ["random", "collinear_source", "planar_source", "zero_source"])
def test_row_equals_scalar_qcp_and_svd(case):
    g = torch.Generator().manual_seed(11)
    source = torch.randn(15, 3, generator=g, dtype=torch.float64)
    if case == "collinear_source":
        source = torch.linspace(0, 1, 15, dtype=torch.float64)[:, None] * torch.tensor([1.0, 2.0, -0.5])
    elif case == "planar_source":
        source[:, 1] = 0.0
    elif case == "zero_source":
        source = torch.zeros(15, 3, dtype=torch.float64)
    targets = torch.cat([_degenerate_targets(source, g), torch.randn(20, 15, 3, generator=g, dtype=torch.float64)])
    cov, gx, gy, xc, yc = _row_inputs(source, targets)
    n = cov.shape[1]
    rot = np.empty((9, n))
    qcp_similarity_row(cov, gx, gy, n, rot, np.empty((5, n)))
    for j in range(n):
        scalar = qcp_similarity(*cov[:, j], gx, gy[j])
        np.testing.assert_allclose(rot[:, j], scalar[9] * np.asarray(scalar[:9]), rtol=1e-9, atol=1e-12)
    # the aligned frames agree with the SVD (Umeyama with the reflection fix): rotations may differ only where the
    # fit is not unique, so compare what the metric uses
    s = torch.from_numpy(cov.T.reshape(n, 3, 3).copy())
    svd_rot, svd_scale = similarity_from_covariance(s, torch.full((n,), gx, dtype=torch.float64))
    ours = torch.einsum("nac,kc->nka", torch.from_numpy(rot.T.reshape(n, 3, 3).copy()), xc)
    svd = svd_scale[:, None, None] * torch.einsum("nac,kc->nka", svd_rot, xc)
    unique = torch.linalg.svdvals(s)[:, 1] > 1e-9 * torch.linalg.svdvals(s)[:, 0].clamp_min(1e-300)
    torch.testing.assert_close(ours[unique], svd[unique], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close((ours - yc).norm(dim=-1).mean(-1), (svd - yc).norm(dim=-1).mean(-1),
                               rtol=1e-9, atol=1e-12)


def test_dtw_cost_rows_with_degenerate_cells_match_svd_engine():
    g = torch.Generator().manual_seed(12)
    source = torch.randn(21, 3, generator=g, dtype=torch.float64)
    rows = _degenerate_targets(source, g)  # [11, 21, 3]
    pred = torch.stack([rows, rows.flip(0)])  # every degenerate kind as a prediction and as a target frame
    target = torch.stack([rows.roll(3, 0), rows * 0.5])
    ours = pairwise_frame_cost(pred, target, align="procrustes")
    svd = pairwise_frame_cost(pred, target, align="procrustes", engine="torch")
    torch.testing.assert_close(ours, svd, rtol=1e-9, atol=1e-12)
