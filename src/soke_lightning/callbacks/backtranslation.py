"""B-T BLEU in the LM stage's evaluation: back-translate the generated motion with a frozen judge and log the scores.

    trainer:
      callbacks:
        - class_path: soke_lightning.callbacks.backtranslation.BackTranslationScorer
          init_args: {model_ckpt: outputs/backtranslation-demo/checkpoints/best.ckpt}

At the end of each test (and, with ``stages: [val, test]``, validation) epoch the callback logs, per language and as
the mean over languages (``all``), the protocol of docs/evaluation.md §6.5: ``{stage}/bt_bleu1..4/{lang}`` and
``{stage}/bt_rouge_l/{lang}`` (×100, Chinese on characters), and the SLRTP challenge's ``{stage}/bt_chrf/{lang}`` and
``{stage}/bt_wer/{lang}`` (×100; §6.7; WER lower is better).

Where the motion comes from: the evaluation step's return value when it carries the generated motion (a mapping with
``features`` [B, T, 133] denormalised and ``lengths`` [B]); otherwise the callback generates the batch again with
``pl_module.generate(prompts, langs)`` (greedy decoding is deterministic, so it is the same motion, at twice the
generation cost; logged once).

DDP: every rank back-translates its own shard into :class:`~soke_lightning.training.backtranslation.BleuRougeStats`
(n-gram statistics as sum states); ``compute`` all-reduces them, so every rank logs the corpus BLEU of the whole
split, the value one process would get. The judge is held outside the LM's module tree: never in its
``state_dict``, never trained.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from soke_lightning.core.languages import LANGUAGES
from soke_lightning.metrics.bleu import BleuRougeStats
from soke_lightning.metrics.functional.bleu import SCORES
from soke_lightning.metrics.slrtp import ChrFWerStats
from soke_lightning.models.backtranslation import BackTranslator

log = logging.getLogger(__name__)

_STAGES = ("val", "test")


class BackTranslationScorer(Callback):
    """Back-translates the motion an LM stage generates in validation/test and logs B-T BLEU-1..4 and ROUGE-L.

    Args:
        model_ckpt: back-translation checkpoint (``experiments/backtranslation``; ``make train-backtranslation``).
        stages: evaluation loops to score, of ``val`` and ``test`` (default: test only; validation adds the
            back-translation time to every validation run).
        languages: language keys scored (default: the judge's own metric languages = the registry).
        max_length: most tokens per back-translated sentence (default: the judge's ``max_text_length``).
    """

    def __init__(self, model_ckpt: str, stages: Sequence[str] = ("test",), languages: Sequence[str] | None = None,
                 max_length: int | None = None):
        super().__init__()
        unknown = sorted(set(stages) - set(_STAGES))
        if unknown or not stages:
            raise ValueError(f"BackTranslationScorer: stages must be a non-empty subset of {list(_STAGES)}, got "
                             f"{list(stages)}")
        self.model_ckpt = str(model_ckpt)
        self.stages = tuple(stages)
        self.languages = list(languages) if languages is not None else None
        self.max_length = max_length
        # Held in a tuple so that no module attribute scan ever takes the judge for part of the trained model.
        self._judge: tuple[BackTranslator] | None = None
        self.scores: dict[str, BleuRougeStats] = {}
        self.slrtp_scores: dict[str, ChrFWerStats] = {}
        self._warned_regenerate = False

    # ------------------------------------------------------------------------------------------------ set-up
    @property
    def translator(self) -> BackTranslator:
        if self._judge is None:
            if not Path(self.model_ckpt).is_file():
                raise FileNotFoundError(f"BackTranslationScorer: model_ckpt {self.model_ckpt} does not exist; train "
                                        f"the judge with `make train-backtranslation` or give its checkpoint path")
            translator = BackTranslator.from_checkpoint(self.model_ckpt)
            translator.requires_grad_(False)
            self._judge = (translator,)
            log.info("back-translation judge %s (%d parameters)", self.model_ckpt,
                     sum(p.numel() for p in translator.parameters()))
        return self._judge[0]

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not hasattr(pl_module, "generate"):
            raise TypeError(f"BackTranslationScorer scores generated motion; {type(pl_module).__name__} has no "
                            f"generate(prompts, langs) (use it with soke_lightning.training.lm_stage.LMStage)")
        languages = self.languages or list(getattr(pl_module, "metric_languages", None) or [])
        if not languages:
            languages = list(LANGUAGES)
        self.languages = languages
        for s in self.stages:
            if s not in self.scores:
                self.scores[s] = BleuRougeStats(languages)
                self.slrtp_scores[s] = ChrFWerStats(languages)

    def _start(self, stage: str, pl_module: LightningModule) -> None:
        self.translator.to(pl_module.device).eval()
        self.scores[stage].to(pl_module.device).reset()
        self.slrtp_scores[stage].to(pl_module.device).reset()

    def _scores(self, stage: str, trainer: Trainer) -> bool:
        """Whether this ``stage``'s loop is scored (configured in ``stages``; never the sanity check)."""
        return stage in self.stages and not (stage == "val" and trainer.sanity_checking)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._scores("val", trainer):
            self._start("val", pl_module)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._scores("test", trainer):
            self._start("test", pl_module)

    # ------------------------------------------------------------------------------------------------ batches
    def motion(self, pl_module: LightningModule, outputs, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(features [B, T, 133] denormalised, lengths [B]) of the batch's generated motion."""
        if isinstance(outputs, Mapping) and "features" in outputs and "lengths" in outputs:
            return outputs["features"], outputs["lengths"]
        if not self._warned_regenerate:
            log.info("BackTranslationScorer: the evaluation step returns no generated motion (a mapping with "
                     "'features' and 'lengths'); generating each batch a second time for back-translation")
            self._warned_regenerate = True
        prompts = list(batch.prompt if batch.prompt is not None else batch.text)
        feats, lengths, _ = pl_module.generate(prompts, list(batch.lang))
        return feats, lengths

    @torch.no_grad()
    def score_batch(self, stage: str, pl_module: LightningModule, outputs, batch) -> list[str]:
        """Back-translate one batch's generated motion into the ``stage`` statistics; returns the sentences."""
        feats, lengths = self.motion(pl_module, outputs, batch)
        translator = self.translator
        normalised = translator.normalizer.normalize(feats.to(translator.normalizer.mean.device).float())
        hyps = translator.translate(normalised, lengths, list(batch.lang), self.max_length)
        self.scores[stage].update(hyps, list(batch.text), list(batch.lang))
        self.slrtp_scores[stage].update(hyps, list(batch.text), list(batch.lang))
        return hyps

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if self._scores("val", trainer):
            self.score_batch("val", pl_module, outputs, batch)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        if self._scores("test", trainer):
            self.score_batch("test", pl_module, outputs, batch)

    # ------------------------------------------------------------------------------------------------ epoch end
    def _log(self, stage: str, pl_module: LightningModule) -> None:
        values = self.scores[stage].compute()  # all-reduced sum states: the same on every rank
        self.scores[stage].reset()
        for lang, extra in self.slrtp_scores[stage].compute().items():
            values.setdefault(lang, {}).update(extra)
        self.slrtp_scores[stage].reset()
        names = (*SCORES, "chrf", "wer")
        logs = {f"{stage}/bt_{name}/{lang}": v[name] for lang, v in values.items() for name in names}
        if values:
            logs.update({f"{stage}/bt_{name}/all": float(np.mean([v[name] for v in values.values()]))
                         for name in names})
        pl_module.log_dict({k: torch.tensor(v, dtype=torch.float32, device=pl_module.device)
                            for k, v in logs.items()}, sync_dist=False)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._scores("val", trainer):
            self._log("val", pl_module)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._scores("test", trainer):
            self._log("test", pl_module)


__all__ = ["BackTranslationScorer"]
