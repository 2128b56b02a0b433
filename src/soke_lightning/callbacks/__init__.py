"""Lightning callbacks: the prediction writer, retrieval prompt injection, media logging and the B-T scorer.

LightningCLI configs name the classes by path (``soke_lightning.callbacks.PredictionWriter``).
"""

from soke_lightning.callbacks.backtranslation import BackTranslationScorer
from soke_lightning.callbacks.prediction_writer import MotionPrediction, PredictionWriter, safe_stem
from soke_lightning.callbacks.retrieval import RetrievalCallback

__all__ = ["BackTranslationScorer", "MotionPrediction", "PredictionWriter", "RetrievalCallback", "safe_stem"]
