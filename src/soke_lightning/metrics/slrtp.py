"""The SLRTP 2025 challenge's scores as torchmetrics Metrics with sum states (DDP-exact).

Every score of :mod:`soke_lightning.metrics.functional.slrtp` is a ratio of sums, so each Metric keeps only those
sums (``dist_reduce_fx="sum"``) and a reduction over ranks equals one process's result. Evaluation loaders read every
sample on exactly one rank (the DataModule's unrepeated sampler), so no sample is counted twice.

* :class:`SlrtpDtwMje`, :class:`WristDistanceRatio`, :class:`DurationRatio`: one pooled number each;
* :class:`SLRTPMotionMetrics`: the three motion scores per language and pooled (``all``), the stage-2 test's table;
* :class:`ChrF`, :class:`WordErrorRate`: back-translation chrF and WER (×100), pooled;
  :class:`ChrFWerStats`: both per language (the B-T scorer's).

They differ from the exact-DTW metrics (:class:`~soke_lightning.metrics.dtw.SignMotionMetrics`): FastDTW instead of
exact DTW, the Euclidean norm of the flattened frame as the alignment cost, no alignment of roots or wrists, no
parts, and a mean per aligned joint pooled over the corpus instead of a per-sample accumulated cost (details in the
functional module).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from soke_lightning.core.languages import LANGUAGES, get_language
from soke_lightning.metrics.functional.bleu import to_characters
from soke_lightning.metrics.functional.slrtp import (
    CHRF_ORDER,
    MOTION_STATS,
    chrf_from_stats,
    chrf_stats,
    motion_stats,
    wer_stats,
)

__all__ = ["SLRTP_SCORES", "ChrF", "ChrFWerStats", "DurationRatio", "SLRTPMotionMetrics", "SlrtpDtwMje", "WordErrorRate",
           "WristDistanceRatio", "scores_from_motion_stats"]

#: The motion scores of the SLRTP protocol, in table order.
SLRTP_SCORES: tuple[str, ...] = ("slrtp_dtw_mje", "wrist_distance_ratio", "duration_ratio")


def scores_from_motion_stats(stats: torch.Tensor, count: torch.Tensor | float) -> dict[str, float]:
    """The three SLRTP motion scores from summed :func:`~soke_lightning.metrics.functional.slrtp.motion_stats` rows.

    Args:
        stats: [7] column sums; count: number of sequences summed.

    Returns:
        {"slrtp_dtw_mje", "wrist_distance_ratio" (NaN when a ground-truth wrist never moved), "duration_ratio"}.
    """
    s = [float(x) for x in stats]
    target = [s[4], s[5]]
    ratios = [p / t if t > 0 else float("nan") for p, t in zip(s[2:4], target)]
    return {"slrtp_dtw_mje": s[0] / s[1] if s[1] else float("nan"),
            "wrist_distance_ratio": sum(ratios) / 2,
            "duration_ratio": s[6] / float(count) if float(count) else float("nan")}


class _MotionSums(Metric):
    """Sums of the motion statistics of every sequence seen (shared by the three single-score classes)."""

    is_differentiable = False
    full_state_update = False
    score = ""

    def __init__(self, wrists: tuple[int, int], joints: Sequence[int] | None = None, radius: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.wrists = (int(wrists[0]), int(wrists[1]))
        self.joints = None if joints is None else tuple(int(j) for j in joints)
        self.radius = int(radius)
        self.add_state("stats", default=torch.zeros(len(MOTION_STATS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred_joints: torch.Tensor, target_joints: torch.Tensor, pred_lengths: torch.Tensor | None = None,
               target_lengths: torch.Tensor | None = None) -> None:
        """Add a batch: joints [B, T, J, 3] (zero-padded) and valid lengths [B] (None: full length)."""
        rows = motion_stats(pred_joints, target_joints, pred_lengths, target_lengths, joints=self.joints,
                            wrists=self.wrists, radius=self.radius)
        self.stats += rows.sum(0).to(self.stats.device)
        self.count += rows.shape[0]

    def compute(self) -> torch.Tensor:
        return torch.tensor(scores_from_motion_stats(self.stats, self.count)[self.score], dtype=torch.float64)


class SlrtpDtwMje(_MotionSums):
    """SLRTP DTW-MJE (FastDTW-aligned mean per-joint error, pooled over sequences), in the joints' unit.

    Example:
        >>> import torch
        >>> gt = torch.zeros(1, 6, 2, 3)
        >>> gt[0, :, 1, 0] = torch.arange(6) / 10
        >>> metric = SlrtpDtwMje(wrists=(0, 1))
        >>> metric.update(gt + 0.01 * torch.tensor([0.0, 1.0, 0.0]), gt)
        >>> round(float(metric.compute()), 6)
        0.01

    Args:
        wrists: (left, right) wrist ids (kept for the shared statistics).
        joints: joint ids scored (default all).
        radius: FastDTW radius.
    """

    higher_is_better = False
    score = "slrtp_dtw_mje"


class WristDistanceRatio(_MotionSums):
    """SLRTP total distance: predicted / ground-truth wrist path length, mean of the two wrists (1 ideal)."""

    higher_is_better = None
    score = "wrist_distance_ratio"


class DurationRatio(_MotionSums):
    """SLRTP average duration: mean predicted / ground-truth length (1 ideal)."""

    higher_is_better = None
    score = "duration_ratio"


class SLRTPMotionMetrics(Metric):
    """The three SLRTP motion scores per language and pooled over all samples (``all``).

    Keys of :meth:`compute`: ``{prefix}{score}/{lang}`` for score in :data:`SLRTP_SCORES` and lang in the languages
    seen plus ``all``.

    Example:
        >>> import torch
        >>> gt = torch.zeros(2, 5, 2, 3)
        >>> gt[:, :, 0, 1] = torch.tensor([0.0, 0.1, 0.0, 0.1, 0.0])
        >>> gt[:, :, 1, 0] = torch.arange(5) / 10
        >>> metric = SLRTPMotionMetrics(wrists=(0, 1), languages=["asl", "dgs"], prefix="test/")
        >>> metric.update(gt, gt, None, None, ["asl", "dgs"])
        >>> {k: float(v) for k, v in metric.compute().items() if k.endswith("/all")}
        {'test/slrtp_dtw_mje/all': 0.0, 'test/wrist_distance_ratio/all': 1.0, 'test/duration_ratio/all': 1.0}

    Args:
        wrists: (left, right) wrist ids (:func:`~soke_lightning.metrics.functional.slrtp.wrist_joints`).
        joints: joint ids of DTW-MJE (default all;
            :func:`~soke_lightning.metrics.functional.slrtp.slrtp_joints` in this project's tables).
        languages: language keys (default: the registry).
        prefix: prepended to every key.
        radius: FastDTW radius (default 1, the challenge's).
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, wrists: tuple[int, int], joints: Sequence[int] | None = None,
                 languages: Sequence[str] | None = None, prefix: str = "", radius: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.wrists = (int(wrists[0]), int(wrists[1]))
        self.joints = None if joints is None else tuple(int(j) for j in joints)
        self.languages = tuple(languages) if languages is not None else tuple(LANGUAGES)
        self.prefix = prefix
        self.radius = int(radius)
        g = len(self.languages)
        self.add_state("stats", default=torch.zeros(g, len(MOTION_STATS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(g, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred_joints: torch.Tensor, target_joints: torch.Tensor, pred_lengths: torch.Tensor | None,
               target_lengths: torch.Tensor | None, langs: Sequence[str]) -> None:
        """Add a batch.

        Args:
            pred_joints: [B, Tp, J, 3] predicted joints; target_joints: [B, Tt, J, 3] ground truth.
            pred_lengths, target_lengths: [B] valid frame counts (None: full length).
            langs: B language keys.
        """
        if len(langs) != pred_joints.shape[0]:
            raise ValueError(f"got {pred_joints.shape[0]} sequences but {len(langs)} languages")
        bad = sorted({lang for lang in langs if lang not in self.languages})
        if bad:
            raise KeyError(f"languages {bad} are not scored by this metric; it scores {list(self.languages)}")
        rows = motion_stats(pred_joints, target_joints, pred_lengths, target_lengths, joints=self.joints,
                            wrists=self.wrists, radius=self.radius).to(self.stats.device)
        for row, lang in zip(rows, langs):
            g = self.languages.index(lang)
            self.stats[g] += row
            self.count[g] += 1

    def compute(self) -> dict[str, torch.Tensor]:
        """Scores per language seen and ``all`` (pooled over every sample; empty when nothing was scored)."""
        groups = [(lang, self.stats[g], self.count[g]) for g, lang in enumerate(self.languages) if self.count[g] > 0]
        if not groups:
            return {}
        groups.append(("all", self.stats.sum(0), self.count.sum()))
        out = {}
        for lang, stats, count in groups:
            for score, value in scores_from_motion_stats(stats, count).items():
                out[f"{self.prefix}{score}/{lang}"] = torch.tensor(value, dtype=torch.float64)
        return out


class _TextSums(Metric):
    is_differentiable = False
    full_state_update = False

    def _pairs(self, hypotheses: Sequence[str], references: Sequence[str], langs: Sequence[str] | None):
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
        if langs is not None and len(langs) != len(hypotheses):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(langs)} languages")
        for k, (hyp, ref) in enumerate(zip(hypotheses, references)):
            if langs is not None and get_language(langs[k]).char_level_bleu:
                hyp, ref = to_characters(hyp), to_characters(ref)
            yield hyp, ref


class ChrF(_TextSums):
    """Corpus chrF ×100 (sacrebleu's default) from summed n-gram statistics.

    Example:
        >>> metric = ChrF()
        >>> metric.update(["the cat sat"], ["the cat sat"])
        >>> float(metric.compute())
        100.0
    """

    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("stats", default=torch.zeros(3 * CHRF_ORDER, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, hypotheses: Sequence[str], references: Sequence[str],
               langs: Sequence[str] | None = None) -> None:
        """Add sentence pairs (``langs``: optional language keys; chrF ignores spaces, so characters need no split)."""
        for hyp, ref in self._pairs(hypotheses, references, None):
            self.stats += torch.tensor(chrf_stats(hyp, ref), dtype=torch.float64, device=self.stats.device)

    def compute(self) -> torch.Tensor:
        return torch.tensor(chrf_from_stats(self.stats.tolist()), dtype=torch.float64)


class WordErrorRate(_TextSums):
    """Corpus WER ×100 (jiwer-style normalisation; Chinese scored on characters when ``langs`` says so).

    Example:
        >>> metric = WordErrorRate()
        >>> metric.update(["the cat sat on mat"], ["The cat sat on the mat."])
        >>> round(float(metric.compute()), 4)
        16.6667
    """

    higher_is_better = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("edits", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("words", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, hypotheses: Sequence[str], references: Sequence[str],
               langs: Sequence[str] | None = None) -> None:
        for hyp, ref in self._pairs(hypotheses, references, langs):
            edits, words = wer_stats(hyp, ref)
            self.edits += edits
            self.words += words

    def compute(self) -> torch.Tensor:
        if self.words == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return 100.0 * self.edits / self.words


class ChrFWerStats(Metric):
    """Corpus chrF and WER (×100) per language from sum states (DDP-exact; Chinese WER on characters).

    Example:
        >>> metric = ChrFWerStats(["asl", "csl"])
        >>> metric.update(["the cat sat on mat", "我 爱 你"], ["The cat sat on the mat.", "我爱他"], ["asl", "csl"])
        >>> {lang: round(v["wer"], 2) for lang, v in metric.compute().items()}
        {'asl': 16.67, 'csl': 33.33}

    Args:
        languages: language keys, one group each.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, languages: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.languages = list(languages)
        g = len(self.languages)
        self.add_state("chrf", default=torch.zeros(g, 3 * CHRF_ORDER, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("wer", default=torch.zeros(g, 2, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(g, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, hypotheses: Sequence[str], references: Sequence[str], langs: Sequence[str]) -> None:
        if not len(hypotheses) == len(references) == len(langs):
            raise ValueError(f"{len(hypotheses)} hypotheses, {len(references)} references and {len(langs)} "
                             f"languages: they must pair up")
        for hyp, ref, lang in zip(hypotheses, references, langs):
            if lang not in self.languages:
                continue
            g = self.languages.index(lang)
            self.chrf[g] += torch.tensor(chrf_stats(hyp, ref), dtype=torch.float64, device=self.chrf.device)
            if get_language(lang).char_level_bleu:
                hyp, ref = to_characters(hyp), to_characters(ref)
            self.wer[g] += torch.tensor(wer_stats(hyp, ref), dtype=torch.float64, device=self.wer.device)
            self.count[g] += 1

    def compute(self) -> dict[str, dict[str, float]]:
        """{lang: {"chrf", "wer"}} for every language with at least one sentence (WER NaN without reference words)."""
        out = {}
        for g, lang in enumerate(self.languages):
            edits, words = (float(x) for x in self.wer[g])
            if self.count[g] > 0:
                out[lang] = {"chrf": chrf_from_stats(self.chrf[g].tolist()),
                             "wer": 100.0 * edits / words if words else float("nan")}
        return out
