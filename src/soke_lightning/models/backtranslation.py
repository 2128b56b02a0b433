"""The back-translation judge (sign -> text) as pure PyTorch: :class:`BackTranslationModel` and :class:`BackTranslator`.

:class:`BackTranslationModel`: a temporal convolution front end that down-samples the normalised 133-d features by
``downsample``, a transformer encoder, and a transformer text decoder over the project's text tokenizer. The
decoder starts with the spoken-language code of the sample (``en_XX`` / ``zh_CN`` / ``de_DE``), mBART style, and
stops at ``</s>``; decoding is greedy. :class:`BackTranslator` bundles the model with its normalisation statistics
and text tokenizer; ``from_checkpoint`` rebuilds it from a back-translation stage checkpoint alone (entry
``ckpt["soke_backtranslation"]``: format, model keyword arguments, the text tokenizer's files; weights under
``translator.*`` in ``state_dict``). Training lives in :mod:`soke_lightning.training.backtranslation`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from soke_lightning.core.languages import get_language
from soke_lightning.core.layout import FEATURE_DIM, RAW_DIM, raw_to_features
from soke_lightning.data.normalization import Normalizer
from soke_lightning.models.text_tokenizer import TextTokenizer, tokenizer_from_files

CHECKPOINT_KEY = "soke_backtranslation"


CHECKPOINT_FORMAT = 1


@dataclass
class BackTranslationArchitecture:
    """Sizes and decoding rule of :class:`BackTranslationModel` that do not depend on the text vocabulary.

    The training stage takes this as one argument (``architecture`` in YAML); the vocabulary fields are added in
    :class:`BackTranslationConfig` once the text tokenizer exists.

    Attributes:
        feature_dim: input feature size (133).
        d_model: width of encoder and decoder.
        encoder_layers: transformer encoder layers over the down-sampled motion.
        decoder_layers: transformer decoder layers.
        heads: attention heads.
        ffn_dim: feed-forward width.
        dropout: dropout of the transformer layers and the front end.
        downsample: temporal down-sampling of the front end (a power of 2; 1 = none).
        max_motion_steps: longest down-sampled motion (positional table size).
        max_text_length: longest decoded sentence in tokens (positional table size, greedy decoding limit).
        no_repeat_ngram_size: greedy decoding never repeats an n-gram of this size within a sentence (0 = off); a
            small judge otherwise loops ("Abend Abend Abend ...") until ``max_text_length``, and the loop, not the
            motion, decides its BLEU. Part of the checkpoint, so the judge's decoding is reproducible.
    """

    feature_dim: int = FEATURE_DIM
    d_model: int = 128
    encoder_layers: int = 2
    decoder_layers: int = 2
    heads: int = 4
    ffn_dim: int = 256
    dropout: float = 0.1
    downsample: int = 4
    max_motion_steps: int = 512
    max_text_length: int = 64
    no_repeat_ngram_size: int = 0

    def __post_init__(self):
        name = type(self).__name__
        if self.downsample < 1 or self.downsample & (self.downsample - 1):
            raise ValueError(f"{name}.downsample must be a power of 2, got {self.downsample}")
        if self.d_model % self.heads:
            raise ValueError(f"{name}: d_model {self.d_model} is not divisible by heads {self.heads}")
        if self.no_repeat_ngram_size < 0:
            raise ValueError(f"{name}: no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")


@dataclass(kw_only=True)
class BackTranslationConfig(BackTranslationArchitecture):
    """Everything :class:`BackTranslationModel` is built from: the architecture plus the text vocabulary.

    Attributes:
        vocab_size: text vocabulary size (the text tokenizer's length).
        pad_id: padding token id (mBART: 1).
        eos_id: end-of-sentence token id (mBART: 2).
    """

    vocab_size: int
    pad_id: int = 1
    eos_id: int = 2

    def __post_init__(self):
        super().__post_init__()
        if self.vocab_size <= max(self.pad_id, self.eos_id):
            raise ValueError(f"BackTranslationConfig: vocab_size {self.vocab_size} must exceed the special ids")


class BackTranslationModel(nn.Module):
    """Motion features [B, T, 133] -> text token logits, with greedy decoding.

    Args:
        config: sizes (see :class:`BackTranslationConfig`).
    """

    def __init__(self, config: BackTranslationConfig):
        super().__init__()
        self.config = c = config
        front: list[nn.Module] = [nn.Conv1d(c.feature_dim, c.d_model, 3, padding=1), nn.GELU()]
        for _ in range(int(math.log2(c.downsample))):
            front += [nn.Conv1d(c.d_model, c.d_model, 4, stride=2, padding=1), nn.GELU()]
        self.front = nn.Sequential(*front, nn.Dropout(c.dropout))
        self.motion_pos = nn.Embedding(c.max_motion_steps, c.d_model)
        layer = dict(d_model=c.d_model, nhead=c.heads, dim_feedforward=c.ffn_dim, dropout=c.dropout,
                     batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer), c.encoder_layers,
                                             norm=nn.LayerNorm(c.d_model), enable_nested_tensor=False)
        self.token_embed = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_id)
        self.text_pos = nn.Embedding(c.max_text_length + 1, c.d_model)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer), c.decoder_layers,
                                             norm=nn.LayerNorm(c.d_model))
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.head.weight = self.token_embed.weight  # tied, as mBART's lm_head
        # small embeddings (mBART's init_std 0.02): with the sqrt(d_model) input scale and the tied head, N(0, 1)
        # embeddings give logits of tens and a first loss near 100
        nn.init.normal_(self.token_embed.weight, std=0.02)
        nn.init.normal_(self.text_pos.weight, std=0.02)
        nn.init.normal_(self.motion_pos.weight, std=0.02)
        with torch.no_grad():
            self.token_embed.weight[c.pad_id].zero_()

    def motion_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Down-sampled lengths (ceil(T / downsample), at least 1)."""
        d = self.config.downsample
        return ((lengths + d - 1) // d).clamp_min(1)

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode motion.

        Args:
            feats: [B, T, 133] normalised features (padding ignored).
            lengths: [B] valid frames.

        Returns:
            (memory [B, L, d_model], padding mask [B, L] True on padding).
        """
        steps = torch.arange(feats.shape[1], device=feats.device)
        valid = (steps[None] < lengths.to(feats.device)[:, None]).to(feats.dtype)
        x = self.front((feats * valid[..., None]).transpose(1, 2)).transpose(1, 2)
        if x.shape[1] > self.config.max_motion_steps:
            raise ValueError(f"BackTranslationModel: {feats.shape[1]} frames give {x.shape[1]} encoder steps, more "
                             f"than max_motion_steps={self.config.max_motion_steps}; raise it or crop the motion")
        x = x + self.motion_pos(torch.arange(x.shape[1], device=x.device))[None]
        pad = torch.arange(x.shape[1], device=x.device)[None] >= self.motion_lengths(lengths.to(x.device))[:, None]
        return self.encoder(x, src_key_padding_mask=pad), pad

    def decode(self, tokens: torch.Tensor, memory: torch.Tensor, memory_pad: torch.Tensor) -> torch.Tensor:
        """Logits [B, S, V] of the next token after every prefix of ``tokens`` [B, S] (causal)."""
        s = tokens.shape[1]
        if s > self.config.max_text_length + 1:
            raise ValueError(f"BackTranslationModel: {s} decoder tokens exceed max_text_length + 1 = "
                             f"{self.config.max_text_length + 1}")
        x = self.token_embed(tokens) * math.sqrt(self.config.d_model)
        x = x + self.text_pos(torch.arange(s, device=x.device))[None]
        causal = nn.Transformer.generate_square_subsequent_mask(s, device=x.device, dtype=torch.bool)
        h = self.decoder(x, memory, tgt_mask=causal, tgt_is_causal=True,
                         tgt_key_padding_mask=tokens == self.config.pad_id, memory_key_padding_mask=memory_pad)
        return self.head(h)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, decoder_input: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits [B, S, V] for ``decoder_input`` [B, S] (language code, then the sentence)."""
        memory, pad = self.encode(feats, lengths)
        return self.decode(decoder_input, memory, pad)

    @torch.no_grad()
    def greedy(self, feats: torch.Tensor, lengths: torch.Tensor, start_ids: torch.Tensor,
               max_length: int | None = None) -> list[list[int]]:
        """Greedy decoding.

        Args:
            feats: [B, T, 133] normalised features.
            lengths: [B] valid frames.
            start_ids: [B] first decoder token (the spoken-language code).
            max_length: most tokens generated per sentence (default: ``max_text_length``).

        Returns:
            B token-id lists, without the start token and the final ``</s>``.
        """
        c = self.config
        limit = min(max_length or c.max_text_length, c.max_text_length)
        memory, pad = self.encode(feats, lengths)
        tokens = start_ids.to(memory.device)[:, None]
        done = torch.zeros(len(tokens), dtype=torch.bool, device=memory.device)
        for _ in range(limit):
            logits = self.decode(tokens, memory, pad)[:, -1]
            if c.no_repeat_ngram_size > 0:
                logits = ban_repeats(logits, tokens, c.no_repeat_ngram_size)
            nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, c.pad_id), nxt)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            done |= nxt == c.eos_id
            if bool(done.all()):
                break
        return [[t for t in row if t not in (c.pad_id, c.eos_id)] for row in until_eos(tokens[:, 1:], c.eos_id)]


def ban_repeats(logits: torch.Tensor, tokens: torch.Tensor, n: int) -> torch.Tensor:
    """``logits`` [B, V] with -inf on every token that would complete an n-gram already in ``tokens`` [B, S]."""
    if tokens.shape[1] < n:
        return logits
    logits = logits.clone()
    for b, row in enumerate(tokens.tolist()):
        prefix = tuple(row[len(row) - n + 1:]) if n > 1 else ()
        banned = {row[i + n - 1] for i in range(len(row) - n + 1) if tuple(row[i:i + n - 1]) == prefix}
        if banned:
            logits[b, list(banned)] = float("-inf")
    return logits


def until_eos(tokens: torch.Tensor, eos_id: int) -> list[list[int]]:
    out = []
    for row in tokens.tolist():
        out.append(row[: row.index(eos_id)] if eos_id in row else row)
    return out


class BackTranslator(nn.Module):
    """A trained back-translation model with its normalisation statistics and text tokenizer.

    Args:
        model: the network.
        text_tokenizer: the tokenizer whose ids the model predicts.
        normalizer: feature statistics of the training data (features are normalised with them).
    """

    def __init__(self, model: BackTranslationModel, text_tokenizer: TextTokenizer, normalizer: Normalizer):
        super().__init__()
        self.model = model
        self.normalizer = normalizer
        self.text_tokenizer = text_tokenizer
        if len(text_tokenizer) != model.config.vocab_size:
            raise ValueError(f"BackTranslator: text tokenizer from {text_tokenizer.source} has {len(text_tokenizer)} "
                             f"tokens but the model's vocab_size is {model.config.vocab_size}")

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu") -> BackTranslator:
        """Rebuild from a :class:`BackTranslationStage` checkpoint (strict load), in eval mode.

        Raises:
            KeyError naming the file when it is not a back-translation checkpoint.
        """
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
        entry = ckpt.get(CHECKPOINT_KEY) if isinstance(ckpt, dict) else None
        if entry is None or entry.get("format") != CHECKPOINT_FORMAT:
            raise KeyError(f"{path}: not a back-translation checkpoint (no {CHECKPOINT_KEY!r} entry of format "
                           f"{CHECKPOINT_FORMAT}); train one with `soke fit --config experiments/backtranslation/"
                           f"demo.yaml` (make train-backtranslation)")
        translator = build_translator(entry, source=f"back-translation checkpoint {path}")
        prefix = "translator."
        state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        translator.load_state_dict(state, strict=True)
        return translator.eval()

    def start_ids(self, langs: Sequence[str]) -> torch.Tensor:
        """[B] decoder start tokens: the spoken-language code of each sign-language key (``asl`` -> ``en_XX``)."""
        ids = [self.text_tokenizer.token_id(get_language(lang).spoken_code) for lang in langs]
        return torch.tensor(ids, dtype=torch.long)

    @torch.no_grad()
    def translate(self, features: torch.Tensor, lengths: torch.Tensor, langs: Sequence[str],
                  max_length: int | None = None) -> list[str]:
        """Back-translate a padded batch.

        Args:
            features: [B, T, 133] NORMALISED features (with this translator's statistics).
            lengths: [B] valid frames.
            langs: B sign-language keys (``asl``, ``csl``, ``dgs``).
            max_length: most tokens per sentence.

        Returns:
            B sentences.
        """
        if features.ndim != 3 or features.shape[-1] != FEATURE_DIM:
            raise ValueError(f"BackTranslator.translate: features must be [B, T, {FEATURE_DIM}], got "
                             f"{tuple(features.shape)}")
        if len(langs) != features.shape[0]:
            raise ValueError(f"BackTranslator.translate: {features.shape[0]} sequences but {len(langs)} languages")
        device = next(self.parameters()).device
        ids = self.model.greedy(features.to(device), lengths.to(device), self.start_ids(langs), max_length)
        return [self.text_tokenizer.hf.decode(row, skip_special_tokens=True).strip() for row in ids]

    @torch.no_grad()
    def translate_raw(self, sequences: Sequence[np.ndarray | torch.Tensor], langs: Sequence[str],
                      batch_size: int = 32) -> list[str]:
        """Back-translate official frames ([T, 179]) or denormalised features ([T, 133]) of any lengths."""
        out: list[str] = []
        for start in range(0, len(sequences), batch_size):
            chunk = [self._features(s) for s in sequences[start:start + batch_size]]
            lengths = torch.tensor([len(s) for s in chunk])
            padded = torch.zeros(len(chunk), int(lengths.max()), FEATURE_DIM)
            for i, s in enumerate(chunk):
                padded[i, : len(s)] = s
            out += self.translate(padded, lengths, langs[start:start + batch_size])
        return out

    def _features(self, seq) -> torch.Tensor:
        arr = np.asarray(seq.detach().cpu() if isinstance(seq, torch.Tensor) else seq, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] not in (RAW_DIM, FEATURE_DIM) or len(arr) == 0:
            raise ValueError(f"BackTranslator: a sequence must be [T>0, {RAW_DIM}] official frames or [T, "
                             f"{FEATURE_DIM}] features, got shape {arr.shape}")
        feats = torch.from_numpy(raw_to_features(arr) if arr.shape[1] == RAW_DIM else arr)
        return self.normalizer.normalize(feats.to(self.normalizer.mean.device)).cpu()


def build_translator(entry: dict, source: str) -> BackTranslator:
    """An untrained :class:`BackTranslator` from a checkpoint entry (model keyword arguments + tokenizer files)."""
    text_tokenizer = tokenizer_from_files(entry["text_tokenizer"], source)
    model = BackTranslationModel(BackTranslationConfig(**entry["model"]))
    return BackTranslator(model, text_tokenizer, Normalizer())
