"""The two reference baselines every trained model must beat, scored with SOKE's DTW metrics (`soke baselines`).

* **mean pose**: the train-set mean frame repeated for the ground-truth length (an oracle length: with DTW's summed
  cost, a different length would change the scale, not the skill).
* **dictionary concatenation**: tokenise the TEXT (not the ground-truth concepts), look each word up in the
  store's ``dictionary`` split (longest match first) and concatenate the citation signs in text order with eased
  transitions and rest at both ends. Words without an entry are skipped; a sentence without any hit is the rest
  pose held for 40 frames.

Scores: joints from the built-in skeleton; DTW-JPE and DTW-PA-JPE per language x part through
:func:`soke_lightning.metrics.functional.parts.score_parts`; the ground truth gets SOKE's length rule.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from soke_lightning.core.languages import get_language
from soke_lightning.data.normalization import STATS_FILE, compute_stats, load_stats
from soke_lightning.data.processing import length_indices
from soke_lightning.data.store import PackedStore, open_store
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.metrics.functional.parts import parts_from_joint_sets, score_parts
from soke_lightning.synthsign.generator import CANONICAL, compose
from soke_lightning.synthsign.phonology import rest_frame

log = logging.getLogger(__name__)

BASELINES = ("mean_pose", "dictionary")
#: The DTW variants scored (see :data:`soke_lightning.metrics.functional.dtw.VARIANTS`).
METRICS = ("dtw_jpe", "dtw_pa_jpe")
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)


def tokenize(text: str, char_level: bool) -> list[str]:
    """Lower-cased words (punctuation dropped); characters for Chinese."""
    text = text.lower()
    if char_level:
        return [ch for ch in text if _WORD.fullmatch(ch)]
    return _WORD.findall(text)


def match_words(text: str, keys: dict[str, str], char_level: bool) -> list[str]:
    """Greedy longest match of ``text`` against dictionary ``keys`` (lower-cased key -> entry name), in text order."""
    tokens = tokenize(text, char_level)
    joiner = "" if char_level else " "
    longest = max((len(tokenize(k, char_level)) for k in keys), default=1)
    out, i = [], 0
    while i < len(tokens):
        for n in range(min(longest, len(tokens) - i), 0, -1):
            key = joiner.join(tokens[i:i + n])
            if key in keys:
                out.append(keys[key])
                i += n
                break
        else:
            i += 1
    return out


def mean_pose_predictions(store: PackedStore, split: str) -> dict[str, np.ndarray]:
    """Sample name -> [T_gt, 179] mean train frame."""
    if (store.root / STATS_FILE).is_file():
        mean = load_stats(store.root / STATS_FILE)[0].numpy()
    else:
        mean = compute_stats(s.frames for s in store.split("train"))[0].numpy()
    return {r["name"]: np.tile(mean, (r["length"], 1)).astype(np.float32) for r in store.split(split).records}


def dictionary_predictions(store: PackedStore, split: str) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Sample name -> concatenated citation signs; and per language the fraction of text words that hit."""
    if "dictionary" not in store:
        raise KeyError(f"{store.root} has no 'dictionary' split (it has {list(store.splits)}); "
                       f"generate the store with `soke synth`")
    dictionary = store.split("dictionary")
    keys: dict[str, dict[str, str]] = defaultdict(dict)
    for r in dictionary.records:
        keys[r["lang"]][r["text"].lower()] = r["name"]
    frames = {r["name"]: None for r in dictionary.records}
    out, hits, words = {}, defaultdict(int), defaultdict(int)
    for r in store.split(split).records:
        char_level = get_language(r["lang"]).char_level_bleu
        entries = match_words(r["text"], keys[r["lang"]], char_level)
        hits[r["lang"]] += len(entries)
        words[r["lang"]] += max(1, len(r["meta"].get("concepts", [])))
        if not entries:
            out[r["name"]] = np.tile(rest_frame(), (40, 1)).astype(np.float32)
            continue
        citations = []
        for name in entries:
            if frames[name] is None:
                frames[name] = dictionary.by_name(name).frames.astype(np.float64)
            citations.append(frames[name])
        out[r["name"]] = compose(citations, CANONICAL, None)[0].astype(np.float32)
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
    results: dict = {"split": split}
    results["mean_pose"] = score(store, split, mean_pose_predictions(store, split))
    preds, hit_rate = dictionary_predictions(store, split)
    results["dictionary"] = score(store, split, preds)
    results["dictionary_hit_rate"] = hit_rate
    return results
