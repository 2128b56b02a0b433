"""Pipelines: what the commands do, as functions (encode, generate, backtranslate, baselines, dictionary, report,
sweep). They take built objects and typed arguments, return results, and neither parse arguments nor print; the
`soke` commands in :mod:`soke_lightning.cli` wrap them (docs/design.md §1)."""
