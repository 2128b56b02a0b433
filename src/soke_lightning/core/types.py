"""Small types shared across layers: a generation request and a motion prediction.

:class:`Request` is one sentence to sign (what ``soke generate`` and the pipelines pass to a stage-2 model);
:class:`MotionPrediction` is one generated or reconstructed motion in official frames (what ``predict_step``
returns, what the prediction writer, the exports and the back-translation pipeline read). Both validate their
fields on construction so a wrong shape is refused where it is made, naming the sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from soke_lightning.core.layout import FEATURE_DIM, RAW_DIM, features_to_raw

#: Frame rate of generated motion when the request does not give one (SynthSign and the official corpora: 25).
DEFAULT_FPS = 25.0


@dataclass
class Request:
    """One sentence to sign.

    Attributes:
        name: output file stem / sample name.
        text: the sentence.
        lang: language key ("asl", "csl", "dgs").
        fps: frame rate of the output.
        reference_raw: optional ground-truth frames [T, 179] drawn next to the prediction.
    """

    name: str
    text: str
    lang: str
    fps: float = DEFAULT_FPS
    reference_raw: np.ndarray | None = None


def _frames(value, what: str, name: str) -> np.ndarray | None:
    """[T, 179] raw frames (or [T, 133] denormalised features, converted) as float32 numpy; None stays None."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float32).numpy()
    value = np.asarray(value, dtype=np.float32)
    if value.ndim == 2 and value.shape[1] == FEATURE_DIM:
        value = features_to_raw(value)
    if value.ndim != 2 or value.shape[1] != RAW_DIM or value.shape[0] == 0:
        raise ValueError(f"MotionPrediction {name!r}: {what} must be official frames [T>0, {RAW_DIM}] (or "
                         f"denormalised features [T, {FEATURE_DIM}]), got shape {value.shape}")
    return value


@dataclass
class MotionPrediction:
    """One predicted (generated or reconstructed) motion, as returned by a stage's ``predict_step``.

    Tensors are moved to the CPU and converted to float32 numpy arrays; denormalised 133-d features are turned into
    official frames with :func:`~soke_lightning.core.layout.features_to_raw` (root and lower body at rest).

    Attributes:
        name: sample name (unique within a prediction run; may contain '/').
        text: the sentence.
        lang: sign-language key ("asl", "csl", "dgs").
        raw: [T, 179] official frames (or [T, 133] denormalised features on input). Trim padding before.
        fps: frames per second of ``raw``.
        reference_raw: optional ground truth, [T', 179] (or [T', 133]); drawn next to the prediction in GIFs.
        corpus: optional corpus name, recorded in the index.
    """

    name: str
    text: str
    lang: str
    raw: Any
    fps: float
    reference_raw: Any = None
    corpus: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"MotionPrediction.name must be a non-empty string, got {self.name!r}")
        if not self.fps > 0:
            raise ValueError(f"MotionPrediction {self.name!r}: fps must be positive, got {self.fps}")
        self.fps = float(self.fps)
        self.raw = _frames(self.raw, "raw", self.name)
        self.reference_raw = _frames(self.reference_raw, "reference_raw", self.name)
