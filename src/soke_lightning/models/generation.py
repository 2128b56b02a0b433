"""Decoding helpers shared by SignMBart's schemes: typed generation settings/results, next-token selection
(greedy, temperature / top-k / top-p sampling), the decoder KV cache across transformers versions, and
:class:`StaticKVDecoder`, a step-by-step mBART decoder over preallocated key/value buffers (the fast path)."""

from __future__ import annotations

import copy
import inspect
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

STOP_RULES = ("body", "any", "never")
CACHES = ("static", "dynamic", "none")
PRECISIONS = ("float32", "bfloat16", "float16", "int8")


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
        use_cache: reuse decoder keys/values (KV cache) instead of re-running the whole prefix every step
            (False: the reference scheme, whatever ``cache`` says).
        num_beams: beam width; > 1 is supported for the flattened scheme with greedy decoding only.
        cache: "static": :class:`StaticKVDecoder`, keys/values in buffers allocated once for ``max_codes`` steps
            and cross-attention keys/values projected once (default: fastest in ``bench/bench_generation.py``);
            "dynamic": transformers' growing ``DynamicCache`` through the stock decoder; "none": as
            ``use_cache=False``. Greedy codes are the same with all three (float32).
        drop_finished: remove a sample from the decoder batch once it has stopped (its cache rows too) instead of
            feeding it ``</s>`` until the longest sample ends. Codes are unchanged.
        precision: weights and activations of the decoder steps: "float32" (exact); "bfloat16" / "float16"
            (GPUs; bfloat16 also on CPUs with bf16 instructions); "int8": dynamic int8 quantisation of the
            decoder's linear layers (CPU only). Reduced precisions can change greedy codes where two codes score
            almost the same; the benchmark reports the agreement with float32. Needs ``cache="static"``.
        bucket_size: generate in buckets of this many prompts of similar length (sorted by length, trailing
            padding trimmed per bucket) and return the results in the input order; 0: one batch.
        compile: compile the static decoder's step with ``torch.compile`` in this mode ("default",
            "reduce-overhead" (CUDA graphs on GPUs), "max-autotune-no-cudagraphs"); None: eager. Needs
            ``cache="static"``; each batch size compiles once.
        length_cap: 0 (SOKE): a sample may run to ``max_codes``. x > 0: a sample stops after
            ``ceil(x * r_lang * n)`` codes (and never more than ``max_codes``), where ``n`` is the number of encoder
            tokens of its sentence (without retrieval entries) and ``r_lang`` the largest codes-per-token ratio of
            the language's training sentences, learnt when the model was fitted (``LMStage``). 1.0 allows the
            longest-for-its-text training sentence; a generation that loops without ever emitting ``</s>`` is cut
            there instead of at ``max_codes``. Capped samples count as not finished.
    """

    max_codes: int = 100
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    stop_on: str = "body"
    use_cache: bool = True
    num_beams: int = 1
    cache: str = "static"
    drop_finished: bool = True
    precision: str = "float32"
    bucket_size: int = 0
    compile: str | None = None
    length_cap: float = 0.0

    def __post_init__(self):
        if self.cache not in CACHES:
            raise ValueError(f"GenerationConfig.cache must be one of {CACHES}, got {self.cache!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"GenerationConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if (self.precision != "float32" or self.compile) and (self.cache != "static" or not self.use_cache):
            raise ValueError(f"GenerationConfig: precision={self.precision!r} / compile={self.compile!r} run on the "
                             f"static KV cache; set cache='static' and use_cache=True (got cache={self.cache!r}, "
                             f"use_cache={self.use_cache})")
        if self.bucket_size < 0:
            raise ValueError(f"GenerationConfig.bucket_size must be >= 0 (0: one batch), got {self.bucket_size}")
        if self.max_codes < 1:
            raise ValueError(f"GenerationConfig.max_codes must be >= 1, got {self.max_codes}")
        if not self.length_cap >= 0:
            raise ValueError(f"GenerationConfig.length_cap must be >= 0 (0: off), got {self.length_cap}")
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


def cap_result(result: GenerationResult, caps: torch.Tensor) -> GenerationResult:
    """``result`` with sample ``i`` cut after ``caps[i]`` time codes (``length_cap``).

    Decoding is causal, so the first ``caps[i]`` codes are those a decoder stopped at ``caps[i]`` steps would have
    produced; a sample longer than its cap counts as not finished, like one cut at ``max_codes``.
    """
    caps = caps.to(result.lengths.device)
    over = result.lengths > caps
    lengths = torch.minimum(result.lengths, caps)
    part_lengths = torch.minimum(result.part_lengths, caps[:, None])
    steps = torch.arange(result.codes.shape[1], device=caps.device)
    codes = result.codes.masked_fill(steps[None, :, None] >= part_lengths[:, None, :], -1)
    return GenerationResult(codes, lengths, part_lengths, result.finished & ~over, result.steps)


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


def decoder_copy(decoder: nn.Module, precision: str, device: torch.device) -> nn.Module:
    """The decoder in ``precision``: itself for float32, else a converted copy (the trained weights stay as they are).

    Raises:
        ValueError: int8 on a non-CPU device, or fp16/bf16 that the device cannot run.
    """
    if precision == "float32":
        return decoder
    if precision == "int8":
        if device.type != "cpu":
            raise ValueError(f"GenerationConfig.precision='int8' (dynamic quantisation) runs on CPU only, the model "
                             f"is on {device}; use 'bfloat16' or 'float16' there")
        with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao; it still works
            warnings.simplefilter("ignore")
            return torch.ao.quantization.quantize_dynamic(copy.deepcopy(decoder).float(), {nn.Linear},
                                                          dtype=torch.qint8)
    return copy.deepcopy(decoder).to(getattr(torch, precision))


class StaticKVDecoder:
    """Step-by-step decoding through an mBART decoder's own layers, with preallocated key/value buffers.

    The stock decoder path grows a ``DynamicCache`` by concatenation and rebuilds its masks every step; here the
    self-attention keys/values of all layers live in one buffer ``[L, N, H, max_steps, Dh]`` written in place, the
    cross-attention keys/values are projected once, and a step is the layer arithmetic alone (the same modules and
    the same ``scaled_dot_product_attention``). Rows can be dropped (:meth:`keep`) when their samples finish.

    Args:
        decoder: an ``MBartDecoder`` (or a converted copy, see :func:`decoder_copy`); only read.
        encoder_states: [N, S, D] encoder output.
        encoder_mask: [N, S] 1 for real tokens.
        max_steps: number of decoder steps the buffers hold.
        compile_mode: ``torch.compile`` mode for the layer stack, or None.
    """

    def __init__(self, decoder: nn.Module, encoder_states: torch.Tensor, encoder_mask: torch.Tensor, max_steps: int,
                 compile_mode: str | None = None):
        self.decoder = decoder
        layers = decoder.layers
        attn = layers[0].self_attn
        self.heads, self.head_dim = attn.num_heads, attn.head_dim
        self.dtype = decoder.layer_norm.weight.dtype  # int8 copies keep float layer norms and activations
        self.out_dtype = encoder_states.dtype
        rows, width, _ = encoder_states.shape
        states = encoder_states.to(self.dtype)
        self.cross_keys = torch.stack([self._split(layer.encoder_attn.k_proj(states)) for layer in layers])
        self.cross_values = torch.stack([self._split(layer.encoder_attn.v_proj(states)) for layer in layers])
        self.cross_mask = torch.zeros(rows, 1, 1, width, dtype=self.dtype, device=states.device).masked_fill(
            ~encoder_mask.bool()[:, None, None, :], torch.finfo(self.dtype).min)
        shape = (len(layers), rows, self.heads, max_steps, self.head_dim)
        self.keys = torch.zeros(shape, dtype=self.dtype, device=states.device)
        self.values = torch.zeros(shape, dtype=self.dtype, device=states.device)
        self.length = 0
        self._layers = self._run_layers
        if compile_mode is not None:
            self._layers = torch.compile(self._run_layers, mode=compile_mode, fullgraph=False, dynamic=False)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """[N, T, D] -> [N, H, T, Dh]."""
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def _run_layers(self, hidden, step, keys, values, cross_keys, cross_values, cross_mask, valid):
        """The decoder layers on one new position ``step`` (an int, or a 0-d tensor when compiled so that the
        graph does not depend on it); ``valid`` [1, 1, 1, max_steps] masks the unwritten slots when compiled."""
        rows = hidden.shape[0]
        for i, layer in enumerate(self.decoder.layers):
            attn = layer.self_attn
            x = layer.self_attn_layer_norm(hidden)
            key = attn.k_proj(x).view(rows, self.heads, 1, self.head_dim)
            value = attn.v_proj(x).view(rows, self.heads, 1, self.head_dim)
            if valid is None:
                keys[i, :, :, step : step + 1] = key
                values[i, :, :, step : step + 1] = value
            else:  # a tensor position: index_copy_ keeps the write inside the compiled graph
                keys[i].index_copy_(2, step.view(1), key)
                values[i].index_copy_(2, step.view(1), value)
            if valid is None:
                out = F.scaled_dot_product_attention(self._split(attn.q_proj(x)), keys[i, :, :, : step + 1],
                                                     values[i, :, :, : step + 1], scale=attn.scaling)
            else:  # compiled: fixed shapes, unwritten slots masked
                out = F.scaled_dot_product_attention(self._split(attn.q_proj(x)), keys[i], values[i],
                                                     attn_mask=valid, scale=attn.scaling)
            hidden = hidden + attn.out_proj(out.transpose(1, 2).reshape(rows, 1, -1))
            cross = layer.encoder_attn
            x = layer.encoder_attn_layer_norm(hidden)
            out = F.scaled_dot_product_attention(self._split(cross.q_proj(x)), cross_keys[i], cross_values[i],
                                                 attn_mask=cross_mask, scale=cross.scaling)
            hidden = hidden + cross.out_proj(out.transpose(1, 2).reshape(rows, 1, -1))
            x = layer.final_layer_norm(hidden)
            hidden = hidden + layer.fc2(layer.activation_fn(layer.fc1(x)))
        return hidden

    def step(self, embeds: torch.Tensor) -> torch.Tensor:
        """Feed [N, 1, D] input embeddings of the next position; return the [N, D] final hidden state (in the
        encoder states' dtype, whatever precision the steps run in)."""
        if self.length >= self.keys.shape[3]:
            raise RuntimeError(f"StaticKVDecoder: all {self.keys.shape[3]} preallocated steps are used")
        dec = self.decoder
        positions = dec.embed_positions
        hidden = embeds.to(self.dtype) + positions.weight[self.length + positions.offset].to(self.dtype)
        hidden = dec.layernorm_embedding(hidden)
        step, valid = self.length, None
        if self._layers is not self._run_layers:
            slots = torch.arange(self.keys.shape[3], device=hidden.device)
            valid = (slots <= self.length)[None, None, None]
            step = torch.tensor(self.length, device=hidden.device)
        hidden = self._layers(hidden, step, self.keys, self.values, self.cross_keys, self.cross_values,
                              self.cross_mask, valid)
        self.length += 1
        return dec.layer_norm(hidden)[:, -1].to(self.out_dtype)

    def keep(self, index: torch.Tensor) -> None:
        """Keep only rows ``index`` (finished samples dropped, or beams reordered)."""
        self.keys = self.keys.index_select(1, index)
        self.values = self.values.index_select(1, index)
        self.cross_keys = self.cross_keys.index_select(1, index)
        self.cross_values = self.cross_values.index_select(1, index)
        self.cross_mask = self.cross_mask.index_select(0, index)
