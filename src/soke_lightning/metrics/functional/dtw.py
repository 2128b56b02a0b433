"""Batched dynamic time warping over joint sequences: the core of DTW-JPE, DTW-PA-JPE and DTW-MJE.

DTW between a prediction ``x`` (T̂ frames) and a target ``y`` (T frames), docs/evaluation.md §6.3:

    D[i, j] = c(x_i, y_j) + min(D[i-1, j-1], D[i-1, j], D[i, j-1]),   D[0, 0] = c(x_0, y_0), no window,

and the score is ``D[T̂-1, T-1]`` (optionally divided by the warping-path length or by T). Ties between the
three predecessors are broken diagonal first, then (i-1, j), then (i, j-1); this fixes the path (and its length).

Frame costs ``c`` (joints ``[J, 3]`` in metres, after the alignment of :mod:`.alignment`):

* ``"mean_l2"`` (SOKE): mean over the evaluated joints of the Euclidean joint distance — metres.
* ``"sum_l1"`` (ProgressiveTransformers' DTW-MJE): sum over joints and coordinates of the absolute difference.

Engines: on CPU the cost rows and the DP run in numba kernels (parallel over pairs / rows, float64 accumulation);
on other devices (GPU) the costs are computed with torch in bulk and the DP runs as a batched anti-diagonal
wavefront. Both are exposed (``engine=``) and agree to float precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch
from numba import prange

from soke_lightning.metrics.functional.alignment import (
    centre_on,
    cross_covariance_pairwise,
    qcp_similarity_row,
    similarity_from_covariance,
)

__all__ = [
    "DTWResult",
    "dtw_from_cost",
    "pairwise_frame_cost",
    "dtw_joint_error",
    "dtw_jpe",
    "dtw_pa_jpe",
    "dtw_mje",
    "VARIANTS",
    "procrustes_arrays",
]

ALIGNS = ("root", "procrustes", "none")
NORMALIZE = (None, "path", "target")
FRAME_COSTS = ("mean_l2", "sum_l1")

#: Upper bound on the working memory of one chunk of pairs (bytes): small on CPU (cache-friendly), large on
#: accelerators (fewer wavefront launches).
_CHUNK_BYTES = {"cpu": 64 * 2**20, "other": 4 * 2**30}


@dataclass
class DTWResult:
    """Full DTW output.

    Attributes:
        cost: [B] float64 accumulated cost ``D[T̂-1, T-1]`` (unnormalised).
        path_length: [B] int64 number of cells on the warping path.
        paths: optional list of B int64 arrays [L, 2] of (prediction frame, target frame), from (0, 0) on.
    """

    cost: torch.Tensor
    path_length: torch.Tensor
    paths: list[np.ndarray] | None = None


# --------------------------------------------------------------------------------------------- numba kernels


@numba.njit(cache=True, inline="always")
def _joint_cost_row(a, b, p, i, n, l1, row):  # pragma: no cover - compiled
    """row[:n] = cost of prediction frame i of pair p against target frames 0..n-1.

    a [B, J, 3, Tp], b [B, J, 3, Tt]: the inner loops run over contiguous target frames (SIMD); the row has the
    inputs' dtype (float32 like the reference, or float64), the DP accumulates in float64.
    """
    nj = a.shape[1]
    for j in range(n):
        row[j] = 0.0
    for k in range(nj):
        ax, ay, az = a[p, k, 0, i], a[p, k, 1, i], a[p, k, 2, i]
        bx, by, bz = b[p, k, 0], b[p, k, 1], b[p, k, 2]
        if l1:
            for j in range(n):
                row[j] += abs(ax - bx[j]) + abs(ay - by[j]) + abs(az - bz[j])
        else:
            for j in range(n):
                dx = ax - bx[j]
                dy = ay - by[j]
                dz = az - bz[j]
                row[j] += np.sqrt(dx * dx + dy * dy + dz * dz)
    if not l1:
        inv = 1.0 / nj
        for j in range(n):
            row[j] *= inv


@numba.njit(cache=True, inline="always", error_model="numpy")
def _procrustes_cost_row(xf, yf, gy, xe, ye, p, i, n, cov, rot, work, row):  # pragma: no cover - compiled
    """row[:n] = Procrustes-aligned mean joint distance of prediction frame i of pair p to target frames 0..n-1.

    xf [B, Tp, K, 3] / yf [B, K, 3, Tt] centred fit joints, gy [B, Tt] = Σ|y_k|², xe [B, Tp, E, 3] /
    ye [B, E, 3, Tt] centred evaluated joints; cov [9, ≥n], rot [9, ≥n] and work [5, ≥n] are scratch. Covariances,
    rotations (:func:`qcp_similarity_row`) and errors each run over the whole row of target frames in loops the
    compiler vectorises.
    """
    nk, ne = xf.shape[2], xe.shape[2]
    for c in range(9):
        for j in range(n):
            cov[c, j] = 0.0
    gx = 0.0
    c0, c1, c2, c3, c4, c5, c6, c7, c8 = cov[0], cov[1], cov[2], cov[3], cov[4], cov[5], cov[6], cov[7], cov[8]
    triples = nk - nk % 3
    for k in range(0, triples, 3):  # three joints per pass over the row: a third of the covariance loads and stores
        a0, a1, a2 = xf[p, i, k, 0], xf[p, i, k, 1], xf[p, i, k, 2]
        b0, b1, b2 = xf[p, i, k + 1, 0], xf[p, i, k + 1, 1], xf[p, i, k + 1, 2]
        e0, e1, e2 = xf[p, i, k + 2, 0], xf[p, i, k + 2, 1], xf[p, i, k + 2, 2]
        gx += a0 * a0 + a1 * a1 + a2 * a2 + b0 * b0 + b1 * b1 + b2 * b2 + e0 * e0 + e1 * e1 + e2 * e2
        ya0, ya1, ya2 = yf[p, k, 0], yf[p, k, 1], yf[p, k, 2]
        yb0, yb1, yb2 = yf[p, k + 1, 0], yf[p, k + 1, 1], yf[p, k + 1, 2]
        ye0, ye1, ye2 = yf[p, k + 2, 0], yf[p, k + 2, 1], yf[p, k + 2, 2]
        for j in range(n):
            u0, u1, u2 = ya0[j], ya1[j], ya2[j]
            v0, v1, v2 = yb0[j], yb1[j], yb2[j]
            w0, w1, w2 = ye0[j], ye1[j], ye2[j]
            c0[j] += a0 * u0 + b0 * v0 + e0 * w0
            c1[j] += a0 * u1 + b0 * v1 + e0 * w1
            c2[j] += a0 * u2 + b0 * v2 + e0 * w2
            c3[j] += a1 * u0 + b1 * v0 + e1 * w0
            c4[j] += a1 * u1 + b1 * v1 + e1 * w1
            c5[j] += a1 * u2 + b1 * v2 + e1 * w2
            c6[j] += a2 * u0 + b2 * v0 + e2 * w0
            c7[j] += a2 * u1 + b2 * v1 + e2 * w1
            c8[j] += a2 * u2 + b2 * v2 + e2 * w2
    for k in range(triples, nk):
        x0, x1, x2 = xf[p, i, k, 0], xf[p, i, k, 1], xf[p, i, k, 2]
        gx += x0 * x0 + x1 * x1 + x2 * x2
        y0, y1, y2 = yf[p, k, 0], yf[p, k, 1], yf[p, k, 2]
        for j in range(n):
            cov[0, j] += x0 * y0[j]
            cov[1, j] += x0 * y1[j]
            cov[2, j] += x0 * y2[j]
            cov[3, j] += x1 * y0[j]
            cov[4, j] += x1 * y1[j]
            cov[5, j] += x1 * y2[j]
            cov[6, j] += x2 * y0[j]
            cov[7, j] += x2 * y1[j]
            cov[8, j] += x2 * y2[j]
    qcp_similarity_row(cov, gx, gy[p], n, rot, work)
    for j in range(n):
        row[j] = 0.0
    for k in range(ne):
        x0, x1, x2 = xe[p, i, k, 0], xe[p, i, k, 1], xe[p, i, k, 2]
        y0, y1, y2 = ye[p, k, 0], ye[p, k, 1], ye[p, k, 2]
        for j in range(n):
            d0 = rot[0, j] * x0 + rot[1, j] * x1 + rot[2, j] * x2 - y0[j]
            d1 = rot[3, j] * x0 + rot[4, j] * x1 + rot[5, j] * x2 - y1[j]
            d2 = rot[6, j] * x0 + rot[7, j] * x1 + rot[8, j] * x2 - y2[j]
            row[j] += np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    inv = 1.0 / ne
    for j in range(n):
        row[j] *= inv


@numba.njit(cache=True, inline="always")
def _dp_row(i, m, row, prev, cur, lprev, lcur):  # pragma: no cover - compiled
    """One DTW row: cur[j] = row[j] + min(prev[j-1], prev[j], cur[j-1]) (ties: diagonal, up, left) + lengths."""
    if i == 0:
        acc = 0.0
        for j in range(m):
            acc += row[j]
            cur[j] = acc
            lcur[j] = j + 1
        return
    cur[0] = prev[0] + row[0]
    lcur[0] = lprev[0] + 1
    for j in range(1, m):
        best = prev[j - 1]
        length = lprev[j - 1]
        if prev[j] < best:
            best = prev[j]
            length = lprev[j]
        if cur[j - 1] < best:
            best = cur[j - 1]
            length = lcur[j - 1]
        cur[j] = best + row[j]
        lcur[j] = length + 1


@numba.njit(parallel=True, cache=True)
def _joint_cost_kernel(a, b, lp, lt, l1, out):  # pragma: no cover - compiled
    """Cost matrices: out[p, i, :lt[p]] for i < lp[p] (float64)."""
    tp = out.shape[1]
    for idx in prange(a.shape[0] * tp):
        p = idx // tp
        i = idx - p * tp
        if i < lp[p]:
            row = np.empty(lt[p], a.dtype)
            _joint_cost_row(a, b, p, i, lt[p], l1, row)
            out[p, i, : lt[p]] = row


@numba.njit(parallel=True, cache=True, error_model="numpy")  # numpy: no zero-division checks, SIMD loops
def _procrustes_cost_kernel(xf, yf, gy, xe, ye, lp, lt, out):  # pragma: no cover - compiled
    """Cost matrices of the Procrustes variant (see :func:`_procrustes_cost_row`)."""
    tp = out.shape[1]
    for idx in prange(xf.shape[0] * tp):
        p = idx // tp
        i = idx - p * tp
        if i < lp[p]:
            n = lt[p]
            cov = np.empty((9, n), np.float64)
            rot = np.empty((9, n), np.float64)
            work = np.empty((5, n), np.float64)
            _procrustes_cost_row(xf, yf, gy, xe, ye, p, i, n, cov, rot, work, out[p, i])


@numba.njit(parallel=True, cache=True)
def _joint_dtw_kernel(a, b, lp, lt, l1, out_cost, out_len):  # pragma: no cover - compiled
    """Fused cost rows + DP, one pair per task, O(T) memory: the CPU path of dtw_joint_error (root / none)."""
    for p in prange(a.shape[0]):
        n, m = lp[p], lt[p]
        row = np.empty(m, a.dtype)
        prev = np.empty(m, np.float64)
        cur = np.empty(m, np.float64)
        lprev = np.empty(m, np.int64)
        lcur = np.empty(m, np.int64)
        for i in range(n):
            _joint_cost_row(a, b, p, i, m, l1, row)
            _dp_row(i, m, row, prev, cur, lprev, lcur)
            prev, cur = cur, prev
            lprev, lcur = lcur, lprev
        out_cost[p] = prev[m - 1]
        out_len[p] = lprev[m - 1]


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _procrustes_dtw_kernel(xf, yf, gy, xe, ye, lp, lt, out_cost, out_len):  # pragma: no cover - compiled
    """Fused Procrustes cost rows + DP, one pair per task."""
    for p in prange(xf.shape[0]):
        n, m = lp[p], lt[p]
        cov = np.empty((9, m), np.float64)
        rot = np.empty((9, m), np.float64)
        work = np.empty((5, m), np.float64)
        row = np.empty(m, np.float64)
        prev = np.empty(m, np.float64)
        cur = np.empty(m, np.float64)
        lprev = np.empty(m, np.int64)
        lcur = np.empty(m, np.int64)
        for i in range(n):
            _procrustes_cost_row(xf, yf, gy, xe, ye, p, i, m, cov, rot, work, row)
            _dp_row(i, m, row, prev, cur, lprev, lcur)
            prev, cur = cur, prev
            lprev, lcur = lcur, lprev
        out_cost[p] = prev[m - 1]
        out_len[p] = lprev[m - 1]


@numba.njit(parallel=True, cache=True)
def _dp_kernel(cost, lp, lt, out_cost, out_len):  # pragma: no cover - compiled
    """Accumulated cost and path length of every pair from cost matrices, O(T) memory per pair."""
    for p in prange(cost.shape[0]):
        n, m = lp[p], lt[p]
        prev = np.empty(m, np.float64)
        cur = np.empty(m, np.float64)
        lprev = np.empty(m, np.int64)
        lcur = np.empty(m, np.int64)
        for i in range(n):
            _dp_row(i, m, cost[p, i], prev, cur, lprev, lcur)
            prev, cur = cur, prev
            lprev, lcur = lcur, lprev
        out_cost[p] = prev[m - 1]
        out_len[p] = lprev[m - 1]


@numba.njit(cache=True)
def _dp_path(cost, n, m):  # pragma: no cover - compiled
    """Full accumulated matrix of one pair and its backtracked path [L, 2] (same tie-breaking as _dp_kernel)."""
    acc = np.empty((n, m), np.float64)
    acc[0, 0] = cost[0, 0]
    for j in range(1, m):
        acc[0, j] = acc[0, j - 1] + cost[0, j]
    for i in range(1, n):
        acc[i, 0] = acc[i - 1, 0] + cost[i, 0]
        for j in range(1, m):
            acc[i, j] = cost[i, j] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    path = np.empty((n + m, 2), np.int64)
    i, j, k = n - 1, m - 1, 0
    while True:
        path[k, 0] = i
        path[k, 1] = j
        k += 1
        if i == 0 and j == 0:
            break
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            best = acc[i - 1, j - 1]
            ni, nj = i - 1, j - 1
            if acc[i - 1, j] < best:
                best = acc[i - 1, j]
                ni, nj = i - 1, j
            if acc[i, j - 1] < best:
                ni, nj = i, j - 1
            i, j = ni, nj
    return acc[n - 1, m - 1], path[:k][::-1].copy()


# --------------------------------------------------------------------------------------------- helpers


def _lengths(lengths, batch: int, full: int, what: str) -> torch.Tensor:
    if lengths is None:
        return torch.full((batch,), full, dtype=torch.int64)
    out = torch.as_tensor(lengths).detach().to("cpu", torch.int64).reshape(-1)
    if out.numel() != batch:
        raise ValueError(f"{what}: expected {batch} lengths (one per pair), got {out.numel()}")
    if (out < 1).any() or (out > full).any():
        raise ValueError(f"{what} must lie in [1, {full}] (the padded length), got {out.tolist()}")
    return out


def _check_joints(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.dim() != 4 or target.dim() != 4 or pred.shape[-1] != 3 or target.shape[-1] != 3:
        raise ValueError(
            f"joints must be [B, T, J, 3] (or one [T, J, 3] pair); got pred {tuple(pred.shape)}, "
            f"target {tuple(target.shape)}"
        )
    if pred.shape[0] != target.shape[0] or pred.shape[2] != target.shape[2]:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must agree in batch size and joint count"
        )


def _index(joints, n: int, what: str):
    if joints is None:
        return None
    idx = torch.as_tensor(joints, dtype=torch.int64).reshape(-1)
    if idx.numel() == 0 or idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"{what} must be non-empty joint indices in [0, {n}), got {idx.tolist()}")
    return idx


def _chunks(batch: int, tp: int, tt: int, factor: int, device: torch.device):
    budget = _CHUNK_BYTES["cpu" if device.type == "cpu" else "other"]
    step = max(1, budget // max(1, tp * tt * 8 * factor))
    for start in range(0, batch, step):
        yield slice(start, min(batch, start + step))


def _prepare(pred, target, align, align_index, align_joints, eval_joints):
    """Translate for root alignment, pick fit/eval joints. Returns (x, y, fit_idx, eval_idx) as tensors."""
    nj = pred.shape[2]
    fit_idx = _index(align_joints, nj, "align_joints")
    eval_idx = _index(eval_joints, nj, "eval_joints")
    if align == "root":
        if not -nj <= align_index < nj:
            raise ValueError(f"align_index {align_index} out of range for {nj} joints")
        pred = pred - pred[:, :, align_index : align_index + 1]
        target = target - target[:, :, align_index : align_index + 1]
    return pred, target, fit_idx, eval_idx


# --------------------------------------------------------------------------------------------- public API


def pairwise_frame_cost(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    align: str = "root",
    align_index: int = 0,
    align_joints=None,
    eval_joints=None,
    frame_cost: str = "mean_l2",
    pred_lengths=None,
    target_lengths=None,
    engine: str = "auto",
) -> torch.Tensor:
    """Frame-to-frame cost matrices of every pair, after alignment.

    Args:
        pred: [B, Tp, J, 3] predicted joints (metres).
        target: [B, Tt, J, 3] ground-truth joints.
        align: "root" (translate by joint ``align_index``), "procrustes" (similarity fitted on ``align_joints``
            for each cell) or "none".
        align_index: joint used by ``align="root"``.
        align_joints: joints the Procrustes fit uses (default all).
        eval_joints: joints the frame cost runs over (default all).
        frame_cost: "mean_l2" or "sum_l1" (see the module docstring).
        pred_lengths, target_lengths: [B] valid lengths; cells outside are left undefined (0 or garbage).
        engine: "numba" (CPU kernels), "torch" (bulk torch ops, any device) or "auto" (numba on CPU).

    Returns:
        [B, Tp, Tt] float64 on ``pred.device``.
    """
    _check_align(align, frame_cost)
    _check_joints(pred, target)
    engine = _engine(engine, pred)
    bsz, tp, tt = pred.shape[0], pred.shape[1], target.shape[1]
    lp = _lengths(pred_lengths, bsz, tp, "pred_lengths")
    lt = _lengths(target_lengths, bsz, tt, "target_lengths")
    x, y, fit_idx, eval_idx = _prepare(pred, target, align, align_index, align_joints, eval_joints)
    if engine == "numba":
        out = np.zeros((bsz, tp, tt), np.float64)
        _cost_numba(x, y, lp, lt, align, fit_idx, eval_idx, frame_cost, out)
        return torch.from_numpy(out)
    return _cost_torch(x, y, align, fit_idx, eval_idx, frame_cost)


def dtw_from_cost(
    cost: torch.Tensor, pred_lengths=None, target_lengths=None, *, return_path: bool = False, engine: str = "auto"
) -> DTWResult:
    """DTW on precomputed cost matrices (the DP step alone).

    Args:
        cost: [B, Tp, Tt] (or [Tp, Tt]) frame costs; only ``cost[b, :lp[b], :lt[b]]`` is read.
        pred_lengths, target_lengths: [B] valid lengths (default: full).
        return_path: also backtrack the warping paths (CPU, one pair at a time).
        engine: "numba", "torch" (wavefront) or "auto" (numba on CPU, wavefront elsewhere).

    Returns:
        :class:`DTWResult` with float64 ``cost`` [B] and ``path_length`` [B] on ``cost.device``.
    """
    if cost.dim() == 2:
        cost = cost.unsqueeze(0)
    bsz, tp, tt = cost.shape
    lp = _lengths(pred_lengths, bsz, tp, "pred_lengths")
    lt = _lengths(target_lengths, bsz, tt, "target_lengths")
    engine = _engine(engine, cost)
    paths = None
    if engine == "numba" or return_path:
        c = np.ascontiguousarray(cost.detach().to("cpu", torch.float64).numpy())
        total = np.empty(bsz, np.float64)
        length = np.empty(bsz, np.int64)
        _dp_kernel(c, lp.numpy(), lt.numpy(), total, length)
        if return_path:
            paths = [_dp_path(c[b], int(lp[b]), int(lt[b]))[1] for b in range(bsz)]
        total_t = torch.from_numpy(total).to(cost.device)
        length_t = torch.from_numpy(length).to(cost.device)
    else:
        total_t, length_t = _dp_wavefront(cost.to(torch.float64), lp.to(cost.device), lt.to(cost.device))
    return DTWResult(total_t, length_t, paths)


def dtw_joint_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    pred_lengths=None,
    target_lengths=None,
    *,
    align: str = "root",
    align_index: int = 0,
    align_joints=None,
    eval_joints=None,
    normalize: str | None = None,
    frame_cost: str = "mean_l2",
    engine: str = "auto",
    return_path: bool = False,
):
    """DTW joint error of each (prediction, target) pair.

    Args:
        pred: [B, Tp, J, 3] predicted joints in metres (or one [Tp, J, 3] sequence).
        target: [B, Tt, J, 3] ground-truth joints (or one [Tt, J, 3] sequence).
        pred_lengths, target_lengths: [B] valid frame counts of the zero- (or anything-) padded sequences.
        align: "root": translate every frame by joint ``align_index`` (SOKE's DTW-JPE; pelvis for the body, wrist
            for a hand); "procrustes": similarity transform of each prediction frame onto each target frame,
            fitted on ``align_joints`` (SOKE's DTW-PA-JPE); "none".
        align_index: the joint of the root alignment.
        align_joints: joint indices the Procrustes fit uses (default all; SOKE's body metric: all 144).
        eval_joints: joint indices the frame cost averages over (default all; SOKE's body metric: 12).
        normalize: None (SOKE: accumulated cost), "path" (divided by the warping-path length) or "target"
            (divided by the target length).
        frame_cost: "mean_l2" (mean Euclidean joint distance, metres) or "sum_l1" (DTW-MJE).
        engine: "auto", "numba" or "torch" (see :func:`pairwise_frame_cost`).
        return_path: also return the :class:`DTWResult` with the warping paths.

    Returns:
        [B] float64 costs on ``pred.device`` (a 0-dim tensor for an unbatched pair); with ``return_path`` a tuple
        (costs, :class:`DTWResult`).
    """
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    unbatched = pred.dim() == 3
    if unbatched:
        pred, target = pred.unsqueeze(0), target.unsqueeze(0)
    _check_align(align, frame_cost)
    _check_joints(pred, target)
    engine = _engine(engine, pred)
    bsz, tp, tt = pred.shape[0], pred.shape[1], target.shape[1]
    lp = _lengths(pred_lengths, bsz, tp, "pred_lengths")
    lt = _lengths(target_lengths, bsz, tt, "target_lengths")
    x, y, fit_idx, eval_idx = _prepare(pred, target, align, align_index, align_joints, eval_joints)

    totals, lengths, paths = [], [], []
    if engine == "numba" and not return_path:
        total, length = _dtw_numba(x, y, lp, lt, align, fit_idx, eval_idx, frame_cost)
        totals.append(total)
        lengths.append(length)
    else:
        # cost matrices in chunks of pairs; the torch engine holds E distances per cell (Procrustes: 3x3
        # matrices and E aligned joints)
        factor = 1 if engine == "numba" else (18 + 3 * pred.shape[2] if align == "procrustes" else pred.shape[2])
        for sl in _chunks(bsz, tp, tt, factor, pred.device):
            if engine == "numba":
                cost = torch.from_numpy(np.zeros((sl.stop - sl.start, tp, tt), np.float64))
                _cost_numba(x[sl], y[sl], lp[sl], lt[sl], align, fit_idx, eval_idx, frame_cost, cost.numpy())
            else:
                cost = _cost_torch(x[sl], y[sl], align, fit_idx, eval_idx, frame_cost)
            res = dtw_from_cost(cost, lp[sl], lt[sl], return_path=return_path, engine=engine)
            totals.append(res.cost)
            lengths.append(res.path_length)
            if return_path:
                paths.extend(res.paths)
    total = torch.cat(totals).to(pred.device)
    length = torch.cat(lengths).to(pred.device)
    out = total
    if normalize == "path":
        out = total / length.to(torch.float64)
    elif normalize == "target":
        out = total / lt.to(pred.device, torch.float64)
    if unbatched:
        out = out[0]
    if return_path:
        return out, DTWResult(total, length, paths)
    return out


def dtw_jpe(pred, target, pred_lengths=None, target_lengths=None, *, align_index=0, eval_joints=None,
            normalize=None, **kw) -> torch.Tensor:
    """SOKE's DTW-JPE: root/wrist-translated, mean joint distance per frame, accumulated cost in metres.

    Example:
        >>> import torch
        >>> target = torch.zeros(1, 6, 3, 3)  # 1 sequence, 6 frames, 3 joints
        >>> target[..., 1, 0] = 0.1
        >>> slow = target.repeat_interleave(2, dim=1) + torch.tensor([0.5, 0.0, 0.0])  # half speed, moved 0.5 m
        >>> round(float(dtw_jpe(slow, target)), 6)  # time warping and root translation forgive both
        0.0
        >>> wrong = target.clone()
        >>> wrong[..., 2, 1] += 0.03  # one of three joints 3 cm off in every frame: 1 cm per frame, 6 frames
        >>> round(float(dtw_jpe(wrong, target)), 6)
        0.06"""
    return dtw_joint_error(pred, target, pred_lengths, target_lengths, align="root", align_index=align_index,
                           eval_joints=eval_joints, normalize=normalize, **kw)


def dtw_pa_jpe(pred, target, pred_lengths=None, target_lengths=None, *, align_joints=None, eval_joints=None,
               normalize=None, **kw) -> torch.Tensor:
    """SOKE's DTW-PA-JPE: per-cell similarity Procrustes on ``align_joints``, accumulated cost in metres.

    Example:
        >>> import torch
        >>> torch.manual_seed(0) and None
        >>> target = torch.randn(1, 5, 4, 3)
        >>> turned = 2.0 * target @ torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).T + 1.0
        >>> round(float(dtw_pa_jpe(turned, target)), 6)  # scaled, rotated and moved: no error after the fit
        0.0"""
    return dtw_joint_error(pred, target, pred_lengths, target_lengths, align="procrustes",
                           align_joints=align_joints, eval_joints=eval_joints, normalize=normalize, **kw)


def dtw_mje(pred, target, pred_lengths=None, target_lengths=None, *, align="none", eval_joints=None,
            **kw) -> torch.Tensor:
    """ProgressiveTransformers-style DTW-MJE: per-frame L1 over all coordinates, accumulated cost / T (target)."""
    return dtw_joint_error(pred, target, pred_lengths, target_lengths, align=align, eval_joints=eval_joints,
                           normalize="target", frame_cost="sum_l1", **kw)


#: Metric variants by name: keyword arguments of :func:`dtw_joint_error` (alignment joints come per part).
VARIANTS: dict[str, dict] = {
    "dtw_jpe": dict(align="root", normalize=None),  # SOKE's DTW-JPE (m, accumulated)
    "dtw_pa_jpe": dict(align="procrustes", normalize=None),  # SOKE's DTW-PA-JPE (m, accumulated)
    "dtw_jpe_per_step": dict(align="root", normalize="path"),  # m per warping step
    "dtw_pa_jpe_per_step": dict(align="procrustes", normalize="path"),  # m per warping step
    "dtw_mje": dict(align="none", normalize="target", frame_cost="sum_l1"),  # ProgressiveTransformers
}


# --------------------------------------------------------------------------------------------- engines


def _check_align(align: str, frame_cost: str) -> None:
    if align not in ALIGNS:
        raise ValueError(f"align must be one of {ALIGNS}, got {align!r}")
    if frame_cost not in FRAME_COSTS:
        raise ValueError(f"frame_cost must be one of {FRAME_COSTS}, got {frame_cost!r}")


def _engine(engine: str, ref: torch.Tensor) -> str:
    if engine == "auto":
        return "numba" if ref.device.type == "cpu" else "torch"
    if engine not in ("numba", "torch"):
        raise ValueError(f"engine must be 'auto', 'numba' or 'torch', got {engine!r}")
    return engine


def _np(t: torch.Tensor, dtype=None) -> np.ndarray:
    t = t.detach().to("cpu")
    if dtype is not None:
        t = t.to(dtype)
    elif t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    return np.ascontiguousarray(t.numpy())


def _numba_inputs(x, y, align, fit_idx, eval_idx, frame_cost) -> tuple:
    """Arrays of the numba kernels: (xf, yf, gy, xe, ye) for Procrustes, (a, b) otherwise."""
    if align == "procrustes":
        if frame_cost != "mean_l2":
            raise ValueError("align='procrustes' supports frame_cost='mean_l2' only")
        xc, _ = centre_on(x.detach().to("cpu", torch.float64), fit_idx)
        yc, _ = centre_on(y.detach().to("cpu", torch.float64), fit_idx)
        xf = xc if fit_idx is None else xc[:, :, fit_idx]
        yf = yc if fit_idx is None else yc[:, :, fit_idx]
        xe = xc if eval_idx is None else xc[:, :, eval_idx]
        ye = yc if eval_idx is None else yc[:, :, eval_idx]
        gy = (yf * yf).sum((-1, -2))
        # target-side arrays as [B, K, 3, Tt]: the kernels' inner loops run over contiguous target frames
        return _np(xf), _np(yf.permute(0, 2, 3, 1)), _np(gy), _np(xe), _np(ye.permute(0, 2, 3, 1))
    xe = x if eval_idx is None else x[:, :, eval_idx]
    ye = y if eval_idx is None else y[:, :, eval_idx]
    dtype = torch.float64 if (x.dtype == torch.float64 or y.dtype == torch.float64) else torch.float32
    return _np(xe.permute(0, 2, 3, 1), dtype), _np(ye.permute(0, 2, 3, 1), dtype)  # [B, J, 3, T]


def procrustes_arrays(pred: torch.Tensor, target: torch.Tensor, align_joints=None, eval_joints=None) -> tuple:
    """The float64 arrays the DTW-PA-JPE kernels read, for other kernels over the same inputs (benchmarks).

    Args:
        pred, target: [B, T, J, 3] joints.
        align_joints / eval_joints: joint indices the similarity is fitted on / the error is measured on.

    Returns:
        (xf [B, Tp, K, 3], yf [B, K, 3, Tt], gy [B, Tt], xe [B, Tp, E, 3], ye [B, E, 3, Tt]): fit and evaluated
        joints centred on the fit joints' centroid (target-side arrays frame-last), and Σ|y_k|² per target frame.
    """
    nj = pred.shape[2]
    return _numba_inputs(pred, target, "procrustes", _index(align_joints, nj, "align_joints"),
                         _index(eval_joints, nj, "eval_joints"), "mean_l2")


def _cost_numba(x, y, lp, lt, align, fit_idx, eval_idx, frame_cost, out) -> None:
    arrays = _numba_inputs(x, y, align, fit_idx, eval_idx, frame_cost)
    if align == "procrustes":
        _procrustes_cost_kernel(*arrays, lp.numpy(), lt.numpy(), out)
    else:
        _joint_cost_kernel(*arrays, lp.numpy(), lt.numpy(), frame_cost == "sum_l1", out)


def _dtw_numba(x, y, lp, lt, align, fit_idx, eval_idx, frame_cost) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused cost + DP on CPU: ([B] float64 costs, [B] int64 path lengths)."""
    arrays = _numba_inputs(x, y, align, fit_idx, eval_idx, frame_cost)
    total = np.empty(x.shape[0], np.float64)
    length = np.empty(x.shape[0], np.int64)
    if align == "procrustes":
        _procrustes_dtw_kernel(*arrays, lp.numpy(), lt.numpy(), total, length)
    else:
        _joint_dtw_kernel(*arrays, lp.numpy(), lt.numpy(), frame_cost == "sum_l1", total, length)
    return torch.from_numpy(total), torch.from_numpy(length)


def _cost_torch(x, y, align, fit_idx, eval_idx, frame_cost) -> torch.Tensor:
    if align == "procrustes":
        if frame_cost != "mean_l2":
            raise ValueError("align='procrustes' supports frame_cost='mean_l2' only")
        x64, y64 = x.to(torch.float64), y.to(torch.float64)
        xc, _ = centre_on(x64, fit_idx)
        yc, _ = centre_on(y64, fit_idx)
        xf = xc if fit_idx is None else xc[:, :, fit_idx]
        yf = yc if fit_idx is None else yc[:, :, fit_idx]
        cov = cross_covariance_pairwise(xf, yf)  # [B, Tp, Tt, 3, 3]
        rot, scale = similarity_from_covariance(cov, (xf * xf).sum((-1, -2))[:, :, None].expand(cov.shape[:3]))
        xe = xc if eval_idx is None else xc[:, :, eval_idx]  # [B, Tp, E, 3]
        ye = yc if eval_idx is None else yc[:, :, eval_idx]
        moved = torch.einsum("bijac,bikc->bijka", rot, xe) * scale[..., None, None]  # [B, Tp, Tt, E, 3]
        return (moved - ye[:, None]).norm(dim=-1).mean(-1)
    xe = x if eval_idx is None else x[:, :, eval_idx]
    ye = y if eval_idx is None else y[:, :, eval_idx]
    xe, ye = xe.to(torch.float64).transpose(1, 2), ye.to(torch.float64).transpose(1, 2)  # [B, E, T, 3]
    if frame_cost == "sum_l1":
        return torch.cdist(xe, ye, p=1).sum(1)
    return torch.cdist(xe, ye, compute_mode="donot_use_mm_for_euclid_dist").mean(1)  # exact, no |a|²+|b|²-2ab


def _dp_wavefront(cost: torch.Tensor, lp: torch.Tensor, lt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched DTW by anti-diagonals (cells with i + j = d are independent): the GPU engine."""
    bsz, tp, tt = cost.shape
    acc = torch.full((bsz, tp + 1, tt + 1), float("inf"), dtype=cost.dtype, device=cost.device)
    plen = torch.zeros((bsz, tp + 1, tt + 1), dtype=torch.int64, device=cost.device)
    acc[:, 0, 0] = 0.0
    for d in range(tp + tt - 1):
        i = torch.arange(max(0, d - tt + 1), min(tp, d + 1), device=cost.device)
        j = d - i
        diag, up, left = acc[:, i, j], acc[:, i, j + 1], acc[:, i + 1, j]
        best, choice = torch.stack([diag, up, left], -1).min(-1)  # min() returns the first minimum: diag, up, left
        lens = torch.stack([plen[:, i, j], plen[:, i, j + 1], plen[:, i + 1, j]], -1)
        acc[:, i + 1, j + 1] = best + cost[:, i, j]
        plen[:, i + 1, j + 1] = lens.gather(-1, choice.unsqueeze(-1)).squeeze(-1) + 1
    rows = torch.arange(bsz, device=cost.device)
    return acc[rows, lp, lt], plen[rows, lp, lt]
