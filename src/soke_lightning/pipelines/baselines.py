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
:func:`soke_lightning.metrics.functional.parts.score_parts`; the ground truth gets SOKE's length rule. Beside them,
the SLRTP 2025 protocol (:func:`slrtp_score`: FastDTW DTW-MJE, wrist distance ratio, duration ratio, per language and
pooled) of the ground truth itself, the mean pose and the dictionary concatenation.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from soke_lightning.core.layout import FEATURE_DIM, RAW_DIM, features_to_raw
from soke_lightning.data.normalization import STATS_FILE, compute_stats, load_stats
from soke_lightning.data.processing import length_indices
from soke_lightning.data.store import PackedStore, StoreSplit, open_store
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.metrics.functional.parts import parts_from_joint_sets, score_parts
from soke_lightning.metrics.functional.slrtp import slrtp_joints, wrist_joints
from soke_lightning.metrics.slrtp import SLRTPMotionMetrics
from soke_lightning.retrieval.dictionary import SignDictionary, add_form_aliases, normalize_word
from soke_lightning.retrieval.matcher import WordMatcher
from soke_lightning.synthsign.generator import CANONICAL, compose
from soke_lightning.synthsign.phonology import rest_frame

log = logging.getLogger(__name__)

BASELINES = ("mean_pose", "dictionary")
#: Rows of the SLRTP protocol table of ``soke baselines`` (the generator's row comes from its own evaluation).
SLRTP_SYSTEMS = ("ground_truth", "mean_pose", "dictionary")
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


def concatenate_signs(text: str, lang: str, dictionary: StoreSplit, matcher: WordMatcher,
                      first: dict[tuple[str, str], dict], frames: dict[str, np.ndarray] | None = None
                      ) -> tuple[np.ndarray, list[dict]]:
    """The dictionary-concatenation baseline of one sentence: [T, 179] float32 frames and the matched exemplars.

    Args:
        text: the sentence; lang: its sign-language key.
        dictionary: the store's ``dictionary`` split; matcher, first: :func:`dictionary_matcher` of it.
        frames: optional cache, exemplar name -> :func:`sign_frames` (filled as signs are read).

    Returns:
        (the hits' first exemplars' signs in text order with eased transitions and rest at both ends, or the rest
        pose held for 40 frames when nothing matched; the store records of the exemplars used, in text order).
    """
    frames = {} if frames is None else frames
    matched = [first[(lang, m.word)] for m in matcher.match(text, lang)]
    if not matched:
        return np.tile(rest_frame(), (40, 1)).astype(np.float32), []
    for record in matched:
        if record["name"] not in frames:
            frames[record["name"]] = sign_frames(dictionary.by_name(record["name"]))
    motion = compose([frames[r["name"]] for r in matched], CANONICAL, None)[0].astype(np.float32)
    return motion, matched


def mean_pose_predictions(store: PackedStore, split: str) -> dict[str, np.ndarray]:
    """Sample name -> [T_gt, 179] mean train frame (T_gt: the ground-truth length after the length rule)."""
    if (store.root / STATS_FILE).is_file():
        mean = load_stats(store.root / STATS_FILE)[0].numpy()
    else:
        mean = compute_stats(s.frames for s in store.split("train"))[0].numpy()
    # the ground truth's length after SOKE's length rule, which every scorer applies to the ground truth
    return {r["name"]: np.tile(mean, (len(length_indices(r["length"])), 1)).astype(np.float32)
            for r in store.split(split).records}


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
        out[r["name"]], matched = concatenate_signs(r["text"], r["lang"], dictionary, matcher, first, frames)
        concepts = set(r["meta"].get("concepts", []))
        if concepts:
            hits[r["lang"]] += len(concepts & {(e.get("meta") or {}).get("concept") for e in matched})
        else:
            hits[r["lang"]] += min(1, len(matched))
        words[r["lang"]] += max(1, len(concepts))
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


def as_raw(sequence) -> torch.Tensor:
    """A motion sequence as official frames [T, 179] float32: raw frames pass, denormalised 133-d features are
    completed with the fixed lower body and shape (docs/design.md §2.8)."""
    seq = torch.as_tensor(np.asarray(sequence) if not isinstance(sequence, torch.Tensor) else sequence,
                          dtype=torch.float32)
    if seq.dim() != 2 or seq.shape[-1] not in (RAW_DIM, FEATURE_DIM):
        raise ValueError(f"a motion sequence must be [T, {RAW_DIM}] official frames or [T, {FEATURE_DIM}] features, "
                         f"got shape {tuple(seq.shape)}")
    return features_to_raw(seq) if seq.shape[-1] == FEATURE_DIM else seq


def slrtp_score(predictions: Sequence, targets: Sequence, langs: Sequence[str], batch_size: int = 32) -> dict:
    """The SLRTP protocol of motion sequences against their ground truth on the built-in skeleton's joints.

    DTW-MJE runs on :func:`~soke_lightning.metrics.functional.slrtp.slrtp_joints` (the 52 body and hand joints, in
    metres), the distance ratio on the wrists (joints 20 ``left_wrist`` and 21 ``right_wrist``).

    Args:
        predictions: N sequences, [T, 179] official frames or [T, 133] denormalised features.
        targets: N ground-truth sequences, same formats.
        langs: N language keys.

    Returns:
        {lang: {slrtp_dtw_mje, wrist_distance_ratio, duration_ratio}} for every language and ``all`` (pooled).
    """
    if not len(predictions) == len(targets) == len(langs):
        raise ValueError(f"{len(predictions)} predictions, {len(targets)} ground-truth sequences and {len(langs)} "
                         f"languages: they must pair up")
    backend = get_joint_backend("builtin")
    metric = SLRTPMotionMetrics(wrist_joints(backend.joint_sets), slrtp_joints(backend.joint_sets),
                                languages=sorted(set(langs)))
    for start in range(0, len(predictions), batch_size):
        stop = start + batch_size
        jp, lp = backend.padded_joints([as_raw(p) for p in predictions[start:stop]])
        jg, lg = backend.padded_joints([as_raw(t) for t in targets[start:stop]])
        metric.update(jp, jg, lp, lg, list(langs[start:stop]))
    out: dict = defaultdict(dict)
    for key, value in metric.compute().items():
        score_name, lang = key.split("/")
        out[lang][score_name] = float(value)
    return dict(out)


def run_baselines(store_path: str | Path, split: str = "test") -> dict:
    """Score both baselines on ``split``.

    Returns:
        {baseline: {lang: {part: {metric: value}}}, "dictionary_hit_rate": {lang: rate}, "slrtp": {system:
        {lang: {score: value}}}} with systems :data:`SLRTP_SYSTEMS`.
    """
    store = open_store(store_path)
    if store.layout.is_keypoints:
        raise ValueError(f"{store_path}: `soke baselines` scores SMPL-X frames through forward kinematics; this store "
                         f"has keypoint layout {store.layout.name!r} (scripts/fingerspelling.py shows keypoint "
                         f"baselines: mean pose and concatenated dictionary codes)")
    results: dict = {"split": split}
    mean_pose = mean_pose_predictions(store, split)
    results["mean_pose"] = score(store, split, mean_pose)
    preds, hit_rate = dictionary_predictions(store, split)
    results["dictionary"] = score(store, split, preds)
    results["dictionary_hit_rate"] = hit_rate
    sp = store.split(split)
    samples = [sp[i] for i in range(len(sp))]
    gts = [s.frames[length_indices(s.num_frames)] for s in samples]
    langs = [s.lang for s in samples]
    results["slrtp"] = {"ground_truth": slrtp_score(gts, gts, langs),
                        "mean_pose": slrtp_score([mean_pose[s.name] for s in samples], gts, langs),
                        "dictionary": slrtp_score([preds[s.name] for s in samples], gts, langs)}
    return results
