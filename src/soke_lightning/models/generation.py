"""Decoding helpers shared by SignMBart's schemes: typed generation settings/results, next-token selection
(greedy, temperature / top-k / top-p sampling) and the decoder KV cache across transformers versions."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

STOP_RULES = ("body", "any", "never")


@dataclass
class GenerationConfig:
    """How to pick tokens and when to stop.

    Attributes:
        max_codes: maximum number of time codes per sample (the flattened scheme may take P x this many steps).
        do_sample: sample instead of greedy argmax.
        temperature: softmax temperature when sampling (> 0).
        top_k: keep the k most likely tokens per head when sampling (0: all).
        top_p: nucleus sampling threshold per head (1.0: off).
        stop_on: "body": a sample stops when its first (body) head emits </s> (reference HEAD); "any": when any
            head does (the paper's wording); "never": always run ``max_codes`` steps (benchmarks, step counts).
        use_cache: reuse decoder keys/values (KV cache) instead of re-running the whole prefix every step.
        num_beams: beam width; > 1 is supported for the flattened scheme with greedy decoding only.
    """

    max_codes: int = 100
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    stop_on: str = "body"
    use_cache: bool = True
    num_beams: int = 1

    def __post_init__(self):
        if self.max_codes < 1:
            raise ValueError(f"GenerationConfig.max_codes must be >= 1, got {self.max_codes}")
        if self.stop_on not in STOP_RULES:
            raise ValueError(f"GenerationConfig.stop_on must be one of {STOP_RULES}, got {self.stop_on!r}")
        if self.temperature <= 0:
            raise ValueError(f"GenerationConfig.temperature must be > 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"GenerationConfig.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.num_beams < 1:
            raise ValueError(f"GenerationConfig: top_k must be >= 0 and num_beams >= 1, got {self.top_k}, "
                             f"{self.num_beams}")
        if self.num_beams > 1 and self.do_sample:
            raise ValueError("GenerationConfig: beam search (num_beams > 1) is greedy; set do_sample=False")


@dataclass
class GenerationResult:
    """Generated codes.

    Attributes:
        codes: [B, L, P] per-part code indices (0..K_p-1), -1 after a part's length.
        lengths: [B] number of time codes per sample (the longest part for the parallel scheme).
        part_lengths: [B, P] number of codes per part (all equal except for the parallel scheme).
        finished: [B] True where the sample stopped on </s> (False: it ran into ``max_codes``).
        steps: decoder passes run (the loop stops when every sample has finished).
    """

    codes: torch.Tensor
    lengths: torch.Tensor
    part_lengths: torch.Tensor
    finished: torch.Tensor
    steps: int


def select_next(logits: torch.Tensor, config: GenerationConfig, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """Pick one index per row of ``logits`` [N, V] (disallowed entries already at -inf)."""
    if not config.do_sample:
        return logits.argmax(-1)
    logits = logits.float() / config.temperature
    if config.top_k and config.top_k < logits.shape[-1]:
        kth = logits.topk(config.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if config.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token when the mass before it already reaches top_p (the most likely token always stays)
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= config.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _decoder_cache_kwarg() -> str:
    from transformers.models.mbart.modeling_mbart import MBartDecoder

    params = inspect.signature(MBartDecoder.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


_CACHE_KWARG: str | None = None


def cache_kwarg() -> str:
    """Name of the decoder's KV-cache argument (``cache`` in transformers >= 5, ``past_key_values`` before)."""
    global _CACHE_KWARG
    if _CACHE_KWARG is None:
        _CACHE_KWARG = _decoder_cache_kwarg()
    return _CACHE_KWARG


def new_cache(config):
    """An empty encoder-decoder KV cache (self-attention + cross-attention)."""
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    try:
        return EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
    except TypeError:  # transformers 4.x: DynamicCache takes no config
        return EncoderDecoderCache(DynamicCache(), DynamicCache())
