"""Back-translation scores in SOKE's protocol (docs/evaluation.md): corpus BLEU-1..4 and ROUGE-L, ×100.

* BLEU-n: sacrebleu corpus BLEU with maximum n-gram order n (cumulative, so BLEU-4 is the usual BLEU), no
  tokenisation (texts are compared as given, split on spaces), ``floor`` smoothing with value 0 and effective
  order (orders without any n-gram in the hypotheses are left out), one reference per hypothesis.
* ROUGE-L: per sentence the LCS F-measure of tf_seq2seq, ``F = (1 + β²) R P / (R + β² P)`` with
  ``R = LCS / |ref|``, ``P = LCS / |hyp|``, ``β = P / R`` (and 1e-12 guards), averaged over sentences.
* Languages whose registry entry has ``char_level_bleu`` (Chinese) are scored on characters: whitespace is
  dropped and every remaining character becomes a token, for BLEU and ROUGE alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sacrebleu.metrics import BLEU

from soke_lightning.core.languages import get_language

__all__ = ["SCORES", "bleu_rouge", "ngram_stats", "rouge_l", "scores_from_stats", "sentence_rouge_l", "to_characters"]


def to_characters(text: str) -> str:
    """'我 爱你' -> '我 爱 你' (one token per non-space character)."""
    return " ".join(ch for ch in text if not ch.isspace())


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Mean sentence-level ROUGE-L F-measure (tf_seq2seq formula) ×100 over space-separated tokens."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("rouge_l needs at least one sentence")
    total = 0.0
    for hyp, ref in zip(hypotheses, references):
        h, r = hyp.split(), ref.split()
        if not h or not r:
            continue  # F = 0
        lcs = _lcs(r, h)
        rec, prec = lcs / len(r), lcs / len(h)
        beta = prec / (rec + 1e-12)
        total += (1 + beta**2) * rec * prec / (rec + beta**2 * prec + 1e-12)
    return 100.0 * total / len(hypotheses)


def bleu_rouge(hypotheses: Sequence[str], references: Sequence[str], lang: str) -> dict[str, float]:
    """Score back-translated sentences against the ground-truth texts of one language.

    Example:
        >>> scores = bleu_rouge(["the cat sat on the mat"], ["the cat sat on the mat"], "asl")
        >>> round(scores["bleu4"], 6), round(scores["rouge_l"], 6)
        (100.0, 100.0)
        >>> round(bleu_rouge(["我 爱 你"], ["我爱你"], "csl")["bleu1"], 1)  # Chinese is scored on characters
        100.0

    Args:
        hypotheses: N back-translated sentences.
        references: N reference sentences (the spoken-language texts of the test samples).
        lang: language key ("asl", "csl", "dgs"); decides word or character level.

    Returns:
        {"bleu1", "bleu2", "bleu3", "bleu4", "rouge_l"}, all ×100.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references for language {lang!r}")
    if get_language(lang).char_level_bleu:
        hypotheses = [to_characters(h) for h in hypotheses]
        references = [to_characters(r) for r in references]
    else:
        hypotheses, references = list(hypotheses), list(references)
    out = {}
    for n in range(1, 5):
        scorer = BLEU(tokenize="none", smooth_method="floor", smooth_value=0.0, effective_order=True,
                      max_ngram_order=n)
        out[f"bleu{n}"] = scorer.corpus_score(hypotheses, [references]).score
    out["rouge_l"] = rouge_l(hypotheses, references)
    return out


#: Scores of the back-translation protocol (×100), in report order.
SCORES: tuple[str, ...] = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l")


def ngram_stats(hypothesis: str, reference: str, max_order: int = 4) -> list[int]:
    """Sufficient statistics of one sentence pair: [hyp_len, ref_len, correct_1..n, total_1..n] (clipped counts)."""
    h, r = hypothesis.split(), reference.split()
    correct, total = [], []
    for n in range(1, max_order + 1):
        hc = Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
        rc = Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
        correct.append(sum(min(c, rc[g]) for g, c in hc.items()))
        total.append(max(0, len(h) - n + 1))
    return [len(h), len(r), *correct, *total]


def sentence_rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F-measure ×100 of one pair (the formula of :func:`rouge_l`)."""
    return rouge_l([hypothesis], [reference])


def scores_from_stats(stats: Sequence[float], rouge_sum: float, count: float) -> dict[str, float]:
    """BLEU-1..4 (sacrebleu, floor smoothing 0, effective order) and mean ROUGE-L from summed statistics."""
    sys_len, ref_len = int(stats[0]), int(stats[1])
    correct, total = [int(x) for x in stats[2:6]], [int(x) for x in stats[6:10]]
    out = {}
    for n in range(1, 5):
        out[f"bleu{n}"] = BLEU.compute_bleu(correct[:n], total[:n], sys_len, ref_len, smooth_method="floor",
                                            smooth_value=0.0, effective_order=True, max_ngram_order=n).score
    out["rouge_l"] = rouge_sum / count if count else 0.0
    return out
