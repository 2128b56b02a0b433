"""One LightningModule per stage: :class:`~.tokenizer_stage.TokenizerStage` (stage 1, the decoupled tokenizer),
:class:`~.lm_stage.LMStage` (stage 2, the generator) and :class:`~.backtranslation.BackTranslationStage` (the
sign -> text judge); :mod:`.common` holds their shared schedule and evaluation-loop helpers."""
