"""EMA vector quantizer with dead-code reset (docs/design.md §3.2), with the reference's flaws fixed (docs/faithfulness.md §9 item 11).

* Every piece of state is a registered buffer (``codebook``, ``ema_sum``, ``ema_count``, ``initialised``,
  ``num_updates``), so a checkpoint restores it and resuming never re-initialises a codebook.
* When a ``torch.distributed`` process group is initialised, the per-code sums and counts are all-reduced and the
  initialisation / re-seeding vectors are broadcast from rank 0, so every rank keeps the same codebook. Without a
  process group the same code runs with the collectives skipped.
* Dead codes are re-seeded from randomly chosen latents of the batch (``reset="random"``); ``reset="first"``
  keeps the reference's first-K-rows rule. The random choice uses a generator seeded from ``seed`` and the update
  counter, so a resumed run draws exactly what an uninterrupted run draws.
* Padded steps are excluded from codebook updates and the commitment loss (``mask_padding=False`` restores the
  reference, which includes them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

RESETS: tuple[str, ...] = ("random", "first")


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@dataclass
class QuantizerOutput:
    """Result of one quantizer pass.

    Attributes:
        quantized: [B, L, D] code vectors with straight-through gradients to the latents.
        codes: [B, L] code indices.
        commit_loss: scalar MSE between latents and (detached) codes over valid steps.
        perplexity: scalar perplexity of the code histogram of the valid steps (all ranks in training).
        usage: scalar fraction of codes used at least once by the valid steps.
        counts: [K] code histogram of the valid steps (summed over ranks in training, this rank in eval).
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor
    counts: torch.Tensor


def histogram_stats(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Perplexity exp(H(p)) and used fraction of a code histogram [K]."""
    counts = counts.float()
    p = counts / counts.sum().clamp_min(1e-12)
    perplexity = torch.exp(-(p * torch.log(p + 1e-10)).sum())
    return perplexity, (counts > 0).float().mean()


class EMAResetQuantizer(nn.Module):
    """Nearest-code quantizer whose codebook follows an EMA of its assigned latents.

    Args:
        codebook_size: K codes.
        code_dim: D, dimension of a code.
        decay: EMA decay mu (0.99 in SOKE).
        reset: "random" or "first" (see module docstring).
        mask_padding: exclude padded steps from updates and commitment loss.
        reset_threshold: a code whose EMA count is below this is dead and gets re-seeded.
        seed: seed of the random initialisation / re-seeding choices.
    """

    def __init__(self, codebook_size: int, code_dim: int, decay: float = 0.99, reset: str = "random",
                 mask_padding: bool = True, reset_threshold: float = 1.0, seed: int = 0):
        super().__init__()
        if reset not in RESETS:
            raise ValueError(f"unknown reset strategy {reset!r}; valid: {list(RESETS)}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.codebook_size = codebook_size
        self.code_dim = code_dim
        self.decay = decay
        self.reset = reset
        self.mask_padding = mask_padding
        self.reset_threshold = reset_threshold
        self.seed = seed
        self.register_buffer("codebook", torch.zeros(codebook_size, code_dim))
        self.register_buffer("ema_sum", torch.zeros(codebook_size, code_dim))
        self.register_buffer("ema_count", torch.zeros(codebook_size))
        self.register_buffer("initialised", torch.tensor(False))
        self.register_buffer("num_updates", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return (f"codebook_size={self.codebook_size}, code_dim={self.code_dim}, decay={self.decay}, "
                f"reset={self.reset!r}, mask_padding={self.mask_padding}")

    def mark_initialised(self) -> None:
        """Declare the current codebook trained (e.g. after importing weights): EMA state = the codebook."""
        self.ema_sum.copy_(self.codebook)
        self.ema_count.fill_(1.0)
        self.initialised.fill_(True)

    # ----------------------------------------------------------------------------------------------- lookup
    def quantize(self, latent: torch.Tensor) -> torch.Tensor:
        """[..., D] latents -> [...] nearest code indices (squared L2 as |x|^2 - 2x.c + |c|^2; first on ties)."""
        flat = latent.reshape(-1, self.code_dim).float()
        book = self.codebook.float()
        distance = flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ book.t() + book.pow(2).sum(-1)[None]
        return distance.argmin(-1).reshape(latent.shape[:-1])

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """[...] code indices -> [..., D] code vectors."""
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must be in [0, {self.codebook_size}), got range "
                             f"[{int(codes.min())}, {int(codes.max())}]")
        return F.embedding(codes, self.codebook)

    # ----------------------------------------------------------------------------------------------- training
    def _generator(self, device: torch.device) -> torch.Generator:
        gen = torch.Generator(device=device)
        gen.manual_seed(self.seed * 1_000_003 + int(self.num_updates))
        return gen

    def _candidates(self, valid: torch.Tensor) -> torch.Tensor:
        """K latents of the batch (random or first rows), tiled with small noise when the batch is too small."""
        k, n = self.codebook_size, valid.shape[0]
        gen = self._generator(valid.device)
        if n < k:
            reps = math.ceil(k / n)
            std = 0.01 / math.sqrt(self.code_dim)
            valid = valid.repeat(reps, 1)
            valid = valid + torch.randn(valid.shape, generator=gen, device=valid.device, dtype=valid.dtype) * std
        if self.reset == "random":
            idx = torch.randperm(valid.shape[0], generator=gen, device=valid.device)[:k]
            out = valid[idx]
        else:
            out = valid[:k]
        if _distributed():
            out = out.clone()  # a fresh tensor: broadcasting into a view would overwrite this rank's batch
            dist.broadcast(out, src=0)
        return out

    @torch.no_grad()
    def _initialise(self, valid: torch.Tensor) -> None:
        self.codebook.copy_(self._candidates(valid))
        self.mark_initialised()

    @torch.no_grad()
    def _update(self, valid: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        counts = torch.bincount(codes, minlength=self.codebook_size).to(valid.dtype)
        sums = torch.zeros_like(self.codebook).index_add_(0, codes, valid)
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        alive = (self.ema_count >= self.reset_threshold)[:, None]
        updated = self.ema_sum / self.ema_count.clamp_min(1e-12)[:, None]
        # `alive` comes from all-reduced counts, so every rank takes this branch together (the broadcast matches).
        if bool(alive.all()):
            self.codebook.copy_(updated)
        else:
            self.codebook.copy_(torch.where(alive, updated, self._candidates(valid)))
        self.num_updates.add_(1)
        return counts

    def forward(self, latent: torch.Tensor, mask: torch.Tensor | None = None) -> QuantizerOutput:
        """Quantize ``latent`` [B, L, D]; in training mode initialise (once) and update the codebook.

        Args:
            latent: [B, L, D] encoder outputs.
            mask: [B, L] True on valid (non-padded) steps; None = all valid.
        """
        if latent.shape[-1] != self.code_dim:
            raise ValueError(f"expected latents [..., {self.code_dim}], got {tuple(latent.shape)}")
        if mask is None or not self.mask_padding:
            mask = torch.ones(latent.shape[:-1], dtype=torch.bool, device=latent.device)
        flat = latent.reshape(-1, self.code_dim)
        valid = flat.detach()[mask.reshape(-1)].float()
        if self.training and valid.shape[0] == 0:
            raise ValueError("the quantizer got a batch without valid steps; check the lengths passed in")
        if self.training and not bool(self.initialised):
            self._initialise(valid)
        codes = self.quantize(latent)
        quantized = self.dequantize(codes).to(latent.dtype)
        valid_codes = codes.reshape(-1)[mask.reshape(-1)]
        if self.training:
            counts = self._update(valid, valid_codes)
        else:
            counts = torch.bincount(valid_codes, minlength=self.codebook_size).float()
        perplexity, usage = histogram_stats(counts)
        m = mask[..., None].to(latent.dtype)
        denom = (m.sum() * self.code_dim).clamp_min(1.0)
        commit_loss = ((latent - quantized.detach()).pow(2) * m).sum() / denom
        # Straight-through: forward uses the codes, backward passes gradients to the latents.
        quantized = latent + (quantized - latent).detach()
        return QuantizerOutput(quantized=quantized, codes=codes, commit_loss=commit_loss, perplexity=perplexity,
                               usage=usage, counts=counts)
