"""SynthSign corpus generation: lexicon of signs per language, signers, continuous sentences, splits, writing.

Two seeds: ``lexicon_seed`` fixes every language's signs, concept frequencies and dictionary coverage order;
``seed`` fixes the sentences, signers, dictionary exemplars and noise. The same arguments give byte-identical
stores.

Corpus version 2 (:data:`GENERATOR_VERSION`, recorded in the store info) is built for retrieval experiments:

* **long tail**: ~540 concepts (names and cities included) with Zipf-like frequencies. Training sentences are
  drawn from those frequencies. Val / test sentences are drawn the same way, except that a fraction of them
  (:data:`EVAL_TARGETS`) is built around a concept the training split of that language never contains, or
  contains in 1 .. :data:`~.frequency.RARE_MAX` sentences, like a benchmark's rare / out-of-vocabulary test items.
* **dictionary like a real one**: every concept of a val / test sentence has an entry (plus a ``coverage``
  fraction of the other concepts the corpus uses), each with :data:`DICTIONARY_EXEMPLARS` exemplars: isolated
  clips by a corpus signer and by a dictionary-only signer, padded with rest (never time-stretched) to the length
  rule's minimum, and one cut from a continuous sentence with its co-articulation. ``meta["span"]`` is the sign's
  frame span inside the clip.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from soke_lightning.core.layout import RAW_DIM, RAW_SLICES
from soke_lightning.data.normalization import STATS_FILE, compute_stats, save_stats
from soke_lightning.data.official import write_official_split
from soke_lightning.data.store import Sample, StoreWriter
from soke_lightning.synthsign import phonology as ph
from soke_lightning.synthsign.frequency import RARE_MAX, concept_frequencies, group_sentences, group_summary
from soke_lightning.synthsign.grammar import (
    Clause,
    ClauseSampler,
    clause_concepts,
    realize,
    sign_sequence,
    text_concepts,
    unambiguous_forms,
)
from soke_lightning.synthsign.lexicon import CONCEPT_INDEX, CONCEPTS, SPOKEN_OF, get_concept

log = logging.getLogger(__name__)

CORPUS = "synthsign"
#: Version of the generated corpus, recorded in the store info as ``generator_version`` (1: the core vocabulary,
#: canonical time-stretched dictionary signs; 2: the long tail, tail-aware evaluation splits, dictionary exemplars).
GENERATOR_VERSION = 2
FPS = 25.0
LANGS: tuple[str, ...] = ("asl", "csl", "dgs")
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Official layout per language: (corpus id, folder under OUT).
OFFICIAL_LAYOUT: dict[str, tuple[str, str]] = {
    "asl": ("how2sign", "How2Sign"), "csl": ("csl_daily", "CSL-Daily"), "dgs": ("phoenix14t", "Phoenix_2014T"),
}
#: Zipf exponent of concept frequencies (weight of the rank-r concept = 1 / r**ZIPF_EXPONENT).
ZIPF_EXPONENT = 1.1
#: Val / test sentences per band of the language's training split (see :mod:`.frequency`): built around an
#: "unseen" concept (no training sentence) or a "rare" one (1 .. RARE_MAX sentences), drawn uniformly among them;
#: "seen" sentences are drawn from the Zipf frequencies of the concepts in more than RARE_MAX training sentences
#: (a slot without such a candidate draws from all concepts; of :data:`SEEN_TRIES` clauses the first whose
#: concepts are all seen is kept, else the one whose rarest concept is most frequent: small corpora have few). Each language's split gets these shares exactly (up to
#: rounding, largest remainder first) in a seeded random order, whatever the corpus size.
EVAL_BANDS: dict[str, float] = {"unseen": 0.2, "rare": 0.4, "seen": 0.4}
SEEN_TRIES = 40
#: The exemplars of each dictionary word, in order (retrieval and the dictionary baseline use the first):
#: (source, signer pool). "corpus" signers sign the sentences; "dictionary" signers appear only in the dictionary.
DICTIONARY_EXEMPLARS: tuple[tuple[str, str], ...] = (
    ("isolated", "corpus"), ("isolated", "dictionary"), ("continuous", "corpus"),
)
#: Signers per language who appear only in the dictionary.
DICTIONARY_SIGNERS = 2
#: The length rule's minimum and unit (data.processing.TemporalProcessing defaults): dictionary clips are padded
#: with rest to at least CLIP_MIN_FRAMES frames, a multiple of CLIP_UNIT, so loading neither stretches nor crops them.
CLIP_MIN_FRAMES, CLIP_UNIT = 40, 4
#: Frames of the surrounding signing kept on each side of a sign cut from a continuous sentence.
CONTINUOUS_CONTEXT = 6


@dataclass(frozen=True)
class Preset:
    """Corpus size: sentences per language and split, signers per language."""

    train: int
    val: int
    test: int
    signers: int


PRESETS: dict[str, Preset] = {
    "tiny": Preset(train=24, val=6, test=6, signers=3),
    "demo": Preset(train=800, val=50, test=50, signers=6),
}


# ---------------------------------------------------------------------------------------------------- lexicon


@dataclass
class LanguageLexicon:
    """One sign language of SynthSign: its signs, citation motions, concept frequencies and dictionary order."""

    lang: str
    spoken: str
    signs: dict[str, ph.SignSpec]
    citation: dict[str, np.ndarray]  # concept -> float64 [T, 179]
    weights: dict[str, float]
    dictionary_order: list[str]  # concepts in the order they join the dictionary as coverage grows (unique words)

    @property
    def eval_weights(self) -> dict[str, float]:
        """Weights of val / test sentences: concepts whose word names two concepts (German "sie" = she / they), so
        that no dictionary entry can hold them, are left out, so every evaluated concept can have an entry."""
        eligible = set(self.dictionary_order)
        return {cid: (w if cid in eligible else 0.0) for cid, w in self.weights.items()}

    def dictionary_words(self, coverage: float, vocabulary: set[str] | None = None,
                         required: set[str] = frozenset()) -> list[str]:
        """Concepts with a dictionary entry, in lexicon order.

        Args:
            coverage: fraction in [0, 1] of ``vocabulary`` (eligible concepts only) that gets an entry, taken in
                :attr:`dictionary_order` (nested: a larger coverage adds entries).
            vocabulary: the concepts considered (default: the whole lexicon); the generator passes the concepts
                its sentences use.
            required: concepts that always get an entry (the generator: every concept of a val / test sentence).

        Raises:
            ValueError: a required concept cannot have an entry (its word names two concepts).
        """
        eligible = set(self.dictionary_order)
        bad = sorted(set(required) - eligible)
        if bad:
            raise ValueError(f"{self.lang}: concepts {bad} need a dictionary entry but their words name several "
                             f"concepts")
        pool = [c for c in self.dictionary_order if vocabulary is None or c in vocabulary]
        chosen = set(pool[: int(round(coverage * len(pool)))]) | set(required)
        return sorted(chosen, key=CONCEPT_INDEX.__getitem__)


@functools.lru_cache(maxsize=4)
def build_lexicon(lexicon_seed: int) -> dict[str, LanguageLexicon]:
    """All three languages' lexicons for ``lexicon_seed`` (cached: building solves the IK of every sign)."""
    start = time.perf_counter()
    specs: dict[str, dict[str, ph.SignSpec]] = {}
    for li, lang in enumerate(LANGS):
        seen: set[tuple] = set()
        specs[lang] = {}
        for concept in CONCEPTS:
            rng = np.random.default_rng([lexicon_seed, li, CONCEPT_INDEX[concept.id]])
            spec = ph.draw_sign(concept.id, rng)
            while spec.key() in seen:  # every sign of a language looks different
                spec = ph.draw_sign(concept.id, rng)
            seen.add(spec.key())
            specs[lang][concept.id] = spec
    flat = [(lang, cid) for lang in LANGS for cid in specs[lang]]
    motions = ph.synthesize_signs([specs[lang][cid] for lang, cid in flat])
    out: dict[str, LanguageLexicon] = {}
    for li, lang in enumerate(LANGS):
        rng = np.random.default_rng([lexicon_seed, li, 1_000_003])
        ranks = rng.permutation(len(CONCEPTS))
        weights = {c.id: float(1.0 / (ranks[i] + 1) ** ZIPF_EXPONENT) for i, c in enumerate(CONCEPTS)}
        # a dictionary is keyed by the word: words shared by two concepts (German "sie" = she / they) get no entry
        words = [c.word(SPOKEN_OF[lang]).lower() for c in CONCEPTS]
        order = [CONCEPTS[i].id for i in rng.permutation(len(CONCEPTS)) if words.count(words[i]) == 1]
        citation = {cid: m for (lg, cid), m in zip(flat, motions) if lg == lang}
        out[lang] = LanguageLexicon(lang, SPOKEN_OF[lang], specs[lang], citation, weights, order)
    log.info("SynthSign lexicon (seed %d): %d signs in %.1f s", lexicon_seed, len(flat), time.perf_counter() - start)
    return out


# ------------------------------------------------------------------------------------------- signers, sentences


@dataclass(frozen=True)
class Signer:
    """A person's style: speed, movement size, posture and noise."""

    id: str
    speed: float  # > 1 signs faster (fewer frames)
    amplitude: float
    posture: tuple[float, ...]  # offsets added to neck, head, collars, shoulders (18 values)
    noise: float  # per-frame noise std (radians)


_POSTURE_SLOTS = (ph.NECK, ph.HEAD, ph.L_COLLAR, ph.R_COLLAR, ph.L_SHOULDER, ph.R_SHOULDER)
_ARM_SLOTS = (ph.L_COLLAR, ph.R_COLLAR, ph.L_SHOULDER, ph.R_SHOULDER, ph.L_ELBOW, ph.R_ELBOW, ph.L_WRIST, ph.R_WRIST)
_ARM_INDEX = np.concatenate([np.arange(s.start, s.stop) for s in _ARM_SLOTS])
_MOVING = np.concatenate([np.arange(RAW_SLICES["smplx_body_pose"].start, RAW_SLICES["smplx_shape"].start),
                          np.arange(RAW_SLICES["smplx_expr"].start, RAW_DIM)])
_LOWER_BODY = np.arange(RAW_SLICES["smplx_body_pose"].start, RAW_SLICES["smplx_body_pose"].start + 33)


def draw_signers(lang: str, n: int, rng: np.random.Generator, kind: str = "signer") -> list[Signer]:
    """``n`` signers of ``lang`` named ``{lang}_{kind}{k}`` (corpus signers: "signer"; dictionary-only: "dictsigner")."""
    out = []
    for k in range(n):
        posture = rng.normal(0.0, 0.035, 18)
        out.append(Signer(f"{lang}_{kind}{k}", speed=float(rng.uniform(0.85, 1.15)),
                          amplitude=float(rng.uniform(0.8, 1.2)), posture=tuple(float(x) for x in posture),
                          noise=float(rng.uniform(0.002, 0.006))))
    return out


CANONICAL = Signer("canonical", speed=1.0, amplitude=1.0, posture=(0.0,) * 18, noise=0.0)


def _resample(frames: np.ndarray, length: int) -> np.ndarray:
    pos = np.linspace(0.0, frames.shape[0] - 1, max(length, 2))
    lo = np.minimum(np.floor(pos).astype(int), frames.shape[0] - 2)
    frac = (pos - lo)[:, None]
    return frames[lo] * (1.0 - frac) + frames[lo + 1] * frac


def _transition(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    w = ph.ease(np.arange(1, n + 1) / (n + 1))[:, None]
    return a[None] + w * (b - a)[None]


def compose(citations: list[np.ndarray], signer: Signer, rng: np.random.Generator | None, *,
            rest_hold: tuple[int, int] = (4, 4), transition: tuple[int, int] = (6, 6),
            rest_transition: int = 9, smooth: bool = True, min_frames: int = 0,
            unit: int = 1) -> tuple[np.ndarray, list[list[int]]]:
    """Continuous signing: rest -> signs joined by eased co-articulation transitions -> rest.

    Args:
        citations: citation-form motions [T_i, 179] in signing order.
        signer: style applied to every sign (speed, amplitude, posture, noise).
        rng: randomness for per-sign speed jitter, transition lengths and noise (None: none of them).
        rest_hold: frames held at rest at the start / end; transition: min / max transition frames.
        min_frames / unit: pad with rest, split between both ends (the start gets the smaller half), until the
            clip has at least ``min_frames`` frames and a multiple of ``unit``: an isolated sign then passes the
            length rule untouched instead of being time-stretched. The signs keep their tempo.

    Returns:
        frames [T, 179] float64 and the [start, end) frame span of each sign.
    """
    rest = ph.rest_frame()
    pieces: list[np.ndarray] = []
    spans: list[list[int]] = []
    cursor = 0
    previous = rest
    for k, cit in enumerate(citations):
        sign = style_sign(cit, signer, float(rng.uniform(0.92, 1.08)) if rng is not None else 1.0)
        if k == 0:
            n = rest_transition
        else:
            n = int(rng.integers(transition[0], transition[1] + 1)) if rng is not None else transition[0]
        pieces.append(_transition(previous, sign[0], n))
        cursor += n
        spans.append([cursor, cursor + sign.shape[0]])
        pieces.append(sign)
        cursor += sign.shape[0]
        previous = sign[-1]
    pieces.append(_transition(previous, rest, rest_transition))
    total = sum(len(p) for p in pieces) + rest_hold[0] + rest_hold[1]
    target = max(total, min_frames)
    target = -(-target // unit) * unit
    front = rest_hold[0] + (target - total) // 2
    back = rest_hold[1] + (target - total) - (target - total) // 2
    frames = np.concatenate([np.tile(rest, (front, 1)), *pieces, np.tile(rest, (back, 1))])
    spans = [[a + front, b + front] for a, b in spans]
    if smooth:  # a light [1, 2, 1] / 4 filter removes the velocity kinks at segment joints
        padded = np.concatenate([frames[:1], frames, frames[-1:]])
        frames[:, _MOVING] = (0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:])[:, _MOVING]
    posture = np.zeros(RAW_DIM)
    for slot, k in zip(_POSTURE_SLOTS, range(0, 18, 3)):
        posture[slot] = signer.posture[k:k + 3]
    frames += posture
    if rng is not None and signer.noise > 0:
        noise = rng.normal(0.0, signer.noise, frames.shape)
        noise[:, RAW_SLICES["smplx_shape"]] = 0.0
        noise[:, :3] = 0.0
        noise[:, _LOWER_BODY] = 0.0
        frames += noise
    return ph.clamp_rotations(frames), spans


def sign_length(citation_frames: int, signer: Signer, jitter: float = 1.0) -> int:
    """Frames a signer takes for a sign whose citation form has ``citation_frames`` frames (at tempo ``jitter``)."""
    return int(round(citation_frames / (signer.speed * jitter)))


def style_sign(citation: np.ndarray, signer: Signer, jitter: float = 1.0) -> np.ndarray:
    """One sign as ``signer`` makes it: resampled to their tempo (speed x ``jitter``), arm movement scaled."""
    length = sign_length(citation.shape[0], signer, jitter)
    sign = _resample(citation, length) if length != citation.shape[0] else citation.copy()
    if signer.amplitude != 1.0:
        anchor = sign[:, _ARM_INDEX].mean(0)
        sign[:, _ARM_INDEX] = anchor + signer.amplitude * (sign[:, _ARM_INDEX] - anchor)
    return sign


def _non_manuals(frames: np.ndarray, spans: list[list[int]], concepts: list[str], question: str | None) -> None:
    """Sentence-level non-manual markers, in place: brows for questions, a head shake over negation."""
    T = frames.shape[0]
    envelope = ph.ease(np.minimum(np.arange(T) / 8.0, (T - 1 - np.arange(T)) / 8.0))
    if question == "yes_no":  # raised brows, head forward
        frames[:, ph.EXPR.start] += 1.1 * envelope
        frames[:, ph.EXPR.start + 1] += 0.5 * envelope
        frames[:, ph.HEAD.start] += 0.12 * envelope
    elif question == "wh":  # furrowed brows, head tilt
        frames[:, ph.EXPR.start] -= 0.9 * envelope
        frames[:, ph.EXPR.start + 2] += 0.6 * envelope
        frames[:, ph.HEAD.start + 2] += 0.08 * envelope
    if "not" in concepts:
        s, e = spans[concepts.index("not")]
        t = np.linspace(0.0, 1.0, e - s)
        frames[s:e, ph.HEAD.start + 1] += 0.28 * np.sin(2.0 * np.pi * 2.0 * t) * np.sin(np.pi * t)


def corpus_signers(lang: str, sizes: Preset, seed: int) -> list[Signer]:
    """The signers of ``lang``'s sentences (every split)."""
    return draw_signers(lang, sizes.signers, np.random.default_rng([seed, LANGS.index(lang), 7]))


def dictionary_signers(lang: str, seed: int) -> list[Signer]:
    """The signers who appear only in ``lang``'s dictionary split."""
    return draw_signers(lang, DICTIONARY_SIGNERS, np.random.default_rng([seed, LANGS.index(lang), 11]), "dictsigner")


def make_sentence(lex: LanguageLexicon, sampler: ClauseSampler, signer: Signer, rng: np.random.Generator,
                  name: str, clause: Clause | None = None) -> Sample:
    """Synthesise the signing of ``clause`` (default: a clause drawn from ``sampler``)."""
    clause = sampler.sample() if clause is None else clause
    text, tokens = realize(clause, lex.spoken)
    concepts = sign_sequence(clause, lex.lang)
    frames, spans = compose([lex.citation[c] for c in concepts], signer, rng)
    _non_manuals(frames, spans, concepts, clause.question)
    ph.clamp_rotations(frames)
    meta = {
        "concepts": concepts, "glosses": [get_concept(c).gloss for c in concepts], "spans": spans,
        "signer": signer.id, "template": clause.template, "text_concepts": text_concepts(tokens),
    }
    return Sample(name, text, lex.lang, CORPUS, frames.astype(np.float32), FPS, meta)


def _isolated(lex: LanguageLexicon, cid: str, signer: Signer, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """One sign alone at the signer's sentence tempo, from rest to rest, padded with rest to the length minimum."""
    frames, spans = compose([lex.citation[cid]], signer, rng, min_frames=CLIP_MIN_FRAMES, unit=CLIP_UNIT)
    _non_manuals(frames, spans, [cid], None)
    return ph.clamp_rotations(frames), spans[0]


def _continuous(lex: LanguageLexicon, cid: str, signer: Signer, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                                                    list, dict]:
    """The sign cut from a carrier sentence that contains it, with :data:`CONTINUOUS_CONTEXT` frames of the
    neighbouring signing (co-articulation) on each side, widened to the length minimum."""
    clause = ClauseSampler(lex.eval_weights, rng).sample_containing(cid)
    if clause is not None:
        text = realize(clause, lex.spoken)[0]
        concepts = sign_sequence(clause, lex.lang)
        question = clause.question
    else:  # a concept no template can place: carry it between two frequent signs
        others = [c for c in sorted(lex.weights, key=lambda c: -lex.weights[c]) if c != cid][:2]
        text, concepts, question = None, [others[0], cid, others[1]], None
    frames, spans = compose([lex.citation[c] for c in concepts], signer, rng)
    _non_manuals(frames, spans, concepts, question)
    ph.clamp_rotations(frames)
    s, e = spans[concepts.index(cid)]
    length = max(CLIP_MIN_FRAMES, e - s + 2 * CONTINUOUS_CONTEXT)
    length = -(-length // CLIP_UNIT) * CLIP_UNIT
    if frames.shape[0] < length:  # hold the sentence's first / last frame (never needed by today's sentences)
        extra = length - frames.shape[0]
        frames = np.concatenate([np.repeat(frames[:1], extra // 2, 0), frames,
                                 np.repeat(frames[-1:], extra - extra // 2, 0)])
        s, e = s + extra // 2, e + extra // 2
    start = int(np.clip(s - (length - (e - s)) // 2, 0, frames.shape[0] - length))
    return frames[start:start + length], [s - start, e - start], {"context": text, "context_concepts": concepts}


def dictionary_samples(lex: LanguageLexicon, concepts: list[str], corpus: list[Signer], dictionary: list[Signer],
                       seed: int) -> list[Sample]:
    """The dictionary split of one language: :data:`DICTIONARY_EXEMPLARS` exemplars of each concept's word.

    Exemplars, in order: an isolated sign by a corpus signer, an isolated sign by a dictionary-only signer (each
    from rest to rest at the signer's sentence tempo, padded with rest to at least :data:`CLIP_MIN_FRAMES` frames,
    a multiple of :data:`CLIP_UNIT`), and the sign cut from a continuous carrier sentence by a corpus signer (with
    the neighbouring co-articulation). The text is the citation word (the dictionary key). ``meta``: ``concept``,
    ``gloss``, ``forms`` (the other forms the sentences write for it, :func:`~.grammar.unambiguous_forms`, which
    ``soke dict build`` turns into aliases), ``span`` (the sign's [start, end) frames in the clip), ``source``
    ("isolated" / "continuous"), ``signer``, ``signer_in_corpus``, ``exemplar`` (its index), and for continuous
    exemplars the carrier sentence's ``context`` text (None for a synthetic carrier) and ``context_concepts``.

    Args:
        lex: the language.
        concepts: the concepts with an entry (:meth:`LanguageLexicon.dictionary_words`).
        corpus / dictionary: the corpus signers and the dictionary-only signers of the language.
        seed: the corpus seed; each concept's exemplars depend only on it and the concept, so a larger coverage
            adds entries without changing the others.
    """
    forms = unambiguous_forms(lex.spoken)
    li = LANGS.index(lex.lang)
    out = []
    for cid in concepts:
        concept = get_concept(cid)
        rng = np.random.default_rng([seed, li, 13, CONCEPT_INDEX[cid]])
        used: list[str] = []
        for k, (source, pool_name) in enumerate(DICTIONARY_EXEMPLARS):
            pool = corpus if pool_name == "corpus" else dictionary
            fresh = [sg for sg in pool if sg.id not in used] or pool  # different signers while there are any
            signer = fresh[int(rng.integers(len(fresh)))]
            used.append(signer.id)
            extra: dict = {}
            if source == "isolated":
                frames, span = _isolated(lex, cid, signer, rng)
            else:
                frames, span, extra = _continuous(lex, cid, signer, rng)
            meta = {"concept": cid, "gloss": concept.gloss, "forms": list(forms[cid]), "span": span,
                    "source": source, "signer": signer.id, "signer_in_corpus": pool_name == "corpus",
                    "exemplar": k, **extra}
            out.append(Sample(f"{lex.lang}_dict_{cid}_{k}", concept.word(lex.spoken), lex.lang, CORPUS,
                              frames.astype(np.float32), FPS, meta))
    return out


def _seen_clause(sampler: ClauseSampler, counts: Counter) -> Clause:
    """A clause whose concepts are all in more than RARE_MAX training sentences, if one comes up in SEEN_TRIES
    draws; else the drawn clause whose rarest concept is the most frequent (first of equals)."""
    best, best_min = None, -1
    for _ in range(SEEN_TRIES):
        clause = sampler.sample()
        rarest = min(counts[c] for c in clause_concepts(clause))
        if rarest > RARE_MAX:
            return clause
        if rarest > best_min:
            best, best_min = clause, rarest
    return best


def band_plan(count: int, rng: np.random.Generator) -> list[str]:
    """The band of each of ``count`` evaluation sentences: :data:`EVAL_BANDS` shares by largest remainder, shuffled."""
    shares = np.array(list(EVAL_BANDS.values()), dtype=np.float64)
    exact = count * shares / shares.sum()
    quota = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - quota), kind="stable")[: count - int(quota.sum())]:
        quota[k] += 1
    plan = [band for band, q in zip(EVAL_BANDS, quota) for _ in range(q)]
    return [plan[k] for k in rng.permutation(count)]


def generate_split(lexicons: dict[str, LanguageLexicon], split: str, sizes: Preset, seed: int,
                   seen_texts: set[str], train_counts: dict[str, Counter] | None = None) -> list[Sample]:
    """Sentences of one split for every language; texts in ``seen_texts`` are drawn again (no train/test leak).

    Args:
        train_counts: for val / test, the training split's concept counts per language: the sentences are then
            drawn per band, :data:`EVAL_BANDS`, and concepts that cannot have a dictionary entry are left out.
            None: every sentence is drawn from the Zipf frequencies (the training split).
    """
    samples: list[Sample] = []
    count = getattr(sizes, split)
    for li, lang in enumerate(LANGS):
        lex = lexicons[lang]
        signers = corpus_signers(lang, sizes, seed)
        rng = np.random.default_rng([seed, li, SPLITS.index(split) + 1])
        sampler = ClauseSampler(lex.weights if train_counts is None else lex.eval_weights, rng)
        pools: dict[str, list[str]] = {}
        if train_counts is not None:
            counts = train_counts.get(lang, Counter())
            pools = {"unseen": [c for c in lex.dictionary_order if counts[c] == 0],
                     "rare": [c for c in lex.dictionary_order if 1 <= counts[c] <= RARE_MAX]}
            for pool in pools.values():
                pool.sort(key=CONCEPT_INDEX.__getitem__)
            head = {c: (w if counts[c] > RARE_MAX else 0.0) for c, w in lex.eval_weights.items()}
            head_sampler = ClauseSampler(head, rng, fallback=lex.eval_weights)
        plan = band_plan(count, rng) if train_counts is not None else [None] * count
        for i, band in enumerate(plan):
            for _ in range(50):
                clause = _seen_clause(head_sampler, counts) if band == "seen" else None
                while band in pools and pools[band] and clause is None:
                    target = pools[band][int(rng.integers(len(pools[band])))]
                    clause = sampler.sample_containing(target)
                    if clause is None:  # no template places it (e.g. "one": numerals start at two)
                        pools[band].remove(target)
                sample = make_sentence(lex, sampler, signers[int(rng.integers(len(signers)))], rng,
                                       f"{lang}_{split}_{i:06d}", clause)
                if sample.text not in seen_texts:
                    break
            seen_texts.add(sample.text)
            samples.append(sample)
    return samples


# -------------------------------------------------------------------------------------------------------- writing


def lexicon_summary(lexicons: dict[str, LanguageLexicon], dictionary_words: dict[str, list[str]]) -> dict:
    out = {}
    for lang, lex in lexicons.items():
        specs = list(lex.signs.values())
        counts = {f: dict(sorted(Counter(getattr(s, f) for s in specs).items()))
                  for f in ("hand_use", "location", "movement")}
        out[lang] = {"concepts": len(specs), "dictionary_entries": len(dictionary_words[lang]), **counts}
    return out


def long_tail_summary(splits: dict[str, list[Sample]], dictionary: list[Sample]) -> dict:
    """Per evaluation split, the :func:`~.frequency.group_summary` of its sentences (overall and per language)."""
    out = {}
    for split in ("val", "test"):
        groups = group_sentences(splits[split], train=splits["train"], dictionary=dictionary)
        out[split] = group_summary(groups, {s.name: s.lang for s in splits[split]})
    words = Counter((s.lang, s.text) for s in dictionary)
    out["dictionary"] = {"words": len(words), "exemplars": len(dictionary),
                         "exemplars_per_word": len(dictionary) / max(1, len(words))}
    return out


def generate(out: str | os.PathLike, *, preset: str = "demo", seed: int = 0, lexicon_seed: int = 0,
             dictionary_coverage: float = 0.6, layout: str = "packed", progress: bool = False) -> dict:
    """Generate SynthSign into ``out``.

    Args:
        out: output folder (packed store, or the three official corpus folders + ``dictionary`` store).
        preset: "tiny" or "demo" (see :data:`PRESETS`).
        seed: sentences, signers, dictionary exemplars and noise.
        lexicon_seed: signs, concept frequencies and dictionary coverage order.
        dictionary_coverage: fraction in [0, 1], per language, of the concepts the corpus' sentences use that get
            a dictionary entry; every concept of a val / test sentence gets one whatever the coverage.
        layout: "packed" (one store with train/val/test/dictionary) or "official" (How2Sign / CSL-Daily /
            Phoenix_2014T folders in the release layout, readable by `soke prepare`, plus ``out/dictionary``, a
            packed store holding only the dictionary split, which has no official format).
        progress: show a progress bar over the splits.

    Returns:
        a summary dict (arguments, samples and frames per split, the long-tail proportions, seconds).
    """
    if preset not in PRESETS:
        raise KeyError(f"unknown SynthSign preset {preset!r}; valid: {sorted(PRESETS)}")
    if not 0.0 <= dictionary_coverage <= 1.0:
        raise ValueError(f"dictionary_coverage must be in [0, 1], got {dictionary_coverage}")
    if layout not in ("packed", "official"):
        raise ValueError(f"layout must be 'packed' or 'official', got {layout!r}")
    start = time.perf_counter()
    out = Path(out)
    sizes = PRESETS[preset]
    lexicons = build_lexicon(lexicon_seed)
    args = {"generator": "synthsign", "generator_version": GENERATOR_VERSION, "preset": preset, "seed": seed,
            "lexicon_seed": lexicon_seed, "dictionary_coverage": dictionary_coverage, "layout": layout, "fps": FPS,
            "sizes": asdict(sizes)}
    seen: set[str] = set()
    splits: dict[str, list[Sample]] = {}
    iterator = [*SPLITS, "dictionary"]
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="synthsign", unit="split")
    dictionary: list[Sample] = []
    words: dict[str, list[str]] = {}
    for split in iterator:
        if split == "train":
            splits[split] = generate_split(lexicons, split, sizes, seed, seen)
        elif split != "dictionary":
            splits[split] = generate_split(lexicons, split, sizes, seed, seen,
                                           train_counts=concept_frequencies(splits["train"]))
        else:
            for lang in LANGS:
                used = {c for s in (s for ss in splits.values() for s in ss) if s.lang == lang
                        for c in s.meta["concepts"]}
                evaluated = {c for sp in ("val", "test") for s in splits[sp] if s.lang == lang
                             for c in s.meta["concepts"]}
                words[lang] = lexicons[lang].dictionary_words(dictionary_coverage, used, evaluated)
                dictionary += dictionary_samples(lexicons[lang], words[lang], corpus_signers(lang, sizes, seed),
                                                 dictionary_signers(lang, seed), seed)
    long_tail = long_tail_summary(splits, dictionary)
    info = {**args, "lexicon": lexicon_summary(lexicons, words), "long_tail": long_tail}
    if layout == "packed":
        _write_packed(out, info, {**splits, "dictionary": dictionary})
    else:
        _write_official(out, info, splits, dictionary)
    summary = {**args, "out": str(out), "seconds": round(time.perf_counter() - start, 2),
               "splits": {k: {"samples": len(v), "frames": int(sum(s.num_frames for s in v))}
                          for k, v in {**splits, "dictionary": dictionary}.items()},
               "long_tail": {split: long_tail[split]["fractions"] for split in ("val", "test")}}
    return summary


def _write_packed(out: Path, info: dict, splits: dict[str, list[Sample]]) -> None:
    writer = StoreWriter(out, info={"corpus": CORPUS, **info}, overwrite=True)
    for split, samples in splits.items():
        with writer.split(split) as w:
            for s in samples:
                w.add(s)
    mean, std, n = compute_stats(s.frames for s in splits["train"])
    save_stats(out / STATS_FILE, mean, std, n, source=f"synthsign train split of {out}")


def _write_official(out: Path, info: dict, splits: dict[str, list[Sample]], dictionary: list[Sample]) -> None:
    for lang, (corpus, folder) in OFFICIAL_LAYOUT.items():
        for split, samples in splits.items():
            mine = [s for s in samples if s.lang == lang]
            if corpus == "phoenix14t":  # Phoenix names start with the official split folder
                folder_name = {"val": "dev"}.get(split, split)
                mine = [Sample(f"{folder_name}/{s.name}", s.text, s.lang, s.corpus, s.frames, s.fps, s.meta)
                        for s in mine]
            write_official_split(out / folder, corpus, split, mine)
    writer = StoreWriter(out / "dictionary", info={"corpus": CORPUS, **info}, overwrite=True)
    with writer.split("dictionary") as w:
        for s in dictionary:
            w.add(s)
