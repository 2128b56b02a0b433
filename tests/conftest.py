"""Test-suite defaults: offline, no wandb, deterministic small thread count."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# Small ops on 2 shared cores are up to 100x slower with torch's default intra-op threads (measured here);
# tests never time anything, so one thread is both faster and steadier. SOKE_TEST_THREADS overrides.
torch.set_num_threads(int(os.environ.get("SOKE_TEST_THREADS", "1")))

import pytest  # noqa: E402

from soke_lightning.core import languages  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _language_registry():
    """Opening a keypoint store registers the languages its corpus declares (process-wide, as in a real run);
    the registry is put back after each test module (its module fixtures may register them), so a model built in a
    later module sees only the languages it should."""
    saved_languages, saved_corpora = dict(languages.LANGUAGES), dict(languages.CORPORA)
    yield
    for registry, saved in ((languages.LANGUAGES, saved_languages), (languages.CORPORA, saved_corpora)):
        registry.clear()
        registry.update(saved)
