"""Loading benchmark: reading N samples from the official per-frame pickle layout vs from the packed store.

N random samples of 100-300 frames are written in the official CSL-Daily layout (one pickle per frame) in a temp
dir and converted with `soke prepare`; then all N are read back both ways in the same run. Both reads hit a warm
page cache (the files were just written), so the ratio measures per-file overhead, not disk speed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from soke_lightning.data.official import get_reader, write_official_split
from soke_lightning.data.prepare import prepare_corpus
from soke_lightning.data.store import Sample, open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib: shared benchmark pieces
from benchlib import best_of  # noqa: E402


def _samples(n: int, min_frames: int, max_frames: int, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    return [Sample(f"S{i:06d}_P0000_T00", f"句子 {i}", "csl", "csl_daily",
                   rng.normal(size=(int(rng.integers(min_frames, max_frames + 1)), 179)).astype(np.float32), 30.0)
            for i in range(n)]


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench_loading", description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--min-frames", type=int, default=100)
    parser.add_argument("--max-frames", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2, help="`soke prepare` reader processes")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many reads, each way")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.getLogger("soke_lightning").setLevel(logging.WARNING)

    samples = _samples(args.samples, args.min_frames, args.max_frames, args.seed)
    frames = sum(s.num_frames for s in samples)
    with tempfile.TemporaryDirectory(prefix="soke-bench-loading-") as tmp:
        raw, store_dir = Path(tmp) / "CSL-Daily", Path(tmp) / "store"
        start = time.perf_counter()
        write_official_split(raw, "csl_daily", "train", samples)
        write_s = time.perf_counter() - start

        start = time.perf_counter()
        prepare_corpus("csl_daily", raw, store_dir, splits=["train"], workers=args.workers, stats=False,
                       progress=False)
        prepare_s = time.perf_counter() - start

        def read_official():
            reader = get_reader("csl_daily", raw)
            return [reader.read(r) for r in reader.list_split("train").records]

        def read_store():
            return list(open_store(store_dir).split("train"))

        official_s, official = best_of(args.repeats, read_official)
        store_s, stored = best_of(args.repeats, read_store)
        for a, b, ref in zip(official, stored, samples, strict=True):
            if not (np.array_equal(a.frames, ref.frames) and np.array_equal(b.frames, ref.frames)):
                raise AssertionError(f"sample {ref.name}: frames read back differ from those written")

    return {
        "samples": args.samples,
        "frames": frames,
        "frame_files": frames,
        "write_official_s": round(write_s, 3),
        "prepare_s": round(prepare_s, 3),
        "prepare_samples_per_s": round(args.samples / prepare_s, 1),
        "prepare_workers": args.workers,
        "official_read_s": round(official_s, 4),
        "store_read_s": round(store_s, 4),
        "official_samples_per_s": round(args.samples / official_s, 1),
        "store_samples_per_s": round(args.samples / store_s, 1),
        "store_vs_official": round(official_s / store_s, 1),
        "target_ratio": 50,
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(main(sys.argv[1:]), indent=2))
