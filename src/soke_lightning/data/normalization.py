"""Normalisation statistics: (x - mean) / (std + 1e-10) on the 133-d features, with buffers.

Statistics are kept in the official 179-d layout (like SOKE's mean.pt / std.pt) and reduced to the 133-d feature
vector with the same selection as the frames (docs/design.md §2.4). Our own stats file is a torch file holding
``{"mean": [179], "std": [179], "frames": int, "source": str}``; a directory with the official ``mean.pt`` /
``std.pt`` is accepted as well.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from soke_lightning.core.layout import FEATURE_DIM, FEATURE_FROM_RAW, RAW_DIM

EPS = 1e-10
#: Name of the stats file `soke synth` / `soke prepare` write next to a store's manifest.
STATS_FILE = "normalization.pt"


def _as_raw_vector(value, source: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
    if t.numel() != RAW_DIM:
        raise ValueError(f"{source}: expected {RAW_DIM} values (official frame layout), got {t.numel()}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{source}: statistics contain NaN or inf")
    return t


def load_stats(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Load raw [179] mean/std from our stats file, a store directory, or a directory with mean.pt/std.pt.

    Raises:
        FileNotFoundError naming every path that was tried.
    """
    p = Path(path)
    if p.is_dir():
        if (p / "mean.pt").is_file() and (p / "std.pt").is_file():
            mean = torch.load(p / "mean.pt", map_location="cpu", weights_only=True)
            std = torch.load(p / "std.pt", map_location="cpu", weights_only=True)
            return _as_raw_vector(mean, str(p / "mean.pt")), _as_raw_vector(std, str(p / "std.pt"))
        if (p / STATS_FILE).is_file():
            return load_stats(p / STATS_FILE)
        raise FileNotFoundError(
            f"no normalisation statistics in {p}: expected {p / 'mean.pt'} + {p / 'std.pt'} (official) "
            f"or {p / STATS_FILE} (written by `soke synth` / `soke prepare` / `soke data stats`)"
        )
    if not p.is_file():
        raise FileNotFoundError(f"normalisation statistics {p} do not exist; compute them with `soke data stats`")
    data = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or "mean" not in data or "std" not in data:
        raise ValueError(f"{p}: expected a dict with keys 'mean' and 'std', got {type(data).__name__}")
    return _as_raw_vector(data["mean"], f"{p}:mean"), _as_raw_vector(data["std"], f"{p}:std")


def compute_stats(frame_chunks) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean/std over all frames of an iterable of [T, 179] arrays (float64 accumulation).

    Returns:
        mean [179], std [179] (float32) and the number of frames.
    """
    total = 0
    s1 = np.zeros(RAW_DIM, np.float64)
    s2 = np.zeros(RAW_DIM, np.float64)
    for chunk in frame_chunks:
        c = np.asarray(chunk, dtype=np.float64)
        total += c.shape[0]
        s1 += c.sum(0)
        s2 += (c * c).sum(0)
    if total == 0:
        raise ValueError("cannot compute statistics from zero frames")
    mean = s1 / total
    var = np.maximum(s2 / total - mean * mean, 0.0)
    return torch.from_numpy(mean).float(), torch.from_numpy(np.sqrt(var)).float(), total


def save_stats(path: str | os.PathLike, mean: torch.Tensor, std: torch.Tensor, frames: int, source: str) -> None:
    """Write our stats file atomically."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    torch.save({"mean": _as_raw_vector(mean, "mean"), "std": _as_raw_vector(std, "std"),
                "frames": int(frames), "source": source}, tmp)
    os.replace(tmp, p)


class Normalizer(nn.Module):
    """Feature normaliser with ``mean``/``std`` [133] buffers (saved in checkpoints).

    Args:
        mean: raw [179] or feature [133] mean; defaults to zeros (identity until loaded).
        std: raw [179] or feature [133] std; defaults to ones.
    """

    def __init__(self, mean: torch.Tensor | None = None, std: torch.Tensor | None = None):
        super().__init__()
        mean = torch.zeros(FEATURE_DIM) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        std = torch.ones(FEATURE_DIM) if std is None else torch.as_tensor(std, dtype=torch.float32)
        self.register_buffer("mean", self._to_features(mean))
        self.register_buffer("std", self._to_features(std))

    @staticmethod
    def _to_features(v: torch.Tensor) -> torch.Tensor:
        v = v.reshape(-1).float()
        if v.numel() == RAW_DIM:
            return v[torch.as_tensor(FEATURE_FROM_RAW)].clone()
        if v.numel() == FEATURE_DIM:
            return v.clone()
        raise ValueError(f"statistics must have {RAW_DIM} (raw) or {FEATURE_DIM} (feature) values, got {v.numel()}")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Normalizer:
        """Build from any location :func:`load_stats` accepts."""
        mean, std = load_stats(path)
        return cls(mean, std)

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """[..., 133] -> normalised [..., 133]."""
        return (features - self.mean) / (self.std + EPS)

    def denormalize(self, features: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize` (no epsilon, as SOKE does)."""
        return features * self.std + self.mean
