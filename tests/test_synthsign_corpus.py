"""SynthSign: determinism, the two seeds, dictionary coverage, grammar reordering, rotation ranges, hand placement.

The long tail, the dictionary exemplars and the German spellings of corpus version 2: tests/test_synthsign_longtail.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from soke_lightning.core.layout import FIXED_BETAS, RAW_SLICES
from soke_lightning.data.store import open_store
from soke_lightning.synthsign import phonology as ph
from soke_lightning.synthsign.generator import DICTIONARY_EXEMPLARS, LANGS, build_lexicon, generate
from soke_lightning.synthsign.grammar import (
    ClauseSampler,
    realize,
    sign_sequence,
    surface_forms,
    text_concepts,
    unambiguous_forms,
)
from soke_lightning.synthsign.lexicon import BY_ID, CONCEPTS, SPOKEN_OF


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate(root / "a", preset="tiny", seed=0, lexicon_seed=0)
    generate(root / "b", preset="tiny", seed=0, lexicon_seed=0)
    generate(root / "c", preset="tiny", seed=1, lexicon_seed=0)
    return root


def _bytes(path):
    return path.read_bytes()


def test_same_seeds_give_identical_bytes(stores):
    for split in ("train", "val", "test", "dictionary"):
        for name in ("frames.bin", "index.jsonl"):
            assert _bytes(stores / "a" / split / name) == _bytes(stores / "b" / split / name), (split, name)


def test_new_seed_new_sentences_same_signs(stores):
    a, c = open_store(stores / "a"), open_store(stores / "c")
    # the seed draws the sentences, signers and exemplars (so the dictionary's frames and, through the evaluated
    # vocabulary, some of its words); the lexicon seed fixes what it may hold and in which coverage order
    assert _bytes(stores / "a" / "dictionary" / "frames.bin") != _bytes(stores / "c" / "dictionary" / "frames.bin")
    lex = build_lexicon(0)
    for store in (a, c):
        for r in store.split("dictionary").records:
            assert r["meta"]["concept"] in lex[r["lang"]].dictionary_order
    texts_a = {s.text for s in a.split("train")}
    texts_c = {s.text for s in c.split("train")}
    assert len(texts_a & texts_c) < 0.2 * len(texts_a)
    # the same concept is signed the same way (up to signer style) in both: compare the canonical citation
    for sample in list(c.split("test"))[:5]:
        for cid in sample.meta["concepts"]:
            assert cid in lex[sample.lang].citation


def test_no_sentence_repeats_across_splits(stores):
    store = open_store(stores / "a")
    train = {s.text for s in store.split("train")}
    assert not train & {s.text for s in store.split("test")}


@pytest.mark.parametrize("coverage", [0.0, 0.25, 0.6, 1.0])
def test_dictionary_coverage_fraction(coverage):
    lex = build_lexicon(0)
    vocabulary = {c.id for c in CONCEPTS[::2]}
    required = {"teacher", "paris"}
    for lang in LANGS:
        eligible = len(lex[lang].dictionary_order)
        assert len(CONCEPTS) - 3 <= eligible <= len(CONCEPTS)
        assert len(lex[lang].dictionary_words(coverage)) == round(coverage * eligible)
        words = lex[lang].dictionary_words(coverage, vocabulary, required)
        pool = [c for c in lex[lang].dictionary_order if c in vocabulary]
        assert set(words) == set(pool[:round(coverage * len(pool))]) | required
        assert len(set(words)) == len(words)
    smaller = set(lex["asl"].dictionary_words(0.25, vocabulary))
    assert smaller <= set(lex["asl"].dictionary_words(0.6, vocabulary))
    with pytest.raises(ValueError, match="sie|she|they"):
        lex["dgs"].dictionary_words(0.5, vocabulary, {"she"})  # "sie" names she and they: no entry can hold it


def test_store_dictionary_matches_default_coverage(stores):
    store = open_store(stores / "a")
    d = store.split("dictionary")
    lex = build_lexicon(0)
    for lang in LANGS:
        used = {c for split in ("train", "val", "test") for s in store.split(split).records if s["lang"] == lang
                for c in s["meta"]["concepts"]}
        evaluated = {c for split in ("val", "test") for s in store.split(split).records if s["lang"] == lang
                     for c in s["meta"]["concepts"]}
        words = lex[lang].dictionary_words(0.6, used, evaluated)
        assert d.langs.count(lang) == len(DICTIONARY_EXEMPLARS) * len(words)
        assert [r["meta"]["concept"] for r in d.records if r["lang"] == lang][::len(DICTIONARY_EXEMPLARS)] == words
    sample = d[0]
    assert sample.name.startswith(f"{sample.lang}_dict_") and sample.meta["concept"] in BY_ID


def test_sentence_meta_and_spans(stores):
    store = open_store(stores / "a")
    for s in store.split("train"):
        meta = s.meta
        assert len(meta["concepts"]) == len(meta["spans"]) == len(meta["glosses"]) >= 2
        starts = [a for a, _ in meta["spans"]]
        assert starts == sorted(starts) and meta["spans"][-1][1] < s.num_frames
        assert 40 <= s.num_frames <= 400, s.num_frames
        if s.lang == "csl":
            assert " " not in s.text
    assert sorted(set(store.split("train").langs)) == list(LANGS)


def _clauses(template, n=30, seed=0):
    sampler = ClauseSampler({c.id: 1.0 for c in CONCEPTS}, np.random.default_rng(seed))
    out = []
    while len(out) < n:
        c = sampler.sample()
        if c.template == template:
            out.append(c)
    return out


def test_dgs_is_verb_final_while_german_text_is_not():
    differ = 0
    for c in _clauses("transitive"):
        signs = sign_sequence(c, "dgs")
        assert signs.index(c.verb.id) > signs.index(c.obj.head.id)
        text = text_concepts(realize(c, "de")[1])
        if c.tense == "present":
            assert text.index(c.verb.id) < text.index(c.obj.head.id)
            differ += 1
    assert differ > 0


def test_wh_words_last_in_signs_first_in_text():
    for template in ("wh_object", "wh_subject", "wh_why"):
        for c in _clauses(template, n=10):
            for lang in LANGS:
                assert sign_sequence(c, lang)[-1] == c.wh.id
            assert text_concepts(realize(c, "en")[1])[0] == c.wh.id
            assert text_concepts(realize(c, "de")[1])[0] == c.wh.id


def test_asl_topic_first_and_modifiers_after_nouns():
    for c in _clauses("transitive"):
        asl = sign_sequence(c, "asl")
        assert asl.index(c.obj.head.id) < asl.index(c.subj.head.id)
        for mod in (c.obj.adj, c.obj.num):
            if mod is not None:
                for lang in LANGS:
                    seq = sign_sequence(c, lang)
                    assert seq.index(mod.id) > seq.index(c.obj.head.id)
                assert text_concepts(realize(c, "en")[1]).index(mod.id) < \
                    text_concepts(realize(c, "en")[1]).index(c.obj.head.id)


def test_function_words_have_no_sign():
    c = _clauses("transitive", n=1)[0]
    for spoken in ("en", "de", "zh"):
        tokens = realize(c, spoken)[1]
        assert {cid for _, cid in tokens if cid} == set(sign_sequence(c, "asl"))


def _concept_phrases(tokens):
    """(concept, phrase) of every run of consecutive tokens of one concept (lower case, space-joined)."""
    out, i = [], 0
    while i < len(tokens):
        cid = tokens[i][1]
        j = i + 1
        while cid is not None and j < len(tokens) and tokens[j][1] == cid:
            j += 1
        if cid is not None:
            out.append((cid, " ".join(w for w, _ in tokens[i:j]).lower()))
        i = j
    return out


def test_surface_forms_cover_every_word_the_grammar_writes():
    sampler = ClauseSampler({c.id: 1.0 for c in CONCEPTS}, np.random.default_rng(3))
    unknown, seen = {}, set()
    for _ in range(6000):
        clause = sampler.sample()
        for spoken in ("en", "de", "zh"):
            for cid, phrase in _concept_phrases(realize(clause, spoken)[1]):
                c = BY_ID[cid]
                known = {w.lower() for w in (c.word(spoken), *surface_forms(c, spoken))}
                # a separable verb's particle ("ruft ... an") is not a form; a pronoun may follow itself ("er ihn")
                particle = c.forms.get("de_3sg", "").split()[1:] if spoken == "de" else []
                if phrase not in known and not all(w in known or w in particle for w in phrase.split()):
                    unknown.setdefault(spoken, set()).add((cid, phrase))
                seen.add((spoken, phrase))
    assert not unknown, f"words the grammar writes that surface_forms misses: {unknown}"
    for spoken, phrase in [("en", "cups"), ("en", "police officers"), ("en", "ate"), ("de", "mag"), ("de", "hilft"),
                           ("de", "schlechte"), ("de", "handys"), ("de", "ruft")]:
        assert (spoken, phrase) in seen, phrase  # the sample above does exercise inflection


def test_surface_forms_per_language_and_ambiguous_forms_dropped():
    assert surface_forms(BY_ID["cup"], "en") == ("cups",)
    assert surface_forms(BY_ID["read"], "en") == ("reads",)  # past "read" = the citation form
    assert surface_forms(BY_ID["call"], "de") == ("rufe", "rufst", "ruft", "rufen", "angerufen")
    assert surface_forms(BY_ID["bad"], "de") == ("schlechte", "schlechten", "schlechter", "schlechtes")
    assert surface_forms(BY_ID["where"], "de") == ("wohin",)
    assert all(surface_forms(c, "zh") == () for c in CONCEPTS)
    de = unambiguous_forms("de")
    # "Spiele" = plural of Spiel and 1sg of spielen; "ihr" = dative of sie (she) and sie (they): no sign to pick
    assert "Spiele" in surface_forms(BY_ID["game"], "de") and "Spiele" not in de["game"]
    assert "spiele" not in de["play"] and "ihr" not in de["she"] + de["they"]
    assert de["like"] == ("mag", "magst", "gemocht") and de["phone"] == ("Handys",)
    owners = {}
    for cid, forms in de.items():
        for f in (BY_ID[cid].de, *forms):
            owners.setdefault(f.lower(), set()).add(cid)
    assert all(len(owners[f.lower()]) == 1 for forms in de.values() for f in forms)


def test_dictionary_split_records_each_signs_forms(stores):
    d = open_store(stores / "a").split("dictionary")
    forms = {lang: unambiguous_forms(SPOKEN_OF[lang]) for lang in LANGS}
    for r in d.records:
        assert r["meta"]["forms"] == list(forms[r["lang"]][r["meta"]["concept"]])
    assert any(r["meta"]["forms"] for r in d.records if r["lang"] == "dgs")
    assert not any(r["meta"]["forms"] for r in d.records if r["lang"] == "csl")


def _angle(raw, sl):
    return np.linalg.norm(raw[:, sl], axis=-1)


def test_rotations_within_stated_ranges(stores):
    store = open_store(stores / "a")
    frames = np.concatenate([s.frames for split in ("train", "dictionary") for s in store.split(split)])
    assert np.all(frames[:, :36] == 0.0), "root and lower body must stay at rest"
    np.testing.assert_allclose(frames[:, RAW_SLICES["smplx_shape"]], np.tile(FIXED_BETAS, (len(frames), 1)),
                               atol=1e-6)
    groups = {"neck": [ph.NECK], "head": [ph.HEAD], "collar": [ph.L_COLLAR, ph.R_COLLAR],
              "shoulder": [ph.L_SHOULDER, ph.R_SHOULDER], "elbow": [ph.L_ELBOW, ph.R_ELBOW],
              "wrist": [ph.L_WRIST, ph.R_WRIST], "jaw": [ph.JAW]}
    for group, slots in groups.items():
        for sl in slots:
            assert _angle(frames, sl).max() <= ph.JOINT_LIMITS[group], group
    hands = np.concatenate([frames[:, ph.LHAND], frames[:, ph.RHAND]]).reshape(-1, 3)
    assert np.linalg.norm(hands, axis=-1).max() <= ph.JOINT_LIMITS["finger"]
    assert np.abs(frames[:, ph.EXPR]).max() <= ph.EXPRESSION_LIMIT
    # elbows only flex forward: right elbow about +y, left about -y (mirror)
    assert frames[:, ph.R_ELBOW.start + 1].min() > -0.1 and frames[:, ph.L_ELBOW.start + 1].max() < 0.1


def test_citation_signs_need_almost_no_clamping():
    """The IK solutions themselves respect the limits (clamping is a safety net for signer style and noise)."""
    lex = build_lexicon(0)
    frames = np.concatenate([m for lang in LANGS for m in lex[lang].citation.values()])
    clamped = ph.clamp_rotations(frames.copy())
    assert np.mean(np.abs(clamped - frames).max(axis=1) > 1e-6) < 0.01


def test_signs_move_and_differ():
    lex = build_lexicon(0)
    for lang in LANGS:
        keys = {s.key() for s in lex[lang].signs.values()}
        assert len(keys) == len(CONCEPTS)
        moving = [np.ptp(m[:, ph.R_SHOULDER.start:ph.R_WRIST.stop], axis=0).max() for m in lex[lang].citation.values()]
        assert np.median(moving) > 0.05
    # the same concept is a different sign in different sign languages
    same = sum(lex["asl"].signs[c.id].key() == lex["dgs"].signs[c.id].key() for c in CONCEPTS)
    assert same < 3


def test_locations_put_the_hand_at_the_body_landmark():
    torch = pytest.importorskip("torch")
    from soke_lightning.kinematics import get_joint_backend

    backend = get_joint_backend("builtin", hand_mean="flat")
    ids = {n: i for i, n in enumerate(backend.joint_names)}
    names, targets, normals, fingers = [], [], [], []
    for loc, (_, _, orients, _, _) in ph.LOCATIONS.items():
        for o in orients:
            n, f = ph.ORIENTATIONS[o]
            names.append(loc)
            targets.append(ph.location_target(loc))
            normals.append(ph._dir(n))
            fingers.append(ph._dir(f))
    sol = ph.solve_arm(np.array(targets), np.array(normals), np.array(fingers),
                       init=np.array([ph.INIT_FACE if n in ("forehead", "chin", "mouth", "cheek") else ph.INIT_CHEST
                                      for n in names]))
    raw = np.tile(ph.rest_frame(), (len(names), 1))
    raw[:, ph.R_SHOULDER], raw[:, ph.R_ELBOW], raw[:, ph.R_WRIST] = sol[:, :3], sol[:, 3:6], sol[:, 6:]
    joints = backend(torch.tensor(raw)).numpy()
    palm = 0.5 * (joints[:, ids["right_wrist"]] + joints[:, ids["right_middle_tip"]])
    np.testing.assert_allclose(palm, np.array(targets), atol=0.01)
    nose, neck = joints[0, ids["nose"]], joints[0, ids["neck"]]
    for k, loc in enumerate(names):
        if loc in ("chin", "mouth", "forehead", "cheek"):
            assert np.linalg.norm(palm[k] - nose) < 0.13, loc
        if loc in ("chest", "stomach"):
            assert palm[k][1] < neck[1] and abs(palm[k][0]) < 0.1
        if loc == "side":
            assert palm[k][0] < joints[0, ids["right_shoulder"]][0]
        # the elbow stays outside the torso, and below the shoulder unless the hand is at the face
        assert joints[k, ids["right_elbow"]][0] <= joints[k, ids["right_shoulder"]][0] + 0.05
        if loc not in ("chin", "mouth", "forehead", "cheek"):
            assert joints[k, ids["right_elbow"]][1] <= joints[k, ids["right_shoulder"]][1] + 0.03
