"""The SLRTP 2025 challenge scores: DTW-MJE against a direct fastdtw computation, the wrist and duration ratios'
fixed points, chrF against sacrebleu, WER against a hand-counted example, the Metric classes. Their 2-process DDP
check shares the process start of tests/test_metrics_torchmetrics.py (tests/scripts/ddp_metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastdtw import fastdtw
from sacrebleu.metrics import CHRF

from soke_lightning.kinematics import get_joint_backend
from soke_lightning.metrics.functional.slrtp import (
    chrf,
    duration_ratio,
    motion_stats,
    normalize_for_wer,
    slrtp_dtw_mje,
    slrtp_joints,
    wer,
    wrist_distance_ratio,
    wrist_joints,
)
from soke_lightning.metrics.slrtp import (
    ChrF,
    DurationRatio,
    SlrtpDtwMje,
    SLRTPMotionMetrics,
    WordErrorRate,
    WristDistanceRatio,
)


def _sequences(seed: int, n: int = 6, joints: int = 5):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(int(torch.randint(3, 30, (1,), generator=gen)), joints, 3, generator=gen) for _ in range(n)]


def _reference_mje(preds, targets) -> float:
    """The published definition, step by step: fastdtw over flattened frames with a Euclidean distance, aligned
    frames of all sequences concatenated, mean joint distance."""
    aligned_p, aligned_t = [], []
    for p, t in zip(preds, targets):
        a, b = p.double().flatten(1).numpy(), t.double().flatten(1).numpy()
        _, path = fastdtw(a, b, dist=lambda x, y: float(np.sqrt(((x - y) ** 2).sum())))
        i, j = zip(*path)
        aligned_p.append(p.double()[list(i)])
        aligned_t.append(t.double()[list(j)])
    return float(torch.norm(torch.cat(aligned_p) - torch.cat(aligned_t), dim=-1).mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_dtw_mje_equals_a_direct_fastdtw_computation(seed):
    preds, targets = _sequences(seed), _sequences(seed + 100)
    assert slrtp_dtw_mje(preds, targets) == pytest.approx(_reference_mje(preds, targets), rel=1e-12)
    assert slrtp_dtw_mje(targets, targets) == 0.0
    # a subset of joints scores exactly the selected joints
    sub = [0, 2, 3]
    assert slrtp_dtw_mje(preds, targets, joints=sub) == pytest.approx(
        _reference_mje([p[:, sub] for p in preds], [t[:, sub] for t in targets]), rel=1e-12)


def test_wrist_ratio_of_ground_truth_is_one_and_of_a_constant_pose_zero():
    targets = _sequences(3)
    assert wrist_distance_ratio(targets, targets, (1, 4)) == 1.0
    still = [t[:1].repeat(len(t), 1, 1) for t in targets]  # one pose held for the ground-truth length
    assert wrist_distance_ratio(still, targets, (1, 4)) == 0.0
    doubled = [2 * t for t in targets]  # every step twice as long
    assert wrist_distance_ratio(doubled, targets, (1, 4)) == pytest.approx(2.0)
    # a ground truth whose wrists never move has no ratio: NaN, not a silent number
    assert np.isnan(wrist_distance_ratio(targets, still, (1, 4)))


def test_duration_ratio():
    assert duration_ratio([7, 12, 30], [7, 12, 30]) == 1.0
    assert duration_ratio([10, 40], [20, 20]) == pytest.approx(1.25)
    with pytest.raises(ValueError, match="ground truth"):
        duration_ratio([3], [0])
    with pytest.raises(ValueError, match="2 predicted sequences but 1"):
        duration_ratio([3, 4], [5])


def test_chrf_equals_sacrebleu():
    hyps = ["the cat sat on the mat", "a b", "", "morgen regen im süden", "x", "es wird kalt", "我 爱 你"]
    refs = ["the cat is on a mat", "a b c", "hello", "Morgen Regen im Norden", "y z", "es wird warm", "我爱他"]
    assert chrf(hyps, refs) == pytest.approx(CHRF().corpus_score(hyps, [refs]).score, rel=1e-12)
    for h, r in zip(hyps, refs):
        assert chrf([h], [r]) == pytest.approx(CHRF().corpus_score([h], [[r]]).score, rel=1e-12, abs=1e-12)
    metric = ChrF()
    metric.update(hyps[:3], refs[:3])
    metric.update(hyps[3:], refs[3:])
    assert float(metric.compute()) == pytest.approx(chrf(hyps, refs), rel=1e-12)


def test_wer_hand_example():
    # "it's" -> "it is", lower case, punctuation dropped; reference 8 words:
    #   ref: it is raining in the north today too
    #   hyp: it is raining in north today to
    # one deletion ("the") and one substitution ("too" -> "to"): 2 / 8 = 25 %
    hyps = ["It's raining in North today, to."]
    refs = ["it is raining in the north today too"]
    assert normalize_for_wer(hyps[0]) == ["it", "is", "raining", "in", "north", "today", "to"]
    assert wer(hyps, refs) == pytest.approx(25.0)
    # corpus level: 2 + 3 insertions over 8 + 1 reference words
    assert wer(hyps + ["a b c d"], refs + ["a"]) == pytest.approx(100 * 5 / 9)
    metric = WordErrorRate()
    metric.update(hyps + ["a b c d"], refs + ["a"])
    assert float(metric.compute()) == pytest.approx(100 * 5 / 9)
    chinese = WordErrorRate()
    chinese.update(["我 爱 你"], ["我爱他"], ["csl"])  # characters: one substitution in three
    assert float(chinese.compute()) == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="no word"):
        wer(["a"], ["..."])


def test_metric_classes_equal_the_functions():
    preds, targets = _sequences(5, joints=4), _sequences(6, joints=4)
    lp, lt = torch.tensor([len(p) for p in preds]), torch.tensor([len(t) for t in targets])
    pad = lambda seqs: torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)  # noqa: E731
    langs = ["asl", "dgs", "asl", "dgs", "asl", "asl"]
    single = [SlrtpDtwMje((0, 3)), WristDistanceRatio((0, 3)), DurationRatio((0, 3))]
    motion = SLRTPMotionMetrics((0, 3), languages=["asl", "dgs"], prefix="test/")
    for lo, hi in ((0, 4), (4, 6)):
        for m in single:
            m.update(pad(preds[lo:hi]), pad(targets[lo:hi]), lp[lo:hi], lt[lo:hi])
        motion.update(pad(preds[lo:hi]), pad(targets[lo:hi]), lp[lo:hi], lt[lo:hi], langs[lo:hi])
    expected = [slrtp_dtw_mje(preds, targets), wrist_distance_ratio(preds, targets, (0, 3)),
                duration_ratio(lp, lt)]
    for m, value in zip(single, expected):
        assert float(m.compute()) == pytest.approx(value, rel=1e-12)
    scores = motion.compute()
    assert float(scores["test/slrtp_dtw_mje/all"]) == pytest.approx(expected[0], rel=1e-12)
    dgs = [i for i, lang in enumerate(langs) if lang == "dgs"]
    assert float(scores["test/wrist_distance_ratio/dgs"]) == pytest.approx(
        wrist_distance_ratio([preds[i] for i in dgs], [targets[i] for i in dgs], (0, 3)), rel=1e-12)
    assert "test/duration_ratio/csl" not in scores  # languages without samples are left out
    with pytest.raises(KeyError, match="not scored"):
        motion.update(pad(preds[:1]), pad(targets[:1]), None, None, ["xx"])
    with pytest.raises(ValueError, match="pred_lengths"):
        motion_stats(pad(preds[:2]), pad(targets[:2]), torch.tensor([99, 1]), None, wrists=(0, 3))


def test_builtin_skeleton_joints_and_wrists():
    backend = get_joint_backend("builtin")
    assert wrist_joints(backend.joint_sets) == (20, 21)
    assert [backend.joint_names[i] for i in wrist_joints(backend.joint_sets)] == ["left_wrist", "right_wrist"]
    assert len(slrtp_joints(backend.joint_sets)) == 52  # 12 body + 2 x 21 hand joints, the wrists shared
