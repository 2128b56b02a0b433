"""Retrieval on vs off (issue #7): per-sample DTW-JPE / DTW-PA-JPE of one or two stage-2 checkpoints on a store
split, split into sentences with concepts rare in training and the rest, plus the length and prompt diagnostics
that explain a difference (generated vs ground-truth frames, retrieved entries and code steps, prompt tokens and
truncation, and how the length error correlates with the retrieved code steps).

    OMP_NUM_THREADS=1 python scripts/retrieval_ablation.py \\
        --off outputs/stage2-demo/checkpoints/last.ckpt \\
        --on outputs/stage2-demo-retrieval/checkpoints/last.ckpt \\
        [--dictionary outputs/tokens-demo/dictionary.json] [--store data/synthsign-demo] [--split test] \\
        [--rare-max 3] [--limit N] --json outputs/retrieval_ablation.json

Either checkpoint may be left out. Nothing is re-implemented: each checkpoint is rebuilt with
``LMStage.from_checkpoint``, the split is read through ``SignDataModule`` with the data settings stored in the
checkpoint (same processing, same batch size as its ``soke test``), generation is ``LMStage.generate``, and every
sample is scored with a clone of the stage's own test metric (``SignMotionMetrics``: same joints, alignment and
DTW). So the per-language means of the per-sample values here are the ``test/dtw_*/<lang>/<part>`` numbers of
``soke test`` for the same checkpoint (tests/test_retrieval_ablation.py checks it).

Retrieval-on prompts. A checkpoint trained with retrieval carries the RetrievalCallback's state (dictionary path,
content digest, prompt settings: top_k, max_codes_per_entry, order, matcher, max_prompt_tokens); the prompts are
built with the same functions the callback calls (``retrieve`` + ``fit_to_budget``, the budget being
``max_prompt_tokens`` or the model's ``max_source_length``, counted with the model's text tokenizer).
``--dictionary`` replaces the recorded dictionary path (a different content digest is reported, as the callback
warns); a checkpoint trained without retrieval given as ``--on`` needs ``--dictionary`` and uses SOKE's settings.

Groups. A sentence's concepts are the store's ``meta["concepts"]`` (SynthSign). A concept is *rare* when at most
``--rare-max`` TRAIN sentences of the same language (``--rare-scope language``; ``pooled``: of any language)
contain it. ``rare`` = the sentence has a rare concept, ``common`` = it has none. ``rare_hit`` / ``rare_miss``
split ``rare``: retrieval can only help where the dictionary holds the rare concept AND the matcher finds its word
in the sentence; with a sign dictionary (``--dictionary`` or the on-checkpoint's) a *hit* is a ``words``-matcher
hit (any, not only the top-k) whose dictionary word is a rare concept of the sentence (word -> concept through the
store's ``dictionary`` split); without one it is concept coverage by the store's ``dictionary`` split.
The diagnostics also count, for the on side, rare sentences whose rare concept's entry actually reached the
prompt (not cut by top-k or the token budget).

Scores are SOKE's accumulated DTW costs (metres along the warping path; lower is better). ``all`` (language) is the
mean over languages, as the LM stage reports it; a group's per-language mean is over that language's samples of
the group. Output: a table on stdout and, with ``--json``, every number plus one row per sample.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from soke_lightning.callbacks.retrieval import RetrievalCallback, dictionary_digest
from soke_lightning.data.datamodule import SignDataModule, checkpoint_processing, stratified_subset
from soke_lightning.data.store import open_store
from soke_lightning.metrics.dtw import name_hash
from soke_lightning.retrieval import SignDictionary, WordMatcher, get_matcher, normalize_word
from soke_lightning.retrieval.matcher import fit_to_budget, retrieve
from soke_lightning.training.lm_stage import LMStage

# One intra-op thread: generation is many small ops; on a few busy cores more threads make each step slower
# (measured for stage-2 training, see experiments/stage2/demo.yaml). Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

log = logging.getLogger("retrieval_ablation")

SIDES = ("off", "on")
GROUPS = ("all", "common", "rare", "rare_hit", "rare_miss")
DERIVED_PARTS = ("hand", "avg")
#: SOKE's prompt settings, used for an --on checkpoint that was trained without retrieval.
SOKE_RETRIEVAL = {"top_k": 3, "max_codes_per_entry": 10, "order": "longest", "matcher": "words",
                  "max_prompt_tokens": None}


class AblationError(ValueError):
    """Bad input (missing file, checkpoint without retrieval record and no --dictionary, store without split)."""


@dataclass
class Retrieval:
    """How a side builds retrieval prompts.

    Attributes:
        dictionary: path of the sign dictionary used.
        settings: prompt settings (top_k, max_codes_per_entry, order, matcher, max_prompt_tokens).
        recorded: the checkpoint's RetrievalCallback state (None: the checkpoint was trained without retrieval).
        digest: content digest of the dictionary used.
    """

    dictionary: str
    settings: dict
    recorded: dict | None
    digest: str


@dataclass
class SampleResult:
    """One generated sample of one side.

    Attributes:
        name: sample key ``corpus/name``.
        lang: language key.
        gt_frames / gen_frames: ground-truth frames (after the data processing) and generated frames.
        codes: generated code steps; finished: stopped on </s> (False: ran into max_codes).
        prompt_tokens: encoder tokens of the prompt (subwords + </s> + language code, before truncation).
        encoder_truncated: the prompt was longer than ``max_source_length`` (the encoder cut it).
        entries: retrieved words in prompt order; entry_steps: their code steps in the prompt;
        budget_dropped: entries retrieved but dropped to fit the token budget.
        injected_concepts: concepts of the injected entries (through the store's dictionary split).
        scores: ``{variant: {part: value}}`` including ``hand`` and ``avg``.
    """

    name: str
    lang: str
    gt_frames: int
    gen_frames: int
    codes: int
    finished: bool
    prompt_tokens: int
    encoder_truncated: bool
    entries: list[str] = field(default_factory=list)
    entry_steps: list[int] = field(default_factory=list)
    budget_dropped: int = 0
    injected_concepts: list[str] = field(default_factory=list)
    scores: dict = field(default_factory=dict)

    @property
    def retrieved_steps(self) -> int:
        return sum(self.entry_steps)


# ------------------------------------------------------------------------------------------------------ arguments
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--off", default=None, help="stage-2 checkpoint trained WITHOUT retrieval")
    parser.add_argument("--on", default=None, help="stage-2 checkpoint trained WITH retrieval (its dictionary and "
                        "prompt settings are read from the checkpoint)")
    parser.add_argument("--dictionary", default=None, help="sign dictionary: replaces the --on checkpoint's "
                        "recorded path, and defines rare_hit (default: the --on checkpoint's dictionary)")
    parser.add_argument("--store", default="data/synthsign-demo", help="packed store (default data/synthsign-demo)")
    parser.add_argument("--split", default="test", help="split to generate and score (default test)")
    parser.add_argument("--train-split", default="train", help="split the concept counts come from (default train)")
    parser.add_argument("--rare-max", type=int, default=3, help="a concept is rare when at most this many training "
                        "sentences contain it (default 3)")
    parser.add_argument("--rare-scope", choices=("language", "pooled"), default="language",
                        help="count a concept's training sentences in the same language (default) or in all")
    parser.add_argument("--limit", type=int, default=None, help="score a language-stratified subset of at most N "
                        "samples (smoke runs)")
    parser.add_argument("--batch-size", type=int, default=None, help="generation batch (default: the checkpoint's "
                        "eval_batch_size, i.e. the batches of its `soke test`)")
    parser.add_argument("--tokenizer", default=None, help="stage-1 checkpoint instead of the path stored in the "
                        "stage-2 checkpoints (hash must match)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--json", default=None, help="write every number and one row per sample here")


# ------------------------------------------------------------------------------------------------------ loading
def recorded_retrieval(ckpt: dict) -> dict | None:
    """The RetrievalCallback state stored in a Lightning checkpoint (None when retrieval was off or absent)."""
    for key, value in ckpt.get("callbacks", {}).items():
        if key.split("{")[0] == RetrievalCallback.__qualname__ and value.get("enabled"):
            return value
    return None


def load_side(path: str, side: str, dictionary: str | None, tokenizer: str | None, device):
    """(LMStage, raw checkpoint dict, Retrieval or None) of one side."""
    import torch

    if not Path(path).is_file():
        raise AblationError(f"--{side} {path} does not exist; give a stage-2 checkpoint (e.g. "
                            f"outputs/stage2-demo/checkpoints/last.ckpt)")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    stage = LMStage.from_checkpoint(path, tokenizer_ckpt=tokenizer).to(device)
    if side == "off":
        if recorded_retrieval(ckpt) is not None or stage.hparams.get("retrieval"):
            log.warning("--off %s was trained WITH retrieval; it is scored on plain sentences", path)
        return stage, ckpt, None
    recorded = recorded_retrieval(ckpt)
    if recorded is None and dictionary is None:
        raise AblationError(f"--on {path} holds no RetrievalCallback state (trained without retrieval) and no "
                            f"--dictionary was given; pass the retrieval-trained checkpoint or --dictionary DICT")
    settings = dict(recorded["settings"]) if recorded else dict(SOKE_RETRIEVAL)
    if recorded is None:
        log.warning("--on %s was trained WITHOUT retrieval; prompting it with %s and SOKE's settings", path, dictionary)
    dict_path = dictionary or recorded["dictionary"]
    if not Path(dict_path).is_file():
        raise AblationError(f"the sign dictionary {dict_path} ({'--dictionary' if dictionary else 'recorded in ' + path})"
                            f" does not exist; pass --dictionary PATH (e.g. outputs/tokens-demo/dictionary.json)")
    sign_dict = SignDictionary.load(dict_path, expected_hash=stage.tokenizer_digest)
    digest = dictionary_digest(sign_dict)
    if recorded is not None and recorded["digest"] != digest:
        log.warning("dictionary %s has content digest %s but %s was trained with %s (digest %s)", dict_path,
                    digest[:16], path, recorded["dictionary"], recorded["digest"][:16])
    return stage, ckpt, (Retrieval(str(dict_path), settings, recorded, digest), sign_dict)


def make_datamodule(store: str, split: str, ckpt: dict, batch_size: int | None):
    """A SignDataModule over ``store``'s ``split`` with the checkpoint's processing settings (no token cache)."""
    saved = ckpt.get("datamodule_hyper_parameters") or {}
    eval_bs = batch_size or saved.get("eval_batch_size") or saved.get("batch_size") or 32
    return SignDataModule([store], test_split=split, batch_size=int(eval_bs), eval_batch_size=int(eval_bs),
                          **checkpoint_processing(ckpt))


# ------------------------------------------------------------------------------------------------------ concepts
@dataclass
class Concepts:
    """Per-sample concepts and what makes them rare / covered.

    Attributes:
        train_counts: ``{lang or "*": Counter(concept -> training sentences containing it)}``.
        covered: ``{lang: concepts with an entry in the store's dictionary split}`` (None: no such split).
        word_concept: ``{(lang, normalised word): concept}`` from the dictionary split.
    """

    train_counts: dict
    covered: dict | None
    word_concept: dict

    def count(self, lang: str, concept: str, scope: str) -> int:
        return self.train_counts["*" if scope == "pooled" else lang].get(concept, 0)


def sample_concepts(record: dict) -> list[str] | None:
    meta = record.get("meta") or {}
    concepts = meta.get("concepts", meta.get("text_concepts"))
    return None if concepts is None else list(dict.fromkeys(concepts))


def read_concepts(store: str, train_split: str) -> Concepts:
    opened = open_store(store)
    if train_split not in opened:
        raise AblationError(f"store {store} has no {train_split!r} split (the concept counts come from it); give "
                            f"--train-split")
    counts: dict[str, Counter] = {"*": Counter()}
    for r in opened.split(train_split).records:
        concepts = sample_concepts(r) or []
        counts.setdefault(r["lang"], Counter()).update(concepts)
        counts["*"].update(concepts)
    covered, word_concept = None, {}
    if "dictionary" in opened:
        covered = {}
        for r in opened.split("dictionary").records:
            concept = (r.get("meta") or {}).get("concept")
            if concept is not None:
                covered.setdefault(r["lang"], set()).add(concept)
                word_concept[(r["lang"], normalize_word(r["text"]))] = concept
    return Concepts(counts, covered, word_concept)


# ------------------------------------------------------------------------------------------------------ generation
def retrieval_prompts(stage, sign_dict, settings: dict, texts: list[str], langs: list[str]):
    """Prompts and kept entries exactly as the RetrievalCallback builds them for this model."""
    matcher = get_matcher(settings["matcher"], sign_dict, settings.get("inflection", "none"))
    budget = settings.get("max_prompt_tokens") or int(stage.hparams.max_source_length)
    out = []
    for text, lang in zip(texts, langs):
        entries = retrieve(text, lang, sign_dict, top_k=settings["top_k"],
                           max_codes_per_entry=settings["max_codes_per_entry"], order=settings["order"],
                           matcher=matcher)
        prompt, kept = fit_to_budget(text, lang, entries, sign_dict.parts, budget, stage.text_tokenizer.count_tokens)
        out.append((prompt, kept, len(entries) - len(kept)))
    return out


def run_side(stage, dm, retrieval, concepts: Concepts, desc: str) -> tuple[list[SampleResult], dict]:
    """Generate and score every sample of the DataModule's test split (dataset order).

    Returns:
        (one result per sample, ``SignMotionMetrics.compute()`` over the same updates: the stage's test keys).
    """
    import torch
    from tqdm import tqdm

    stage.eval()
    metric = stage.metrics["test"].clone()
    metric.reset()
    norm, backend = stage.tokenizer.normalizer, stage.backend.to(stage.device)
    parts = [p.name for p in metric.parts]
    weights = {p.name: p.num_eval_joints() for p in metric.parts}
    limit = int(stage.hparams.max_source_length)
    results = []
    for batch in tqdm(dm.test_dataloader(), desc=desc, unit="batch"):
        texts, langs = list(batch.text), list(batch.lang)
        if retrieval is None:
            built = [(t, [], 0) for t in texts]
        else:
            built = retrieval_prompts(stage, retrieval[1], retrieval[0].settings, texts, langs)
        prompts = [b[0] for b in built]
        with torch.no_grad():
            feats, lengths, result = stage.generate(prompts, langs)
            pred = backend.from_features(feats)
            gt = backend.from_features(norm.denormalize(batch.poses.to(stage.device)))
            metric.update(pred, gt, lengths, batch.lengths.to(stage.device), langs, batch.keys)
        hashes, _, scored = metric.per_sample()  # every sample so far, as the stage's test computes them
        index = {int(h): i for i, h in enumerate(hashes)}
        scores = scored[[index[name_hash(k)] for k in batch.keys]].cpu()  # [B, variants, parts] of this batch
        for i, key in enumerate(batch.keys):
            row = {}
            for v, variant in enumerate(metric.variants):
                vals = {name: float(scores[i, v, p]) for p, name in enumerate(parts)}
                if {"body", "lhand", "rhand"} <= set(vals):
                    vals["hand"] = (vals["lhand"] + vals["rhand"]) / 2
                    nb, nh = weights["body"], weights["lhand"] + weights["rhand"]
                    vals["avg"] = (nb * vals["body"] + nh * vals["hand"]) / (nb + nh)
                row[variant] = vals
            _, kept, dropped = built[i]
            tokens = stage.text_tokenizer.count_tokens(prompts[i]) + 2  # + </s> + language code
            results.append(SampleResult(
                name=key, lang=langs[i], gt_frames=int(batch.lengths[i]), gen_frames=int(lengths[i]),
                codes=int(result.lengths[i]), finished=bool(result.finished[i]), prompt_tokens=tokens,
                encoder_truncated=tokens > limit, entries=[e.word for e in kept],
                entry_steps=[int(len(e.codes)) for e in kept], budget_dropped=dropped,
                injected_concepts=[c for c in (concepts.word_concept.get((langs[i], normalize_word(e.word)))
                                               for e in kept) if c is not None],
                scores=row))
    check = {k: float(v) for k, v in metric.compute().items()}
    return results, check


# ------------------------------------------------------------------------------------------------------ grouping
def assign_groups(dm, concepts: Concepts, sign_dict, rare_max: int, scope: str,
                  inflection: str = "none") -> tuple[dict, dict, str]:
    """``{key: set of groups}``, ``{key: info}`` and the definition used for rare_hit (see module docstring)."""
    ds = dm.datasets["test"]
    matcher = WordMatcher(sign_dict, inflection=inflection) if sign_dict is not None else None
    if matcher is not None:
        definition = ("words-matcher hit of the sign dictionary on a rare concept's word (word -> concept through "
                      "the store's dictionary split)")
    elif concepts.covered is not None:
        definition = "rare concept covered by the store's dictionary split (no sign dictionary given)"
    else:
        definition = "unavailable: no sign dictionary and no dictionary split in the store"
    can_hit = matcher is not None or concepts.covered is not None
    groups, info = {}, {}
    for i, key in enumerate(ds.keys):
        r = ds.record(i)
        lang = r["lang"]
        found = sample_concepts(r)
        if found is None:
            groups[key] = {"all"}
            info[key] = {"concepts": None}
            continue
        rare = [c for c in found if concepts.count(lang, c, scope) <= rare_max]
        if matcher is not None:
            hit_concepts = {concepts.word_concept.get((lang, normalize_word(m.word)))
                            for m in matcher.match(r["text"], lang)}
        elif concepts.covered is not None:
            hit_concepts = concepts.covered.get(lang, set())
        else:
            hit_concepts = set()
        rare_hit = [c for c in rare if c in hit_concepts]
        g = {"all", "rare" if rare else "common"}
        if rare and can_hit:
            g.add("rare_hit" if rare_hit else "rare_miss")
        groups[key] = g
        covered = [c for c in rare if concepts.covered is not None and c in concepts.covered.get(lang, set())]
        info[key] = {"text": r["text"], "concepts": found, "rare": rare, "rare_covered": covered,
                     "rare_hit": rare_hit,
                     "train_counts": {c: concepts.count(lang, c, scope) for c in found}}
    return groups, info, definition


# ------------------------------------------------------------------------------------------------------ summaries
def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def _pearson(x, y) -> float | None:
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def summarize_scores(rows: list[SampleResult], groups: dict, langs: list[str]) -> dict:
    """``{group: {"n": {lang: n}, lang|"all": {variant: {part: mean}}}}``; "all" = mean over languages."""
    out = {}
    for group in GROUPS:
        members = [r for r in rows if group in groups[r.name]]
        if not members:
            continue
        entry = {"n": {}}
        per_lang = {}
        for lang in langs:
            sel = [r for r in members if r.lang == lang]
            entry["n"][lang] = len(sel)
            if sel:
                per_lang[lang] = {v: {p: _mean(r.scores[v][p] for r in sel) for p in sel[0].scores[v]}
                                  for v in sel[0].scores}
        entry.update(per_lang)
        first = next(iter(per_lang.values()))
        entry["all"] = {v: {p: _mean(per_lang[lang][v][p] for lang in per_lang) for p in first[v]} for v in first}
        entry["n"]["all"] = len(members)
        out[group] = entry
    return out


def diagnostics(rows: list[SampleResult], info: dict, langs: list[str]) -> dict:
    """Length and prompt diagnostics per language and overall."""
    out = {}
    for lang in [*langs, "all"]:
        sel = [r for r in rows if lang in ("all", r.lang)]
        if not sel:
            continue
        rare = [r for r in sel if info[r.name].get("rare")]
        rare_hit = [r for r in rare if info[r.name].get("rare_hit")]
        out[lang] = {
            "samples": len(sel),
            "gt_frames": _mean(r.gt_frames for r in sel),
            "gen_frames": _mean(r.gen_frames for r in sel),
            "gen_minus_gt_frames": _mean(r.gen_frames - r.gt_frames for r in sel),
            "abs_gen_minus_gt_frames": _mean(abs(r.gen_frames - r.gt_frames) for r in sel),
            "hit_max_codes": sum(not r.finished for r in sel),
            "prompt_tokens": _mean(r.prompt_tokens for r in sel),
            "prompt_tokens_max": max(r.prompt_tokens for r in sel),
            "encoder_truncated": sum(r.encoder_truncated for r in sel),
            "entries_per_prompt": _mean(len(r.entries) for r in sel),
            "retrieved_steps_per_prompt": _mean(r.retrieved_steps for r in sel),
            "prompts_with_entries": sum(bool(r.entries) for r in sel),
            "budget_truncated_prompts": sum(r.budget_dropped > 0 for r in sel),
            "budget_dropped_entries": sum(r.budget_dropped for r in sel),
            "rare_sentences": len(rare),
            "rare_covered_sentences": sum(bool(info[r.name].get("rare_covered")) for r in rare),
            "rare_hit_sentences": len(rare_hit),
            "rare_injected_sentences": sum(bool(set(info[r.name]["rare"]) & set(r.injected_concepts)) for r in rare),
            "corr_len_error_vs_retrieved_steps": _pearson([r.gen_frames - r.gt_frames for r in sel],
                                                          [r.retrieved_steps for r in sel]),
        }
    return out


def paired(off: list[SampleResult], on: list[SampleResult], langs: list[str]) -> dict:
    """On vs off sample by sample: generated-length change and its correlation with the retrieved code steps."""
    by_name = {r.name: r for r in off}
    out = {}
    for lang in [*langs, "all"]:
        pairs = [(by_name[r.name], r) for r in on if r.name in by_name and lang in ("all", r.lang)]
        if not pairs:
            continue
        out[lang] = {
            "gen_frames_on_minus_off": _mean(b.gen_frames - a.gen_frames for a, b in pairs),
            "corr_gen_change_vs_retrieved_steps": _pearson([b.gen_frames - a.gen_frames for a, b in pairs],
                                                           [b.retrieved_steps for _, b in pairs]),
            "on_better_dtw_pa_jpe_avg": sum(b.scores["dtw_pa_jpe"]["avg"] < a.scores["dtw_pa_jpe"]["avg"]
                                            for a, b in pairs) if "dtw_pa_jpe" in pairs[0][0].scores else None,
            "pairs": len(pairs),
        }
    return out


def relative_change(metrics: dict) -> dict:
    """(on - off) / off per group x language x variant x part."""
    off, on = metrics.get("off"), metrics.get("on")
    if not off or not on:
        return {}
    out = {}
    for group in off:
        if group not in on:
            continue
        out[group] = {}
        for lang, values in off[group].items():
            if lang == "n" or lang not in on[group]:
                continue
            out[group][lang] = {v: {p: (on[group][lang][v][p] - x) / x if x else None for p, x in parts.items()}
                                for v, parts in values.items()}
    return out


# ------------------------------------------------------------------------------------------------------ report
def format_table(report: dict, parts=("body", "lhand", "rhand", "avg")) -> str:
    lines = []
    metrics = report["metrics"]
    sides = [s for s in SIDES if s in metrics]
    for variant in report["variants"]:
        lines.append(f"\n{variant} (accumulated DTW cost, lower is better)" + ("; cell = off -> on (change)"
                                                                              if len(sides) == 2 else
                                                                              f"; side {sides[0]}"))
        lines.append(f"{'group':<10}{'lang':<5}{'n':>5}  " + "".join(f"{p:<24}" for p in parts))
        for group in GROUPS:
            ref = metrics[sides[0]].get(group)
            if ref is None:
                continue
            for lang in [*report["languages"], "all"]:
                if lang not in ref:
                    continue
                cells = []
                for p in parts:
                    vals = [metrics[s][group][lang][variant][p] for s in sides]
                    if len(vals) == 2:
                        change = (vals[1] - vals[0]) / vals[0] if vals[0] else float("nan")
                        cells.append(f"{vals[0]:.3f}->{vals[1]:.3f} {change:+.0%}")
                    else:
                        cells.append(f"{vals[0]:.3f}")
                lines.append(f"{group:<10}{lang:<5}{ref['n'][lang]:>5}  " + "".join(f"{c:<24}" for c in cells))
    lines.append("\nlength / prompt diagnostics (per sample means)")
    keys = [("gt_frames", "gt fr"), ("gen_frames", "gen fr"), ("gen_minus_gt_frames", "gen-gt"),
            ("hit_max_codes", "maxcod"), ("prompt_tokens", "tokens"), ("encoder_truncated", "enc.cut"),
            ("entries_per_prompt", "entries"), ("retrieved_steps_per_prompt", "ret.steps"),
            ("budget_truncated_prompts", "budg.cut"), ("rare_sentences", "rare"),
            ("rare_covered_sentences", "rare.cov"), ("rare_hit_sentences", "rare.hit"),
            ("rare_injected_sentences", "rare.inj"), ("corr_len_error_vs_retrieved_steps", "r(err,steps)")]
    widths = [max(9, len(label)) + 1 for _, label in keys]
    lines.append(f"{'side':<5}{'lang':<5}" + "".join(f"{label:>{w}}" for (_, label), w in zip(keys, widths)))
    for side in sides:
        for lang, d in report["diagnostics"][side].items():
            cells = []
            for (key, _), w in zip(keys, widths):
                v = d[key]
                cells.append(f"{'-':>{w}}" if v is None else f"{v:>{w}.2f}" if isinstance(v, float) else f"{v:>{w}}")
            lines.append(f"{side:<5}{lang:<5}" + "".join(cells))
    if report.get("paired"):
        lines.append("\non vs off, sample by sample")
        for lang, d in report["paired"].items():
            corr = d["corr_gen_change_vs_retrieved_steps"]
            lines.append(f"  {lang:<4} generated frames on-off {d['gen_frames_on_minus_off']:+.1f}; r(change, "
                         f"retrieved steps) = {'-' if corr is None else f'{corr:+.2f}'}; on better (DTW-PA-JPE avg) "
                         f"in {d['on_better_dtw_pa_jpe_avg']}/{d['pairs']}")
    lines.append(f"\nrare: <= {report['rare_max']} training sentences ({report['rare_scope']}); rare.cov: a rare "
                 f"concept is in the store's dictionary split; rare_hit: {report['rare_hit_definition']}; rare.inj: "
                 f"a rare concept's entry reached the prompt")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retrieval_ablation.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = run(args)
    except AblationError as err:
        print(f"retrieval_ablation: error: {err}", file=sys.stderr)
        return 2
    print(format_table(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


def run(args: argparse.Namespace) -> dict:
    """Everything the table and the JSON show (see the module docstring)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.off is None and args.on is None:
        raise AblationError("give --off CKPT and/or --on CKPT (stage-2 checkpoints)")
    if not Path(args.store).is_dir():
        raise AblationError(f"--store {args.store} does not exist; generate it with `soke synth` or pass --store")
    if args.split not in open_store(args.store):
        raise AblationError(f"store {args.store} has no split {args.split!r}")
    if args.rare_max < 0:
        raise AblationError(f"--rare-max must be >= 0, got {args.rare_max}")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    concepts = read_concepts(args.store, args.train_split)

    loaded = {}
    for side in SIDES:
        path = getattr(args, side)
        if path is not None:
            loaded[side] = load_side(path, side, args.dictionary, args.tokenizer, device)
    sign_dict = None
    if "on" in loaded:
        sign_dict = loaded["on"][2][1]
    elif args.dictionary is not None:
        if not Path(args.dictionary).is_file():
            raise AblationError(f"--dictionary {args.dictionary} does not exist")
        sign_dict = SignDictionary.load(args.dictionary)

    report: dict = {"store": str(args.store), "split": args.split, "rare_max": args.rare_max,
                    "rare_scope": args.rare_scope, "sides": {}, "metrics": {}, "diagnostics": {},
                    "stage_test_metrics": {}}
    rows, groups, info = {}, None, None
    for side, (stage, ckpt, retrieval) in loaded.items():
        dm = make_datamodule(args.store, args.split, ckpt, args.batch_size)
        dm.setup("test")
        stage.check_contract(dm)
        if args.limit is not None:
            ds = dm.datasets["test"]
            dm.datasets["test"] = ds.subset(stratified_subset(ds.langs, args.limit))
        if groups is None:
            inflection = next((r[0].settings.get("inflection", "none") for _, _, r in loaded.values() if r),
                              "none")
            groups, info, definition = assign_groups(dm, concepts, sign_dict, args.rare_max, args.rare_scope,
                                                     inflection)
            report["rare_hit_definition"] = definition
            report["languages"] = [k for k in stage.metric_languages if k in set(dm.datasets["test"].langs)]
            report["variants"] = list(stage.metrics["test"].variants)
        rows[side], check = run_side(stage, dm, retrieval, concepts, f"generate {side}")
        report["sides"][side] = {
            "ckpt": str(getattr(args, side)), "batch_size": dm.eval_batch_size,
            "generation": asdict(stage.generation_config), "max_source_length": int(stage.hparams.max_source_length),
            "retrieval": None if retrieval is None else asdict(retrieval[0])}
        report["metrics"][side] = summarize_scores(rows[side], groups, report["languages"])
        report["diagnostics"][side] = diagnostics(rows[side], info, report["languages"])
        report["stage_test_metrics"][side] = check  # SignMotionMetrics.compute() on the same updates
    report["change"] = relative_change(report["metrics"])
    report["paired"] = paired(rows["off"], rows["on"], report["languages"]) if len(rows) == 2 else {}
    by_key = {side: {r.name: r for r in side_rows} for side, side_rows in rows.items()}
    report["samples"] = [{"name": key, "groups": sorted(groups[key]), **info[key],
                          **{side: asdict(by_key[side][key]) for side in rows}}
                         for key in groups]
    return report


if __name__ == "__main__":
    sys.exit(main())
