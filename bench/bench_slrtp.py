"""SLRTP DTW-MJE benchmark: the challenge's FastDTW alignment (the ``fastdtw`` package) against our exact numba DTW-JPE
on the same pairs and joints, in one run.

Data: smooth random-walk trajectories of 52 joints (the built-in skeleton's body and hand joints), lengths 150-250
frames. Reported: seconds per pair of each, their ratio, whether fastdtw's compiled extension is installed (pip
builds it only when Cython is present; otherwise its pure-Python version runs), and the extrapolated time of the
SLRTP scores for a 2 000-sample test split. ``python bench/run.py slrtp`` prints the JSON; ``main(["--pairs",
"8"])`` runs a smaller set.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import torch

from soke_lightning.metrics.functional import dtw_jpe
from soke_lightning.metrics.functional.slrtp import motion_stats

JOINTS = 52


def make_data(pairs: int, seed: int = 0):
    """(pred [B, 250, J, 3], target, lp, lt) smooth random walks in metres (float32)."""
    gen = torch.Generator().manual_seed(seed)
    lp = torch.randint(150, 251, (pairs,), generator=gen)
    lt = torch.randint(150, 251, (pairs,), generator=gen)
    walk = lambda: torch.cumsum(0.005 * torch.randn(pairs, 250, JOINTS, 3, generator=gen), dim=1)  # noqa: E731
    return walk(), walk(), lp, lt


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench_slrtp")
    parser.add_argument("--pairs", type=int, default=32)
    args = parser.parse_args(argv)
    pred, target, lp, lt = make_data(args.pairs)
    dtw_jpe(pred[:2], target[:2], lp[:2], lt[:2])  # numba compilation outside the timing
    start = time.perf_counter()
    dtw_jpe(pred, target, lp, lt)
    exact_s = time.perf_counter() - start
    start = time.perf_counter()
    motion_stats(pred, target, lp, lt, wrists=(0, 1))
    slrtp_s = time.perf_counter() - start
    per_pair = slrtp_s / args.pairs
    return {
        "pairs": args.pairs,
        "joints": JOINTS,
        "fastdtw_compiled_extension": importlib.util.find_spec("fastdtw._fastdtw") is not None,
        "slrtp_motion_stats_s_per_pair": round(per_pair, 4),
        "exact_dtw_jpe_s_per_pair": round(exact_s / args.pairs, 5),
        "ratios": {"slrtp_vs_exact_dtw_jpe": round(slrtp_s / exact_s, 1)},
        "slrtp_minutes_for_2000_samples": round(2000 * per_pair / 60, 2),
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(main(sys.argv[1:]), indent=2))
