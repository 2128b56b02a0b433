"""Retrieval matcher: phrases, longest-first, no hits inside words or across languages, Chinese segmentation,
SOKE's substring matcher, prompt format and budget, coverage on hand-made sentences, aliases (other surface forms)
and the inflection-suffix fallback."""

import numpy as np
import pytest

from soke_lightning.retrieval.dictionary import SignDictionary
from soke_lightning.retrieval.matcher import (
    FUNCTION_WORDS,
    INFLECTION_SUFFIXES,
    SokeSubstringMatcher,
    WordMatcher,
    approximate_token_count,
    build_prompt,
    content_coverage,
    get_matcher,
    inflection_stems,
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
    from soke_lightning.synthsign.grammar import ClauseSampler, realize
    from soke_lightning.synthsign.lexicon import CONCEPTS

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


# ------------------------------------------------------------------------------------- aliases and inflection
@pytest.fixture(scope="module")
def inflected() -> SignDictionary:
    d = SignDictionary("h", PARTS, {"body": 8, "lhand": 8, "rhand": 8})
    for i, (lang, w) in enumerate([("asl", "cup"), ("asl", "police"), ("asl", "police officer"), ("asl", "eat"),
                                   ("asl", "car"), ("asl", "see"), ("asl", "have"), ("dgs", "handy"),
                                   ("dgs", "schlecht"), ("dgs", "helfen"), ("dgs", "mögen"), ("dgs", "ei"),
                                   ("dgs", "ein"), ("dgs", "tasse"), ("dgs", "haben"), ("csl", "杯子")]):
        d.add(lang, w, codes(3 + i % 4, i % 8))
    d.add_alias("asl", "eat", "ate")
    d.add_alias("asl", "police officer", "police officers")
    d.add_alias("asl", "have", "has")  # a function word: ignored by the matcher (it would hit "she has eaten")
    d.add_alias("dgs", "helfen", "hilft")
    d.add_alias("dgs", "mögen", "mag")
    d.add_alias("dgs", "haben", "hat")
    return d


def hits(matcher, text, lang):
    return [(m.word, m.via) for m in matcher.match(text, lang)]


def test_aliases_match_like_keys_phrases_longest_first_per_language(inflected):
    m = WordMatcher(inflected)
    assert hits(m, "Two police officers ate the cups.", "asl") == [("police officer", "alias"), ("eat", "alias")]
    text = "Er hilft, sie mag Äpfel, der Mann hat es."
    found = m.match(text, "dgs")
    assert [(h.word, h.via) for h in found] == [("helfen", "alias"), ("mögen", "alias")]  # "hat": function word
    assert [text[h.start:h.end] for h in found] == ["hilft", "mag"]
    assert hits(m, "she has a cup", "asl") == [("cup", "key")]
    assert hits(m, "mag hilft ate", "asl") == [("eat", "alias")]  # German aliases never hit English text
    assert hits(m, "Ate hilft", "dgs") == [("helfen", "alias")]
    # an alias retrieves its entry's codes, and the prompt names the entry once
    entries = retrieve("They ate, then they eat.", "asl", inflected, top_k=None)
    assert [e.word for e in entries] == ["eat"]
    np.testing.assert_array_equal(entries[0].codes, inflected.exemplars("asl", "eat")[0])


def test_a_key_wins_over_another_entrys_alias():
    d = SignDictionary("h", PARTS, {"body": 8, "lhand": 8, "rhand": 8})
    d.add("asl", "cup", codes(3))
    d.add("asl", "cups", codes(4))  # its own entry (say, a plural sign)
    d.add_alias("asl", "cup", "cups")
    assert hits(WordMatcher(d), "cups", "asl") == [("cups", "key")]
    assert hits(WordMatcher(d, inflection="suffix"), "cups", "asl") == [("cups", "key")]


def test_suffix_fallback_hits_inflected_words(inflected):
    plain, suffix = WordMatcher(inflected), WordMatcher(inflected, inflection="suffix")
    assert hits(plain, "two cups", "asl") == []
    assert hits(suffix, "two cups", "asl") == [("cup", "suffix")]
    assert hits(suffix, "Zwei Handys, schlechte Tassen.", "dgs") == [("handy", "suffix"), ("schlecht", "suffix"),
                                                                     ("tasse", "suffix")]
    text = "Police officers' cups"
    assert [text[h.start:h.end] for h in suffix.match(text, "asl")] == ["Police officers", "cups"]
    # an exact key or alias at a position beats an inflected reading of the same length
    assert hits(suffix, "police eats, police officers", "asl") == [("police", "key"), ("eat", "suffix"),
                                                                    ("police officer", "alias")]
    # ... and the fallback matches whole phrases: "police officers" without the alias
    d = SignDictionary("h", PARTS, {"body": 8, "lhand": 8, "rhand": 8})
    d.add("asl", "police", codes(3))
    d.add("asl", "police officer", codes(3))
    assert hits(WordMatcher(d, inflection="suffix"), "police officers", "asl") == [("police officer", "suffix")]


def test_suffix_fallback_stays_inside_words_languages_and_rules(inflected):
    m = WordMatcher(inflected, inflection="suffix")
    # never inside another word: the token must be the word plus a suffix
    assert hits(m, "cupboard teacups hiccups scupper", "asl") == []
    # no cross-language hits: German endings on English words and the other way round
    assert hits(m, "two cups", "dgs") == [] and hits(m, "schlechte Handys", "asl") == []
    # stem-ending rules and the minimum stem: car+es is not "cares", see+d is, ei+er is too short
    assert hits(m, "cares cars", "asl") == [("car", "suffix")]
    assert hits(m, "seed", "asl") == [("see", "suffix")]  # a heuristic: seed is also a word of its own
    assert hits(m, "Eier", "dgs") == []
    # function words are never de-inflected ("eine" is an article, not ein + e)
    assert hits(m, "eine Tasse", "dgs") == [("tasse", "key")]
    # Chinese is unaffected
    assert hits(m, "两个杯子们", "csl") == hits(WordMatcher(inflected), "两个杯子们", "csl") == [("杯子", "key")]


def test_inflection_option_reaches_prompts_and_coverage(inflected):
    off, _ = build_prompt("two cups", "asl", inflected, max_codes_per_entry=1)
    on, entries = build_prompt("two cups", "asl", inflected, max_codes_per_entry=1, inflection="suffix")
    assert off == "two cups" and on.startswith("two cups Key word 1, <body_") and entries[0].match.via == "suffix"
    assert content_coverage("two cups", "asl", WordMatcher(inflected)) == (2, 0)
    assert content_coverage("two cups", "asl", WordMatcher(inflected, inflection="suffix")) == (2, 1)
    with pytest.raises(ValueError, match="needs the 'words' matcher"):
        get_matcher("soke_substring", inflected, "suffix")
    with pytest.raises(ValueError, match="inflection must be one of"):
        WordMatcher(inflected, inflection="stem")
    # soke_substring searches keys only, as the reference
    assert [m.word for m in SokeSubstringMatcher(inflected).match("it ate", "asl")] == []


def test_inflection_stems_follow_the_suffix_table():
    assert inflection_stems("cups", "asl") == ["cup"]
    assert inflection_stems("boxes", "asl") == ["boxe", "box"]
    assert inflection_stems("liked", "asl") == ["like", "lik"]
    assert inflection_stems("schlechten", "dgs") == ["schlechte", "schlecht", "schlech"]  # longest first
    assert inflection_stems("neun", "dgs") == []  # "n" only after e / el / er; "neu" + "n" is not an inflection
    assert inflection_stems("dem", "dgs") == [] and inflection_stems("杯子们", "csl") == []
    for language, suffixes in INFLECTION_SUFFIXES.items():
        assert language in FUNCTION_WORDS and all(s and all(isinstance(a, str) for a in after)
                                                  for s, after in suffixes)


def test_synthsign_forms_let_the_matcher_find_every_signed_word():
    """A dictionary of every SynthSign concept with the forms its grammar writes: the words matcher finds every
    concept of every sentence, except words that cannot name one sign."""
    from soke_lightning.retrieval.dictionary import add_form_aliases, normalize_word
    from soke_lightning.synthsign.grammar import ClauseSampler, realize, unambiguous_forms
    from soke_lightning.synthsign.lexicon import CONCEPTS, SPOKEN_OF

    keys_only, aliased = (SignDictionary("h", PARTS, {"body": 8, "lhand": 8, "rhand": 8}) for _ in range(2))
    concept_of = {}
    for lang, language in SPOKEN_OF.items():
        words = [normalize_word(c.word(language)) for c in CONCEPTS]
        for c, w in zip(CONCEPTS, words):
            if words.count(w) == 1:  # as SynthSign's dictionary split: "sie" (she / they) has no entry
                for d in (keys_only, aliased):
                    d.add(lang, w, codes(2))
                concept_of[(lang, w)] = c.id
        add_form_aliases(aliased, [(lang, w, unambiguous_forms(language)[cid])
                                   for (lg, w), cid in concept_of.items() if lg == lang])
    sampler = ClauseSampler({c.id: 1.0 for c in CONCEPTS}, np.random.default_rng(0))
    matchers = {"keys": WordMatcher(keys_only), "aliases": WordMatcher(aliased)}
    missed = {"keys": set(), "aliases": set()}
    for _ in range(500):
        clause = sampler.sample()
        for lang, language in SPOKEN_OF.items():
            text, tokens = realize(clause, language)
            signed = {cid for _, cid in tokens if cid}
            for name, matcher in matchers.items():
                found = {concept_of[(lang, m.word)] for m in matcher.match(text, lang)}
                missed[name] |= {(lang, cid) for cid in signed - found}
    # "sie" has no entry; "hat" / "has" / "had" are auxiliaries too (function words); "junge(n)" (young / boy) and
    # "Spiele" (games / I play) are forms of two concepts
    assert missed["aliases"] <= {("dgs", "she"), ("dgs", "they"), ("dgs", "have"), ("asl", "have"), ("dgs", "young"),
                                 ("dgs", "game"), ("dgs", "boy")}
    assert len(missed["keys"]) > len(missed["aliases"]) + 40  # keys alone miss plurals, conjugations, declensions
    assert {("asl", "car"), ("dgs", "help"), ("dgs", "bad")} <= missed["keys"]
