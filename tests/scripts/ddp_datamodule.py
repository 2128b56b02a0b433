"""2-process CPU DDP run of SignDataModule: every rank writes the sample names it trained on, per epoch.

Usage: python ddp_datamodule.py OUT_DIR STORE [STORE ...]

Writes OUT_DIR/<mode>_rank<r>.json = {"0": [names of epoch 0], "1": [...], "dataset": [...], "langs": [...]}
for the modes shuffle (seed 5), balanced (T = 1, seed 5) and balanced_t8 (T = 8, seed 5). Run by
tests/test_datamodule.py; Lightning re-runs this script for rank 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from lightning.pytorch import LightningModule, Trainer

from soke_lightning.data.datamodule import SignDataModule


class RecordNames(LightningModule):
    """A one-parameter model that records the names of the samples each rank receives."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: dict[str, list[str]] = {}

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(str(self.current_epoch), []).extend(batch.name)
        return (self.w * batch.poses.mean()).sum() + (self.w**2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def main(out: Path, stores: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    modes = {
        "shuffle": dict(sampler="shuffle"),
        "balanced": dict(sampler="balanced", balance_temperature=1.0),
        "balanced_t8": dict(sampler="balanced", balance_temperature=8.0),
    }
    for mode, kwargs in modes.items():
        dm = SignDataModule(stores, batch_size=2, seed=5, **kwargs)
        model = RecordNames()
        trainer = Trainer(
            accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        )
        trainer.fit(model, datamodule=dm)
        ds = dm.datasets["train"]
        record = {**model.seen, "dataset": ds.names, "langs": ds.langs}
        (out / f"{mode}_rank{trainer.global_rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
