"""SignMBart: an unmodified mBART (``self.mbart``) extended with motion tokens, trained and decoded with
SOKE's multi-head scheme (docs/design.md §4.5-4.7, §4.9) or the flattened / parallel baselines (§4.11).

Vocabulary layout (the contract with :class:`~soke_lightning.models.text_tokenizer.TextTokenizer`): text
vocabulary ``[0, V)``, then the target tags, then every code of every part
(:class:`~soke_lightning.models.text_tokenizer.MotionVocabulary` order). Codes map to ids by one offset per
part, so the id map is a tensor addition, never a per-token Python lookup.

Heads: part ``p`` scores the ids ``head_token_ids(p)`` = its K_p code tokens followed by the special tokens
(``<s> <pad> </s>``, every target tag, ``head_extra_token_ids``). Scoring only those rows of the tied
``lm_head`` (+ ``final_logits_bias``) is exactly the reference's "full logits with -inf outside the mask",
without projecting onto the whole vocabulary. Local index ``c < K_p`` of a head *is* code ``c``.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from soke_lightning.core.languages import LANGUAGES
from soke_lightning.models.generation import (
    GenerationConfig,
    GenerationResult,
    StaticKVDecoder,
    cache_kwarg,
    decoder_copy,
    new_cache,
    select_next,
)
from soke_lightning.models.text_tokenizer import MotionVocabulary

log = logging.getLogger(__name__)

DECODING_SCHEMES = ("multihead", "flattened", "parallel")
IGNORE_INDEX = -100


@dataclass
class SignMBartOutput:
    """Teacher-forced training result.

    Attributes:
        loss: scalar; multihead / parallel: sum of the per-part token-averaged CEs; flattened: one CE
            averaged over every token of the interleaved stream.
        per_part_loss: part -> token-averaged CE of that part's positions.
        per_part_accuracy: part -> top-1 accuracy on the counted positions.
        logits: part -> [B, T_p, n_p] scores over ``head_token_ids(p)``.
        labels: part -> [B, T_p] local targets (index into the head's ids), -100 where ignored.
    """

    loss: torch.Tensor
    per_part_loss: dict[str, torch.Tensor]
    per_part_accuracy: dict[str, torch.Tensor]
    logits: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]


class _DecoderRunner:
    """Runs the stock mBART decoder one step at a time, with transformers' growing cache or by re-running the
    whole prefix (the reference scheme)."""

    def __init__(self, decoder: nn.Module, config, encoder_states: torch.Tensor, encoder_mask: torch.Tensor,
                 use_cache: bool):
        self.decoder = decoder
        self.encoder_states = encoder_states
        self.encoder_mask = encoder_mask
        self.use_cache = use_cache
        self.cache = new_cache(config) if use_cache else None
        self.prefix: torch.Tensor | None = None

    def step(self, embeds: torch.Tensor) -> torch.Tensor:
        """Feed [N, 1, D] new input embeddings, return the [N, D] last hidden state."""
        if self.use_cache:
            out = self.decoder(inputs_embeds=embeds, encoder_hidden_states=self.encoder_states,
                               encoder_attention_mask=self.encoder_mask, use_cache=True,
                               **{cache_kwarg(): self.cache})
        else:
            self.prefix = embeds if self.prefix is None else torch.cat([self.prefix, embeds], dim=1)
            out = self.decoder(inputs_embeds=self.prefix, encoder_hidden_states=self.encoder_states,
                               encoder_attention_mask=self.encoder_mask, use_cache=False)
        return out.last_hidden_state[:, -1]

    def keep(self, index: torch.Tensor) -> None:
        """Keep rows ``index`` (finished samples dropped, or beams reordered)."""
        self.encoder_states = self.encoder_states.index_select(0, index)
        self.encoder_mask = self.encoder_mask.index_select(0, index)
        if self.use_cache:
            self.cache.reorder_cache(index)
        else:
            self.prefix = self.prefix.index_select(0, index)


class SignMBart(nn.Module):
    """mBART with motion tokens and multi-head / flattened / parallel decoding.

    Args:
        parts: part names in the stage-1 tokenizer's order (``["body", "lhand", "rhand"]``); the first part is
            the "body" stream (fusion weight 1-(P-1)λ, the stopping head).
        codebook_sizes: codebook size K of each part.
        sign_tags: target sign-language tags (registry ``sign_tag`` values: ``en_ASL``, ``zh_CSL``, ``de_DGS``).
        mbart: an ``MBartConfig``, a mapping of its arguments (YAML), or a local directory of a pretrained
            mBART (e.g. a copy of mbart-large-cc25; loaded offline).
        text_vocab_size: size of the text tokenizer's vocabulary (``TextTokenizer.base_vocab_size``). With a
            config it replaces ``vocab_size``; with a pretrained directory it must equal the model's.
        decoding: "multihead" (SOKE), "flattened" (one interleaved stream) or "parallel" (P passes).
        lambda_hand: λ of the fused decoder input (1-(P-1)λ)·E(part_0) + λ·Σ E(part_i) (paper 1/3, code 0.4).
        embed_scale_fused: multiply fused inputs by √d_model like normal tokens (when ``scale_embedding``;
            transformers >= 4.43 behaviour). False reproduces the unscaled fused inputs of transformers <= 4.40.
        ignore_pad_in_loss: True: padding positions are not targets. False: the reference's training on
            ``<pad>`` after the tag (docs/design.md §4.5).
        separate_heads: one trainable projection per part over its head vocabulary (initialised from the
            tied ``lm_head`` rows) instead of masks over the one ``lm_head``.
        mean_resizing: initialise the new embedding rows with the mean/covariance of the old ones
            (transformers default) instead of N(0, init_std).
        head_extra_token_ids: more special ids every head may score (faithfulness: ``<unk>``, source codes,
            ``<mask>``).
        label_smoothing: label smoothing of each head's cross-entropy, spread over that head's vocabulary
            (SOKE: 0).
    """

    def __init__(
        self,
        parts: Sequence[str],
        codebook_sizes: Sequence[int],
        sign_tags: Sequence[str],
        mbart,
        text_vocab_size: int | None = None,
        decoding: str = "multihead",
        lambda_hand: float = 1 / 3,
        embed_scale_fused: bool = True,
        ignore_pad_in_loss: bool = True,
        separate_heads: bool = False,
        mean_resizing: bool = True,
        head_extra_token_ids: Sequence[int] = (),
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"SignMBart: label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        if decoding not in DECODING_SCHEMES:
            raise ValueError(f"SignMBart: decoding must be one of {DECODING_SCHEMES}, got {decoding!r}")
        self.parts = tuple(parts)
        self.codebook_sizes = tuple(int(k) for k in codebook_sizes)
        self.sign_tags = tuple(sign_tags)
        self.motion = MotionVocabulary(self.parts, self.codebook_sizes, self.sign_tags,
                                       part_specific_tags=decoding == "parallel")
        num_parts = len(self.parts)
        if not 0.0 <= lambda_hand or (num_parts - 1) * lambda_hand > 1.0:
            raise ValueError(f"SignMBart: lambda_hand must be in [0, 1/(P-1)] so every fusion weight is >= 0; got "
                             f"{lambda_hand} for P={num_parts} parts")
        self.decoding = decoding
        self.lambda_hand = float(lambda_hand)
        self.embed_scale_fused = bool(embed_scale_fused)
        self.ignore_pad_in_loss = bool(ignore_pad_in_loss)
        self.separate_heads = bool(separate_heads)

        self.mbart = _build_mbart(mbart, text_vocab_size)
        config = self.mbart.config
        self.text_vocab_size = int(config.vocab_size)
        self.vocab_size = self.text_vocab_size + len(self.motion)
        self.mbart.resize_token_embeddings(self.vocab_size, mean_resizing=mean_resizing)
        self.pad_token_id = int(config.pad_token_id)
        self.eos_token_id = int(config.eos_token_id)
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0

        n_tag_tokens = len(self.motion.tag_tokens())
        starts = [self.text_vocab_size + n_tag_tokens + sum(self.codebook_sizes[:p]) for p in range(num_parts)]
        self.register_buffer("code_offsets", torch.tensor(starts, dtype=torch.long), persistent=False)
        # tag_ids[t, p]: start/target tag of sign tag t for part p (the same id for every part unless parallel)
        tag_ids = torch.arange(len(self.sign_tags))[:, None] * (num_parts if decoding == "parallel" else 1)
        tag_ids = tag_ids + (torch.arange(num_parts)[None] if decoding == "parallel" else 0)
        self.register_buffer("tag_ids", (tag_ids + self.text_vocab_size).expand(-1, num_parts).contiguous(),
                             persistent=False)
        weights = [1.0 - (num_parts - 1) * self.lambda_hand] + [self.lambda_hand] * (num_parts - 1)
        self.register_buffer("fusion_weights", torch.tensor(weights), persistent=False)

        specials = {int(config.bos_token_id), self.pad_token_id, self.eos_token_id, *map(int, head_extra_token_ids)}
        specials |= set(range(self.text_vocab_size, self.text_vocab_size + n_tag_tokens))
        bad = sorted(i for i in specials if not 0 <= i < self.vocab_size)
        if bad:
            raise ValueError(f"SignMBart: head special ids {bad} are outside the vocabulary [0, {self.vocab_size})")
        specials = torch.tensor(sorted(specials), dtype=torch.long)
        local = torch.full((num_parts, self.vocab_size), -1, dtype=torch.long)
        eos_local = []
        for p, k in enumerate(self.codebook_sizes):
            ids = torch.cat([torch.arange(k) + starts[p], specials])
            self.register_buffer(f"_head_ids_{p}", ids, persistent=False)
            local[p, ids] = torch.arange(len(ids))
            eos_local.append(int(local[p, self.eos_token_id]))
        self.register_buffer("_local_index", local, persistent=False)
        self.eos_local = tuple(eos_local)
        self.heads = None
        if self.separate_heads:
            self.heads = nn.ModuleList()
            for p in range(num_parts):
                weight, bias = self._tied_head(p)
                head = nn.Linear(config.d_model, len(weight))
                with torch.no_grad():
                    head.weight.copy_(weight)
                    head.bias.copy_(bias)
                self.heads.append(head)

    # ------------------------------------------------------------------------------------ vocabulary / ids
    def head_token_ids(self, part: int) -> torch.Tensor:
        """Vocabulary ids scored by head ``part``: its K codes, then the special ids."""
        return getattr(self, f"_head_ids_{part}")

    def head_masks(self) -> torch.Tensor:
        """[P, V] bool: the reference's vocabulary masks (True where head p may score a token)."""
        return self._local_index >= 0

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """[..., P] code indices -> vocabulary ids (tensor addition)."""
        return codes + self.code_offsets

    def check_tokenizer(self, tokenizer) -> None:
        """Assert that a :class:`TextTokenizer` assigns exactly this model's ids.

        Raises:
            ValueError: naming the mismatching size or vocabulary.
        """
        if tokenizer.base_vocab_size != self.text_vocab_size:
            raise ValueError(f"text tokenizer ({tokenizer.source}) has {tokenizer.base_vocab_size} text tokens but "
                             f"the mBART embedding has {self.text_vocab_size} rows; build SignMBart with "
                             f"text_vocab_size={tokenizer.base_vocab_size} or load the matching tokenizer")
        if tokenizer.motion != self.motion:
            raise ValueError(f"text tokenizer motion vocabulary {tokenizer.motion} differs from the model's "
                             f"{self.motion}; call tokenizer.add_motion_vocabulary(model.motion)")
        if (len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id) != (
                self.vocab_size, self.pad_token_id, self.eos_token_id):
            raise ValueError(f"tokenizer (size, pad, eos) = {(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)}"
                             f" but model {(self.vocab_size, self.pad_token_id, self.eos_token_id)}")

    def tag_indices(self, tags: Sequence[str] | torch.Tensor, batch_size: int) -> torch.Tensor:
        """Sign tags (``en_ASL``), language keys (``asl``) or indices into ``sign_tags`` -> [B] long."""
        device = self.code_offsets.device
        if isinstance(tags, torch.Tensor):
            idx = tags.to(device=device, dtype=torch.long)
        else:
            lookup = {t: i for i, t in enumerate(self.sign_tags)}
            names = [LANGUAGES[t].sign_tag if t in LANGUAGES else t for t in tags]
            unknown = sorted(set(names) - set(lookup))
            if unknown:
                raise KeyError(f"SignMBart: unknown target tags {unknown}; this model has sign_tags {list(self.sign_tags)}")
            idx = torch.tensor([lookup[n] for n in names], dtype=torch.long, device=device)
        if idx.shape != (batch_size,) or (idx.numel() and not 0 <= int(idx.min()) <= int(idx.max()) < len(self.sign_tags)):
            raise ValueError(f"SignMBart: expected {batch_size} tags indexing {len(self.sign_tags)} sign tags, got "
                             f"shape {tuple(idx.shape)}")
        return idx

    # ------------------------------------------------------------------------------------------ embeddings
    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Embed ids exactly like mBART embeds normal tokens (scaled by √d_model when ``scale_embedding``)."""
        return F.embedding(ids, self.mbart.get_input_embeddings().weight) * self.embed_scale

    def embed_fused(self, ids: torch.Tensor) -> torch.Tensor:
        """[..., P] ids -> [..., D]: (1-(P-1)λ)·E(ids[..., 0]) + λ·Σ_p>0 E(ids[..., p]) (docs/design.md §4.6)."""
        table = self.mbart.get_input_embeddings().weight
        fused = (F.embedding(ids, table) * self.fusion_weights.to(table.dtype)[:, None]).sum(-2)
        return fused * (self.embed_scale if self.embed_scale_fused else 1.0)

    def _tied_head(self, part: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.head_token_ids(part)
        return self.mbart.lm_head.weight[ids], self.mbart.final_logits_bias[0, ids]

    def head_logits(self, hidden: torch.Tensor, part: int, weights: tuple | None = None) -> torch.Tensor:
        """[..., D] decoder states -> [..., n_p] scores over ``head_token_ids(part)``."""
        if self.heads is not None:
            return self.heads[part](hidden)
        weight, bias = weights if weights is not None else self._tied_head(part)
        return F.linear(hidden, weight, bias)

    # ---------------------------------------------------------------------------------------------- forward
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, S] source ids and mask -> [B, S, D] encoder states."""
        return self.mbart.model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def _decode_all(self, embeds, encoder_states, attention_mask) -> torch.Tensor:
        return self.mbart.model.decoder(inputs_embeds=embeds, encoder_hidden_states=encoder_states,
                                        encoder_attention_mask=attention_mask, use_cache=False).last_hidden_state

    def _check_codes(self, codes: torch.Tensor, lengths: torch.Tensor) -> None:
        if codes.dim() != 3 or codes.shape[-1] != len(self.parts):
            raise ValueError(f"SignMBart: codes must be [B, L, P={len(self.parts)}] for parts {list(self.parts)}, "
                             f"got shape {tuple(codes.shape)}")
        if lengths.shape != codes.shape[:1] or (lengths.numel() and (lengths.min() < 0 or lengths.max() > codes.shape[1])):
            raise ValueError(f"SignMBart: code_lengths must be [B={codes.shape[0]}] in [0, {codes.shape[1]}], got "
                             f"{lengths.tolist()}")
        valid = torch.arange(codes.shape[1], device=codes.device)[None] < lengths[:, None]
        for p, (name, k) in enumerate(zip(self.parts, self.codebook_sizes)):
            c = codes[..., p][valid]
            if c.numel() and (int(c.min()) < 0 or int(c.max()) >= k):
                raise ValueError(f"SignMBart: {name} codes span [{int(c.min())}, {int(c.max())}] but the {name} "
                                 f"codebook has K={k} codes (0..{k - 1}); the stage-1 tokenizer and the LM disagree")

    def _targets(self, ids: torch.Tensor, lengths: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """Labels ``codes..., </s>, tag, <pad>...`` along dim 1 of ids [B, L, C] (tags [B, C]) -> [B, L+2, C]."""
        batch, length, channels = ids.shape
        ids = torch.cat([ids, ids.new_full((batch, 2, channels), self.pad_token_id)], dim=1)
        pos = torch.arange(length + 2, device=ids.device)[None, :, None]
        end = lengths[:, None, None]
        labels = torch.where(pos < end, ids, self.pad_token_id)
        labels = torch.where(pos == end, self.eos_token_id, labels)
        return torch.where(pos == end + 1, tags[:, None, :], labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, codes: torch.Tensor,
                code_lengths: torch.Tensor, tags: Sequence[str] | torch.Tensor) -> SignMBartOutput:
        """Teacher-forced loss.

        Args:
            input_ids: [B, S] encoder ids (``TextTokenizer.encode_source``).
            attention_mask: [B, S] encoder mask (also used by the cross-attention).
            codes: [B, L, P] code indices, anything (e.g. -1) after ``code_lengths``.
            code_lengths: [B] number of valid time steps.
            tags: B target tags / language keys, or [B] indices into ``sign_tags``.

        Returns:
            :class:`SignMBartOutput`.
        """
        self._check_codes(codes, code_lengths)
        batch, _, num_parts = codes.shape
        tag_rows = self.tag_ids[self.tag_indices(tags, batch)]  # [B, P]
        ids = self.codes_to_ids(codes.clamp(min=0))
        encoder_states = self.encode(input_ids, attention_mask)

        if self.decoding == "multihead":
            labels = self._targets(ids, code_lengths, tag_rows)  # [B, T, P]
            inputs = torch.cat([tag_rows[:, None], labels[:, :-1]], dim=1)
            hidden = self._decode_all(self.embed_fused(inputs), encoder_states, attention_mask)
            streams = [(hidden, labels[..., p]) for p in range(num_parts)]
        elif self.decoding == "parallel":
            labels = self._targets(ids, code_lengths, tag_rows)
            rows = labels.permute(0, 2, 1).reshape(batch * num_parts, -1)  # row b*P + p
            inputs = torch.cat([tag_rows.reshape(-1, 1), rows[:, :-1]], dim=1)
            hidden = self._decode_all(self.embed_tokens(inputs), encoder_states.repeat_interleave(num_parts, 0),
                                      attention_mask.repeat_interleave(num_parts, 0))
            hidden = hidden.view(batch, num_parts, *hidden.shape[1:])
            streams = [(hidden[:, p], labels[..., p]) for p in range(num_parts)]
        else:  # flattened: b1 l1 r1 b2 ... </s> tag
            flat = ids.reshape(batch, -1, 1)
            labels = self._targets(flat, code_lengths * num_parts, tag_rows[:, :1])[..., 0]  # [B, P*L+2]
            inputs = torch.cat([tag_rows[:, :1], labels[:, :-1]], dim=1)
            hidden = self._decode_all(self.embed_tokens(inputs), encoder_states, attention_mask)
            streams = [(hidden[:, p::num_parts], labels[:, p::num_parts]) for p in range(num_parts)]

        logits, targets, losses, accuracy, sums, counts = {}, {}, {}, {}, [], []
        for p, (name, (states, part_labels)) in enumerate(zip(self.parts, streams)):
            scores = self.head_logits(states, p)
            local = self._local_index[p][part_labels]
            if self.ignore_pad_in_loss:
                local = local.masked_fill(part_labels == self.pad_token_id, IGNORE_INDEX)
            if (local == -1).any():
                raise RuntimeError(f"SignMBart: a {name} target is outside the {name} head's vocabulary")
            total = F.cross_entropy(scores.flatten(0, -2), local.flatten(), ignore_index=IGNORE_INDEX,
                                    reduction="sum", label_smoothing=self.label_smoothing)
            count = (local != IGNORE_INDEX).sum()
            counted = local != IGNORE_INDEX
            losses[name] = total / count.clamp(min=1)
            accuracy[name] = ((scores.argmax(-1) == local) & counted).sum() / count.clamp(min=1)
            logits[name], targets[name] = scores, local
            sums.append(total)
            counts.append(count)
        if self.decoding == "flattened":
            loss = torch.stack(sums).sum() / torch.stack(counts).sum().clamp(min=1)
        else:
            loss = torch.stack(list(losses.values())).sum()
        return SignMBartOutput(loss, losses, accuracy, logits, targets)

    # ------------------------------------------------------------------------------------------- generation
    def _allowed(self, part: int, stop_on: str) -> torch.Tensor:
        """[n_p] bool: codes, plus </s> when this head may stop the sample."""
        n = len(self.head_token_ids(part))
        allowed = torch.zeros(n, dtype=torch.bool, device=self.code_offsets.device)
        allowed[: self.codebook_sizes[part]] = True
        stops = stop_on == "any" or (stop_on == "body" and (part == 0 or self.decoding == "parallel"))
        if stops:
            allowed[self.eos_local[part]] = True
        return allowed

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, tags: Sequence[str] | torch.Tensor,
                 config: GenerationConfig | None = None, generator: torch.Generator | None = None,
                 **overrides) -> GenerationResult:
        """Generate codes for a batch; every sample stops on its own.

        The decoder steps run on :class:`StaticKVDecoder` by default (``config.cache``), stopped samples leave the
        batch (``drop_finished``), and ``bucket_size`` / ``precision`` / ``compile`` select length buckets, a
        reduced-precision copy of the decoder and a compiled step; float32 settings give the reference's codes.

        Args:
            input_ids: [B, S] encoder ids.
            attention_mask: [B, S] encoder mask (always used, also by the cross-attention).
            tags: B target tags / language keys, or [B] indices into ``sign_tags``.
            config: :class:`GenerationConfig`; keyword ``overrides`` replace its fields.
            generator: random generator for sampling.

        Returns:
            :class:`GenerationResult` with per-part code indices. Heads only choose codes (and </s> where they
            may stop), so the streams stay aligned in time.
        """
        config = GenerationConfig(**{**(config.__dict__ if config else {}), **overrides})
        if config.num_beams > 1 and self.decoding != "flattened":
            raise ValueError(f"SignMBart.generate: beam search is implemented for decoding='flattened' only, not "
                             f"{self.decoding!r}; use num_beams=1")
        batch = input_ids.shape[0]
        tag_index = self.tag_indices(tags, batch)
        decoder = self.mbart.model.decoder
        if config.use_cache and config.cache == "static":
            decoder = decoder_copy(decoder, config.precision, input_ids.device)
        if not config.bucket_size or batch <= config.bucket_size:
            return self._generate_batch(input_ids, attention_mask, tag_index, config, generator, decoder)
        # buckets of similar prompt length: less padding in the encoder and the cross-attention
        order = attention_mask.sum(-1).argsort(stable=True)
        parts = []
        for index in order.split(config.bucket_size):
            mask = attention_mask[index]
            width = int(mask.any(0).nonzero().max()) + 1 if bool(mask.any()) else mask.shape[1]  # trailing padding
            parts.append((index, self._generate_batch(input_ids[index, :width], mask[:, :width], tag_index[index],
                                                      config, generator, decoder)))
        return _merge_results(parts, batch, len(self.parts))

    def _generate_batch(self, input_ids, attention_mask, tag_index, config, generator, decoder) -> GenerationResult:
        tag_rows = self.tag_ids[tag_index]
        encoder_states = self.encode(input_ids, attention_mask)
        weights = [None if self.heads is not None else self._tied_head(p) for p in range(len(self.parts))]
        allowed = [self._allowed(p, config.stop_on) for p in range(len(self.parts))]
        args = (encoder_states, attention_mask, tag_rows, config, generator, weights, allowed, decoder)
        if self.decoding == "multihead":
            return self._generate_multihead(*args)
        if self.decoding == "parallel":
            return self._generate_parallel(*args)
        if config.num_beams > 1:
            return self._beam_flattened(*args[:4], weights, allowed, decoder)
        return self._generate_flattened(*args)

    def decoder_passes(self, result: GenerationResult) -> torch.Tensor:
        """[B] sequential decoder passes each sample needed, the ``</s>`` step included.

        multihead: one pass per time step (all parts at once); parallel: the parts run side by side in the batch, so
        the longest part's steps; flattened: one pass per code of every part (P per time step).
        """
        stop = result.finished.long()
        if self.decoding == "parallel":
            return result.part_lengths.max(-1).values + stop
        if self.decoding == "flattened":
            return len(self.parts) * result.lengths + stop
        return result.lengths + stop

    def _pick(self, hidden, part, config, generator, weights, allowed) -> torch.Tensor:
        scores = self.head_logits(hidden, part, weights[part]).masked_fill(~allowed[part], float("-inf"))
        return select_next(scores, config, generator)

    def _runner(self, decoder, encoder_states, attention_mask, config, max_steps):
        if config.use_cache and config.cache == "static":
            return StaticKVDecoder(decoder, encoder_states, attention_mask, max_steps, config.compile)
        return _DecoderRunner(decoder, self.mbart.config, encoder_states, attention_mask,
                              config.use_cache and config.cache == "dynamic")

    def _generate_multihead(self, encoder_states, attention_mask, tag_rows, config, generator, weights, allowed,
                            decoder):
        batch, num_parts = tag_rows.shape
        device = tag_rows.device
        runner = self._runner(decoder, encoder_states, attention_mask, config, config.max_codes)
        codes = torch.full((batch, config.max_codes, num_parts), -1, dtype=torch.long, device=device)
        lengths = torch.full((batch,), config.max_codes, dtype=torch.long, device=device)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        eos_local = torch.tensor(self.eos_local, device=device)
        rows = torch.arange(batch, device=device)  # the sample of each decoder row
        prev, steps = tag_rows, 0
        for step in range(config.max_codes):
            hidden = runner.step(self.embed_fused(prev[:, None]))
            choice = torch.stack([self._pick(hidden, p, config, generator, weights, allowed)
                                  for p in range(num_parts)], dim=-1)
            hit = (choice == eos_local).any(-1)  # </s> can only be chosen where allowed
            was = finished[rows]
            lengths[rows[hit & ~was]] = step
            stopped = was | hit
            finished[rows] = stopped
            codes[rows, step] = torch.where(stopped[:, None], -1, choice)
            steps = step + 1
            if bool(finished.all()):
                break
            rows, choice, stopped = _drop_stopped(runner, rows, choice, stopped, config.drop_finished)
            prev = torch.where(stopped[:, None], self.eos_token_id, self.codes_to_ids(choice))
        return GenerationResult(codes[:, :steps], lengths, lengths[:, None].expand(-1, num_parts).clone(),
                                finished, steps)

    def _generate_parallel(self, encoder_states, attention_mask, tag_rows, config, generator, weights, allowed,
                           decoder):
        batch, num_parts = tag_rows.shape
        device = tag_rows.device
        runner = self._runner(decoder, encoder_states.repeat_interleave(num_parts, 0),
                              attention_mask.repeat_interleave(num_parts, 0), config, config.max_codes)
        streams = batch * num_parts  # one decoder row per (sample, part)
        codes = torch.full((streams, config.max_codes), -1, dtype=torch.long, device=device)
        part_lengths = torch.full((streams,), config.max_codes, dtype=torch.long, device=device)
        done = torch.zeros(streams, dtype=torch.bool, device=device)
        eos_local = torch.tensor(self.eos_local, device=device)
        rows = torch.arange(streams, device=device)
        prev, steps = tag_rows.reshape(-1), 0
        for step in range(config.max_codes):
            hidden = runner.step(self.embed_tokens(prev[:, None]))
            part = rows % num_parts
            choice = torch.empty_like(rows)
            for p in range(num_parts):
                sel = (part == p).nonzero().squeeze(1)
                if sel.numel():
                    choice[sel] = self._pick(hidden[sel], p, config, generator, weights, allowed)
            hit = choice == eos_local[part]
            was = done[rows]
            part_lengths[rows[hit & ~was]] = step
            stopped = was | hit
            done[rows] = stopped
            codes[rows, step] = torch.where(stopped, -1, choice)
            steps = step + 1
            if bool(done.all()):
                break
            rows, choice, stopped = _drop_stopped(runner, rows, choice, stopped, config.drop_finished)
            prev = torch.where(stopped, self.eos_token_id, choice + self.code_offsets[rows % num_parts])
        codes = codes.view(batch, num_parts, -1).transpose(1, 2)[:, :steps]
        part_lengths = part_lengths.view(batch, num_parts)
        return GenerationResult(codes, part_lengths.max(-1).values, part_lengths, done.view(batch, num_parts).all(-1),
                                steps)

    def _generate_flattened(self, encoder_states, attention_mask, tag_rows, config, generator, weights, allowed,
                            decoder):
        batch, num_parts = tag_rows.shape
        device = tag_rows.device
        runner = self._runner(decoder, encoder_states, attention_mask, config, num_parts * config.max_codes)
        codes = torch.full((batch, config.max_codes, num_parts), -1, dtype=torch.long, device=device)
        lengths = torch.full((batch,), config.max_codes, dtype=torch.long, device=device)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        rows = torch.arange(batch, device=device)
        prev, steps = tag_rows[:, 0], 0
        for step in range(num_parts * config.max_codes):
            part, time = step % num_parts, step // num_parts
            hidden = runner.step(self.embed_tokens(prev[:, None]))
            choice = self._pick(hidden, part, config, generator, weights, allowed)
            hit = choice == self.eos_local[part]
            was = finished[rows]
            lengths[rows[hit & ~was]] = time
            stopped = was | hit
            finished[rows] = stopped
            codes[rows, time, part] = torch.where(stopped, -1, choice)
            steps = step + 1
            if bool(finished.all()):
                break
            rows, choice, stopped = _drop_stopped(runner, rows, choice, stopped, config.drop_finished)
            prev = torch.where(stopped, self.eos_token_id, choice + self.code_offsets[part])
        codes = codes[:, : -(-steps // num_parts)]
        codes = codes.masked_fill(torch.arange(codes.shape[1], device=device)[None, :, None] >= lengths[:, None, None], -1)
        return GenerationResult(codes, lengths, lengths[:, None].expand(-1, num_parts).clone(), finished, steps)

    def _beam_flattened(self, encoder_states, attention_mask, tag_rows, config, weights, allowed, decoder):
        """Beam search over the interleaved stream; a finished hypothesis keeps its score and stops growing."""
        batch, num_parts = tag_rows.shape
        beams, device = config.num_beams, tag_rows.device
        rows = batch * beams
        total = num_parts * config.max_codes
        runner = self._runner(decoder, encoder_states.repeat_interleave(beams, 0),
                              attention_mask.repeat_interleave(beams, 0), config, total)
        tokens = torch.full((rows, total), -1, dtype=torch.long, device=device)
        scores = torch.zeros(batch, beams, device=device)
        scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
        ended = torch.zeros(rows, dtype=torch.bool, device=device)
        ended_at = torch.full((rows,), total, dtype=torch.long, device=device)
        prev, steps = tag_rows[:, 0].repeat_interleave(beams), 0
        for step in range(total):
            part = step % num_parts
            hidden = runner.step(self.embed_tokens(prev[:, None]))
            logp = self.head_logits(hidden, part, weights[part]).float()
            logp = logp.masked_fill(~allowed[part], float("-inf")).log_softmax(-1)
            # an ended hypothesis has exactly one continuation (itself) with log-probability 0
            frozen = torch.full_like(logp, float("-inf"))
            frozen[:, self.eos_local[part]] = 0.0
            logp = torch.where(ended[:, None], frozen, logp)
            width = logp.shape[-1]
            candidates = (scores.reshape(rows, 1) + logp).view(batch, beams * width)
            top, flat = candidates.topk(beams, dim=-1)
            origin = flat // width + torch.arange(batch, device=device)[:, None] * beams
            origin, choice = origin.reshape(-1), (flat % width).reshape(-1)
            runner.keep(origin)
            tokens, ended, ended_at = tokens[origin], ended[origin], ended_at[origin]
            newly = ~ended & (choice == self.eos_local[part])
            ended_at = torch.where(newly, step, ended_at)
            ended = ended | newly
            tokens[:, step] = torch.where(ended, -1, choice)
            scores = top
            prev = torch.where(ended, self.eos_token_id, choice + self.code_offsets[part])
            steps = step + 1
            if bool(ended.all()):
                break
        # length-normalised log-probability (HF length_penalty=1) so short hypotheses are not favoured
        generated = torch.minimum(ended_at + 1, torch.full_like(ended_at, steps)).view(batch, beams)
        best = (scores / generated).argmax(-1) + torch.arange(batch, device=device) * beams
        lengths = ended_at[best] // num_parts
        finished = ended[best]
        width_codes = -(-steps // num_parts)
        codes = tokens[best, : width_codes * num_parts].reshape(batch, width_codes, num_parts)
        codes = codes.masked_fill(torch.arange(width_codes, device=device)[None, :, None] >= lengths[:, None, None], -1)
        return GenerationResult(codes, lengths, lengths[:, None].expand(-1, num_parts).clone(), finished, steps)


def _drop_stopped(runner, rows, choice, stopped, drop: bool):
    """Remove the decoder rows whose sample (or stream) has stopped, when ``drop``; else keep them (fed </s>)."""
    if not drop or not bool(stopped.any()):
        return rows, choice, stopped
    live = (~stopped).nonzero().squeeze(1)
    runner.keep(live)
    return rows[live], choice[live], stopped[live]


def _merge_results(parts, batch: int, num_parts: int) -> GenerationResult:
    """Reassemble per-bucket results [(sample indices, result), ...] in the input order."""
    width = max(r.codes.shape[1] for _, r in parts)
    first = parts[0][1]
    device = first.codes.device
    codes = torch.full((batch, width, num_parts), -1, dtype=torch.long, device=device)
    lengths = torch.empty(batch, dtype=torch.long, device=device)
    part_lengths = torch.empty(batch, num_parts, dtype=torch.long, device=device)
    finished = torch.empty(batch, dtype=torch.bool, device=device)
    for index, result in parts:
        codes[index, : result.codes.shape[1]] = result.codes
        lengths[index], part_lengths[index], finished[index] = result.lengths, result.part_lengths, result.finished
    return GenerationResult(codes, lengths, part_lengths, finished, sum(r.steps for _, r in parts))


def _build_mbart(mbart, text_vocab_size: int | None):
    """An ``MBartForConditionalGeneration`` from a config, a mapping of config arguments or a local directory."""
    from transformers import MBartConfig, MBartForConditionalGeneration

    if isinstance(mbart, (str, Path)):
        directory = Path(mbart)
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(
                f"SignMBart: mbart={str(mbart)!r} is not a local model directory with config.json. Hub ids are not "
                f"downloaded (offline); pass a local copy of mbart-large-cc25 (config.json + weights) or an "
                f"MBartConfig / mapping of its arguments for a randomly initialised model")
        model = MBartForConditionalGeneration.from_pretrained(str(directory), local_files_only=True).float()
        if text_vocab_size is not None and int(model.config.vocab_size) != int(text_vocab_size):
            raise ValueError(
                f"SignMBart: {directory}/config.json has vocab_size={model.config.vocab_size} but the text tokenizer "
                f"has {text_vocab_size} tokens; use the tokenizer saved with this model (vocabulary-trimmed mBARTs "
                f"with a map_ids.pkl are not supported)")
        log.info("loaded pretrained mBART from %s (%d text tokens)", directory, model.config.vocab_size)
        return model
    if isinstance(mbart, Mapping):
        config = MBartConfig(**dict(mbart))
    elif isinstance(mbart, MBartConfig):
        config = copy.deepcopy(mbart)
    else:
        raise TypeError(f"SignMBart: mbart must be an MBartConfig, a mapping of its arguments or a local directory, "
                        f"got {type(mbart).__name__}")
    if text_vocab_size is not None:
        config.vocab_size = int(text_vocab_size)
    return MBartForConditionalGeneration(config)
