"""SynthSign corpus version 2: the long tail of concepts, the tail-aware evaluation splits, dictionary exemplars that
keep the signer's tempo (padded with rest, never time-stretched), German 2nd-person spellings, proper nouns, and
the concept-frequency groups of synthsign.frequency (on a hand-made example and on the demo preset)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import numpy as np
import pytest

from soke_lightning.data.processing import length_indices
from soke_lightning.data.store import Sample, StoreWriter, open_store
from soke_lightning.retrieval.matcher import FUNCTION_WORDS
from soke_lightning.synthsign import phonology as ph
from soke_lightning.synthsign.frequency import (
    GROUP_KEYS,
    concept_frequencies,
    dictionary_concepts,
    frequency_band,
    group_sentences,
    group_summary,
    sentence_group,
)
from soke_lightning.synthsign.generator import (
    CLIP_MIN_FRAMES,
    CLIP_UNIT,
    DICTIONARY_EXEMPLARS,
    EVAL_BANDS,
    GENERATOR_VERSION,
    LANGS,
    PRESETS,
    band_plan,
    build_lexicon,
    corpus_signers,
    dictionary_signers,
    generate,
)
from soke_lightning.synthsign.grammar import (
    Clause,
    ClauseSampler,
    NounPhrase,
    countable,
    de_2sg,
    realize,
    surface_forms,
)
from soke_lightning.synthsign.lexicon import BY_ID, CONCEPTS, PROPER, SPOKEN_OF, concepts_of

#: Per-sign tempo jitter of the generator (compose): each rendition of a sign takes citation / (speed * j) frames,
#: j uniform in [0.92, 1.08], rounded to a whole frame.
JITTER = (0.92, 1.08)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo preset (the proportions the brief asks for are stated on it), with its generation time."""
    build_lexicon(0)  # cached for the session; the generation time below is the corpus itself
    start = time.perf_counter()
    summary = generate(tmp_path_factory.mktemp("demo") / "store", preset="demo", seed=0, lexicon_seed=0)
    return open_store(summary["out"]), time.perf_counter() - start


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "store"
    generate(out, preset="tiny", seed=5, lexicon_seed=0)
    return open_store(out)


# ------------------------------------------------------------------------------------------- German spellings

#: du-forms (finite part) of verbs with irregular stems, sibilant stems, -t / -d stems and modal verbs.
GERMAN_2SG = {
    "like": "magst", "want": "willst", "clean": "putzt", "eat": "isst", "read": "liest", "see": "siehst",
    "drive": "fährst", "help": "hilfst", "meet": "triffst", "sleep": "schläfst", "run": "läufst",
    "work": "arbeitest", "dance": "tanzt", "forget": "vergisst", "have": "hast", "call": "rufst",
    "open": "öffnest", "find": "findest", "wait": "wartest", "wash": "wäschst", "take": "nimmst", "kiss": "küsst",
    "sit": "sitzt", "travel": "reist", "carry": "trägst", "catch": "fängst", "throw": "wirfst", "fall": "fällst",
    "feed": "fütterst", "hike": "wanderst", "use": "benutzt", "drink": "trinkst", "go": "gehst", "fly": "fliegst",
    "lose": "verlierst", "watch": "schaust", "swim": "schwimmst", "ride": "reitest",
}


def _du_clause(cid: str) -> Clause:
    verb = BY_ID[cid]
    you = NounPhrase(BY_ID["you"])
    if verb.category == "verb_t":
        group = verb.forms["objects"][0]
        obj = BY_ID["book"] if group == "book_like" else next(c for c in CONCEPTS if c.category == group or (
            group not in {c.category for c in CONCEPTS} and c.id in ("door", "car", "film", "ball")))
        return Clause("transitive", subj=you, verb=verb, obj=NounPhrase(obj))
    if verb.category == "verb_go":
        return Clause("motion", subj=you, verb=verb, place=BY_ID["school"])
    return Clause("intransitive", subj=you, verb=verb)


@pytest.mark.parametrize("cid", sorted(GERMAN_2SG))
def test_german_second_person_singular(cid):
    text = realize(_du_clause(cid), "de")[0]
    assert text.rstrip(".").split()[:2] == ["Du", GERMAN_2SG[cid]], text
    assert GERMAN_2SG[cid] in surface_forms(BY_ID[cid], "de")


def test_german_second_person_rule_and_no_misspellings():
    assert [de_2sg(*pair) for pair in [("mögen", "mag"), ("wollen", "will"), ("putzen", "putzt"), ("essen", "isst"),
                                       ("lesen", "liest"), ("sehen", "sieht"), ("fahren", "fährt"),
                                       ("heißen", "heißt"), ("können", "kann"), ("müssen", "muss"),
                                       ("halten", "hält")]] == \
        ["magst", "willst", "putzt", "isst", "liest", "siehst", "fährst", "heißt", "kannst", "musst", "hältst"]
    forms = {f for c in concepts_of("verb_t", "verb_i", "verb_go") for f in surface_forms(c, "de")}
    assert not forms & {"mast", "wilst", "putzst", "tanzst", "issst", "liesst", "sitzst", "küssst", "reisst"}
    # 1st person singular of -ern verbs and a modal
    assert realize(Clause("transitive", subj=NounPhrase(BY_ID["i"]), verb=BY_ID["feed"],
                          obj=NounPhrase(BY_ID["dog"])), "de")[0] == "Ich füttere den Hund."
    assert realize(Clause("transitive", subj=NounPhrase(BY_ID["i"]), verb=BY_ID["want"],
                          obj=NounPhrase(BY_ID["dog"])), "de")[0] == "Ich will den Hund."


def test_german_weak_nouns_take_n_outside_the_nominative():
    see = Clause("transitive", subj=NounPhrase(BY_ID["i"]), verb=BY_ID["see"], obj=NounPhrase(BY_ID["student"]))
    assert realize(see, "de")[0] == "Ich sehe den Studenten."
    helps = Clause("transitive", subj=NounPhrase(BY_ID["lion"]), verb=BY_ID["help"], obj=NounPhrase(BY_ID["bear"]))
    assert realize(helps, "de")[0] == "Der Löwe hilft dem Bären."


# ------------------------------------------------------------------------------------------------- the lexicon

def test_lexicon_has_a_long_tail_with_unique_words():
    assert len(CONCEPTS) >= 500
    counts = Counter(c.category for c in CONCEPTS)
    assert counts["name"] >= 50 and counts["city"] >= 40 and counts["object"] >= 90
    for spoken in ("en", "de", "zh"):
        words = Counter(c.word(spoken).lower() for c in CONCEPTS)
        assert {w for w, n in words.items() if n > 1} <= {"sie"}, spoken  # German she / they
        assert all(c.word(spoken).strip() for c in CONCEPTS)
    # a numeral brings the measure word: every one a countable noun can take is a declared function word
    assert {c.forms["zh_measure"] for c in CONCEPTS if countable(c)} <= FUNCTION_WORDS["zh"]


def test_every_concept_but_one_can_be_placed_in_a_sentence():
    sampler = ClauseSampler({c.id: 1.0 for c in CONCEPTS}, np.random.default_rng(0))
    missing = [c.id for c in CONCEPTS if sampler.sample_containing(c.id) is None]
    assert missing == ["one"]  # numerals in noun phrases start at two


def test_proper_nouns_have_no_article():
    drive = Clause("motion", subj=NounPhrase(BY_ID["anna"]), verb=BY_ID["drive"], place=BY_ID["berlin"])
    assert [realize(drive, s)[0] for s in ("en", "de", "zh")] == \
        ["Anna drives to Berlin.", "Anna fährt nach Berlin.", "安娜开车去柏林。"]
    live = Clause("motion", subj=NounPhrase(BY_ID["li_ming"]), verb=BY_ID["live"], place=BY_ID["beijing"])
    assert [realize(live, s)[0] for s in ("en", "de", "zh")] == \
        ["Li Ming lives in Beijing.", "Li Ming wohnt in Peking.", "李明住在北京。"]
    sampler = ClauseSampler({c.id: 1.0 for c in CONCEPTS}, np.random.default_rng(1))
    for _ in range(300):
        c = sampler.sample()
        for np_ in (c.subj, c.obj):
            if np_ is not None and np_.head.category in PROPER:
                assert np_.adj is None and np_.num is None


def test_chinese_adjective_takes_de_where_the_words_would_merge():
    def zh(adj, noun):
        return realize(Clause("transitive", subj=NounPhrase(BY_ID["i"]), verb=BY_ID["see"],
                              obj=NounPhrase(BY_ID[noun], adj=BY_ID[adj])), "zh")[0]
    assert zh("big", "student") == "我看见大的学生。"  # 大 + 学生 would read 大学 (university) + 生
    assert zh("big", "dog") == "我看见大狗。"


# -------------------------------------------------------------------------------------- frequency groups by hand

def _rec(name, lang, concepts=None, concept=None):
    meta = {} if concepts is None else {"concepts": concepts}
    if concept is not None:
        meta["concept"] = concept
    return {"name": name, "lang": lang, "meta": meta}


TRAIN = [_rec("t1", "asl", ["i", "eat", "apple"]), _rec("t2", "asl", ["i", "eat", "bread"]),
         _rec("t3", "asl", ["i", "eat", "apple"]), _rec("t4", "asl", ["you", "eat", "apple", "apple"]),
         _rec("g1", "dgs", ["i", "eat"])]
DICTIONARY = [_rec(f"d_{c}", "asl", concept=c) for c in ("apple", "bread", "cake")] + [_rec("d_eat", "dgs",
                                                                                          concept="eat")]
TEST = [_rec("a1", "asl", ["i", "eat", "apple"]),  # every concept in > 2 training sentences
        _rec("a2", "asl", ["you", "eat", "bread"]),  # rare: you (no entry), bread
        _rec("a3", "asl", ["i", "eat", "cake"]),  # unseen cake, which has an entry
        _rec("a4", "asl", ["i", "eat", "pear", "bread"]),  # unseen pear without entry, and rare bread
        _rec("d1", "dgs", ["i", "eat"]),  # rare in DGS (asl counts do not count), "i" has no entry
        _rec("d2", "dgs", ["eat", "apple"]),  # apple unseen in DGS training
        _rec("e1", "asl")]  # no concepts recorded (an official corpus): seen


def test_frequency_groups_on_a_hand_made_example(tmp_path):
    counts = concept_frequencies(TRAIN)
    assert counts["asl"] == Counter({"eat": 4, "i": 3, "apple": 3, "bread": 1, "you": 1})  # once per sentence
    assert counts["dgs"] == Counter({"i": 1, "eat": 1})
    assert dictionary_concepts(DICTIONARY) == {"asl": {"apple", "bread", "cake"}, "dgs": {"eat"}}
    assert [frequency_band(n) for n in (0, 1, 2, 3)] == ["unseen", "rare", "rare", "seen"]
    assert frequency_band(3, rare_max=3) == "rare"
    with pytest.raises(ValueError):
        frequency_band(-1)
    assert sentence_group(["i", "cake"], counts["asl"], {"cake"}).key == "unseen_dict"

    groups = group_sentences(TEST, train=TRAIN, dictionary=DICTIONARY)
    assert {name: g.key for name, g in groups.items()} == {
        "a1": "seen", "a2": "rare_nodict", "a3": "unseen_dict", "a4": "unseen_nodict", "d1": "rare_nodict",
        "d2": "unseen_nodict", "e1": "seen"}
    assert groups["a2"].concepts == ("you", "bread") and groups["a4"].rare == ("bread",)
    assert groups["a4"].concepts == ("pear",)
    summary = group_summary(groups, {r["name"]: r["lang"] for r in TEST})
    assert summary["sentences"] == 7 and summary["counts"] == {
        "seen": 2, "rare_dict": 0, "rare_nodict": 2, "unseen_dict": 1, "unseen_nodict": 2, "tail": 5,
        "with_rare": 4, "with_unseen": 3}
    assert summary["by_lang"]["dgs"]["counts"]["tail"] == 2 and summary["fractions"]["tail"] == 5 / 7
    assert set(GROUP_KEYS) <= set(summary["counts"])
    with pytest.raises(ValueError, match="train"):
        group_sentences(TEST)

    # the same from a store (its own train and dictionary splits)
    writer = StoreWriter(tmp_path / "store", info={"corpus": "synthsign"}, overwrite=True)
    for split, records in (("train", TRAIN), ("test", TEST), ("dictionary", DICTIONARY)):
        with writer.split(split) as w:
            for r in records:
                w.add(Sample(r["name"], "text", r["lang"], "synthsign", np.zeros((4, 179), np.float32), 25.0,
                             r["meta"]))
    assert group_sentences(tmp_path / "store", "test") == groups


# ------------------------------------------------------------------------------------------- the demo preset

def test_demo_test_split_has_the_long_tail(demo):
    store, seconds = demo
    assert store.info["generator_version"] == GENERATOR_VERSION == 2
    groups = group_sentences(store, "test")
    summary = group_summary(groups, {r["name"]: r["lang"] for r in store.split("test").records})
    f = summary["fractions"]
    assert f["tail"] >= 0.4 and f["with_rare"] >= 0.4  # a concept in at most 2 (or in 1 .. 2) training sentences
    assert f["unseen_dict"] >= 0.15  # a concept no training sentence has, with a dictionary entry
    assert f["rare_nodict"] == f["unseen_nodict"] == 0.0  # every evaluated concept has an entry
    for lang in LANGS:
        assert summary["by_lang"][lang]["fractions"]["tail"] >= 0.4
        assert summary["by_lang"][lang]["fractions"]["unseen_dict"] >= 0.15
    assert store.info["long_tail"]["test"] == summary  # the store info records the same summary
    assert seconds < 120, f"demo generation took {seconds:.0f} s"  # ~10 s on 2 cores; 60 s is the budget


def test_demo_training_frequencies_are_zipf_like(demo):
    store, _ = demo
    for counts in concept_frequencies(store).values():
        ranked = sorted(counts.values(), reverse=True)
        assert sum(ranked[:40]) > 0.5 * sum(ranked)  # the head: ~8% of the concepts, most of the tokens
        assert sum(1 for n in counts.values() if n <= 2) >= 80  # a long tail of rare concepts ...
        assert len(CONCEPTS) - len(counts) >= 80  # ... and of concepts training never shows


def test_every_evaluated_concept_has_a_dictionary_entry(demo, tiny):
    for store in (demo[0], tiny):
        entries = dictionary_concepts(store)
        for split in ("val", "test"):
            for r in store.split(split).records:
                assert set(r["meta"]["concepts"]) <= entries[r["lang"]], (r["name"], r["text"])


def test_evaluation_bands_follow_the_plan():
    plan = band_plan(50, np.random.default_rng(0))
    assert Counter(plan) == {band: round(50 * share) for band, share in EVAL_BANDS.items()}
    assert Counter(band_plan(6, np.random.default_rng(0))) == {"unseen": 1, "rare": 3, "seen": 2}


# ------------------------------------------------------------------------------------- dictionary exemplars

def _signers(store):
    sizes = PRESETS[store.info["preset"]]
    seed = store.info["seed"]
    return {s.id: s for lang in LANGS
            for s in corpus_signers(lang, sizes, seed) + dictionary_signers(lang, seed)}


def test_dictionary_has_exemplars_from_several_signers_and_sources(tiny):
    d = tiny.split("dictionary")
    sentence_signers = {r["meta"]["signer"] for split in ("train", "val", "test") for r in tiny.split(split).records}
    by_word = defaultdict(list)
    for r in d.records:
        by_word[(r["lang"], r["text"])].append(r)
    assert by_word and all(len(v) == len(DICTIONARY_EXEMPLARS) == 3 for v in by_word.values())
    for (lang, word), records in by_word.items():
        assert [(r["meta"]["source"], r["meta"]["signer_in_corpus"]) for r in records] == \
            [(src, pool == "corpus") for src, pool in DICTIONARY_EXEMPLARS]
        assert [r["meta"]["exemplar"] for r in records] == [0, 1, 2]
        assert records[0]["meta"]["signer"] in sentence_signers  # retrieval's first exemplar: a training signer
        assert records[1]["meta"]["signer"] not in sentence_signers  # a signer only the dictionary has
        assert records[2]["meta"]["signer"] in sentence_signers
        assert records[0]["meta"]["signer"] != records[2]["meta"]["signer"]
        continuous = records[2]["meta"]
        assert continuous["concept"] in continuous["context_concepts"] and len(continuous["context_concepts"]) >= 2
        if continuous["context"] is not None:  # the carrier sentence writes the word or one of its forms
            spoken = SPOKEN_OF[lang]
            forms = {word.lower(), *(f.lower() for f in surface_forms(BY_ID[continuous["concept"]], spoken))}
            assert any(f in continuous["context"].lower() for f in forms), continuous["context"]


def test_dictionary_clips_are_padded_with_rest_not_stretched(tiny):
    """Every clip passes the length rule untouched (>= 40 frames, a multiple of 4). An isolated sign takes as many
    frames as the same signer's renditions of it in sentences: both are citation / (speed * jitter) frames with
    jitter in [0.92, 1.08], so two renditions differ by at most a factor 1.08 / 0.92 (~1.17) plus rounding (one
    frame each); the old dictionary stretched every sign to 40 frames (1.3 - 2.9x)."""
    lex = build_lexicon(0)
    signers = _signers(tiny)
    in_sentences = defaultdict(list)  # (lang, signer, concept) -> sign lengths in the training sentences
    for r in tiny.split("train").records:
        for cid, (s, e) in zip(r["meta"]["concepts"], r["meta"]["spans"]):
            in_sentences[(r["lang"], r["meta"]["signer"], cid)].append(e - s)
    compared, stretched_before = 0, 0
    for sample in tiny.split("dictionary"):
        meta, T = sample.meta, sample.num_frames
        assert T >= CLIP_MIN_FRAMES and T % CLIP_UNIT == 0
        np.testing.assert_array_equal(length_indices(T), np.arange(T))  # no stretch, no crop
        s, e = meta["span"]
        assert 0 < s < e < T
        signer = signers[meta["signer"]]
        citation = lex[sample.lang].citation[meta["concept"]].shape[0]
        length = e - s
        lo, hi = round(citation / (signer.speed * JITTER[1])), round(citation / (signer.speed * JITTER[0]))
        assert lo <= length <= hi, (sample.name, length, lo, hi)
        stretched_before += length < 40  # the old length rule would have stretched these
        for other in in_sentences.get((sample.lang, meta["signer"], meta["concept"]), []):
            ratio = length / other
            assert (JITTER[0] / JITTER[1]) * (1 - 1 / other) - 1e-9 <= ratio <= \
                (JITTER[1] / JITTER[0]) * (1 + 1 / other) + 1e-9, (sample.name, length, other)
            compared += 1
        if meta["source"] == "isolated":
            # rest before and after the sign (with the signer's posture and noise): at least the 4 held frames
            rest = ph.rest_frame()
            for slot, k in zip((ph.NECK, ph.HEAD, ph.L_COLLAR, ph.R_COLLAR, ph.L_SHOULDER, ph.R_SHOULDER),
                               range(0, 18, 3)):
                rest[slot] += signer.posture[k:k + 3]
            arms = np.r_[ph.L_SHOULDER.start:ph.R_WRIST.stop]
            for frame in (sample.frames[0], sample.frames[-1]):
                np.testing.assert_allclose(frame[arms], rest[arms], atol=6 * signer.noise + 1e-3)
            assert np.ptp(sample.frames[s:e][:, arms], axis=0).max() > 0.02  # the sign itself moves
    assert compared > 20 and stretched_before > 0.9 * len(tiny.split("dictionary"))
