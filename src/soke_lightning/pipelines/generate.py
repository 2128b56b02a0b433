"""Text -> sign-language motion with a trained stage-2 checkpoint (the pipeline behind `soke generate`).

Keypoint feature layouts (e.g. ``holistic``) have no official frames: :func:`generate_keypoints` returns points and
:func:`write_keypoint_outputs` writes ``.pose`` files with the layout's header, ``.npz`` points and GIFs drawn from
the layout's connections.

Requests (:class:`~soke_lightning.core.types.Request`) come from sentences or a store split; prompts are the
sentences, plus their retrieval string when a dictionary is given; :func:`generate` returns one
:class:`~soke_lightning.core.types.MotionPrediction` per request in official frames. The checkpoint holds the LM and
its text tokenizer; the frozen stage-1 tokenizer is read from the path stored in it (or one given explicitly) and
must still have the hash recorded at training time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from soke_lightning.callbacks.retrieval import saved_frequency
from soke_lightning.core.errors import SokeError
from soke_lightning.core.io import atomic_write, safe_stem
from soke_lightning.core.languages import LANGUAGES
from soke_lightning.core.types import MotionPrediction, Request
from soke_lightning.data.processing import length_indices
from soke_lightning.data.store import open_store
from soke_lightning.render.animation import render_animation
from soke_lightning.render.keypoints import drawable_points, export_keypoint_pose
from soke_lightning.retrieval import DictionaryError, RetrievedEntry, SignDictionary, build_prompt

log = logging.getLogger(__name__)


class GenerateError(SokeError, ValueError):
    """Bad input to `soke generate` (unknown language, empty or over-long text, unreadable file)."""


def check_lang(lang: str | None) -> str:
    """``lang`` when it is a registered sign-language key, else a :class:`GenerateError` listing the valid ones."""
    if lang is None:
        raise GenerateError(f"--lang is required with --text/--input; one of {', '.join(LANGUAGES)}")
    if lang not in LANGUAGES:
        raise GenerateError(f"unknown language {lang!r}; valid: {', '.join(LANGUAGES)} (sign-language keys of the "
                            f"registry, e.g. asl = ASL from English)")
    return lang


def check_text(text: str | None, origin: str) -> str:
    """``text`` stripped, or a :class:`GenerateError` saying that ``origin`` (``--text``, a file line) is empty."""
    if text is None or not text.strip():
        raise GenerateError(f"{origin}: the text is empty; give a sentence to sign")
    return text.strip()


def load_dictionary(stage, dictionary: str | Path) -> SignDictionary:
    """The sign dictionary at ``dictionary``, refused (as a :class:`GenerateError`) unless it is bound to the
    checkpoint's stage-1 tokenizer (same hash)."""
    try:
        return SignDictionary.load(dictionary, expected_hash=stage.tokenizer_digest)
    except (DictionaryError, FileNotFoundError) as err:
        raise GenerateError(f"--dictionary {dictionary}: {err}") from None


#: Retrieval prompt settings of generation and their defaults (SOKE's behaviour).
PROMPT_DEFAULTS = {"top_k": 3, "max_codes_per_entry": 10, "order": "longest", "matcher": "words",
                   "inflection": "none", "separator": "index", "known_words": "none"}


def prompt_settings(stage, ckpt: str | Path | None = None, **overrides) -> dict:
    """The retrieval prompt settings to generate with: SOKE's defaults, then the recipe the checkpoint was trained
    with (``LMStage(retrieval=True, retrieval_settings=...)``: separator, order, known words, ...), then the
    ``overrides`` that are not None (command-line options). A model must see the prompt format it was trained on.

    ``order="rarest"`` ranks words by their frequency in the training texts: the table comes from the retrieval
    callback's state in ``ckpt`` (recorded since that option exists); without one it is refused with the fix.
    """
    settings = dict(PROMPT_DEFAULTS)
    if stage.hparams.get("retrieval"):
        trained = stage.retrieval_settings or {}
        settings.update({k: trained[k] for k in PROMPT_DEFAULTS if k in trained})
        if trained.get("lexicon"):
            log.warning("the checkpoint's retrieval lexicon %r is not used by generation (built-in known words only)",
                        trained["lexicon"])
    settings.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(settings) - set(PROMPT_DEFAULTS))
    if unknown:
        raise GenerateError(f"unknown retrieval settings {unknown}; valid: {sorted(PROMPT_DEFAULTS)}")
    if settings["order"] == "rarest":
        frequency = saved_frequency(torch.load(ckpt, map_location="cpu", weights_only=False)) if ckpt else None
        if frequency is None:
            raise GenerateError(f"retrieval order 'rarest' ranks words by their training frequency, but "
                                f"{ckpt or 'the checkpoint'} records no frequency table; pass --order longest or "
                                f"--order text")
        settings["frequency"] = frequency
    return settings


def retrieval_prompt(stage, request: Request, sign_dict: SignDictionary, *, top_k: int = 3,
                     max_codes_per_entry: int = 10, order: str = "longest", matcher: str = "words",
                     inflection: str = "none", separator: str = "index", known_words: str = "none",
                     frequency: dict | None = None) -> tuple[str, list[RetrievedEntry]]:
    """The encoder prompt of one request with its retrieval string, and the entries in it (in prompt order).

    Whole entries that do not fit the model's encoder limit are dropped from the end (counted with the model's own
    text tokenizer). Use :func:`prompt_settings` for the keyword arguments: the model's own recipe.
    """
    prompt, entries = build_prompt(request.text, request.lang, sign_dict, top_k=top_k,
                                   max_codes_per_entry=max_codes_per_entry, order=order, matcher=matcher,
                                   inflection=inflection, max_tokens=int(stage.hparams.max_source_length),
                                   count_tokens=stage.text_tokenizer.count_tokens, separator=separator,
                                   frequency=frequency, known_words=known_words)
    log.info("%s: retrieved %s", request.name, [e.match.word for e in entries] or "nothing")
    return prompt, entries


def store_requests(store: str | Path, split_name: str, lang: str | None, n: int) -> list[Request]:
    """The first ``n`` samples per language (or of ``lang`` only) of a store split, with their ground truth."""
    langs = [check_lang(lang)] if lang is not None else list(LANGUAGES)
    split = open_store(store).split(split_name)
    out = []
    for lang in langs:
        picks = [i for i, x in enumerate(split.langs) if x == lang][: max(0, n)]
        for i in picks:
            s = split[i]
            out.append(Request(s.name, s.text, lang, float(s.fps), s.frames[length_indices(s.num_frames)]))
    if not out:
        raise GenerateError(f"split {split_name!r} of {store} has no sample of {langs}")
    return out


def build_prompts(stage, requests: list[Request], dictionary: str | None, *, ckpt: str | Path | None = None,
                  **settings) -> list[str]:
    """Encoder prompts: the sentence, plus its retrieval string from ``dictionary`` (docs/design.md §5.3).

    The dictionary must be bound to the checkpoint's stage-1 tokenizer (same hash); whole entries that do not fit
    the model's encoder limit are dropped from the end (counted with the model's own text tokenizer). ``settings``
    (``top_k``, ``order``, ``separator``, ...; None = not given) override the checkpoint's own recipe
    (:func:`prompt_settings`).
    """
    if dictionary is None:
        if stage.hparams.get("retrieval"):
            log.warning("this model was trained with retrieval prompts (dictionary %s) but no --dictionary was "
                        "given: it generates from the plain text", (stage.retrieval_settings or {}).get("dictionary"))
        return [r.text for r in requests]
    sign_dict = load_dictionary(stage, dictionary)
    resolved = prompt_settings(stage, ckpt, **settings)
    return [retrieval_prompt(stage, r, sign_dict, **resolved)[0] for r in requests]


def check_lengths(stage, requests: list[Request], prompts: list[str]) -> None:
    """Refuse prompts longer than the model's encoder limit (instead of silently truncating them)."""
    limit = int(stage.hparams.max_source_length) - 2  # + </s> + language code
    for request, prompt in zip(requests, prompts):
        count = stage.text_tokenizer.count_tokens(prompt)
        if count > limit:
            raise GenerateError(f"{request.name}: the text is too long: {count} tokens, but the model reads at most "
                                f"{limit} (max_source_length {stage.hparams.max_source_length}); split it into "
                                f"shorter sentences")
    model_langs = {tag for tag in stage.lm.sign_tags}
    for request in requests:
        tag = LANGUAGES[request.lang].sign_tag
        if tag not in model_langs:
            raise GenerateError(f"{request.name}: this model does not generate {request.lang} ({tag}); it knows "
                                f"{sorted(model_langs)}")


def generated_batches(stage, requests: list[Request], prompts: list[str], batch_size: int, **overrides):
    """Generate in batches of ``batch_size`` (with a progress bar); yields ``(requests, feats, lengths, result)``."""
    for start in tqdm(range(0, len(requests), batch_size), desc="generate", unit="batch", leave=False):
        chunk = requests[start:start + batch_size]
        with torch.no_grad():
            feats, lengths, result = stage.generate(prompts[start:start + batch_size], [r.lang for r in chunk],
                                                    texts=[r.text for r in chunk], **overrides)
        yield chunk, feats, lengths, result


def generate(stage, requests: list[Request], prompts: list[str], batch_size: int, **overrides) -> list[tuple]:
    """``(MotionPrediction, code steps, finished)`` for every request (official frames)."""
    out = []
    for chunk, feats, lengths, result in generated_batches(stage, requests, prompts, batch_size, **overrides):
        for i, r in enumerate(chunk):
            prediction = MotionPrediction(name=r.name, text=r.text, lang=r.lang, raw=feats[i, : int(lengths[i])],
                                          fps=r.fps, reference_raw=r.reference_raw)
            out.append((prediction, int(result.lengths[i]), bool(result.finished[i])))
    return out


@dataclass
class KeypointMotion:
    """One generated motion of a keypoint layout.

    Attributes:
        name, text, lang, fps: as in the request.
        points: [T, K, 3] generated points (normalised layout units).
        reference: optional ([T', K, 3] points, [T', K] visible) ground truth from a store.
        codes: code steps generated; finished: the model emitted its end token.
    """

    name: str
    text: str
    lang: str
    fps: float
    points: np.ndarray
    reference: tuple[np.ndarray, np.ndarray] | None
    codes: int
    finished: bool


def generate_keypoints(stage, requests: list[Request], prompts: list[str], batch_size: int,
                       **overrides) -> list[KeypointMotion]:
    """Like :func:`generate` for a stage whose tokenizer has a keypoint feature layout."""
    layout = stage.feature_layout
    out = []
    for chunk, feats, lengths, result in generated_batches(stage, requests, prompts, batch_size, **overrides):
        for i, r in enumerate(chunk):
            points = layout.points_of(feats[i, : int(lengths[i])].float().cpu().numpy())
            reference = None
            if r.reference_raw is not None:
                raw = np.asarray(r.reference_raw, dtype=np.float32)
                reference = (layout.points_of(layout.features(raw)), layout.point_mask(layout.feature_mask(raw)))
            out.append(KeypointMotion(r.name, r.text, r.lang, r.fps, points, reference, int(result.lengths[i]),
                                      bool(result.finished[i])))
    return out


def write_keypoint_outputs(out_dir: str | Path, motion: KeypointMotion, layout, formats) -> list[Path]:
    """Write ``.pose`` (pose-format, the layout's header), ``.npz`` (points, text, lang, fps) and/or ``.gif``
    (ground truth | prediction when a reference exists) for one motion; returns the paths written."""
    out_dir = Path(out_dir)
    stem = safe_stem(motion.name)
    paths = []
    if "pose" in formats:
        paths.append(export_keypoint_pose(out_dir / f"{stem}.pose", motion.points, layout, motion.fps))
    if "npz" in formats:
        def save(fh):
            np.savez(fh, points=motion.points.astype(np.float32), text=motion.text, lang=motion.lang,
                     fps=motion.fps, layout=layout.name)
        paths.append(atomic_write(out_dir / f"{stem}.npz", save))
    if "gif" in formats:
        sequences, titles = [motion.points], ["prediction"]
        if motion.reference is not None:
            sequences.insert(0, drawable_points(*motion.reference, layout))
            titles.insert(0, "ground truth")
        paths.append(render_animation(sequences, layout.connections, out_dir / f"{stem}.gif", titles=titles,
                                      caption=motion.text, joint_sets=layout.joint_sets(), fps=motion.fps))
    return paths
