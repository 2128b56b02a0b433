"""Back-translation scores in SOKE's protocol (SOKE_SPEC §6.5): corpus BLEU-1..4 and ROUGE-L, ×100.

* BLEU-n: sacrebleu corpus BLEU with maximum n-gram order n (cumulative, so BLEU-4 is the usual BLEU), no
  tokenisation (texts are compared as given, split on spaces), ``floor`` smoothing with value 0 and effective
  order (orders without any n-gram in the hypotheses are left out), one reference per hypothesis.
* ROUGE-L: per sentence the LCS F-measure of tf_seq2seq, ``F = (1 + β²) R P / (R + β² P)`` with
  ``R = LCS / |ref|``, ``P = LCS / |hyp|``, ``β = P / R`` (and 1e-12 guards), averaged over sentences.
* Languages whose registry entry has ``char_level_bleu`` (Chinese) are scored on characters: whitespace is
  dropped and every remaining character becomes a token, for BLEU and ROUGE alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU

from soke_lightning.data.languages import get_language

__all__ = ["bleu_rouge", "rouge_l", "to_characters"]


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
