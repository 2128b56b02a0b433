"""Back-translation BLEU/ROUGE against hand-computed values."""

import math

import pytest

from soke_lightning.metrics.functional.bleu import bleu_rouge, rouge_l, to_characters


def test_word_level_bleu_and_rouge_by_hand():
    out = bleu_rouge(["a b c d"], ["a b c e"], "asl")
    # precisions 3/4, 2/3, 1/2, 0/1; brevity penalty 1; floor smoothing with 0 sends BLEU-4 to 0
    assert out["bleu1"] == pytest.approx(75.0)
    assert out["bleu2"] == pytest.approx(100 * math.sqrt(3 / 4 * 2 / 3))
    assert out["bleu3"] == pytest.approx(100 * (3 / 4 * 2 / 3 * 1 / 2) ** (1 / 3))
    assert out["bleu4"] == pytest.approx(0.0, abs=1e-6)
    assert out["rouge_l"] == pytest.approx(75.0, abs=1e-6)  # LCS 3 of 4 both ways


def test_brevity_penalty_and_effective_order():
    out = bleu_rouge(["a b"], ["a b c d"], "dgs")
    bp = 100 * math.exp(1 - 4 / 2)
    # no 3-/4-grams in the hypothesis: effective order keeps BLEU-3/4 at the BLEU-2 value
    for n in range(1, 5):
        assert out[f"bleu{n}"] == pytest.approx(bp)
    # ROUGE-L: R = 1/2, P = 1, β = 2 -> F = 5 * 0.5 / (0.5 + 4) = 5/9
    assert out["rouge_l"] == pytest.approx(100 * 5 / 9, abs=1e-6)


def test_chinese_is_scored_on_characters():
    assert to_characters("我 爱你") == "我 爱 你"
    out = bleu_rouge(["我爱你"], ["我爱他"], "csl")
    assert out["bleu1"] == pytest.approx(100 * 2 / 3)
    assert out["bleu2"] == pytest.approx(100 * math.sqrt(2 / 3 * 1 / 2))
    assert out["rouge_l"] == pytest.approx(100 * 2 / 3, abs=1e-6)
    # the same strings at word level are one token each: nothing matches
    assert bleu_rouge(["我爱你"], ["我爱他"], "asl")["bleu1"] == pytest.approx(0.0)


def test_corpus_level_and_errors():
    # corpus BLEU pools n-gram counts: 1-gram matches (2 + 1) / (2 + 2)
    out = bleu_rouge(["x y", "p q"], ["x y", "p r"], "asl")
    assert out["bleu1"] == pytest.approx(75.0)
    assert rouge_l(["x y", ""], ["x y", "p"]) == pytest.approx(50.0, abs=1e-6)
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        bleu_rouge(["a", "b"], ["a"], "asl")
    with pytest.raises(KeyError, match="unknown language"):
        bleu_rouge(["a"], ["a"], "bsl")
