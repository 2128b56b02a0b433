"""Precision and scale knobs (experiments/trainer/scale.yaml): bf16 autocast, gradient accumulation and clipping
run a stage-1 debug fit (on CPU here; bf16 autocast exists on CPU too) with float32 weights and codebooks; the
stage-1 joint metrics under bf16 autocast equal the float32 ones (they run in float32)."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # one short Lightning fit (about 10 s)
def test_bf16_accumulation_and_clipping_fit(tmp_path, monkeypatch):
    from soke_lightning.cli.lightning import SokeCLI
    from test_stage1_stage import make_store

    store = make_store(tmp_path / "store", {"train": 4, "val": 1, "test": 1})
    monkeypatch.setenv("SOKE_OUT", str(tmp_path / "out"))
    monkeypatch.setattr(sys, "argv", ["soke"])
    cli = SokeCLI(args=[
        "fit", "--config", str(ROOT / "experiments/stage1/debug.yaml"), "--config", str(ROOT / "experiments/trainer/scale.yaml"),
        "--data", str(ROOT / "datamodules/synthsign.yaml"), f"--data.init_args.stores=[{store}]",
        "--data.init_args.batch_size=2", "--trainer.max_epochs=1", "--trainer.accumulate_grad_batches=3",
        "--trainer.gradient_clip_val=0.5", "--trainer.accelerator=cpu", "--trainer.limit_val_batches=0"])
    trainer, model = cli.trainer, cli.model
    assert trainer.precision == "bf16-mixed"
    assert trainer.global_step == 2  # 6 batches / 3 accumulated per optimizer step
    assert all(p.dtype == torch.float32 for p in model.parameters())
    quantizer = model.tokenizer.vaes["body"].quantizer
    assert all(b.dtype in (torch.float32, torch.float64, torch.int64, torch.bool) for b in quantizer.buffers())
    assert int(quantizer.num_updates) == 6  # the EMA codebook updates on every batch, accumulated or not
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_stage1_joint_metrics_under_bf16_autocast():
    from soke_lightning.kinematics import get_joint_backend
    from soke_lightning.metrics.functional.reconstruction import joint_errors

    backend = get_joint_backend("builtin")
    gen = torch.Generator().manual_seed(0)
    gt, pred = torch.randn(6, 133, generator=gen) * 0.1, torch.randn(6, 133, generator=gen) * 0.1
    reference = joint_errors(backend, gt, pred)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        errors = joint_errors(backend, gt, pred)
    for name, value in reference.items():
        assert errors[name].dtype == torch.float32 and torch.allclose(errors[name], value, atol=1e-5), name
