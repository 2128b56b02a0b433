"""Test-suite defaults: offline, no wandb, deterministic small thread count."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# Small ops on 2 shared cores are up to 100x slower with torch's default intra-op threads (measured here);
# tests never time anything, so one thread is both faster and steadier. SOKE_TEST_THREADS overrides.
torch.set_num_threads(int(os.environ.get("SOKE_TEST_THREADS", "1")))
