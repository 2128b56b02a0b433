"""The shared AdamW + warm-up/cosine recipe of the stages."""

import math
from types import SimpleNamespace

import pytest
import torch

from soke_lightning.training.common import adamw_cosine, warmup_cosine


def test_warmup_then_cosine_to_the_floor():
    f = warmup_cosine(total=110, warmup=10, floor=0.01)
    assert [f(s) for s in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(110) == pytest.approx(0.01) and f(500) == pytest.approx(0.01)
    values = [f(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_adamw_cosine_per_epoch_and_constant():
    params = [torch.nn.Parameter(torch.zeros(2))]
    trainer = SimpleNamespace(max_epochs=4, estimated_stepping_batches=100)
    cfg = adamw_cosine(params, trainer, lr=1e-3, betas=[0.9, 0.99], scheduler="cosine", interval="epoch", min_lr=1e-5)
    opt, sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    assert cfg["lr_scheduler"]["interval"] == "epoch" and opt.defaults["betas"] == (0.9, 0.99)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-3) and lrs[4] == pytest.approx(1e-5)
    assert isinstance(adamw_cosine(params, trainer, lr=1e-3, scheduler="none"), torch.optim.AdamW)
