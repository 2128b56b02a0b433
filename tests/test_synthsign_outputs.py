"""SynthSign outputs: the official layout round-trips through `soke prepare`; the baselines are scored and ordered;
the dictionary baseline matches words like retrieval and concatenates the first exemplars' signs."""

from __future__ import annotations

import numpy as np
import pytest

from soke_lightning.data.store import Sample, StoreWriter, open_store
from soke_lightning.pipelines.baselines import (
    dictionary_matcher,
    dictionary_predictions,
    run_baselines,
    sign_frames,
)
from soke_lightning.synthsign.generator import OFFICIAL_LAYOUT, generate


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "packed"
    generate(out, preset="tiny", seed=3, lexicon_seed=0)
    return out


def test_official_layout_round_trips_through_prepare(packed, tmp_path):
    from soke_lightning.data.prepare import prepare_corpus

    generate(tmp_path / "official", preset="tiny", seed=3, lexicon_seed=0, layout="official")
    reference = open_store(packed)
    for lang, (corpus, folder) in OFFICIAL_LAYOUT.items():
        prepare_corpus(corpus, tmp_path / "official" / folder, tmp_path / f"store_{lang}", workers=0, stats=False,
                       progress=False)
        store = open_store(tmp_path / f"store_{lang}")
        for split in ("train", "val", "test"):
            ours = {s.name.split("/")[-1]: s for s in store.split(split)}
            ref = [s for s in reference.split(split) if s.lang == lang]
            assert sorted(ours) == sorted(s.name for s in ref), (lang, split)
            for s in ref:
                np.testing.assert_array_equal(ours[s.name].frames, s.frames)
                assert ours[s.name].text == s.text
    dictionary = open_store(tmp_path / "official" / "dictionary").split("dictionary")
    assert len(dictionary) == len(reference.split("dictionary"))


def _dictionary_store(root):
    """A hand-made dictionary split: two exemplars of "mögen" (the first with a sign span), phrases, Chinese."""
    entries = [("dgs", "mögen", ["mag", "magst", "gemocht"], [2, 5]), ("dgs", "mögen", ["mag", "magst"], None),
               ("dgs", "Hund", ["Hunde"], [1, 3]), ("asl", "how many", [], None), ("asl", "how", [], None),
               ("asl", "dog", ["dogs"], None), ("asl", "have", ["has"], None), ("csl", "书", [], None),
               ("csl", "图书馆", [], None)]
    writer = StoreWriter(root, info={"corpus": "synthsign"}, overwrite=True)
    with writer.split("dictionary") as w:
        for k, (lang, text, forms, span) in enumerate(entries):
            frames = np.full((8, 179), float(k), np.float32)
            meta = {"concept": text, "forms": forms, **({"span": span} if span else {})}
            w.add(Sample(f"d{k}", text, lang, "synthsign", frames, 25.0, meta))
    return open_store(root).split("dictionary")


def test_dictionary_baseline_matches_like_retrieval_and_uses_first_sign_span(tmp_path):
    split = _dictionary_store(tmp_path / "dict")
    matcher, first = dictionary_matcher(split)
    words = lambda text, lang: [m.word for m in matcher.match(text, lang)]  # noqa: E731
    assert words("How many dogs? How", "asl") == ["how many", "dog", "how"]  # longest first, plural alias
    assert words("She has a dog.", "asl") == ["dog"]  # a one-word alias that is a function word is ignored
    assert words("Du magst die Hunde.", "dgs") == ["mögen", "hund"]  # inflected forms through meta["forms"]
    assert words("他去图书馆看书。", "csl") == ["图书馆", "书"]
    assert first[("dgs", "mögen")]["name"] == "d0"  # the first exemplar of a word
    # only the sign span of the first exemplar, without its rest padding; the whole clip without a span
    assert sign_frames(split.by_name("d0")).shape == (3, 179) and np.all(sign_frames(split.by_name("d0")) == 0.0)
    assert sign_frames(split.by_name("d3")).shape == (8, 179)


def test_dictionary_baseline_concatenates_sign_spans(packed):
    store = open_store(packed)
    preds, _ = dictionary_predictions(store, "test")
    d = store.split("dictionary")
    matcher, first = dictionary_matcher(d)
    for r in store.split("test").records[:6]:
        spans = [first[(r["lang"], m.word)]["meta"]["span"] for m in matcher.match(r["text"], r["lang"])]
        # rest hold 4 + rest transition 9 + signs joined by 6-frame transitions + 9 + 4 (canonical, no jitter)
        expected = 4 + 9 + sum(e - s for s, e in spans) + 6 * (len(spans) - 1) + 9 + 4
        assert preds[r["name"]].shape == (expected, 179)


@pytest.fixture(scope="module")
def baselines(packed):
    return run_baselines(packed, "test")


def test_baselines_dictionary_beats_mean_pose(baselines):
    results = baselines
    for lang in ("asl", "csl", "dgs"):
        # every concept of a test sentence has an entry and its inflected forms are aliases (German "sie" and the
        # forms two concepts share excepted)
        assert 0.9 <= results["dictionary_hit_rate"][lang] <= 1.0
        for metric in ("dtw_jpe", "dtw_pa_jpe"):
            mean = sum(results["mean_pose"][lang][p][metric] for p in ("body", "lhand", "rhand"))
            dic = sum(results["dictionary"][lang][p][metric] for p in ("body", "lhand", "rhand"))
            assert 0 < dic < mean, (lang, metric, dic, mean)


def test_baselines_slrtp_protocol(baselines):
    slrtp = baselines["slrtp"]
    assert set(slrtp) == {"ground_truth", "mean_pose", "dictionary"}
    for lang in ("asl", "csl", "dgs", "all"):
        gt, mean, dic = (slrtp[s][lang] for s in ("ground_truth", "mean_pose", "dictionary"))
        assert gt == {"slrtp_dtw_mje": 0.0, "wrist_distance_ratio": 1.0, "duration_ratio": 1.0}
        # the mean pose never moves and has the ground truth's length; the dictionary moves
        assert mean["wrist_distance_ratio"] == 0.0 and mean["duration_ratio"] == 1.0
        assert mean["slrtp_dtw_mje"] > 0 and dic["slrtp_dtw_mje"] > 0 and dic["wrist_distance_ratio"] > 0.2
