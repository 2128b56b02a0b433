"""Lightning callbacks: the prediction writer (motion exports per sample) and retrieval prompt injection.

Imports are lazy so that ``import soke_lightning.callbacks`` stays cheap; LightningCLI configs name the classes
by path (``soke_lightning.callbacks.PredictionWriter``).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BackTranslationScorer": "soke_lightning.callbacks.backtranslation",
    "MotionPrediction": "soke_lightning.callbacks.prediction_writer",
    "PredictionWriter": "soke_lightning.callbacks.prediction_writer",
    "safe_stem": "soke_lightning.callbacks.prediction_writer",
    "RetrievalCallback": "soke_lightning.callbacks.retrieval",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
