"""Back-translation BLEU-1..4 / ROUGE-L per language as a torchmetrics Metric with sum states (DDP-exact).

:class:`BleuRougeStats` keeps, per language, the n-gram matches and totals, the hypothesis and reference lengths
and the ROUGE-L sum, so scores reduced over ranks equal a single process's; they equal
:func:`soke_lightning.metrics.functional.bleu.bleu_rouge` on the same sentences. Chinese is scored on characters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from soke_lightning.core.languages import get_language
from soke_lightning.metrics.functional.bleu import (
    ngram_stats,
    scores_from_stats,
    sentence_rouge_l,
    to_characters,
)


class BleuRougeStats(Metric):
    """Corpus BLEU-1..4 and ROUGE-L per language from sum states (DDP-correct; Chinese scored on characters).

    Example:
        >>> metric = BleuRougeStats(["asl", "dgs"])
        >>> metric.update(["the cat sat on the mat"], ["the cat sat on the mat"], ["asl"])
        >>> round(metric.compute()["asl"]["bleu4"], 6)
        100.0
        >>> sorted(metric.compute())  # languages without a sentence are left out
        ['asl']

    Args:
        languages: language keys, one group each.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, languages: Sequence[str]):
        super().__init__()
        self.languages = list(languages)
        g = len(self.languages)
        self.add_state("stats", default=torch.zeros(g, 10, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("rouge", default=torch.zeros(g, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(g, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, hypotheses: Sequence[str], references: Sequence[str], langs: Sequence[str]) -> None:
        for hyp, ref, lang in zip(hypotheses, references, langs, strict=True):
            if lang not in self.languages:
                continue
            if get_language(lang).char_level_bleu:
                hyp, ref = to_characters(hyp), to_characters(ref)
            g = self.languages.index(lang)
            self.stats[g] += torch.tensor(ngram_stats(hyp, ref), dtype=torch.float64, device=self.stats.device)
            self.rouge[g] += sentence_rouge_l(hyp, ref) / 100.0
            self.count[g] += 1

    def compute(self) -> dict[str, dict[str, float]]:
        """{lang: {bleu1..4, rouge_l}} (×100) for every language with at least one sentence."""
        out = {}
        for g, lang in enumerate(self.languages):
            if self.count[g] > 0:
                out[lang] = scores_from_stats(self.stats[g].tolist(), 100.0 * float(self.rouge[g]),
                                              float(self.count[g]))
        return out
