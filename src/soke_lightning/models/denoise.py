"""Denoising pretraining of the stage-2 LM on motion codes, and starting a run from such a checkpoint.

mBART is pretrained as a denoising autoencoder: spans of a sentence are replaced by one ``<mask>`` each and the
model writes the sentence back. SOKE fine-tunes that pretrained model, so its generator can copy tokens from its
prompt from the first step of fine-tuning, which is what retrieval needs: the dictionary entries' codes sit in the
prompt. Offline there are no pretrained weights, and a small mBART trained from scratch on text -> motion learns
to lean on the retrieved codes without copying them (docs/evaluation.md §9). ``objective: denoise`` gives the
small model the same objective on the data we have: the encoder reads a sample's motion codes as motion tokens
(the retrieval string format, :func:`~soke_lightning.models.text_tokenizer.motion_string`) with about 35 % of
the time steps masked in spans of Poisson(3.5) steps, optionally cut into segments written in a random order
(mBART's sentence permutation, ``segment_steps``), and the decoder writes every code back through the usual
(multi-head) heads. ``init_ckpt`` then starts any stage-2 run from the result, as SOKE starts from mbart-large-cc25.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from soke_lightning.core.languages import get_language
from soke_lightning.models.text_tokenizer import MASK_TOKEN, motion_string

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DenoiseSettings:
    """Noise of the denoising objective (mBART's text infilling, on code time steps).

    Attributes:
        mask_ratio: share of a sample's time steps hidden (mBART: 0.35).
        mean_span: mean length in time steps of one masked span (Poisson, at least 1; mBART: 3.5 words).
        max_steps: time steps of a sample written into the prompt (3 motion tokens each; the encoder holds
            ``max_source_length`` tokens).
        segment_steps: > 0: mBART's second noise, sentence permutation, on motion: the (masked) sample is cut at
            random points into about ``length / segment_steps`` segments, which are written in a random order,
            each after the retrieval prompt's index separator of the sample's language (``" Key word 2, "``), so
            the decoder must find which segment continues the motion (what copying a retrieved entry into its
            place needs); 0 (default): no permutation, the codes stay in time order.
    """

    mask_ratio: float = 0.35
    mean_span: float = 3.5
    max_steps: int = 80
    segment_steps: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"denoise_settings.mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if self.mean_span <= 0:
            raise ValueError(f"denoise_settings.mean_span must be > 0, got {self.mean_span}")
        if self.max_steps < 1:
            raise ValueError(f"denoise_settings.max_steps must be >= 1, got {self.max_steps}")
        if self.segment_steps < 0:
            raise ValueError(f"denoise_settings.segment_steps must be >= 0 (0: no permutation), got "
                             f"{self.segment_steps}")


def mask_spans(length: int, settings: DenoiseSettings, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Disjoint, sorted ``[start, end)`` spans covering about ``mask_ratio`` of ``length`` steps (never all)."""
    budget = int(round(settings.mask_ratio * length))
    budget = min(budget, length - 1)
    covered = np.zeros(length, dtype=bool)
    tries = 0
    while covered.sum() < budget and tries < 4 * length:
        tries += 1
        span = max(1, int(rng.poisson(settings.mean_span)))
        span = min(span, budget - int(covered.sum()))
        start = int(rng.integers(0, length - span + 1))
        covered[start:start + span] = True
    spans, start = [], None
    for i, c in enumerate(covered.tolist() + [False]):
        if c and start is None:
            start = i
        elif not c and start is not None:
            spans.append((start, i))
            start = None
    return spans


def permuted_segments(units: int, settings: DenoiseSettings, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``[start, end)`` segments covering ``units`` in a random order (about ``units / segment_steps`` of them, cut
    at random points); one segment in order when permutation is off or there is a single unit."""
    if settings.segment_steps <= 0 or units < 2:
        return [(0, units)] if units else []
    count = int(min(units, max(1, round(units / settings.segment_steps))))
    cuts = np.sort(rng.choice(np.arange(1, units), size=count - 1, replace=False)).tolist() if count > 1 else []
    bounds = [0, *cuts, units]
    segments = list(zip(bounds[:-1], bounds[1:]))
    return [segments[k] for k in rng.permutation(len(segments)).tolist()]


def noised_motion_string(codes: torch.Tensor, parts: Sequence[str], settings: DenoiseSettings,
                         rng: np.random.Generator, lang: str | None = None) -> str:
    """[L, P] codes -> motion tokens with each masked span replaced by one ``<mask>``; with ``segment_steps`` the
    result is cut into segments written in a random order after ``lang``'s retrieval separators."""
    rows = codes[: settings.max_steps].tolist()
    spans = mask_spans(len(rows), settings, rng) if rows else []
    units, i = [], 0  # one string per visible time step or masked span
    for start, end in spans:
        units.extend(motion_string([row], parts) for row in rows[i:start])
        units.append(MASK_TOKEN)
        i = end
    units.extend(motion_string([row], parts) for row in rows[i:])
    if settings.segment_steps <= 0:
        return "".join(units)
    if lang is None:
        raise ValueError("denoise_settings.segment_steps > 0 writes each segment after the retrieval separator of "
                         "the sample's language; give the sample's language")
    separator = get_language(lang).retrieval_separator
    return "".join(separator.format(i=k) + "".join(units[a:b])
                   for k, (a, b) in enumerate(permuted_segments(len(units), settings, rng), 1))


def denoise_prompts(codes: torch.Tensor, lengths: torch.Tensor, parts: Sequence[str], settings: DenoiseSettings,
                    rng: np.random.Generator, langs: Sequence[str] | None = None) -> list[str]:
    """The encoder prompts of a batch ([B, L, P] codes, [B] lengths, B language keys where segments are
    permuted) for the denoising objective."""
    return [noised_motion_string(codes[i, : int(n)], parts, settings, rng, None if langs is None else langs[i])
            for i, n in enumerate(lengths.tolist())]


def eval_rng(keys: Sequence[str]) -> np.random.Generator:
    """A generator fixed by the batch's sample keys: validation prompts are the same every epoch."""
    return np.random.default_rng(zlib.crc32("\n".join(keys).encode("utf-8")))


def _vocab_axis(value: torch.Tensor, size: int) -> int | None:
    return next((axis for axis, n in enumerate(value.shape) if n == size), None)


def transfer_weights(target: dict[str, torch.Tensor], source: dict[str, torch.Tensor], origin: str,
                     target_vocab: dict[str, int], source_vocab: dict[str, int]) -> tuple[dict[str, torch.Tensor], dict]:
    """A state dict for ``target``'s shapes with ``source``'s values.

    * Tensors over the vocabulary (embeddings, LM head, logits bias) are copied row by row for every token both
      vocabularies hold, matched by token string: a run whose text tokenizer or motion vocabulary differs a little
      (the parallel baseline's part start tags, separator characters) keeps everything they share; rows of tokens
      the source lacks keep ``target``'s initialisation.
    * A position table (``embed_positions``) of another length shares its leading rows (the flattened baseline
      needs 3x the positions of the others).
    * Every other tensor must have the same shape.

    Returns:
        (state dict, report) with the report's ``shared_tokens``, ``new_tokens`` and ``resized``.

    Raises:
        ValueError naming the first missing or incompatible tensor and both shapes.
    """
    shared = sorted(set(target_vocab) & set(source_vocab))
    tgt_rows = torch.tensor([target_vocab[t] for t in shared], dtype=torch.long)
    src_rows = torch.tensor([source_vocab[t] for t in shared], dtype=torch.long)
    out, resized = {}, []
    for name, value in target.items():
        if name not in source:
            raise ValueError(f"{origin}: has no tensor {name!r}; init_ckpt must come from a stage-2 run of the same "
                             f"architecture (mbart settings, separate_heads) and stage-1 tokenizer")
        src = source[name].detach()
        axis = _vocab_axis(value, len(target_vocab))
        if axis is not None and src.dim() == value.dim() and src.shape[axis] == len(source_vocab) and (
                src.shape[:axis] + src.shape[axis + 1:] == value.shape[:axis] + value.shape[axis + 1:]):
            merged = value.detach().clone()
            merged.index_copy_(axis, tgt_rows, src.index_select(axis, src_rows).to(value.dtype))
            out[name] = merged
        elif src.shape == value.shape:
            out[name] = src.clone().to(value.dtype)
        elif "embed_positions" in name and src.shape[1:] == value.shape[1:]:
            merged = value.detach().clone()
            rows = min(src.shape[0], value.shape[0])
            merged[:rows] = src[:rows].to(value.dtype)
            out[name] = merged
            resized.append(f"{name} {tuple(src.shape)} -> {tuple(value.shape)}")
        else:
            raise ValueError(f"{origin}: tensor {name!r} has shape {tuple(src.shape)} but this run's model needs "
                             f"{tuple(value.shape)}; give this run the init checkpoint's mbart settings")
    report = {"shared_tokens": len(shared), "new_tokens": len(target_vocab) - len(shared), "resized": resized}
    return out, report
