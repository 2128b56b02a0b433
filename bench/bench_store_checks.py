"""Store integrity checks: what opening a split (index vs frames, O(records)) and `soke data verify` (every byte)
cost, each against a baseline measured in the same run.

* open: opening a split with every record checked vs the bare minimum an unchecked open did (parse each index
  line, sum the lengths, compare the file size). The same records with 20x more frames each must open in about the
  same time: the checks never read a frame.
* verify: hashing every byte and scanning for NaN/inf vs just reading ``frames.bin`` block by block.
Both stores are freshly written, so reads hit a warm page cache: the ratios measure CPU work, not the disk.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from soke_lightning.core.layout import RAW_DIM
from soke_lightning.data.store import BLOCK_FRAMES, PackedStore, Sample, StoreWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib: shared benchmark pieces
from benchlib import best_of  # noqa: E402


def _write(root: Path, samples: int, frames: int) -> Path:
    rng = np.random.default_rng(0)
    block = rng.normal(size=(frames, RAW_DIM)).astype(np.float32)
    with StoreWriter(root, {"corpus": "bench"}).split("train") as split:
        for i in range(samples):
            split.add(Sample(f"S{i:07d}", f"sentence number {i}", "asl", "bench", block, 25.0, {"k": i}))
    return root


def _unchecked_open(root: Path) -> int:
    """What opening did before the checks: parse the lines, sum the lengths, compare the byte size."""
    with open(root / "train" / "index.jsonl", encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    total = sum(r["length"] for r in records)
    assert (root / "train" / "frames.bin").stat().st_size == total * RAW_DIM * 4
    return len(records)


def _plain_read(path: Path) -> int:
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(BLOCK_FRAMES * RAW_DIM * 4):
            size += len(chunk)
    return size


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench_store_checks", description=__doc__)
    parser.add_argument("--samples", type=int, default=20000, help="records of the open benchmark")
    parser.add_argument("--verify-frames", type=int, default=100000, help="frames of the verify benchmark")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soke-bench-store-") as tmp:
        short = _write(Path(tmp) / "short", args.samples, 2)
        long = _write(Path(tmp) / "long", args.samples, 40)
        checked_s, _ = best_of(args.repeats, lambda: PackedStore(short).split("train"))
        unchecked_s, _ = best_of(args.repeats, lambda: _unchecked_open(short))
        checked_long_s, _ = best_of(args.repeats, lambda: PackedStore(long).split("train"))

        big = _write(Path(tmp) / "big", max(1, args.verify_frames // 200), 200)
        split = PackedStore(big).split("train")
        problems: list[str] = []
        verify_s, _ = best_of(args.repeats, lambda: problems.extend(split.verify()))
        read_s, _ = best_of(args.repeats, lambda: _plain_read(split.frames_path))
        if problems:
            raise AssertionError(f"a freshly written store failed verification: {problems}")
        megabytes = split.frames_path.stat().st_size / 1e6
    return {
        "records": args.samples,
        "open_checked_s": round(checked_s, 4),
        "open_unchecked_s": round(unchecked_s, 4),
        "open_checked_vs_unchecked": round(checked_s / unchecked_s, 2),
        "open_20x_frames_vs_1x": round(checked_long_s / checked_s, 2),
        "verify_mb": round(megabytes, 1),
        "verify_s": round(verify_s, 3),
        "plain_read_s": round(read_s, 3),
        "verify_mb_per_s": round(megabytes / verify_s, 1),
        "verify_vs_plain_read": round(verify_s / read_s, 2),
        "target": "open_checked_vs_unchecked <= 2 and open_20x_frames_vs_1x ~ 1 (O(records))",
    }


if __name__ == "__main__":
    import sys

    print(json.dumps(main(sys.argv[1:]), indent=2))
