"""SynthSign: the embedded, seeded multilingual text <-> sign-motion corpus (`soke synth`).

lexicon (concepts and words) -> grammar (sentences, sign order) -> phonology (sign motion) -> generator
(signers, continuous signing, splits, store); baselines scores the mean-pose and dictionary baselines.
"""

from soke_lightning.synthsign.generator import PRESETS, build_lexicon, generate

__all__ = ["PRESETS", "build_lexicon", "generate"]
