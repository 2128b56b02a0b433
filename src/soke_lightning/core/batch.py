"""The typed batch that flows from the DataModule into both stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class SignBatch:
    """A padded batch of sequences.

    Attributes:
        poses: [B, T, D] normalised features (SMPL-X layout: D = 133), zero-padded (in normalised space, i.e. the
            mean pose).
        lengths: [B] number of valid frames per sample.
        mask: [B, T] True on valid frames.
        text: B spoken-language sentences.
        lang: B language keys ("asl", "csl", "dgs").
        name: B sample names (unique per split and corpus; used to de-duplicate DDP padding).
        corpus: B corpus ids.
        codes: optional [B, L, P] token codes (stage 2; P parts), padded with -1.
        code_lengths: optional [B] number of valid code steps.
        prompt: optional B encoder prompts (text + retrieval string), set by the retrieval callback.
        feature_mask: optional bool [B, T, D], False on coordinates of missing keypoints and on padding (keypoint
            layouts); None when every feature is observed (SMPL-X). Losses and errors skip masked values.
    """

    poses: torch.Tensor
    lengths: torch.Tensor
    mask: torch.Tensor
    text: list[str]
    lang: list[str]
    name: list[str]
    corpus: list[str]
    codes: torch.Tensor | None = None
    code_lengths: torch.Tensor | None = None
    prompt: list[str] | None = None
    feature_mask: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def keys(self) -> list[str]:
        """Globally unique sample keys ``corpus/name``."""
        return [f"{c}/{n}" for c, n in zip(self.corpus, self.name)]

    def to(self, device) -> SignBatch:
        moved = {
            k: (v.to(device) if isinstance(v, torch.Tensor) else v)
            for k, v in self.__dict__.items()
        }
        return SignBatch(**moved)
