"""B-T BLEU across ranks: two gloo processes each back-translate half of the sentences into BleuRougeStats (what
BackTranslationScorer does per rank); the all-reduced n-gram statistics give the corpus scores of one process.

The file is also the subprocess script (``python tests/test_bt_ddp.py PORT OUT.json``): pytest + DDP in one process
re-runs pytest in rank 1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HYPS = ["the bird cries loudly", "我爱你们", "der hund schläft", "my friend eats", "今天下雨了", "ich trinke",
        "a cat", "好", "wasser ich trinke"]
REFS = ["the bird cries", "我 爱 你", "der hund schläft", "my friend eats bread", "今天 下雨", "ich trinke wasser",
        "the cat sleeps", "你好", "ich trinke wasser"]
LANGS = ["asl", "csl", "dgs"] * 3


def _worker(rank: int, world: int, port: int, out_path: str) -> None:
    import torch.distributed as dist

    from soke_lightning.metrics.bleu import BleuRougeStats

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    metric = BleuRougeStats(["asl", "csl", "dgs"])
    mine = list(range(rank, len(HYPS), world))  # 5 and 4 sentences
    metric.update([HYPS[i] for i in mine], [REFS[i] for i in mine], [LANGS[i] for i in mine])
    synced = metric.compute()
    if rank == 0:
        Path(out_path).write_text(json.dumps({"ddp": synced, "local_count": len(mine)}))
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes: ~10 s of imports, ~25 s on a loaded machine
def test_two_ranks_give_the_single_process_scores(tmp_path):
    from soke_lightning.metrics.functional.bleu import bleu_rouge

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, __file__, str(port), str(out)], check=True, timeout=120, env=env)
    result = json.loads(out.read_text())
    assert result["local_count"] == 5  # rank 0 saw only its shard
    for lang in ("asl", "csl", "dgs"):
        idx = [i for i, x in enumerate(LANGS) if x == lang]
        want = bleu_rouge([HYPS[i] for i in idx], [REFS[i] for i in idx], lang)
        for key, value in want.items():
            assert result["ddp"][lang][key] == pytest.approx(value, abs=1e-6), (lang, key)


if __name__ == "__main__":
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(2, int(sys.argv[1]), sys.argv[2]), nprocs=2, join=True)
