"""SynthSign: the embedded, seeded multilingual text <-> sign-motion corpus (`soke synth`).

lexicon (concepts and words) -> grammar (sentences, sign order) -> phonology (sign motion) -> generator
(signers, continuous signing, splits, dictionary exemplars, store); frequency groups evaluation sentences by how
often training saw their concepts (docs/synthsign.md). pipelines.baselines scores the mean-pose and dictionary
baselines.
"""

from soke_lightning.synthsign.frequency import concept_frequencies, group_sentences, group_summary
from soke_lightning.synthsign.generator import GENERATOR_VERSION, PRESETS, build_lexicon, generate

__all__ = ["GENERATOR_VERSION", "PRESETS", "build_lexicon", "concept_frequencies", "generate", "group_sentences",
           "group_summary"]
