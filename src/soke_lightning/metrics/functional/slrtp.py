"""The SLRTP 2025 sign-production challenge's scores (docs/evaluation.md §6.7), written from its published definitions.

Motion (joints ``[T, J, 3]``; this project feeds forward-kinematics joints in metres, see :func:`slrtp_joints`):

* **DTW-MJE** (:func:`slrtp_dtw_mje`): each prediction is aligned to its ground truth with FastDTW (the ``fastdtw``
  package, its default radius 1) over frames flattened to one ``J·3`` vector, Euclidean frame distance. The aligned
  frame pairs of ALL sequences are pooled and the mean per-joint position error is reported: the Euclidean distance
  of each joint, averaged over joints and over every aligned pair of every sequence (so long sequences weigh more).
* **Wrist distance ratio** (:func:`wrist_distance_ratio`, the challenge's "total distance"): the path length each
  wrist travels over a sequence (sum of frame-to-frame Euclidean steps), predicted / ground truth, where each side
  is the mean over sequences; the two wrists' ratios are averaged. 1 is ideal; a motionless prediction (the mean
  pose) scores exactly 0, a jittery one more than 1.
* **Duration ratio** (:func:`duration_ratio`, "average duration"): predicted length / ground-truth length, averaged
  over sequences.

How they differ from the exact-DTW metrics of :mod:`.dtw` (``dtw_jpe``, ``dtw_pa_jpe``, ``dtw_mje``): FastDTW is an
approximation (a coarse-to-fine search within ``radius`` cells of the coarser path), so its path can be longer and
its cost higher than the exact optimum; its frame distance is the Euclidean norm of the whole flattened frame, not
the mean joint distance; nothing is aligned (no root/wrist translation, no Procrustes), no part is cut out; and the
score is a mean per aligned joint, pooled over the corpus, not an accumulated cost per sample. The ``dtw_mje``
variant of :mod:`.dtw` (ProgressiveTransformers' L1 sum / target length) is a different quantity again.

Text (back-translation):

* **chrF** (:func:`chrf`): sacrebleu's default chrF (character n-grams up to 6, no word n-grams, β = 2, whitespace
  dropped), corpus-level from summed per-sentence statistics (:func:`chrf_stats`), ×100.
* **WER** (:func:`wer`): corpus word error rate ×100 (substitutions + deletions + insertions over reference words)
  after jiwer-style normalisation (:func:`normalize_for_wer`): English contractions expanded, lower case, runs of
  spaces collapsed, stripped, Unicode punctuation removed, split on spaces. It can exceed 100.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from fastdtw import fastdtw

__all__ = [
    "CHRF_BETA",
    "CHRF_ORDER",
    "chrf",
    "chrf_from_stats",
    "chrf_stats",
    "duration_ratio",
    "fastdtw_alignment",
    "motion_stats",
    "normalize_for_wer",
    "slrtp_dtw_mje",
    "slrtp_dtw_stats",
    "slrtp_joints",
    "wer",
    "wer_stats",
    "word_edits",
    "wrist_distance_ratio",
    "wrist_joints",
    "wrist_path_length",
]

#: sacrebleu's chrF defaults: character n-gram orders 1..6, recall weighted β = 2.
CHRF_ORDER = 6
CHRF_BETA = 2
#: Columns of :func:`motion_stats`.
MOTION_STATS = ("error_sum", "error_count", "pred_left", "pred_right", "target_left", "target_right",
                "length_ratio")


# --------------------------------------------------------------------------------------------- joints
def slrtp_joints(joint_sets: Mapping[str, Sequence[int]]) -> tuple[int, ...]:
    """The joints the SLRTP motion scores run on: every joint of the ``body``, ``lhand`` and ``rhand`` sets, once.

    Built-in skeleton: 52 joints (its hand sets share the wrists with the body set); SMPL-X backend: 54 (its hand
    wrists are separate regressed points).

    Example:
        >>> slrtp_joints({"body": [3, 1, 7], "lhand": [7, 8], "rhand": [1, 9], "body_align": [0, 1]})
        (1, 3, 7, 8, 9)
    """
    missing = [k for k in ("body", "lhand", "rhand") if k not in joint_sets]
    if missing:
        raise KeyError(f"joint_sets lacks {missing}; it has {sorted(joint_sets)}")
    return tuple(sorted({int(i) for k in ("body", "lhand", "rhand") for i in joint_sets[k]}))


def wrist_joints(joint_sets: Mapping[str, Sequence[int]]) -> tuple[int, int]:
    """(left, right) wrist ids: joint 0 of the ``lhand`` and ``rhand`` sets (built-in skeleton: 20 ``left_wrist``,
    21 ``right_wrist``; SMPL-X backend: the regressed ``left_hand_wrist`` / ``right_hand_wrist``)."""
    missing = [k for k in ("lhand", "rhand") if k not in joint_sets]
    if missing:
        raise KeyError(f"joint_sets lacks {missing}; it has {sorted(joint_sets)}")
    return int(joint_sets["lhand"][0]), int(joint_sets["rhand"][0])


def _frames(seq, what: str) -> np.ndarray:
    arr = seq.detach().to("cpu", torch.float64).numpy() if isinstance(seq, torch.Tensor) else np.asarray(seq, np.float64)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"{what}: expected joints [T, J, 3], got shape {tuple(arr.shape)}")
    if arr.shape[0] < 1:
        raise ValueError(f"{what}: the sequence has no frame")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: joints contain NaN or inf")
    return arr


def _pairs(preds: Sequence, targets: Sequence) -> None:
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predicted sequences but {len(targets)} ground-truth sequences")
    if not len(preds):
        raise ValueError("the SLRTP scores need at least one sequence")


# --------------------------------------------------------------------------------------------- DTW-MJE
def fastdtw_alignment(pred, target, radius: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """FastDTW warping path of one pair over flattened frames, Euclidean frame distance.

    Args:
        pred: [Tp, J, 3] predicted joints.
        target: [Tt, J, 3] ground-truth joints.
        radius: FastDTW's search radius (the challenge uses the package default, 1).

    Returns:
        (predicted frame indices [L], target frame indices [L]) of the path, from (0, 0) to (Tp-1, Tt-1).
    """
    a, b = _frames(pred, "pred"), _frames(target, "target")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"pred has {a.shape[1]} joints but target has {b.shape[1]}")
    _, path = fastdtw(a.reshape(len(a), -1), b.reshape(len(b), -1), radius=radius, dist=2)
    idx = np.asarray(path, dtype=np.int64)
    return idx[:, 0], idx[:, 1]


def slrtp_dtw_stats(pred, target, joints: Sequence[int] | None = None, radius: int = 1) -> tuple[float, int]:
    """Sufficient statistics of one pair for :func:`slrtp_dtw_mje`: (sum of per-joint Euclidean errors over the
    aligned frame pairs, number of (pair, joint) terms).

    Args:
        pred: [Tp, J, 3] predicted joints; target: [Tt, J, 3] ground truth.
        joints: joint ids scored (default all); the alignment runs on the same joints.
        radius: FastDTW radius.
    """
    a, b = _frames(pred, "pred"), _frames(target, "target")
    if joints is not None:
        ids = list(joints)
        if not ids or min(ids) < 0 or max(ids) >= a.shape[1]:
            raise ValueError(f"joints must be non-empty ids in [0, {a.shape[1]}), got {ids}")
        a, b = a[:, ids], b[:, ids]
    i, j = fastdtw_alignment(a, b, radius)
    errors = np.linalg.norm(a[i] - b[j], axis=-1)  # [L, J]
    return float(errors.sum()), int(errors.size)


def slrtp_dtw_mje(preds: Sequence, targets: Sequence, joints: Sequence[int] | None = None, radius: int = 1) -> float:
    """SLRTP DTW-MJE: mean per-joint position error over the FastDTW-aligned frame pairs of all sequences.

    Example:
        >>> import torch
        >>> target = torch.zeros(6, 2, 3)
        >>> target[:, 1, 0] = torch.arange(6) / 10  # joint 1 moves along x
        >>> float(slrtp_dtw_mje([target.repeat_interleave(2, 0)], [target]))  # half speed: aligned away
        0.0
        >>> round(slrtp_dtw_mje([target + torch.tensor([0.0, 0.02, 0.0])], [target]), 6)  # every joint 2 cm off
        0.02

    Args:
        preds: N predicted sequences [Tp_i, J, 3] (tensors or arrays; units of the joints).
        targets: N ground-truth sequences [Tt_i, J, 3].
        joints: joint ids scored (default all; this project's tables use :func:`slrtp_joints`).
        radius: FastDTW radius (default 1, the challenge's).

    Returns:
        The error in the joints' unit (metres for forward-kinematics joints).
    """
    _pairs(preds, targets)
    total, count = 0.0, 0
    for p, t in zip(preds, targets):
        s, n = slrtp_dtw_stats(p, t, joints, radius)
        total, count = total + s, count + n
    return total / count


# --------------------------------------------------------------------------------------------- wrists, duration
def wrist_path_length(seq, wrist: int) -> float:
    """Path length of joint ``wrist`` over ``seq`` [T, J, 3]: sum of the Euclidean frame-to-frame steps (0 for one
    frame)."""
    arr = _frames(seq, "sequence")
    if not -arr.shape[1] <= wrist < arr.shape[1]:
        raise ValueError(f"wrist joint {wrist} out of range for {arr.shape[1]} joints")
    return float(np.linalg.norm(np.diff(arr[:, wrist], axis=0), axis=-1).sum())


def wrist_distance_ratio(preds: Sequence, targets: Sequence, wrists: tuple[int, int]) -> float:
    """SLRTP total distance: per wrist, mean predicted path length / mean ground-truth path length; mean of the two.

    Example:
        >>> import torch
        >>> gt = torch.zeros(5, 2, 3)
        >>> gt[:, 0, 1] = torch.tensor([0.0, 0.1, 0.0, 0.1, 0.0])  # joint 0 moves up and down
        >>> gt[:, 1, 0] = torch.arange(5) / 10  # joint 1 moves sideways
        >>> wrist_distance_ratio([gt], [gt], (0, 1)), wrist_distance_ratio([gt[:1].repeat(5, 1, 1)], [gt], (0, 1))
        (1.0, 0.0)

    Args:
        preds, targets: N sequences [T_i, J, 3] each.
        wrists: (left, right) joint ids (:func:`wrist_joints`).

    Returns:
        The ratio (1 ideal, 0 for a motionless prediction); NaN when a ground-truth wrist never moves.
    """
    _pairs(preds, targets)
    pred = np.array([[wrist_path_length(p, w) for w in wrists] for p in preds]).sum(0)
    target = np.array([[wrist_path_length(t, w) for w in wrists] for t in targets]).sum(0)
    return _wrist_ratio(pred, target)


def _wrist_ratio(pred: np.ndarray, target: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(target > 0, pred / np.where(target > 0, target, 1.0), np.nan)
    return float(ratios.mean())


def duration_ratio(pred_lengths: Sequence[int], target_lengths: Sequence[int]) -> float:
    """SLRTP average duration: mean over sequences of predicted length / ground-truth length.

    Example:
        >>> duration_ratio([10, 30], [20, 20])
        1.0
    """
    lp = np.asarray(pred_lengths, np.float64).reshape(-1)
    lt = np.asarray(target_lengths, np.float64).reshape(-1)
    _pairs(lp, lt)
    if (lt < 1).any() or (lp < 0).any():
        raise ValueError(f"lengths must be >= 0 (predicted) and >= 1 (ground truth); got {lp.tolist()}, "
                         f"{lt.tolist()}")
    return float((lp / lt).mean())


def motion_stats(pred_joints: torch.Tensor, target_joints: torch.Tensor, pred_lengths=None, target_lengths=None, *,
                 joints: Sequence[int] | None = None, wrists: tuple[int, int], radius: int = 1) -> torch.Tensor:
    """Per-sample sufficient statistics of the three SLRTP motion scores (what the Metric classes sum).

    Args:
        pred_joints: [B, Tp, J, 3] predicted joints (zero-padded).
        target_joints: [B, Tt, J, 3] ground-truth joints.
        pred_lengths, target_lengths: [B] valid frame counts (None: full length).
        joints: joint ids of DTW-MJE (default all).
        wrists: (left, right) joint ids of the distance ratio.
        radius: FastDTW radius.

    Returns:
        [B, 7] float64 on CPU, columns :data:`MOTION_STATS`: DTW-MJE error sum and term count, left / right wrist
        path length of the prediction and of the ground truth, length ratio.
    """
    if pred_joints.dim() != 4 or target_joints.dim() != 4 or pred_joints.shape[0] != target_joints.shape[0]:
        raise ValueError(f"expected joints [B, T, J, 3] with equal B; got pred {tuple(pred_joints.shape)}, target "
                         f"{tuple(target_joints.shape)}")
    bsz = pred_joints.shape[0]
    lp = _lengths(pred_lengths, bsz, pred_joints.shape[1], "pred_lengths")
    lt = _lengths(target_lengths, bsz, target_joints.shape[1], "target_lengths")
    pred = pred_joints.detach().to("cpu", torch.float64)
    target = target_joints.detach().to("cpu", torch.float64)
    out = torch.empty(bsz, len(MOTION_STATS), dtype=torch.float64)
    for b in range(bsz):
        p, t = pred[b, : lp[b]], target[b, : lt[b]]
        err, count = slrtp_dtw_stats(p, t, joints, radius)
        out[b] = torch.tensor([err, count, *(wrist_path_length(p, w) for w in wrists),
                               *(wrist_path_length(t, w) for w in wrists), lp[b] / lt[b]], dtype=torch.float64)
    return out


def _lengths(lengths, batch: int, full: int, what: str) -> list[int]:
    if lengths is None:
        return [full] * batch
    out = torch.as_tensor(lengths).detach().to("cpu", torch.int64).reshape(-1).tolist()
    if len(out) != batch:
        raise ValueError(f"{what}: expected {batch} lengths (one per sequence), got {len(out)}")
    if min(out) < 1 or max(out) > full:
        raise ValueError(f"{what} must lie in [1, {full}] (the padded length), got {out}")
    return out


# --------------------------------------------------------------------------------------------- chrF
def chrf_stats(hypothesis: str, reference: str, order: int = CHRF_ORDER) -> list[int]:
    """Per-sentence chrF statistics, sacrebleu's layout: [hyp, ref, match] n-gram counts for n = 1..order.

    Whitespace is dropped before the character n-grams are taken; as in sacrebleu, hypothesis n-grams of an order
    the reference has none of are not counted.
    """
    hyp, ref = "".join(hypothesis.split()), "".join(reference.split())
    out: list[int] = []
    for n in range(1, order + 1):
        h = Counter(hyp[i:i + n] for i in range(len(hyp) - n + 1))
        r = Counter(ref[i:i + n] for i in range(len(ref) - n + 1))
        match = sum(min(c, r[g]) for g, c in h.items() if g in r)
        out += [sum(h.values()) if r else 0, sum(r.values()), match]
    return out


def chrf_from_stats(stats: Sequence[float], beta: float = CHRF_BETA) -> float:
    """chrF ×100 of summed :func:`chrf_stats`: precision and recall averaged over the orders with both hypothesis and
    reference n-grams, then F-β."""
    precision = recall = 0.0
    orders = 0
    for k in range(len(stats) // 3):
        n_hyp, n_ref, n_match = (float(x) for x in stats[3 * k: 3 * k + 3])
        if n_hyp > 0 and n_ref > 0:
            precision += n_match / n_hyp
            recall += n_match / n_ref
            orders += 1
    if orders == 0:
        return 0.0
    precision, recall = precision / orders, recall / orders
    if precision + recall == 0:
        return 0.0
    factor = beta**2
    return 100.0 * (1 + factor) * precision * recall / (factor * precision + recall)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF ×100 (sacrebleu's default chrF, one reference per hypothesis).

    Example:
        >>> chrf(["the cat sat"], ["the cat sat"]), chrf(["xyz"], ["the cat sat"])
        (100.0, 0.0)
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    total = np.zeros(3 * CHRF_ORDER)
    for h, r in zip(hypotheses, references):
        total += chrf_stats(h, r)
    return chrf_from_stats(total)


# --------------------------------------------------------------------------------------------- WER
#: English contractions expanded before scoring, in this order (jiwer's ``ExpandCommonEnglishContractions``).
CONTRACTIONS: tuple[tuple[str, str], ...] = (
    ("won't", "will not"), ("can't", "can not"), ("let's", "let us"), ("n't", " not"), ("'re", " are"),
    ("'s", " is"), ("'d", " would"), ("'ll", " will"), ("'t", " not"), ("'ve", " have"), ("'m", " am"),
)


def normalize_for_wer(text: str) -> list[str]:
    """Words of ``text`` as the challenge's WER sees them.

    Example:
        >>> normalize_for_wer("It's raining, isn't it?  Don't GO!")
        ['it', 'is', 'raining', 'is', 'not', 'it', 'do', 'not', 'go']
    """
    for pattern, expansion in CONTRACTIONS:
        text = text.replace(pattern, expansion)
    text = re.sub(r"\s\s+", " ", text.lower()).strip()
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    return text.split()


def word_edits(hypothesis: Sequence[str], reference: Sequence[str]) -> int:
    """Levenshtein distance between two word lists (substitutions + deletions + insertions)."""
    prev = list(range(len(reference) + 1))
    for i, h in enumerate(hypothesis, 1):
        cur = [i]
        for j, r in enumerate(reference, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (h != r)))
        prev = cur
    return prev[-1]


def wer_stats(hypothesis: str, reference: str) -> tuple[int, int]:
    """(word edits, reference words) of one pair after :func:`normalize_for_wer`."""
    hyp, ref = normalize_for_wer(hypothesis), normalize_for_wer(reference)
    return word_edits(hyp, ref), len(ref)


def wer(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus WER ×100: all word edits over all reference words (jiwer-style normalisation).

    Example:
        >>> round(wer(["the cat sat on mat"], ["The cat sat on the mat."]), 4)  # one deletion in six words
        16.6667
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    edits = words = 0
    for h, r in zip(hypotheses, references):
        e, n = wer_stats(h, r)
        edits, words = edits + e, words + n
    if words == 0:
        raise ValueError("wer: the references hold no word after normalisation")
    return 100.0 * edits / words
