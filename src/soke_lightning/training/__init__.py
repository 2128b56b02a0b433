"""One LightningModule per stage: tokenizer_stage.TokenizerStage (stage 1), the LM stage (stage 2); tools
(`soke encode`) that run a trained stage."""
