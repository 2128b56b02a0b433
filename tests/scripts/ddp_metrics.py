"""Two gloo processes score an odd-sized set through a DistributedSampler; the synced metric must equal one process.

Run by tests/test_metrics_torchmetrics.py (``python tests/scripts/ddp_metrics.py PORT OUT.json``). The sampler pads 7
samples to 8, so one sample is scored on both ranks; SignMotionMetrics must drop the repeat. Rank 0 writes the
DDP result and the single-process result (computed in rank 0 without syncing) to OUT.json.

The same two processes also check the SLRTP sum-state metrics (``"slrtp_ddp"`` / ``"slrtp_single"``): each rank
scores a disjoint half, as the evaluation loaders' unrepeated sampler gives it (one process start serves both).
"""

import json
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

NUM_SAMPLES = 7
PARTS = dict(body=[1, 2, 3, 4], body_align=list(range(10)), lhand=[4, 5, 6, 7, 8], rhand=[0, 9, 8, 7, 6])


def make_data():
    """Deterministic joints, lengths, languages and names of the whole set."""
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(NUM_SAMPLES, 12, 10, 3, generator=gen) * 0.1
    target = torch.randn(NUM_SAMPLES, 10, 10, 3, generator=gen) * 0.1
    lp = torch.randint(3, 13, (NUM_SAMPLES,), generator=gen)
    lt = torch.randint(3, 11, (NUM_SAMPLES,), generator=gen)
    langs = ["asl", "csl", "dgs", "asl", "csl", "asl", "dgs"]
    names = [f"corpus/sample_{i}" for i in range(NUM_SAMPLES)]
    return pred, target, lp, lt, langs, names


def new_metric(**kw):
    from soke_lightning.metrics import SignMotionMetrics, parts_from_joint_sets

    return SignMotionMetrics(parts_from_joint_sets(PARTS), variants=("dtw_jpe", "dtw_pa_jpe", "dtw_mje"),
                             prefix="test/", **kw)


def _update(metric, indices, data):
    pred, target, lp, lt, langs, names = data
    for start in range(0, len(indices), 2):  # batches of 2
        idx = indices[start : start + 2]
        metric.update(pred[idx], target[idx], lp[idx], lt[idx], [langs[i] for i in idx], [names[i] for i in idx])


HYPS = ["the cat sat", "我 爱 你", "morgen regen", "a dog", "你 好", "it's sunny", "wind aus nord"]
REFS = ["the cat sat down", "我爱他", "morgen viel regen", "the dog", "你好", "it is sunny", "wind aus west"]


def slrtp_metrics(**kw):
    from soke_lightning.metrics.slrtp import ChrF, ChrFWerStats, SLRTPMotionMetrics, WordErrorRate

    return [SLRTPMotionMetrics((1, 2), prefix="test/", **kw), ChrF(**kw), WordErrorRate(**kw),
            ChrFWerStats(["asl", "csl", "dgs"], **kw)]


def slrtp_result(indices, data, **kw) -> dict:
    """Score ``indices`` in batches of 2 with the SLRTP metrics; every value as a float."""
    pred, target, lp, lt, langs, _ = data
    motion, chrf, wer, per_lang = slrtp_metrics(**kw)
    for start in range(0, len(indices), 2):
        idx = indices[start : start + 2]
        motion.update(pred[idx], target[idx], lp[idx], lt[idx], [langs[i] for i in idx])
        chrf.update([HYPS[i] for i in idx], [REFS[i] for i in idx])
        wer.update([HYPS[i] for i in idx], [REFS[i] for i in idx], [langs[i] for i in idx])
        per_lang.update([HYPS[i] for i in idx], [REFS[i] for i in idx], [langs[i] for i in idx])
    out = {k: v.item() for k, v in motion.compute().items()}
    out["chrf"], out["wer"] = chrf.compute().item(), wer.compute().item()
    out.update({f"{name}/{lang}": v for lang, d in per_lang.compute().items() for name, v in d.items()})
    return out


def _worker(rank: int, world: int, port: int, out_path: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    from torch.utils.data import DistributedSampler

    data = make_data()
    sampler = DistributedSampler(range(NUM_SAMPLES), num_replicas=world, rank=rank, shuffle=False)
    indices = list(sampler)
    metric = new_metric()
    _update(metric, indices, data)
    synced = {k: v.item() for k, v in metric.compute().items()}
    slrtp_synced = slrtp_result(list(range(rank, NUM_SAMPLES, world)), data)
    counts = [None] * world
    dist.all_gather_object(counts, len(indices))
    if rank == 0:
        single = new_metric(sync_on_compute=False)  # one process, no sync
        _update(single, list(range(NUM_SAMPLES)), data)
        ref = {k: v.item() for k, v in single.compute().items()}
        with open(out_path, "w") as f:
            json.dump({"ddp": synced, "single": ref, "scored": sum(counts), "slrtp_ddp": slrtp_synced,
                       "slrtp_single": slrtp_result(list(range(NUM_SAMPLES)), data, sync_on_compute=False)}, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(_worker, args=(2, int(sys.argv[1]), sys.argv[2]), nprocs=2, join=True)
