"""Normalisation statistics: (x - mean) / (std + 1e-10) on the features of a feature layout, with buffers.

Statistics are kept per stored (raw) frame value, like SOKE's mean.pt / std.pt over the official 179-d frame, and
reduced to the feature vector with the same selection as the frames (docs/design.md §2.4). Our own stats file is a
torch file holding ``{"mean": [raw_dim], "std": [raw_dim], "frames": int, "source": str}``; a directory with the
official ``mean.pt`` / ``std.pt`` is accepted as well. For keypoint layouts a coordinate's statistics are taken
over the frames where its point was seen (missing points are not zeros of the pose), and the visibility columns
get mean 0 / std 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from soke_lightning.core.feature_layout import FeatureLayout, load_feature_layout
from soke_lightning.core.layout import RAW_DIM

EPS = 1e-10
#: Name of the stats file `soke synth` / `soke prepare` write next to a store's manifest.
STATS_FILE = "normalization.pt"


def _as_raw_vector(value, source: str, raw_dim: int | None = RAW_DIM) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
    if raw_dim is not None and t.numel() != raw_dim:
        raise ValueError(f"{source}: expected {raw_dim} values (one per stored frame value), got {t.numel()}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{source}: statistics contain NaN or inf")
    return t


def load_stats(path: str | os.PathLike, raw_dim: int | None = RAW_DIM) -> tuple[torch.Tensor, torch.Tensor]:
    """Load raw [raw_dim] mean/std from our stats file, a store directory, or a directory with mean.pt/std.pt.

    ``raw_dim`` None accepts any length (the caller checks it).

    Raises:
        FileNotFoundError naming every path that was tried.
    """
    p = Path(path)
    if p.is_dir():
        if (p / "mean.pt").is_file() and (p / "std.pt").is_file():
            mean = torch.load(p / "mean.pt", map_location="cpu", weights_only=True)
            std = torch.load(p / "std.pt", map_location="cpu", weights_only=True)
            return _as_raw_vector(mean, str(p / "mean.pt"), raw_dim), _as_raw_vector(std, str(p / "std.pt"), raw_dim)
        if (p / STATS_FILE).is_file():
            return load_stats(p / STATS_FILE, raw_dim)
        raise FileNotFoundError(
            f"no normalisation statistics in {p}: expected {p / 'mean.pt'} + {p / 'std.pt'} (official) "
            f"or {p / STATS_FILE} (written by `soke synth` / `soke prepare` / `soke data stats`)"
        )
    if not p.is_file():
        raise FileNotFoundError(f"normalisation statistics {p} do not exist; compute them with `soke data stats`")
    data = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or "mean" not in data or "std" not in data:
        raise ValueError(f"{p}: expected a dict with keys 'mean' and 'std', got {type(data).__name__}")
    return (_as_raw_vector(data["mean"], f"{p}:mean", raw_dim),
            _as_raw_vector(data["std"], f"{p}:std", raw_dim))


def compute_stats(frame_chunks, layout: FeatureLayout | str | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean/std over all frames of an iterable of [T, raw_dim] arrays (float64 accumulation).

    Args:
        frame_chunks: arrays of stored frames.
        layout: their feature layout (default smplx179). Keypoint layouts: each coordinate over the frames where
            its point is visible (a coordinate never seen gets mean 0 / std 1); visibility columns mean 0 / std 1.

    Returns:
        mean [raw_dim], std [raw_dim] (float32) and the number of frames.
    """
    layout = load_feature_layout(layout)
    total = 0
    s1 = np.zeros(layout.raw_dim, np.float64)
    s2 = np.zeros(layout.raw_dim, np.float64)
    n = np.zeros(layout.raw_dim, np.float64)
    for chunk in frame_chunks:
        c = np.asarray(chunk, dtype=np.float64)
        total += c.shape[0]
        if layout.is_keypoints:
            w = np.zeros_like(c)
            w[:, : layout.feature_dim] = layout.feature_mask(c)
            c = c * w
            n += w.sum(0)
        else:
            n += c.shape[0]
        s1 += c.sum(0)
        s2 += (c * c).sum(0)
    if total == 0:
        raise ValueError("cannot compute statistics from zero frames")
    seen = n > 0
    mean = np.where(seen, s1 / np.maximum(n, 1), 0.0)
    var = np.maximum(s2 / np.maximum(n, 1) - mean * mean, 0.0)
    std = np.where(seen, np.sqrt(var), 1.0)
    return torch.from_numpy(mean).float(), torch.from_numpy(std).float(), total


def save_stats(path: str | os.PathLike, mean: torch.Tensor, std: torch.Tensor, frames: int, source: str) -> None:
    """Write our stats file atomically."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    torch.save({"mean": _as_raw_vector(mean, "mean", None), "std": _as_raw_vector(std, "std", None),
                "frames": int(frames), "source": source}, tmp)
    os.replace(tmp, p)


class Normalizer(nn.Module):
    """Feature normaliser with ``mean``/``std`` [feature_dim] buffers (saved in checkpoints).

    Args:
        mean: raw [raw_dim] or feature [feature_dim] mean; defaults to zeros (identity until loaded).
        std: raw [raw_dim] or feature [feature_dim] std; defaults to ones.
        layout: the feature layout (name, path or :class:`FeatureLayout`; default smplx179: 179 raw, 133 features).
    """

    def __init__(self, mean: torch.Tensor | None = None, std: torch.Tensor | None = None,
                 layout: FeatureLayout | str | None = None):
        super().__init__()
        self.layout = load_feature_layout(layout)
        dim = self.layout.feature_dim
        mean = torch.zeros(dim) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        std = torch.ones(dim) if std is None else torch.as_tensor(std, dtype=torch.float32)
        self.register_buffer("mean", self._to_features(mean))
        self.register_buffer("std", self._to_features(std))

    def _to_features(self, v: torch.Tensor) -> torch.Tensor:
        v = v.reshape(-1).float()
        raw, dim = self.layout.raw_dim, self.layout.feature_dim
        if v.numel() == raw:
            return self.layout.features(v).clone()
        if v.numel() == dim:
            return v.clone()
        raise ValueError(f"statistics must have {raw} (raw) or {dim} (feature) values for layout "
                         f"{self.layout.name!r}, got {v.numel()}; compute them for this layout with "
                         f"`soke data stats`")

    @classmethod
    def from_file(cls, path: str | os.PathLike, layout: FeatureLayout | str | None = None) -> Normalizer:
        """Build from any location :func:`load_stats` accepts (statistics of ``layout``'s frames)."""
        mean, std = load_stats(path, raw_dim=None)
        return cls(mean, std, layout)

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """[..., feature_dim] -> normalised [..., feature_dim]."""
        return (features - self.mean) / (self.std + EPS)

    def denormalize(self, features: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize` (no epsilon, as SOKE does)."""
        return features * self.std + self.mean
