"""Two gloo processes train a tiny SignTokenizer on DIFFERENT data; the quantizers must stay identical on both ranks.

Run by tests/test_stage1_ddp.py (``python tests/scripts/ddp_stage1.py PORT``). No DistributedDataParallel wrapper on
purpose: its buffer broadcast would hide a quantizer that forgets to synchronise. Gradients are averaged by hand.
Also checks that the synchronised EMA update equals a single-process update on the union of both ranks' latents.
Exit code 0 = pass; failures are raised as AssertionError in a rank.
"""

import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _union_reference(world: int):
    """Chunks per rank and the state of ONE process updated on their union (computed before any process group)."""
    from soke_lightning.models.quantizer import EMAResetQuantizer

    torch.manual_seed(1)
    chunks = [torch.randn(1, 20, 4) + 3 * r for r in range(world)]
    single = EMAResetQuantizer(6, 4, reset="first", decay=0.9).train()
    single(torch.cat(chunks, dim=1))
    single(torch.cat(chunks, dim=1) * 0.5)
    return chunks, single


def _worker(rank: int, world: int, port: int) -> None:
    torch.set_num_threads(1)
    from soke_lightning.models.quantizer import EMAResetQuantizer
    from soke_lightning.models.tokenizer import SignTokenizer

    chunks, single = _union_reference(world)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)

    # 1) tokenizer training: identical codebooks / EMA state across ranks after several steps with dead-code resets
    torch.manual_seed(0)
    tok = SignTokenizer(width=16, code_dim=8, depth=1, codebook_sizes={"body": 8, "lhand": 16, "rhand": 16}).train()
    opt = torch.optim.AdamW(tok.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(100 + rank)  # different data per rank
    for _ in range(4):
        x = torch.randn(2, 24, 133, generator=gen) * (1 + rank)
        lengths = torch.tensor([24, 16 + 4 * rank])
        out = tok(x, lengths)
        loss = torch.nn.functional.smooth_l1_loss(out.recon, x) + 0.02 * out.commit_loss
        opt.zero_grad()
        loss.backward()
        for p in tok.parameters():
            dist.all_reduce(p.grad)
            p.grad /= world
        opt.step()
    for name, buf in tok.named_buffers():
        gathered = [torch.zeros_like(buf) for _ in range(world)]
        dist.all_gather(gathered, buf)
        assert all(torch.equal(gathered[0], g) for g in gathered), f"buffer {name} differs across ranks"
    assert int(tok.vaes["body"].quantizer.num_updates) == 4

    # 2) the synchronised update equals one process seeing both ranks' latents (reset="first": rank 0's rows first)
    q = EMAResetQuantizer(6, 4, reset="first", decay=0.9).train()
    q(chunks[rank])
    q(chunks[rank] * 0.5)
    for name, buf in q.named_buffers():
        assert torch.allclose(buf.float(), getattr(single, name).float(), atol=1e-5), (
            f"{name} != single process: {buf} vs {getattr(single, name)}")
    dist.barrier()
    dist.destroy_process_group()


def main(argv: list[str]) -> int:
    port = int(argv[0]) if argv else 29533
    mp.spawn(_worker, args=(2, port), nprocs=2, join=True)
    print("ddp_stage1: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
