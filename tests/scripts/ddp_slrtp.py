"""Two gloo processes score disjoint halves of a set with the SLRTP sum-state metrics; the synced result must equal
one process's.

Run by tests/test_metrics_slrtp.py (``python tests/scripts/ddp_slrtp.py PORT OUT.json``). Rank 0 writes the DDP
result and the single-process result (computed in rank 0 without syncing) to OUT.json.
"""

import json
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

NUM_SAMPLES = 7
WRISTS = (1, 2)


def make_data():
    """Deterministic joints, lengths, languages and sentences of the whole set."""
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(NUM_SAMPLES, 12, 5, 3, generator=gen) * 0.1
    target = torch.randn(NUM_SAMPLES, 10, 5, 3, generator=gen) * 0.1
    lp = torch.randint(3, 13, (NUM_SAMPLES,), generator=gen)
    lt = torch.randint(3, 11, (NUM_SAMPLES,), generator=gen)
    langs = ["asl", "csl", "dgs", "asl", "csl", "asl", "dgs"]
    hyps = ["the cat sat", "我 爱 你", "morgen regen", "a dog", "你 好", "it's sunny", "wind aus nord"]
    refs = ["the cat sat down", "我爱他", "morgen viel regen", "the dog", "你好", "it is sunny", "wind aus west"]
    return pred, target, lp, lt, langs, hyps, refs


def new_metrics(**kw):
    from soke_lightning.metrics.slrtp import ChrF, SLRTPMotionMetrics, WordErrorRate

    return [SLRTPMotionMetrics(WRISTS, prefix="test/", **kw), ChrF(**kw), WordErrorRate(**kw)]


def _update(metrics, indices, data):
    pred, target, lp, lt, langs, hyps, refs = data
    motion, chrf, wer = metrics
    for start in range(0, len(indices), 2):  # batches of 2
        idx = indices[start : start + 2]
        motion.update(pred[idx], target[idx], lp[idx], lt[idx], [langs[i] for i in idx])
        chrf.update([hyps[i] for i in idx], [refs[i] for i in idx])
        wer.update([hyps[i] for i in idx], [refs[i] for i in idx], [langs[i] for i in idx])


def _result(metrics):
    motion, chrf, wer = metrics
    out = {k: v.item() for k, v in motion.compute().items()}
    out["chrf"], out["wer"] = chrf.compute().item(), wer.compute().item()
    return out


def _worker(rank: int, world: int, port: int, out_path: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    data = make_data()
    metrics = new_metrics()
    _update(metrics, list(range(rank, NUM_SAMPLES, world)), data)  # every sample on exactly one rank
    synced = _result(metrics)
    if rank == 0:
        single = new_metrics(sync_on_compute=False)
        _update(single, list(range(NUM_SAMPLES)), data)
        with open(out_path, "w") as f:
            json.dump({"ddp": synced, "single": _result(single)}, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(_worker, args=(2, int(sys.argv[1]), sys.argv[2]), nprocs=2, join=True)
