"""Checks shared by the multi-process training scripts (ops_ddp_stage1.py, ops_ddp_stage2.py), run inside the ranks.

:class:`SyncCheck` asserts, with all_gather, that before every optimizer step the (DDP-averaged) gradients are
identical on all ranks, that after training the tensors :meth:`SyncCheck.synced` names are identical, and that the
ranks trained on disjoint samples in every epoch. Subclasses choose the tensors and add :meth:`SyncCheck.extra_checks`.
"""

import torch
import torch.distributed as dist
from lightning.pytorch import Callback


def gather(t: torch.Tensor) -> list[torch.Tensor]:
    """``t`` from every rank (all_gather)."""
    out = [torch.zeros_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t.contiguous())
    return out


class SyncCheck(Callback):
    """Gradients equal across ranks at every optimizer step; :meth:`synced` tensors equal at the end; disjoint shards."""

    def __init__(self):
        self.steps = 0
        self.names_seen: list[str] = []

    def synced(self, pl_module) -> list[tuple[str, torch.Tensor]]:
        """(name, tensor) pairs that must be identical on every rank after training: parameters and buffers."""
        return [*pl_module.named_parameters(), *pl_module.named_buffers()]

    def extra_checks(self, pl_module) -> None:
        """More end-of-training checks of a subclass (run on every rank)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.names_seen += [f"{trainer.current_epoch}:{k}" for k in batch.keys]

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        grads = torch.cat([p.grad.reshape(-1) for p in pl_module.parameters() if p.grad is not None])
        assert grads.abs().sum() > 0, "no gradient"
        gathered = gather(grads)
        for r, g in enumerate(gathered):
            assert torch.equal(g, gathered[0]), f"step {self.steps}: gradients of rank {r} differ from rank 0"
        self.steps += 1

    def on_train_end(self, trainer, pl_module):
        for name, t in self.synced(pl_module):
            for r, g in enumerate(gather(t.detach())):
                assert torch.equal(g, t), f"{name} differs between rank {dist.get_rank()} and rank {r}"
        self.extra_checks(pl_module)
        # in every epoch the ranks trained on disjoint shards
        names = [None] * dist.get_world_size()
        dist.all_gather_object(names, sorted(self.names_seen))
        assert all(set(names[0]).isdisjoint(n) for n in names[1:]), f"ranks saw the same samples: {names}"
