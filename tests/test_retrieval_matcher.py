"""Retrieval matcher: phrases, longest-first, no hits inside words or across languages, Chinese segmentation,
SOKE's substring matcher, prompt format and budget, coverage on hand-made sentences."""

import numpy as np
import pytest

from soke_lightning.retrieval.dictionary import SignDictionary
from soke_lightning.retrieval.matcher import (
    FUNCTION_WORDS,
    SokeSubstringMatcher,
    WordMatcher,
    approximate_token_count,
    build_prompt,
    content_coverage,
    retrieve,
    select,
    separator_texts,
    subsample_codes,
)

PARTS = ("body", "lhand", "rhand")


def codes(n: int, v: int = 1) -> np.ndarray:
    return np.stack([np.arange(n) % 8, np.full(n, v), np.full(n, 7 - v)], axis=1)


@pytest.fixture(scope="module")
def dictionary() -> SignDictionary:
    d = SignDictionary("hash", PARTS, {"body": 8, "lhand": 8, "rhand": 8})
    for i, w in enumerate(["take", "take off", "off", "weekend", "on the weekend", "rich", "two", "teacher", "apple",
                           "die", "I"]):
        d.add("asl", w, codes(5 + i, i % 8))
    for i, w in enumerate(["richtung", "regen", "nacht", "nach", "acht", "mittwoch", "heute", "heute abend", "ich",
                           "lehrer", "apfel", "p+o+p"]):
        d.add("dgs", w, codes(12, i % 8))
    for i, w in enumerate(["老师", "老", "星期", "星期一", "苹果", "吃", "3"]):
        d.add("csl", w, codes(3 + i, i % 8))
    return d


def words(matches):
    return [m.word for m in matches]


def test_english_phrases_longest_match_and_no_hits_inside_words(dictionary):
    m = WordMatcher(dictionary)
    hits = m.match("Take off, rich TEACHER! Richly, the network takes two apples on the weekend.", "asl")
    # "take off" beats "take" + "off"; "richly", "takes", "network", "apples" are other words, not hits.
    assert words(hits) == ["take off", "rich", "teacher", "two", "on the weekend"]
    text = "Take off, rich TEACHER! Richly, the network takes two apples on the weekend."
    assert [text[h.start:h.end] for h in hits] == ["Take off", "rich", "TEACHER", "two", "on the weekend"]
    assert words(m.match("the weekend", "asl")) == ["weekend"]  # a phrase only matches in full
    assert words(m.match("Don't i", "asl")) == ["i"]  # keys are stored lower-cased


def test_german_phrases_glosses_and_no_cross_language_hits(dictionary):
    m = WordMatcher(dictionary)
    hits = m.match("Am Mittwoch heute Abend Regen in Richtung Nacht, p+o+p.", "dgs")
    assert words(hits) == ["mittwoch", "heute abend", "regen", "richtung", "nacht", "p+o+p"]
    # English keys ("die", "two", "i") are never searched in German text and vice versa.
    assert words(m.match("Die Katze und ich", "dgs")) == ["ich"]
    assert words(m.match("I die, ich", "asl")) == ["i", "die"]


def test_chinese_dictionary_driven_segmentation(dictionary):
    m = WordMatcher(dictionary)
    hits = m.match("星期一老师吃了3个苹果，星期老。", "csl")
    assert words(hits) == ["星期一", "老师", "吃", "3", "苹果", "星期", "老"]
    text = "星期一老师吃了3个苹果，星期老。"
    assert [text[h.start:h.end] for h in hits] == words(hits)
    assert words(m.match("Take 苹果", "asl")) == ["take"]  # Chinese keys are not English entries
    assert m.match("I take", "csl") == []


def test_selection_longest_first_or_text_order_with_top_k(dictionary):
    m = WordMatcher(dictionary)
    hits = m.match("two teacher take off apple two", "asl")
    assert words(select(hits, 3, "longest")) == ["take off", "teacher", "apple"]
    assert words(select(hits, 3, "text")) == ["two", "teacher", "take off"]
    assert words(select(hits, None, "longest")) == ["take off", "teacher", "apple", "two"]  # de-duplicated
    with pytest.raises(ValueError, match="order"):
        select(hits, 3, "random")


def test_soke_substring_matcher_reproduces_the_reference_behaviour(dictionary):
    hits = SokeSubstringMatcher(dictionary).match("am mittwoch in richtung regen nacht", "dgs")
    # substring hits in every language (English "two" inside "mittwoch", "rich" inside "richtung", "i" everywhere),
    # stable-sorted by length: ties keep dictionary order (asl entries were added before dgs ones).
    assert words(hits) == ["richtung", "mittwoch", "regen", "nacht", "rich", "nach", "acht", "two", "ich", "i"]
    assert {h.lang for h in hits if h.word in ("two", "rich")} == {"asl"}
    own = SokeSubstringMatcher(dictionary, all_languages=False).match("am mittwoch", "dgs")
    assert words(own) == ["mittwoch"]


def test_subsample_codes_uses_floor_linspace():
    c = np.arange(25)[:, None].repeat(3, 1)
    assert subsample_codes(c, 10)[:, 0].tolist() == [0, 2, 5, 8, 10, 13, 16, 18, 21, 24]
    assert subsample_codes(c[:7], 10).shape == (7, 3)
    assert subsample_codes(c, None).shape == (25, 3)


def test_prompt_format_per_language(dictionary):
    prompt, entries = build_prompt("Take off, teacher.", "asl", dictionary, max_codes_per_entry=2)
    assert [e.word for e in entries] == ["take off", "teacher"]
    assert [e.total_codes for e in entries] == [6, 12] and all(len(e.codes) == 2 for e in entries)
    a, t = dictionary.exemplars("asl", "take off")[0], dictionary.exemplars("asl", "teacher")[0]
    spell = "".join
    expected = ("Take off, teacher."
                " Key word 1, " + spell(f"<body_{r[0]}><lhand_{r[1]}><rhand_{r[2]}>" for r in a[[0, 5]]) +
                " Key word 2, " + spell(f"<body_{r[0]}><lhand_{r[1]}><rhand_{r[2]}>" for r in t[[0, 11]]))
    assert prompt == expected
    zh, _ = build_prompt("老师", "csl", dictionary, max_codes_per_entry=1)
    assert zh == "老师 关键词 1, <body_0><lhand_0><rhand_7>"
    de, _ = build_prompt("Regen", "dgs", dictionary, max_codes_per_entry=1)
    assert de == "Regen Schlüsselwort 1, <body_0><lhand_1><rhand_6>"
    assert build_prompt("nothing here", "asl", dictionary) == ("nothing here", [])


def test_token_budget_drops_whole_entries_from_the_end(dictionary):
    text = "Take off, teacher, apple."
    full, entries = build_prompt(text, "asl", dictionary, max_codes_per_entry=4)
    assert len(entries) == 3
    n_full = approximate_token_count(full)
    assert n_full == len(text) + 3 * len(" Key word 1, ") + 3 * 4 * 3
    cut, kept = build_prompt(text, "asl", dictionary, max_codes_per_entry=4, max_tokens=n_full + 1)
    assert [e.word for e in kept] == ["take off", "teacher"] and cut == full[:len(cut)] and "Key word 3" not in cut
    same, kept = build_prompt(text, "asl", dictionary, max_codes_per_entry=4, max_tokens=n_full + 2)
    assert same == full and len(kept) == 3
    none, kept = build_prompt(text, "asl", dictionary, max_tokens=10)
    assert none == text and kept == []
    # an exact counter (here: whitespace words + motion tokens) is used when given
    exact, kept = build_prompt(text, "asl", dictionary, max_codes_per_entry=4, max_tokens=30,
                               count_tokens=lambda s: len(s.replace("><", "> <").split()))
    assert len(kept) == 1


def test_retrieve_uses_the_first_exemplar_of_a_word():
    d = SignDictionary("h", PARTS, {"body": 8, "lhand": 8, "rhand": 8})
    d.add("asl", "Sun", codes(3, 1))
    d.add("asl", "sun", codes(4, 2))
    assert len(d.exemplars("asl", "SUN")) == 2
    (entry,) = retrieve("The sun.", "asl", d)
    assert entry.total_codes == 3 and entry.codes[0, 1] == 1


def test_coverage_on_hand_made_sentences(dictionary):
    m = WordMatcher(dictionary)
    # content: teacher, eats, apple, weekend (the / will / an / on are function words); covered: teacher, weekend
    assert content_coverage("The teacher will eat an apple on the weekend.", "asl", m) == (4, 3)
    assert content_coverage("The teachers will eat.", "asl", m) == (2, 0)
    # German: heute abend (2 words, both covered), lehrer, apfel covered; wird/der/einen function; essen not
    assert content_coverage("Heute Abend wird der Lehrer einen Apfel essen.", "dgs", m) == (5, 4)
    # Chinese segments: 老师 | 吃 | 了 | 两 | 个 | 苹果 | 没有 -> content 老师 吃 两 苹果, covered 老师 吃 苹果
    assert content_coverage("老师吃了两个苹果没有。", "csl", m) == (4, 3)
    assert content_coverage("3个", "csl", m) == (0, 0)  # digits are not words, 个 is a measure word


def test_synthsign_function_words_are_declared():
    from soke_lightning.data.synthsign.grammar import ClauseSampler, realize
    from soke_lightning.data.synthsign.lexicon import CONCEPTS

    sampler = ClauseSampler({c.id: 1.0 for c in CONCEPTS}, np.random.default_rng(0))
    missing = {}
    for _ in range(600):
        clause = sampler.sample()
        for spoken in ("en", "de", "zh"):
            _, tokens = realize(clause, spoken)
            for word, concept in tokens:
                if concept is None and word.lower() not in FUNCTION_WORDS[spoken]:
                    missing.setdefault(spoken, set()).add(word)
    assert not missing, f"SynthSign function words missing from FUNCTION_WORDS: {missing}"


def test_separator_texts_cover_every_language_and_index():
    texts = separator_texts(3)
    assert len(texts) == 9 and " Key word 3, " in texts and " 关键词 1, " in texts and " Schlüsselwort 2, " in texts
