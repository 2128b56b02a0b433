"""The two reference baselines every trained model must beat, scored with SOKE's DTW metrics (`soke baselines`).

* **mean pose**: the train-set mean frame repeated for the ground-truth length (an oracle length: with DTW's summed
  cost, a different length would change the scale, not the skill).
* **dictionary concatenation**: match the TEXT (not the ground-truth concepts) against the store's ``dictionary``
  split exactly as retrieval's ``words`` matcher does (:class:`~soke_lightning.retrieval.matcher.WordMatcher`:
  greedy longest match of the entries' words and of their aliases, i.e. the inflected forms the samples record in
  ``meta["forms"]``, added as ``soke dict build`` adds them) and concatenate, in text order, the sign of each hit's
  FIRST exemplar (only its ``meta["span"]`` frames, without the clip's rest padding; the whole clip when a sample
  has no span) with eased transitions and rest at both ends. Words without an entry are skipped; a sentence
  without any hit is the rest pose held for 40 frames.

Scores: joints from the built-in skeleton; DTW-JPE and DTW-PA-JPE per language x part through
:func:`soke_lightning.metrics.functional.parts.score_parts`; the ground truth gets SOKE's length rule.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from soke_lightning.data.normalization import STATS_FILE, compute_stats, load_stats
from soke_lightning.data.processing import length_indices
from soke_lightning.data.store import PackedStore, StoreSplit, open_store
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.metrics.functional.parts import parts_from_joint_sets, score_parts
from soke_lightning.retrieval.dictionary import SignDictionary, add_form_aliases, normalize_word
from soke_lightning.retrieval.matcher import WordMatcher
from soke_lightning.synthsign.generator import CANONICAL, compose
from soke_lightning.synthsign.phonology import rest_frame

log = logging.getLogger(__name__)

BASELINES = ("mean_pose", "dictionary")
#: The DTW variants scored (see :data:`soke_lightning.metrics.functional.dtw.VARIANTS`).
METRICS = ("dtw_jpe", "dtw_pa_jpe")
#: Placeholder tokenizer identity of the code-free dictionary the baseline matches with (it holds no codes).
_MATCH_ONLY = "synthsign-baseline-match-only"


def dictionary_matcher(split: StoreSplit) -> tuple[WordMatcher, dict[tuple[str, str], dict]]:
    """The ``words`` matcher over a dictionary split, and (lang, normalised word) -> its first exemplar's record.

    The matcher is retrieval's own (:class:`~soke_lightning.retrieval.matcher.WordMatcher`, no inflection
    fallback) over a code-free :class:`~soke_lightning.retrieval.dictionary.SignDictionary` with one placeholder
    exemplar per word and the samples' ``meta["forms"]`` as aliases (:func:`add_form_aliases`, as ``soke dict
    build`` adds them), so the baseline finds exactly the words retrieval finds.
    """
    dictionary = SignDictionary(_MATCH_ONLY, ("code",), {"code": 1})
    first: dict[tuple[str, str], dict] = {}
    forms = []
    for r in split.records:  # store order = exemplar order: the first sample of a word is its first exemplar
        key = normalize_word(r["text"])
        if (r["lang"], key) not in first:
            first[(r["lang"], key)] = r
            dictionary.add(r["lang"], key, np.zeros((1, 1), dtype=np.int64))
        forms.append((r["lang"], r["text"], list((r.get("meta") or {}).get("forms") or [])))
    add_form_aliases(dictionary, forms)
    return WordMatcher(dictionary), first


def sign_frames(sample) -> np.ndarray:
    """The sign of a dictionary sample: its ``meta["span"]`` frames (the whole clip without a span), float64."""
    span = (sample.meta or {}).get("span")
    frames = sample.frames if span is None else sample.frames[span[0]:span[1]]
    return frames.astype(np.float64)


def mean_pose_predictions(store: PackedStore, split: str) -> dict[str, np.ndarray]:
    """Sample name -> [T_gt, 179] mean train frame."""
    if (store.root / STATS_FILE).is_file():
        mean = load_stats(store.root / STATS_FILE)[0].numpy()
    else:
        mean = compute_stats(s.frames for s in store.split("train"))[0].numpy()
    return {r["name"]: np.tile(mean, (r["length"], 1)).astype(np.float32) for r in store.split(split).records}


def dictionary_predictions(store: PackedStore, split: str) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Sample name -> concatenated dictionary signs; and per language the fraction of sentence concepts hit.

    A concept is hit when a matched entry's first exemplar has it as ``meta["concept"]`` (SynthSign); samples
    without ``meta["concepts"]`` count one word and their matched entries instead (capped at 1 per sentence)."""
    if "dictionary" not in store:
        raise KeyError(f"{store.root} has no 'dictionary' split (it has {list(store.splits)}); "
                       f"generate the store with `soke synth`")
    dictionary = store.split("dictionary")
    matcher, first = dictionary_matcher(dictionary)
    frames: dict[str, np.ndarray] = {}
    out, hits, words = {}, defaultdict(int), defaultdict(int)
    for r in store.split(split).records:
        matched = [first[(r["lang"], m.word)] for m in matcher.match(r["text"], r["lang"])]
        entries = [e["name"] for e in matched]
        concepts = set(r["meta"].get("concepts", []))
        if concepts:
            hits[r["lang"]] += len(concepts & {(e.get("meta") or {}).get("concept") for e in matched})
        else:
            hits[r["lang"]] += min(1, len(entries))
        words[r["lang"]] += max(1, len(concepts))
        if not entries:
            out[r["name"]] = np.tile(rest_frame(), (40, 1)).astype(np.float32)
            continue
        for name in entries:
            if name not in frames:
                frames[name] = sign_frames(dictionary.by_name(name))
        out[r["name"]] = compose([frames[name] for name in entries], CANONICAL, None)[0].astype(np.float32)
    return out, {lang: hits[lang] / words[lang] for lang in words}


def score(store: PackedStore, split: str, predictions: dict[str, np.ndarray], batch_size: int = 32) -> dict:
    """{lang: {part: {metric: mean over samples}}} of ``predictions`` against the split's ground truth."""

    backend = get_joint_backend("builtin")
    parts = parts_from_joint_sets(backend.joint_sets)
    sp = store.split(split)
    by_lang: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(sp.records):
        by_lang[r["lang"]].append(i)

    out: dict = {}
    for lang, idx in sorted(by_lang.items()):
        sums: dict = defaultdict(float)
        for start in range(0, len(idx), batch_size):
            chunk = [sp[i] for i in idx[start:start + batch_size]]
            jg, lg = backend.padded_joints([s.frames[length_indices(s.num_frames)] for s in chunk])
            jp, lp = backend.padded_joints([predictions[s.name] for s in chunk])
            scores = score_parts(jp, jg, lp, lg, parts, METRICS)  # [B, metric, part]
            for p, part in enumerate(parts):
                for m, metric in enumerate(METRICS):
                    sums[(part.name, metric)] += float(scores[:, m, p].sum())
        out[lang] = {p.name: {m: sums[(p.name, m)] / len(idx) for m in METRICS} for p in parts}
    return out


def run_baselines(store_path: str | Path, split: str = "test") -> dict:
    """Score both baselines on ``split``: {baseline: {lang: {part: {metric: value}}}, "dictionary_hit_rate": ...}."""
    store = open_store(store_path)
    if store.layout.is_keypoints:
        raise ValueError(f"{store_path}: `soke baselines` scores SMPL-X frames through forward kinematics; this store "
                         f"has keypoint layout {store.layout.name!r} (scripts/fingerspelling.py shows keypoint "
                         f"baselines: mean pose and concatenated dictionary codes)")
    results: dict = {"split": split}
    results["mean_pose"] = score(store, split, mean_pose_predictions(store, split))
    preds, hit_rate = dictionary_predictions(store, split)
    results["dictionary"] = score(store, split, preds)
    results["dictionary_hit_rate"] = hit_rate
    return results
