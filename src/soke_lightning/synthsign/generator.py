"""SynthSign corpus generation: lexicon of signs per language, signers, continuous sentences, splits, writing.

Two seeds: ``lexicon_seed`` fixes every language's signs, concept frequencies and dictionary coverage; ``seed``
fixes the sentences, signers and noise. The same arguments give byte-identical stores.
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
from soke_lightning.synthsign.grammar import (
    ClauseSampler,
    realize,
    sign_sequence,
    text_concepts,
    unambiguous_forms,
)
from soke_lightning.synthsign.lexicon import CONCEPT_INDEX, CONCEPTS, SPOKEN_OF, get_concept

log = logging.getLogger(__name__)

CORPUS = "synthsign"
FPS = 25.0
LANGS: tuple[str, ...] = ("asl", "csl", "dgs")
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Official layout per language: (corpus id, folder under OUT).
OFFICIAL_LAYOUT: dict[str, tuple[str, str]] = {
    "asl": ("how2sign", "How2Sign"), "csl": ("csl_daily", "CSL-Daily"), "dgs": ("phoenix14t", "Phoenix_2014T"),
}
#: Zipf exponent of concept frequencies (weight of the rank-r concept = 1 / r**ZIPF_EXPONENT).
ZIPF_EXPONENT = 1.1


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

    def covered(self, coverage: float) -> list[str]:
        """Concepts with a dictionary entry at ``coverage`` (nested: a larger coverage adds entries)."""
        return self.dictionary_order[: int(round(coverage * len(self.dictionary_order)))]


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


def draw_signers(lang: str, n: int, rng: np.random.Generator) -> list[Signer]:
    out = []
    for k in range(n):
        posture = rng.normal(0.0, 0.035, 18)
        out.append(Signer(f"{lang}_signer{k}", speed=float(rng.uniform(0.85, 1.15)),
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
            rest_transition: int = 9, smooth: bool = True) -> tuple[np.ndarray, list[list[int]]]:
    """Continuous signing: rest -> signs joined by eased co-articulation transitions -> rest.

    Args:
        citations: citation-form motions [T_i, 179] in signing order.
        signer: style applied to every sign (speed, amplitude, posture, noise).
        rng: randomness for per-sign speed jitter, transition lengths and noise (None: none of them).
        rest_hold: frames held at rest at the start / end; transition: min / max transition frames.

    Returns:
        frames [T, 179] float64 and the [start, end) frame span of each sign.
    """
    rest = ph.rest_frame()
    pieces: list[np.ndarray] = [np.tile(rest, (rest_hold[0], 1))]
    spans: list[list[int]] = []
    cursor = rest_hold[0]
    previous = rest
    for k, cit in enumerate(citations):
        jitter = float(rng.uniform(0.92, 1.08)) if rng is not None else 1.0
        length = int(round(cit.shape[0] / (signer.speed * jitter)))
        sign = _resample(cit, length) if length != cit.shape[0] else cit.copy()
        if signer.amplitude != 1.0:
            anchor = sign[:, _ARM_INDEX].mean(0)
            sign[:, _ARM_INDEX] = anchor + signer.amplitude * (sign[:, _ARM_INDEX] - anchor)
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
    pieces.append(np.tile(rest, (rest_hold[1], 1)))
    frames = np.concatenate(pieces)
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


def make_sentence(lex: LanguageLexicon, sampler: ClauseSampler, signer: Signer, rng: np.random.Generator,
                  name: str) -> Sample:
    """Draw one sentence and synthesise its signing."""
    clause = sampler.sample()
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


def dictionary_samples(lex: LanguageLexicon, coverage: float) -> list[Sample]:
    """Isolated citation signs of the covered concepts (canonical signer, neutral speed, no transitions).

    The text is the citation word (the dictionary key); ``meta["forms"]`` lists the other forms the sentences write
    for that concept (plurals, conjugations, declensions: :func:`~.grammar.unambiguous_forms`), which ``soke dict
    build`` turns into aliases of the entry.
    """
    forms = unambiguous_forms(lex.spoken)
    out = []
    for cid in sorted(lex.covered(coverage), key=CONCEPT_INDEX.__getitem__):
        concept = get_concept(cid)
        frames = ph.clamp_rotations(lex.citation[cid].copy()).astype(np.float32)
        out.append(Sample(f"{lex.lang}_dict_{cid}", concept.word(lex.spoken), lex.lang, CORPUS, frames, FPS,
                          {"concept": cid, "gloss": concept.gloss, "forms": list(forms[cid])}))
    return out


def generate_split(lexicons: dict[str, LanguageLexicon], split: str, sizes: Preset, seed: int,
                   seen_texts: set[str]) -> list[Sample]:
    """Sentences of one split for every language; texts in ``seen_texts`` are drawn again (no train/test leak)."""
    samples: list[Sample] = []
    count = getattr(sizes, split)
    for li, lang in enumerate(LANGS):
        lex = lexicons[lang]
        signers = draw_signers(lang, sizes.signers, np.random.default_rng([seed, li, 7]))
        rng = np.random.default_rng([seed, li, SPLITS.index(split) + 1])
        sampler = ClauseSampler(lex.weights, rng)
        for i in range(count):
            for _ in range(50):
                sample = make_sentence(lex, sampler, signers[int(rng.integers(len(signers)))], rng,
                                       f"{lang}_{split}_{i:06d}")
                if sample.text not in seen_texts:
                    break
            seen_texts.add(sample.text)
            samples.append(sample)
    return samples


# -------------------------------------------------------------------------------------------------------- writing


def lexicon_summary(lexicons: dict[str, LanguageLexicon], coverage: float) -> dict:
    out = {}
    for lang, lex in lexicons.items():
        specs = list(lex.signs.values())
        counts = {f: dict(sorted(Counter(getattr(s, f) for s in specs).items()))
                  for f in ("hand_use", "location", "movement")}
        out[lang] = {"concepts": len(specs), "dictionary_entries": len(lex.covered(coverage)), **counts}
    return out


def generate(out: str | os.PathLike, *, preset: str = "demo", seed: int = 0, lexicon_seed: int = 0,
             dictionary_coverage: float = 0.6, layout: str = "packed", progress: bool = False) -> dict:
    """Generate SynthSign into ``out``.

    Args:
        out: output folder (packed store, or the three official corpus folders + ``dictionary`` store).
        preset: "tiny" or "demo" (see :data:`PRESETS`).
        seed: sentences, signers and noise.
        lexicon_seed: signs, concept frequencies and dictionary coverage order.
        dictionary_coverage: fraction of concepts (per language) with a dictionary entry, in [0, 1].
        layout: "packed" (one store with train/val/test/dictionary) or "official" (How2Sign / CSL-Daily /
            Phoenix_2014T folders in the release layout, readable by `soke prepare`, plus ``out/dictionary``, a
            packed store holding only the dictionary split, which has no official format).
        progress: show a progress bar over the splits.

    Returns:
        a summary dict (arguments, samples and frames per split, seconds).
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
    args = {"generator": "synthsign", "preset": preset, "seed": seed, "lexicon_seed": lexicon_seed,
            "dictionary_coverage": dictionary_coverage, "layout": layout, "fps": FPS, "sizes": asdict(sizes)}
    info = {**args, "lexicon": lexicon_summary(lexicons, dictionary_coverage)}
    seen: set[str] = set()
    splits: dict[str, list[Sample]] = {}
    iterator = SPLITS
    if progress:
        from tqdm import tqdm

        iterator = tqdm(SPLITS, desc="synthsign", unit="split")
    for split in iterator:
        splits[split] = generate_split(lexicons, split, sizes, seed, seen)
    dictionary = [s for lang in LANGS for s in dictionary_samples(lexicons[lang], dictionary_coverage)]
    if layout == "packed":
        _write_packed(out, info, {**splits, "dictionary": dictionary})
    else:
        _write_official(out, info, splits, dictionary)
    summary = {**args, "out": str(out), "seconds": round(time.perf_counter() - start, 2),
               "splits": {k: {"samples": len(v), "frames": int(sum(s.num_frames for s in v))}
                          for k, v in {**splits, "dictionary": dictionary}.items()}}
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
