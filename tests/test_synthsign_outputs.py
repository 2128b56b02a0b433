"""SynthSign outputs: the official layout round-trips through `soke prepare`; the baselines are scored and ordered."""

from __future__ import annotations

import numpy as np
import pytest

from soke_lightning.data.store import open_store
from soke_lightning.pipelines.baselines import match_words, run_baselines
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


def test_match_words_longest_first():
    keys = {"how many": "a", "how": "b", "many": "c", "hund": "d", "书": "e", "图书馆": "f"}
    assert match_words("How many dogs? How", keys, char_level=False) == ["a", "b"]
    assert match_words("Der Hund.", keys, char_level=False) == ["d"]
    assert match_words("他去图书馆看书。", keys, char_level=True) == ["f", "e"]


def test_baselines_dictionary_beats_mean_pose(packed):
    results = run_baselines(packed, "test")
    for lang in ("asl", "csl", "dgs"):
        assert 0.2 < results["dictionary_hit_rate"][lang] <= 1.0
        for metric in ("dtw_jpe", "dtw_pa_jpe"):
            mean = sum(results["mean_pose"][lang][p][metric] for p in ("body", "lhand", "rhand"))
            dic = sum(results["dictionary"][lang][p][metric] for p in ("body", "lhand", "rhand"))
            assert 0 < dic < mean, (lang, metric, dic, mean)
