"""DataModule benchmark: one training epoch through SignDataModule vs plain store reads of the same samples.

A mixed store (How2Sign-like 30 fps ASL, CSL, DGS; 20-600 frames) is written to a temp dir. The baseline reads every
sample's raw frames from the store (``split[i]``: memory-map copy, no processing). The DataModule epoch adds the fps
cap, the length rule, feature selection, normalisation, shuffling and collation into padded SignBatches. The ratio
is the cost of all that relative to the bare read; the balanced sampler's epoch is timed as well.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from soke_lightning.data.datamodule import SignDataModule
from soke_lightning.data.normalization import STATS_FILE, compute_stats, save_stats
from soke_lightning.data.store import Sample, StoreWriter, open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib: shared benchmark pieces
from benchlib import best_of  # noqa: E402

CORPORA = (("how2sign", "asl", 30.0), ("csl_daily", "csl", 30.0), ("phoenix14t", "dgs", 25.0))


def _write(root: Path, per_corpus: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with StoreWriter(root, {"bench": "datamodule"}).split("train") as out:
        for corpus, lang, fps in CORPORA:
            for i in range(per_corpus):
                frames = rng.normal(size=(int(rng.integers(20, 601)), 179)).astype(np.float32)
                out.add(Sample(f"{corpus}_{i:05d}", f"sentence {i}", lang, corpus, frames, fps))
    mean, std, n = compute_stats(s.frames for s in open_store(root).split("train"))
    save_stats(root / STATS_FILE, mean, std, n, "bench")


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench_datamodule", description=__doc__)
    parser.add_argument("--per-corpus", type=int, default=300, help="samples per corpus (default 300)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        _write(root, args.per_corpus, seed=0)
        split = open_store(root).split("train")
        n = len(split)

        def raw_reads():
            for i in range(n):
                split[i]

        results = {"samples": n, "batch_size": args.batch_size}
        t_raw, _ = best_of(args.repeats, raw_reads)
        results["raw_store_read_samples_per_s"] = round(n / t_raw, 1)
        for sampler in ("shuffle", "balanced"):
            dm = SignDataModule([str(root)], batch_size=args.batch_size, sampler=sampler, balance_temperature=5.0)
            loader = dm.train_dataloader()

            def epoch(loader=loader):
                for _ in loader:
                    pass

            t, _ = best_of(args.repeats, epoch)
            results[f"{sampler}_epoch_samples_per_s"] = round(n / t, 1)
            results[f"{sampler}_cost_vs_raw_read"] = round(t / t_raw, 2)
    return results
