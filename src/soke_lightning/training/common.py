"""Pieces every stage shares: the AdamW + warm-up/cosine recipe, the validation/test loop dispatch and the
``torch.compile`` opt-in."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

log = logging.getLogger(__name__)


def compile_in_place(module: torch.nn.Module, enabled: bool = True, **options: Any) -> torch.nn.Module:
    """Opt-in ``torch.compile`` of ``module``'s forward, in place (``nn.Module.compile``).

    Unlike ``torch.compile(module)``, which wraps the module in an ``OptimizedModule`` whose ``state_dict`` keys
    gain an ``_orig_mod.`` prefix, the in-place form keeps the module and its parameter names: checkpoints of a
    compiled and an uncompiled run are interchangeable, and the optimizer, DDP and Lightning see the same object.
    Only ``forward`` (``module(...)``) is compiled; other methods (e.g. generation loops) stay eager. Compilation
    happens at the first call and takes seconds to minutes; it pays off for long runs on GPU.

    Args:
        module: the network to compile.
        enabled: False returns ``module`` untouched (the config switch).
        options: ``torch.compile`` arguments (``mode``, ``backend``, ``dynamic``, ``fullgraph``, ``options``).

    Returns:
        ``module`` itself.
    """
    if enabled:
        module.compile(**options)
        log.info("torch.compile: %s forward compiled in place (%s)", type(module).__name__, options or "defaults")
    return module


def warmup_cosine(total: int, warmup: int, floor: float) -> Callable[[int], float]:
    """LR factor per scheduler step: linear warm-up over ``warmup`` steps, then cosine from 1 down to ``floor``.

    Args:
        total: scheduler steps of the whole run (epochs or optimizer steps, as the scheduler is stepped).
        warmup: warm-up steps (0 = none).
        floor: final factor (min_lr / lr).
    """

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def adamw_cosine(params: Iterable[torch.nn.Parameter], trainer, *, lr: float, betas=(0.9, 0.999),
                 weight_decay: float = 0.0, scheduler: str = "cosine", interval: str = "step",
                 warmup_steps: int = 0, min_lr: float = 0.0):
    """AdamW with an optional warm-up + cosine schedule, as a Lightning ``configure_optimizers`` return value.

    ``interval="epoch"`` steps the schedule once per epoch over ``trainer.max_epochs`` (SOKE's recipe);
    ``"step"`` once per optimizer step over ``trainer.estimated_stepping_batches``. ``scheduler="none"`` = constant.
    """
    opt = torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    if scheduler == "none":
        return opt
    if interval == "epoch":
        total = max(1, int(trainer.max_epochs or 1))
    else:
        total = max(1, int(trainer.estimated_stepping_batches))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total, warmup_steps, min_lr / lr))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}


class EvalLoops:
    """Routes Lightning's validation/test hooks to ``_eval_step(batch, stage)`` / ``_eval_epoch_end(stage)``; a step's
    return value reaches the callbacks' ``on_{validation,test}_batch_end`` as ``outputs``."""

    def validation_step(self, batch, batch_idx: int):
        return self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch, batch_idx: int):
        return self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")
