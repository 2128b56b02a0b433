"""Frame alignments for joint-error metrics: root translation and similarity Procrustes (Umeyama), in bulk.

Conventions: joints are ``[..., J, 3]`` in metres; the *source* (prediction) is moved onto the *target*
(ground truth), as in SOKE's evaluation (docs/evaluation.md §6.2, docs/faithfulness.md §12).

Similarity Procrustes of a source frame ``x`` onto a target frame ``y`` fitted on a joint set ``A``:
centre both on their centroids over ``A`` (``x̄``, ``ȳ``), cross-covariance ``S = Σ_{k∈A} x_k y_kᵀ``, the
best *proper* rotation ``R`` (Umeyama with the reflection fix), scale ``s = Σ_k y_kᵀ R x_k / Σ_k |x_k|²``
(centred coordinates) and translation ``t = ȳ - s R x̄``. The aligned error of joint ``k`` is ``|s R (x_k - x̄) - (y_k - ȳ)|``.

Two implementations of the rotation step:

* :func:`similarity_from_covariance` (torch, batched SVD): used on GPUs and as the plain reference.
* :func:`qcp_similarity` (numba, scalar): Horn's quaternion method with the largest eigenvalue found by
  Newton's method on the characteristic polynomial (Theobald's QCP), and ``np.linalg.eigh`` as a fallback for
  near-degenerate cells. It gives the same proper rotation as the SVD with reflection fix, at a fraction of the
  cost, so the DTW kernels can align every (prediction frame, target frame) cell.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

__all__ = [
    "translate_to_joint",
    "centre_on",
    "cross_covariance_pairwise",
    "similarity_from_covariance",
    "procrustes_align",
    "qcp_similarity",
    "qcp_similarity_row",
]


def translate_to_joint(joints: torch.Tensor, index: int = 0) -> torch.Tensor:
    """Root (or wrist) alignment: subtract joint ``index`` of each frame.

    Args:
        joints: [..., J, 3].
        index: the joint every frame is translated to the origin by (0: pelvis / wrist).

    Returns:
        [..., J, 3], with joint ``index`` at the origin.
    """
    return joints - joints[..., index : index + 1, :]


def centre_on(joints: torch.Tensor, align_joints=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Subtract the centroid of ``align_joints`` (default: all) from every joint.

    Returns:
        (centred [..., J, 3], centroid [..., 1, 3]).
    """
    fit = joints if align_joints is None else joints[..., align_joints, :]
    centroid = fit.mean(dim=-2, keepdim=True)
    return joints - centroid, centroid


def cross_covariance_pairwise(xc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
    """Cross-covariances of every (source frame i, target frame j) pair with one batched matmul.

    Args:
        xc: [B, Tp, K, 3] centred source frames (fit joints only).
        yc: [B, Tt, K, 3] centred target frames.

    Returns:
        [B, Tp, Tt, 3, 3] with ``S[b, i, j, c, a] = Σ_k xc[b, i, k, c] · yc[b, j, k, a]``.
    """
    b, tp, k, _ = xc.shape
    tt = yc.shape[1]
    left = xc.permute(0, 1, 3, 2).reshape(b, tp * 3, k)  # [(i, c), k]
    right = yc.permute(0, 2, 1, 3).reshape(b, k, tt * 3)  # [k, (j, a)]
    s = torch.bmm(left, right).view(b, tp, 3, tt, 3)
    return s.permute(0, 1, 3, 2, 4).contiguous()


def similarity_from_covariance(s: torch.Tensor, source_sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best proper rotation and uniform scale from a cross-covariance, via SVD (Umeyama, reflection fixed).

    Args:
        s: [..., 3, 3] cross-covariance ``Σ_k x_k y_kᵀ`` of centred source ``x`` and target ``y``.
        source_sq: [...] ``Σ_k |x_k|²`` of the centred source.

    Returns:
        (rotation [..., 3, 3] with ``y ≈ scale · R x``, scale [...]); scale is 0 where ``source_sq`` is 0.
    """
    u, sig, vh = torch.linalg.svd(s.transpose(-1, -2))  # yᵀx form: R = U diag(1, 1, d) Vᵀ
    d = torch.sign(torch.linalg.det(u @ vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    fix = torch.ones_like(sig)
    fix[..., 2] = d
    rot = (u * fix.unsqueeze(-2)) @ vh
    trace = (sig * fix).sum(-1)
    scale = torch.where(source_sq > 0, trace / source_sq.clamp_min(torch.finfo(s.dtype).tiny), torch.zeros_like(trace))
    return rot, scale


def procrustes_align(source: torch.Tensor, target: torch.Tensor, align_joints=None) -> torch.Tensor:
    """Align each source frame onto the matching target frame (similarity transform fitted on ``align_joints``).

    Example:
        >>> import torch
        >>> torch.manual_seed(0) and None
        >>> source = torch.randn(4, 5, 3)  # 4 frames, 5 joints
        >>> turn = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        >>> target = 2.0 * source @ turn.T + 1.0
        >>> torch.allclose(procrustes_align(source, target), target, atol=1e-4)
        True

    Args:
        source: [..., J, 3] frames to move (predictions).
        target: [..., J, 3] frames to fit (ground truth), same shape.
        align_joints: joint indices the transform is fitted on (default: all J).

    Returns:
        [..., J, 3] aligned source, ``s R (x - x̄) + ȳ``.
    """
    xc, _ = centre_on(source, align_joints)
    yc, ycent = centre_on(target, align_joints)
    xf = xc if align_joints is None else xc[..., align_joints, :]
    yf = yc if align_joints is None else yc[..., align_joints, :]
    cov = xf.transpose(-1, -2) @ yf  # [..., 3, 3] = Σ x yᵀ
    rot, scale = similarity_from_covariance(cov, (xf * xf).sum((-1, -2)))
    return scale[..., None, None] * (xc @ rot.transpose(-1, -2)) + ycent


@numba.njit(cache=True, inline="always")
def _adjugate_column(m00, m01, m02, m03, m11, m12, m13, m22, m23, m33):
    """Largest-norm column of the adjugate of a symmetric 4x4 matrix (upper triangle given), and its squared norm."""
    m10, m20, m21, m30, m31, m32 = m01, m02, m12, m03, m13, m23
    s0 = m00 * m11 - m10 * m01
    s1 = m00 * m12 - m10 * m02
    s2 = m00 * m13 - m10 * m03
    s3 = m01 * m12 - m11 * m02
    s4 = m01 * m13 - m11 * m03
    s5 = m02 * m13 - m12 * m03
    c5 = m22 * m33 - m32 * m23
    c4 = m21 * m33 - m31 * m23
    c3 = m21 * m32 - m31 * m22
    c2 = m20 * m33 - m30 * m23
    c1 = m20 * m32 - m30 * m22
    c0 = m20 * m31 - m30 * m21
    # Columns of adj(M) (symmetric M -> symmetric adjugate, so these are also its rows).
    b0, b1, b2, b3 = (m11 * c5 - m12 * c4 + m13 * c3, -m10 * c5 + m12 * c2 - m13 * c1,
                      m10 * c4 - m11 * c2 + m13 * c0, -m10 * c3 + m11 * c1 - m12 * c0)
    n_best = b0 * b0 + b1 * b1 + b2 * b2 + b3 * b3
    e0, e1, e2, e3 = (-m01 * c5 + m02 * c4 - m03 * c3, m00 * c5 - m02 * c2 + m03 * c1,
                      -m00 * c4 + m01 * c2 - m03 * c0, m00 * c3 - m01 * c1 + m02 * c0)
    n = e0 * e0 + e1 * e1 + e2 * e2 + e3 * e3
    better = n > n_best  # selects, not branches: the batched QCP loop stays vectorisable
    b0, b1, b2, b3 = (e0 if better else b0), (e1 if better else b1), (e2 if better else b2), (e3 if better else b3)
    n_best = n if better else n_best
    e0, e1, e2, e3 = (m31 * s5 - m32 * s4 + m33 * s3, -m30 * s5 + m32 * s2 - m33 * s1,
                      m30 * s4 - m31 * s2 + m33 * s0, -m30 * s3 + m31 * s1 - m32 * s0)
    n = e0 * e0 + e1 * e1 + e2 * e2 + e3 * e3
    better = n > n_best  # selects, not branches: the batched QCP loop stays vectorisable
    b0, b1, b2, b3 = (e0 if better else b0), (e1 if better else b1), (e2 if better else b2), (e3 if better else b3)
    n_best = n if better else n_best
    e0, e1, e2, e3 = (-m21 * s5 + m22 * s4 - m23 * s3, m20 * s5 - m22 * s2 + m23 * s1,
                      -m20 * s4 + m21 * s2 - m23 * s0, m20 * s3 - m21 * s1 + m22 * s0)
    n = e0 * e0 + e1 * e1 + e2 * e2 + e3 * e3
    better = n > n_best  # selects, not branches: the batched QCP loop stays vectorisable
    b0, b1, b2, b3 = (e0 if better else b0), (e1 if better else b1), (e2 if better else b2), (e3 if better else b3)
    n_best = n if better else n_best
    return b0, b1, b2, b3, n_best


@numba.njit(cache=True, inline="always")
def _det4_sym(m00, m01, m02, m03, m11, m12, m13, m22, m23, m33):
    """Determinant of a symmetric 4x4 matrix from its upper triangle (Laplace expansion in 2x2 minors)."""
    s0 = m00 * m11 - m01 * m01
    s1 = m00 * m12 - m01 * m02
    s2 = m00 * m13 - m01 * m03
    s3 = m01 * m12 - m11 * m02
    s4 = m01 * m13 - m11 * m03
    s5 = m02 * m13 - m12 * m03
    c5 = m22 * m33 - m23 * m23
    c4 = m12 * m33 - m13 * m23
    c3 = m12 * m23 - m13 * m22
    c2 = m02 * m33 - m03 * m23
    c1 = m02 * m23 - m03 * m22
    c0 = m02 * m13 - m03 * m12
    return s0 * c5 - s1 * c4 + s2 * c3 + s3 * c2 - s4 * c1 + s5 * c0


@numba.njit(cache=True)
def _eigh_top(n00, n01, n02, n03, n11, n12, n13, n22, n23, n33):
    mat = np.array([[n00, n01, n02, n03], [n01, n11, n12, n13],
                    [n02, n12, n22, n23], [n03, n13, n23, n33]])
    w, v = np.linalg.eigh(mat)
    return w[3], v[0, 3], v[1, 3], v[2, 3], v[3, 3]


@numba.njit(cache=True)
def qcp_similarity(sxx, sxy, sxz, syx, syy, syz, szx, szy, szz, gx, gy):
    """Best proper rotation and scale for one cross-covariance (numba; scalar in, scalar out).

    Args:
        sxx..szz: ``S[c, a] = Σ_k x_kc y_ka`` of the centred source x and target y (row-major).
        gx, gy: ``Σ|x_k|²`` and ``Σ|y_k|²``.

    Returns:
        (r00, r01, r02, r10, r11, r12, r20, r21, r22, scale) with ``y ≈ scale · R x``.
    """
    n00 = sxx + syy + szz
    n01 = syz - szy
    n02 = szx - sxz
    n03 = sxy - syx
    n11 = sxx - syy - szz
    n12 = sxy + syx
    n13 = szx + sxz
    n22 = -sxx + syy - szz
    n23 = syz + szy
    n33 = -sxx - syy + szz
    # Characteristic polynomial λ⁴ + c2 λ² + c1 λ + c0 of the traceless key matrix N.
    c2 = -2.0 * (sxx * sxx + sxy * sxy + sxz * sxz + syx * syx + syy * syy + syz * syz + szx * szx + szy * szy + szz * szz)
    det_s = sxx * (syy * szz - syz * szy) - sxy * (syx * szz - syz * szx) + sxz * (syx * szy - syy * szx)
    c1 = -8.0 * det_s
    c0 = _det4_sym(n00, n01, n02, n03, n11, n12, n13, n22, n23, n33)
    # Newton from an upper bound of the largest eigenvalue (λ ≤ σ1+σ2+σ3 ≤ min(√(gx·gy), √3·|S|)): monotone
    # convergence for a polynomial with real roots only.
    lam = min(math.sqrt(gx * gy), math.sqrt(-1.5 * c2))
    if lam == 0.0:
        return 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0
    # Above its largest root the polynomial rises (dp > 0) and Newton settles quadratically. dp <= 0 or no
    # settling means a (near-)double top root, which rounding can turn into a complex pair that Newton jumps past
    # onto a smaller root (rank-1 covariances: collinear frames); those cells take the eigensolver.
    settled = False
    for _ in range(60):
        lam2 = lam * lam
        p = (lam2 + c2) * lam2 + c1 * lam + c0
        dp = (4.0 * lam2 + 2.0 * c2) * lam + c1
        if dp <= 0.0:
            break
        step = p / dp
        lam -= step
        if abs(step) <= 1e-14 * abs(lam):
            settled = True
            break
    qw, qx, qy, qz, norm2 = _adjugate_column(n00 - lam, n01, n02, n03, n11 - lam, n12, n13, n22 - lam, n23, n33 - lam)
    scale3 = abs(lam) ** 3
    if settled and norm2 > 1e-16 * scale3 * scale3 and norm2 > 0.0:
        inv = 1.0 / math.sqrt(norm2)
        qw, qx, qy, qz = qw * inv, qx * inv, qy * inv, qz * inv
    else:  # (near-)repeated top eigenvalue: the adjugate vanishes, solve the 4x4 eigenproblem instead
        lam, qw, qx, qy, qz = _eigh_top(n00, n01, n02, n03, n11, n12, n13, n22, n23, n33)
    scale = lam / gx if gx > 0.0 else 0.0
    ww, xx, yy, zz = qw * qw, qx * qx, qy * qy, qz * qz
    return (ww + xx - yy - zz, 2.0 * (qx * qy - qw * qz), 2.0 * (qx * qz + qw * qy),
            2.0 * (qx * qy + qw * qz), ww - xx + yy - zz, 2.0 * (qy * qz - qw * qx),
            2.0 * (qx * qz - qw * qy), 2.0 * (qy * qz + qw * qx), ww - xx - yy + zz, scale)


#: Newton passes :func:`qcp_similarity_row` runs over a whole row of cells before the cells still moving are
#: finished one by one (on smooth motion nearly every cell settles within 4-6 passes).
QCP_ROW_NEWTON_PASSES = 8


@numba.njit(cache=True, inline="always", error_model="numpy")
def qcp_similarity_row(cov, gx, gy, n, rot, work):  # pragma: no cover - compiled
    """:func:`qcp_similarity` for n cells at once, in loops over the cells the compiler vectorises.

    The characteristic polynomial, a fixed number of Newton passes for its largest root and the rotation from the
    adjugate column run as straight-line code over all cells; the cells these batched steps cannot settle (Newton
    still moving, a (near-)repeated top eigenvalue, zero spread) are redone one by one by :func:`qcp_similarity`.
    Each cell gets the scalar method's rotation (the same Newton iterates; a settled cell may take extra steps
    of relative size ≤ 1e-14). Numba's on-disk cache does not follow inlined code across files: after editing
    this function, touch ``dtw.py`` (or clear its ``__pycache__``) so the DTW kernels are rebuilt.

    Args:
        cov: [9, ≥n] cross-covariances, row-major ``S[c, a] = Σ_k x_kc y_ka`` in rows 0..8.
        gx: ``Σ|x_k|²`` of the (single) centred source frame.
        gy: [≥n] ``Σ|y_k|²`` of each centred target frame.
        n: number of cells.
        rot: [9, ≥n] output, row-major ``scale · R`` per cell (``y ≈ scale · R x``).
        work: [5, ≥n] scratch.
    """
    # 1-D views: the loops below are plain element-wise code over j, which LLVM vectorises
    s0, s1, s2, s3, s4, s5, s6, s7, s8 = cov[0], cov[1], cov[2], cov[3], cov[4], cov[5], cov[6], cov[7], cov[8]
    r0, r1, r2, r3, r4, r5, r6, r7, r8 = rot[0], rot[1], rot[2], rot[3], rot[4], rot[5], rot[6], rot[7], rot[8]
    c2s, c1s, c0s, lams, steps = work[0], work[1], work[2], work[3], work[4]
    for j in range(n):  # characteristic polynomial λ⁴ + c2 λ² + c1 λ + c0 and Newton's start (see qcp_similarity)
        sxx, sxy, sxz, syx, syy, syz, szx, szy, szz = s0[j], s1[j], s2[j], s3[j], s4[j], s5[j], s6[j], s7[j], s8[j]
        c2 = -2.0 * (sxx * sxx + sxy * sxy + sxz * sxz + syx * syx + syy * syy + syz * syz + szx * szx + szy * szy
                     + szz * szz)
        det_s = sxx * (syy * szz - syz * szy) - sxy * (syx * szz - syz * szx) + sxz * (syx * szy - syy * szx)
        c2s[j] = c2
        c1s[j] = -8.0 * det_s
        c0s[j] = _det4_sym(sxx + syy + szz, syz - szy, szx - sxz, sxy - syx, sxx - syy - szz, sxy + syx, szx + sxz,
                           -sxx + syy - szz, syz + szy, -sxx - syy + szz)
        lams[j] = min(math.sqrt(gx * gy[j]), math.sqrt(-1.5 * c2))
    for _ in range(QCP_ROW_NEWTON_PASSES):
        for j in range(n):
            lam = lams[j]
            lam2 = lam * lam
            c2 = c2s[j]
            pv = (lam2 + c2) * lam2 + c1s[j] * lam + c0s[j]
            dp = (4.0 * lam2 + 2.0 * c2) * lam + c1s[j]
            step = pv / dp if dp > 0.0 else math.inf  # dp <= 0: a double top root, left to the scalar method
            lams[j] = lam - step if dp > 0.0 else lam
            steps[j] = step
        settled = True
        for j in range(n):
            if abs(steps[j]) > 1e-14 * abs(lams[j]):
                settled = False
                break
        if settled:
            break
    for j in range(n):  # unit quaternion (into rot[0:4]) = normalised adjugate column of N - λI
        lam = lams[j]
        sxx, sxy, sxz, syx, syy, syz, szx, szy, szz = s0[j], s1[j], s2[j], s3[j], s4[j], s5[j], s6[j], s7[j], s8[j]
        qw, qx, qy, qz, norm2 = _adjugate_column(sxx + syy + szz - lam, syz - szy, szx - sxz, sxy - syx,
                                                 sxx - syy - szz - lam, sxy + syx, szx + sxz,
                                                 -sxx + syy - szz - lam, syz + szy, -sxx - syy + szz - lam)
        scale3 = lam * lam * lam
        good = (lam > 0.0) & (norm2 > 1e-16 * scale3 * scale3) & (abs(steps[j]) <= 1e-14 * lam)
        inv = 1.0 / math.sqrt(norm2) if good else 0.0
        steps[j] = 0.0 if good else 1.0  # reused: 1 marks a cell for the scalar method
        r0[j], r1[j], r2[j], r3[j] = qw * inv, qx * inv, qy * inv, qz * inv
    for j in range(n):  # s·R from the quaternion (separate loop: few enough arrays for the compiler's alias checks)
        sc = lams[j] / gx
        qw, qx, qy, qz = r0[j], r1[j], r2[j], r3[j]
        ww, xx, yy, zz = qw * qw, qx * qx, qy * qy, qz * qz
        r0[j] = sc * (ww + xx - yy - zz)
        r1[j] = sc * (2.0 * (qx * qy - qw * qz))
        r2[j] = sc * (2.0 * (qx * qz + qw * qy))
        r3[j] = sc * (2.0 * (qx * qy + qw * qz))
        r4[j] = sc * (ww - xx + yy - zz)
        r5[j] = sc * (2.0 * (qy * qz - qw * qx))
        r6[j] = sc * (2.0 * (qx * qz - qw * qy))
        r7[j] = sc * (2.0 * (qy * qz + qw * qx))
        r8[j] = sc * (ww - xx - yy + zz)
    for j in range(n):
        if steps[j] != 0.0:
            rr = qcp_similarity(s0[j], s1[j], s2[j], s3[j], s4[j], s5[j], s6[j], s7[j], s8[j], gx, gy[j])
            sc = rr[9]
            r0[j], r1[j], r2[j] = sc * rr[0], sc * rr[1], sc * rr[2]
            r3[j], r4[j], r5[j] = sc * rr[3], sc * rr[4], sc * rr[5]
            r6[j], r7[j], r8[j] = sc * rr[6], sc * rr[7], sc * rr[8]
