"""The sign tokenizer: one part VQ-VAE per stream of a pose layout (SOKE's decoupled DETO, or the coupled baseline).

Features in and out are the NORMALISED feature vectors of the DataModule (SMPL-X: 133-d; a keypoint feature layout
such as ``holistic``: its points' coordinates; see :mod:`soke_lightning.core.feature_layout`). A tokenizer of a
non-default feature layout records the layout's whole declaration in its config, so its checkpoint is
self-contained and a store or stage-2 run with another layout is refused by name; the tokenizer carries the normalisation
statistics (``tokenizer.normalizer``, buffers) so a checkpoint is self-contained for denormalising.

Checkpoint contract (stage 2 and `soke encode` rely on it): a checkpoint file holds
``ckpt[CHECKPOINT_KEY] = {"config": SignTokenizer.config, "prefix": "tokenizer."}`` and the tokenizer's weights in
``ckpt["state_dict"]`` under that prefix. TokenizerStage writes it into every Lightning checkpoint, and
`soke import-official` writes the same structure. :meth:`SignTokenizer.from_checkpoint` rebuilds from the stored
config and loads strictly; :func:`tokenizer_hash` fingerprints the weights that define the codes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from soke_lightning.core.errors import CheckpointError
from soke_lightning.core.feature_layout import DEFAULT_LAYOUT, FeatureLayout, load_feature_layout
from soke_lightning.core.io import load_checkpoint
from soke_lightning.data.normalization import Normalizer
from soke_lightning.models.generation import GenerationResult
from soke_lightning.models.vqvae import VQVAE, VQVAEConfig, VQVAEOutput, code_lengths

CHECKPOINT_KEY = "soke_tokenizer"
CHECKPOINT_FORMAT = 1
#: SOKE's codebook sizes (docs/design.md §3.1); the coupled baseline uses one codebook of 512.
DEFAULT_CODEBOOKS: dict[str, dict[str, int]] = {"soke": {"body": 96, "lhand": 192, "rhand": 192},
                                                "coupled": {"all": 512}}
#: Quantizer state that only matters for training; excluded from :func:`tokenizer_hash`.
TRAINING_ONLY_BUFFERS: tuple[str, ...] = ("quantizer.ema_sum", "quantizer.ema_count", "quantizer.num_updates",
                                          "quantizer.initialised")


@dataclass
class TokenizerOutput:
    """Result of a tokenizer forward pass.

    Attributes:
        recon: [B, T, 133] reconstruction (normalised space).
        commit_loss: scalar, sum over parts of each part's commitment loss.
        parts: per-part VQ-VAE outputs (codes, perplexity, usage, code mask).
    """

    recon: torch.Tensor
    commit_loss: torch.Tensor
    parts: dict[str, VQVAEOutput]

    @property
    def codes(self) -> torch.Tensor:
        """[B, L, P] codes stacked in part order."""
        return torch.stack([p.quant.codes for p in self.parts.values()], dim=-1)


class SignTokenizer(nn.Module):
    """Part VQ-VAEs over a pose layout; all parts share sizes except their codebooks.

    Args:
        layout: "soke" (the feature layout's declared parts; SMPL-X: body 43 / lhand 45 / rhand 45) or "coupled"
            (one stream ``all`` over every feature).
        codebook_sizes: codes per part; defaults to the feature layout's (SMPL-X: 96/192/192) or 512 (coupled).
        features: the feature layout: a shipped name ("smplx179", "holistic", ...), a YAML path, or a recorded
            declaration (dict, as stored in checkpoints).
        width, code_dim, depth, down_t, stride_t, dilation_growth_rate, activation, norm: VQ-VAE sizes
            (see :class:`VQVAEConfig`).
        decay, reset, mask_padding, seed: quantizer options (see :class:`EMAResetQuantizer`).
    """

    def __init__(self, layout: str = "soke", codebook_sizes: dict[str, int] | None = None, width: int = 512,
                 code_dim: int = 512, depth: int = 3, down_t: int = 2, stride_t: int = 2,
                 dilation_growth_rate: int = 3, activation: str = "relu", norm: str = "none", decay: float = 0.99,
                 reset: str = "random", mask_padding: bool = True, seed: int = 0,
                 features: str | dict | FeatureLayout = DEFAULT_LAYOUT):
        super().__init__()
        self.feature_layout = load_feature_layout(features)
        if layout not in ("soke", "coupled"):
            raise ValueError(f"layout must be 'soke' (the feature layout's parts) or 'coupled', got {layout!r}")
        self.layout = self.feature_layout.streams(layout)
        default = self.feature_layout.codebook_sizes if layout == "soke" else DEFAULT_CODEBOOKS["coupled"]
        sizes = dict(default if codebook_sizes is None else codebook_sizes)
        if sorted(sizes) != sorted(self.layout.part_names):
            raise ValueError(f"codebook_sizes must name exactly the parts of layout {layout!r} of feature layout "
                             f"{self.feature_layout.name!r} {list(self.layout.part_names)}, got {sorted(sizes)}")
        self.config = dict(layout=layout, codebook_sizes={p: int(sizes[p]) for p in self.layout.part_names},
                           width=width, code_dim=code_dim, depth=depth, down_t=down_t, stride_t=stride_t,
                           dilation_growth_rate=dilation_growth_rate, activation=activation, norm=norm, decay=decay,
                           reset=reset, mask_padding=mask_padding, seed=seed)
        if self.feature_layout.name != DEFAULT_LAYOUT:
            # the whole declaration: a checkpoint must rebuild the layout without the user's YAML file
            self.config["features"] = self.feature_layout.spec
        shared = {k: v for k, v in self.config.items() if k not in ("layout", "codebook_sizes", "seed", "features")}
        self.vaes = nn.ModuleDict({
            part.name: VQVAE(VQVAEConfig(in_dim=part.dim, codebook_size=sizes[part.name], seed=seed + i, **shared))
            for i, part in enumerate(self.layout.parts)
        })
        self.normalizer = Normalizer(layout=self.feature_layout)

    # ----------------------------------------------------------------------------------------------- properties
    @property
    def parts(self) -> tuple[str, ...]:
        return self.layout.part_names

    @property
    def codebook_sizes(self) -> dict[str, int]:
        return dict(self.config["codebook_sizes"])

    @property
    def downsample_rate(self) -> int:
        return self.config["stride_t"] ** self.config["down_t"]

    @property
    def feature_dim(self) -> int:
        return self.layout.feature_dim

    def part(self, name: str) -> VQVAE:
        """The VQ-VAE of one stream; its encode/decode work on that stream's features [B, T, part_dim]."""
        if name not in self.vaes:
            raise KeyError(f"unknown part {name!r}; this tokenizer has {list(self.parts)}")
        return self.vaes[name]

    def code_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames [B] -> code steps [B]."""
        return code_lengths(lengths, self.downsample_rate)

    # ----------------------------------------------------------------------------------------------- compute
    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> TokenizerOutput:
        """Reconstruct normalised features [B, T, 133]; ``lengths`` [B] exclude padding from VQ updates."""
        streams = self.layout.split(features)
        outs = {name: self.vaes[name](x, lengths) for name, x in streams.items()}
        recon = self.layout.merge({name: o.recon for name, o in outs.items()})
        commit = torch.stack([o.quant.commit_loss for o in outs.values()]).sum()
        return TokenizerOutput(recon=recon, commit_loss=commit, parts=outs)

    @torch.no_grad()
    def encode(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised features [B, T, 133] -> codes [B, T / rate, P] (parts in :attr:`parts` order).

        Codes at steps beyond ``code_lengths(lengths)`` come from padding; callers slice them off.
        """
        streams = self.layout.split(features)
        return torch.stack([self.vaes[name].encode(x) for name, x in streams.items()], dim=-1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """Codes [B, L, P] (or {part: [B, L]}) -> normalised features [B, L * rate, 133]."""
        if isinstance(codes, torch.Tensor):
            if codes.ndim != 3 or codes.shape[-1] != len(self.parts):
                raise ValueError(f"expected codes [B, L, {len(self.parts)}] for parts {list(self.parts)}, "
                                 f"got {tuple(codes.shape)}")
            codes = {name: codes[..., i] for i, name in enumerate(self.parts)}
        return self.layout.merge({name: self.part(name).decode(codes[name]) for name in self.parts})

    # ----------------------------------------------------------------------------------------------- checkpoints
    def checkpoint_entry(self, prefix: str) -> dict:
        """What to store under ``ckpt[CHECKPOINT_KEY]`` so :meth:`from_checkpoint` can rebuild this tokenizer."""
        return {"format": CHECKPOINT_FORMAT, "config": dict(self.config), "prefix": prefix}

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write a minimal tokenizer checkpoint (config + weights under ``tokenizer.``) atomically."""
        path = os.fspath(path)
        tmp = f"{path}.tmp-{os.getpid()}"
        torch.save({CHECKPOINT_KEY: self.checkpoint_entry("tokenizer."),
                    "state_dict": {f"tokenizer.{k}": v for k, v in self.state_dict().items()}}, tmp)
        os.replace(tmp, path)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> SignTokenizer:
        """Rebuild from a TokenizerStage checkpoint or an `soke import-official` file, loading strictly.

        Raises:
            KeyError naming the file when it carries no tokenizer entry; RuntimeError listing missing/unexpected
            keys when the weights do not match the stored config.
        """
        ckpt = load_checkpoint(path, "tokenizer checkpoint", "train one with `soke fit --config "
                               "experiments/stage1/...` or convert the official one with `soke import-official`",
                               map_location)
        if CHECKPOINT_KEY not in ckpt or "state_dict" not in ckpt:
            keys = sorted(ckpt)[:10]
            raise CheckpointError(f"{path}: not a soke tokenizer checkpoint (no {CHECKPOINT_KEY!r} entry; top-level "
                                  f"keys {keys}); train one with `soke fit --config experiments/stage1/...` or convert "
                                  f"the official one with `soke import-official`")
        entry = ckpt[CHECKPOINT_KEY]
        if entry.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: tokenizer entry format {entry.get('format')!r}, expected {CHECKPOINT_FORMAT}")
        tokenizer = cls(**entry["config"])
        prefix = entry["prefix"]
        state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        result = tokenizer.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise RuntimeError(f"{path}: tokenizer weights under {prefix!r} do not match its config: missing "
                               f"{result.missing_keys[:20]}, unexpected {result.unexpected_keys[:20]}")
        return tokenizer.eval()


def tokenizer_hash(source: str | os.PathLike | SignTokenizer) -> str:
    """sha256 of the tokenizer's config and of every tensor that defines its codes and reconstructions.

    Computed over the STATE DICT, not the file: re-saving, resuming or adding optimizer state to a checkpoint
    keeps the hash; any change of a weight, codebook or normalisation statistic changes it. Training-only
    quantizer state (EMA sums/counts, update counter) is excluded.
    """
    tokenizer = source if isinstance(source, SignTokenizer) else SignTokenizer.from_checkpoint(source)
    digest = hashlib.sha256()
    config = {k: v for k, v in tokenizer.config.items() if k not in ("decay", "reset", "mask_padding", "seed")}
    digest.update(repr(sorted(config.items())).encode())
    for key, value in sorted(tokenizer.state_dict().items()):
        if key.endswith(TRAINING_ONLY_BUFFERS):
            continue
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def decode_streams(tokenizer: SignTokenizer, result: GenerationResult) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated codes -> normalised features, one sample and part at a time (docs/design.md §4.10).

    Each part with >= 2 codes is decoded on its own (batching zero-padded codes would change the frames near the
    end: the decoder's receptive field reaches past them); a part with 0-1 codes is the mean pose (zeros). Every
    stream is padded by repeating its last frame up to ``rate x`` the sample's longest part (at least one step).

    Returns:
        (features [B, T_max, 133] normalised and zero-padded, lengths [B] frames).
    """
    rate = tokenizer.downsample_rate
    part_lengths = result.part_lengths.cpu()
    lengths = (part_lengths.max(-1).values.clamp(min=1) * rate).long()
    device = next(tokenizer.parameters()).device
    dims = {p.name: p.dim for p in tokenizer.layout.parts}
    out = torch.zeros(len(lengths), int(lengths.max()) if len(lengths) else 0, tokenizer.feature_dim, device=device)
    for b in range(len(lengths)):
        frames = int(lengths[b])
        streams = {}
        for p, name in enumerate(tokenizer.parts):
            n = int(part_lengths[b, p])
            if n >= 2:
                x = tokenizer.part(name).decode(result.codes[b, :n, p][None].to(device))[0]
                if x.shape[0] < frames:
                    x = torch.cat([x, x[-1:].expand(frames - x.shape[0], -1)])
            else:
                x = torch.zeros(frames, dims[name], device=device)
            streams[name] = x[:frames]
        out[b, :frames] = tokenizer.layout.merge(streams)
    return out, lengths
