"""Load-time temporal processing of a sequence (docs/design.md §2.5): frame-rate cap, then the 40..400 / multiple-of-4 rule.

Pure numpy. Every function returns frame *indices* into the input sequence, so the same selection can be applied to
frames, to per-frame annotations or to nothing at all (e.g. to predict a processed length). The defaults are the
reference's behaviour; ``rng`` turns the centre crop into a random crop (a training augmentation, off by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def fps_cap_indices(num_frames: int, fps: float, cap: float | None) -> np.ndarray:
    """Indices that resample a sequence from ``fps`` down to ``cap`` frames per second.

    If ``cap`` is None or ``fps <= cap`` every frame is kept. Otherwise ``count = int(cap * n / fps)`` frames are
    kept at indices ``floor(i * n / count)`` (docs/design.md §2.5 step 1). ``count`` is at least 1 so that a very short
    sequence never becomes empty (the reference would crash there).

    Args:
        num_frames: n, the number of input frames (> 0).
        fps: frame rate of the input.
        cap: the maximum frame rate, or None for no cap.

    Returns:
        int64 array [count] of increasing indices in [0, n).
    """
    if num_frames <= 0:
        raise ValueError(f"fps_cap_indices: a sequence needs at least one frame, got {num_frames}")
    if cap is None or fps <= cap:
        return np.arange(num_frames, dtype=np.int64)
    if cap <= 0:
        raise ValueError(f"fps_cap_indices: the fps cap must be positive, got {cap}")
    count = max(1, int(cap * num_frames / fps))
    return (np.arange(count, dtype=np.int64) * num_frames) // count


def length_indices(
    num_frames: int,
    min_len: int = 40,
    max_len: int = 400,
    unit_len: int = 4,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Indices that bring a sequence into ``[min_len, max_len]`` frames, a multiple of ``unit_len`` (docs/design.md §2.5).

    * ``T < min_len``: ``floor(linspace(0, T - 1, min_len))`` (stretch by repeating frames);
    * ``T > max_len``: ``floor(linspace(0, T - 1, max_len))`` (uniform subsampling);
    * otherwise ``T' = unit_len * floor(T / unit_len)`` consecutive frames from ``floor((T - T') / 2)`` (centre
      crop), or from a uniformly drawn offset in ``[0, T - T']`` when ``rng`` is given (random crop).

    Args:
        num_frames: T, the number of input frames (> 0).
        min_len: shortest output; must be a multiple of ``unit_len``.
        max_len: longest output; must be a multiple of ``unit_len`` and >= ``min_len``.
        unit_len: output lengths are multiples of this (the tokenizer's temporal down-sampling factor).
        rng: if given, crop at a random offset instead of the centre.

    Returns:
        int64 array [T_out] of non-decreasing indices in [0, T).
    """
    check_length_rule(min_len, max_len, unit_len)
    if num_frames <= 0:
        raise ValueError(f"length_indices: a sequence needs at least one frame, got {num_frames}")
    if num_frames < min_len:
        return np.floor(np.linspace(0, num_frames - 1, min_len)).astype(np.int64)
    if num_frames > max_len:
        return np.floor(np.linspace(0, num_frames - 1, max_len)).astype(np.int64)
    kept = unit_len * (num_frames // unit_len)
    slack = num_frames - kept
    start = int(rng.integers(0, slack + 1)) if rng is not None else slack // 2
    return np.arange(start, start + kept, dtype=np.int64)


def check_length_rule(min_len: int, max_len: int, unit_len: int) -> None:
    """Raise a ValueError when the length bounds cannot produce multiples of ``unit_len``."""
    if unit_len < 1:
        raise ValueError(f"unit_len must be >= 1, got {unit_len}")
    if min_len < unit_len or min_len % unit_len or max_len % unit_len:
        raise ValueError(
            f"min_len={min_len} and max_len={max_len} must be positive multiples of unit_len={unit_len} "
            f"(SOKE uses 40, 400 and 4)"
        )
    if min_len > max_len:
        raise ValueError(f"min_len={min_len} is larger than max_len={max_len}")


@dataclass(frozen=True)
class TemporalProcessing:
    """The whole load-time rule: optional fps cap, then the length rule. Defaults reproduce SOKE.

    Attributes:
        min_len: shortest sequence after processing (frames).
        max_len: longest sequence after processing (frames).
        unit_len: processed lengths are multiples of this.
        apply_fps_cap: resample samples whose fps exceeds their corpus's cap (How2Sign: 24 fps).
    """

    min_len: int = 40
    max_len: int = 400
    unit_len: int = 4
    apply_fps_cap: bool = True

    def __post_init__(self) -> None:
        check_length_rule(self.min_len, self.max_len, self.unit_len)

    def indices(
        self, num_frames: int, fps: float, fps_cap: float | None, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Indices into the raw sequence: ``cap[length]`` composed (see :func:`fps_cap_indices`, :func:`length_indices`).

        Args:
            num_frames: frames stored for the sample.
            fps: its frame rate.
            fps_cap: its corpus's cap (ignored when ``apply_fps_cap`` is False).
            rng: random crop when given, centre crop otherwise.
        """
        capped = fps_cap_indices(num_frames, fps, fps_cap if self.apply_fps_cap else None)
        return capped[length_indices(capped.size, self.min_len, self.max_len, self.unit_len, rng)]

    def output_fps(self, fps: float, fps_cap: float | None) -> float:
        """Nominal frame rate after the cap."""
        if self.apply_fps_cap and fps_cap is not None and fps > fps_cap:
            return float(fps_cap)
        return float(fps)

    def output_length(self, num_frames: int, fps: float, fps_cap: float | None) -> int:
        """Length after processing, without building the index array."""
        n = num_frames
        if self.apply_fps_cap and fps_cap is not None and fps > fps_cap:
            n = max(1, int(fps_cap * num_frames / fps))
        if n < self.min_len:
            return self.min_len
        if n > self.max_len:
            return self.max_len
        return self.unit_len * math.floor(n / self.unit_len)

    def __call__(
        self, frames: np.ndarray, fps: float, fps_cap: float | None, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Apply the rule to ``frames`` [T, ...] and return the selected frames [T_out, ...]."""
        return frames[self.indices(int(frames.shape[0]), fps, fps_cap, rng)]
