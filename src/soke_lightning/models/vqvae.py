"""The 1-D convolutional VQ-VAE of one motion stream (docs/design.md §3.1), every size configurable.

Module names follow the official key layout (docs/formats.md) so an official checkpoint maps one-to-one:
``encoder.model.{0..}``, ``decoder.model.{0..}``, ``quantizer.codebook``. Input and output are channels-last
``[B, T, C]``; T must be a multiple of ``stride_t ** down_t`` (4 for SOKE).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from soke_lightning.models.quantizer import EMAResetQuantizer, QuantizerOutput

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}
NORMS: tuple[str, ...] = ("none", "batch", "group", "layer")


def make_activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; valid: {sorted(ACTIVATIONS)}") from None


class _ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a channels-first [B, C, T] tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def make_norm(name: str, channels: int) -> nn.Module:
    """``none`` gives a parameter-free Identity (the official ``norm: None``), so keys stay one-to-one."""
    if name == "none":
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm1d(channels)
    if name == "group":
        return nn.GroupNorm(min(32, channels), channels)
    if name == "layer":
        return _ChannelLayerNorm(channels)
    raise ValueError(f"unknown norm {name!r}; valid: {list(NORMS)}")


class ResConv1DBlock(nn.Module):
    """Pre-activation residual block: norm -> act -> conv(k3, dilation d) -> norm -> act -> conv(k1) -> + x."""

    def __init__(self, width: int, dilation: int, activation: str = "relu", norm: str = "none"):
        super().__init__()
        self.norm1 = make_norm(norm, width)
        self.norm2 = make_norm(norm, width)
        self.activation1 = make_activation(activation)
        self.activation2 = make_activation(activation)
        self.conv1 = nn.Conv1d(width, width, 3, 1, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(width, width, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.activation1(self.norm1(x)))
        h = self.conv2(self.activation2(self.norm2(h)))
        return x + h


class Resnet1D(nn.Module):
    """``depth`` residual blocks with dilations growth**i; reversed (largest first) like the reference default."""

    def __init__(self, width: int, depth: int, dilation_growth_rate: int, activation: str = "relu",
                 norm: str = "none", reverse_dilation: bool = True):
        super().__init__()
        dilations = [dilation_growth_rate ** i for i in range(depth)]
        if reverse_dilation:
            dilations = dilations[::-1]
        self.model = nn.Sequential(*(ResConv1DBlock(width, d, activation, norm) for d in dilations))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@dataclass
class VQVAEConfig:
    """Sizes of one part VQ-VAE (defaults: SOKE's body tokenizer, docs/design.md §3.1).

    Attributes:
        in_dim: features of the stream (body 43, hand 45, coupled 133).
        codebook_size: number of codes (body 96, hands 192).
        width: channels of every hidden convolution.
        code_dim: dimension of a latent / code vector (``output_emb_width`` in the reference).
        depth: residual blocks per Resnet1D.
        down_t: number of temporal down-sampling stages.
        stride_t: stride of each down-sampling stage; the sequence shrinks by ``stride_t ** down_t``.
        dilation_growth_rate: dilation of block i is ``dilation_growth_rate ** i``.
        activation: "relu", "silu" or "gelu".
        norm: "none", "batch", "group" or "layer".
        decay: EMA decay of the quantizer.
        reset: dead-code re-seeding: "random" batch latents, or "first" K rows (the reference).
        mask_padding: exclude padded steps from codebook updates and the commitment loss.
        seed: seed of the quantizer's random choices (combined with its update counter).
    """

    in_dim: int = 43
    codebook_size: int = 96
    width: int = 512
    code_dim: int = 512
    depth: int = 3
    down_t: int = 2
    stride_t: int = 2
    dilation_growth_rate: int = 3
    activation: str = "relu"
    norm: str = "none"
    decay: float = 0.99
    reset: str = "random"
    mask_padding: bool = True
    seed: int = 0

    def __post_init__(self):
        for key in ("in_dim", "codebook_size", "width", "code_dim", "depth", "stride_t", "dilation_growth_rate"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"VQVAEConfig.{key} must be >= 1, got {getattr(self, key)}")
        if self.down_t < 0:
            raise ValueError(f"VQVAEConfig.down_t must be >= 0, got {self.down_t}")
        if self.stride_t % 2 and self.down_t > 0:
            raise ValueError(f"VQVAEConfig.stride_t must be even (kernel 2*stride, padding stride/2), got {self.stride_t}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"VQVAEConfig.activation {self.activation!r} not in {sorted(ACTIVATIONS)}")
        if self.norm not in NORMS:
            raise ValueError(f"VQVAEConfig.norm {self.norm!r} not in {list(NORMS)}")

    @property
    def downsample_rate(self) -> int:
        return self.stride_t ** self.down_t


class Encoder(nn.Module):
    """conv_in, act, down_t x [strided conv, Resnet1D], conv_out: [B, in_dim, T] -> [B, code_dim, T / rate]."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        w, s = cfg.width, cfg.stride_t
        blocks: list[nn.Module] = [nn.Conv1d(cfg.in_dim, w, 3, 1, 1), make_activation(cfg.activation)]
        for _ in range(cfg.down_t):
            blocks.append(nn.Sequential(
                nn.Conv1d(w, w, 2 * s, s, s // 2),
                Resnet1D(w, cfg.depth, cfg.dilation_growth_rate, cfg.activation, cfg.norm),
            ))
        blocks.append(nn.Conv1d(w, cfg.code_dim, 3, 1, 1))
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """conv_in, act, down_t x [Resnet1D, nearest upsample, conv], conv, act, conv_out."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        w = cfg.width
        blocks: list[nn.Module] = [nn.Conv1d(cfg.code_dim, w, 3, 1, 1), make_activation(cfg.activation)]
        for _ in range(cfg.down_t):
            blocks.append(nn.Sequential(
                Resnet1D(w, cfg.depth, cfg.dilation_growth_rate, cfg.activation, cfg.norm),
                nn.Upsample(scale_factor=cfg.stride_t, mode="nearest"),
                nn.Conv1d(w, w, 3, 1, 1),
            ))
        blocks += [nn.Conv1d(w, w, 3, 1, 1), make_activation(cfg.activation), nn.Conv1d(w, cfg.in_dim, 3, 1, 1)]
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@dataclass
class VQVAEOutput:
    """Result of a VQ-VAE forward pass.

    Attributes:
        recon: [B, T, in_dim] reconstruction.
        quant: the quantizer's result (codes [B, L], commitment loss, perplexity, usage).
        code_mask: [B, L] True on code steps that cover real frames.
    """

    recon: torch.Tensor
    quant: QuantizerOutput
    code_mask: torch.Tensor


def code_lengths(lengths: torch.Tensor, rate: int) -> torch.Tensor:
    """Number of code steps covering ``lengths`` frames (ceil(lengths / rate))."""
    return torch.div(lengths + rate - 1, rate, rounding_mode="floor")


class VQVAE(nn.Module):
    """One part tokenizer: encoder -> EMA-reset quantizer -> decoder.

    Args:
        cfg: sizes and quantizer options.
    """

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantizer = EMAResetQuantizer(cfg.codebook_size, cfg.code_dim, decay=cfg.decay, reset=cfg.reset,
                                           mask_padding=cfg.mask_padding, seed=cfg.seed)

    @property
    def downsample_rate(self) -> int:
        return self.cfg.downsample_rate

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != self.cfg.in_dim:
            raise ValueError(f"expected features [B, T, {self.cfg.in_dim}], got {tuple(x.shape)}")
        if x.shape[1] % self.downsample_rate:
            raise ValueError(f"sequence length {x.shape[1]} is not a multiple of the down-sampling rate "
                             f"{self.downsample_rate}; pad or crop T (the datamodule keeps T a multiple of 4)")

    def _code_mask(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        steps = x.shape[1] // self.downsample_rate
        if lengths is None:
            return torch.ones(x.shape[0], steps, dtype=torch.bool, device=x.device)
        clen = code_lengths(lengths.to(x.device), self.downsample_rate)
        return torch.arange(steps, device=x.device)[None] < clen[:, None]

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, in_dim] -> latents [B, L, code_dim]."""
        self._check_input(x)
        return self.encoder(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> VQVAEOutput:
        """Reconstruct ``x`` [B, T, in_dim]; ``lengths`` [B] marks padded frames (excluded from VQ updates)."""
        latent = self.encode_latent(x)
        mask = self._code_mask(x, lengths)
        quant = self.quantizer(latent, mask)
        recon = self.decoder(quant.quantized.transpose(1, 2)).transpose(1, 2)
        return VQVAEOutput(recon=recon, quant=quant, code_mask=mask)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, in_dim] -> codes [B, T / rate] (codes of padded steps are computed but meaningless)."""
        return self.quantizer.quantize(self.encode_latent(x))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, L] -> features [B, L * rate, in_dim] (batched, unlike the reference)."""
        if codes.ndim != 2:
            raise ValueError(f"expected codes [B, L], got {tuple(codes.shape)}")
        latent = self.quantizer.dequantize(codes)
        return self.decoder(latent.transpose(1, 2)).transpose(1, 2)
