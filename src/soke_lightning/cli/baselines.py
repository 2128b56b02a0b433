"""`soke baselines`: the two reference baselines every trained model must beat, scored with SOKE's DTW metrics.

    soke baselines --store data/synthsign-demo [--split test] [--json out.json]

* **mean pose**: the train-set mean frame (STORE/normalization.pt, else computed) repeated for the ground-truth
  length (an oracle length: with DTW's summed cost, a different length would change the scale, not the skill).
* **dictionary concatenation**: tokenise the TEXT (not the ground-truth concepts), look each word up in the
  store's ``dictionary`` split (English / German: longest word n-gram first, case-insensitive; Chinese: longest
  substring first), and concatenate the citation signs in text order with eased transitions and rest at both
  ends (as a canonical signer signs). Words without an entry are skipped; a sentence without any hit is the rest
  pose held for 40 frames.

Scores: joints from the built-in skeleton; DTW-JPE (root/wrist translation) and DTW-PA-JPE (per-frame Procrustes)
per language x part (body 12 / lhand 21 / rhand 21 joints), with SOKE's accumulated (unnormalised) DTW cost via
``soke_lightning.metrics.functional.dtw_joint_error``. The ground truth gets SOKE's length rule (40-400 frames,
multiple of 4, centre crop).

Then the SLRTP 2025 challenge's protocol for the ground truth, the mean pose and the dictionary concatenation, per
language and pooled (``all``): FastDTW DTW-MJE (mean per-joint error of the aligned frames, metres, on the 52 body
and hand joints), the wrist distance ratio (wrists' path length, predicted / ground truth; 1 ideal, a motionless
pose 0) and the duration ratio (predicted / ground-truth length). The JSON has it under ``"slrtp"``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from soke_lightning.core.io import atomic_write_text
from soke_lightning.metrics.slrtp import SLRTP_SCORES
from soke_lightning.pipelines.baselines import BASELINES, METRICS, run_baselines


def format_slrtp_table(slrtp: dict) -> str:
    """The SLRTP protocol table: one row per system and language (``all`` = pooled over the samples)."""
    lines = [f"{'system':<14}{'lang':<6}" + "".join(f"{s:>22}" for s in SLRTP_SCORES)]
    for system, langs in slrtp.items():
        for lang, values in langs.items():
            lines.append(f"{system:<14}{lang:<6}" + "".join(f"{values[s]:>22.4f}" for s in SLRTP_SCORES))
    return "\n".join(lines)


def format_table(results: dict) -> str:
    lines = [f"{'baseline':<12}{'lang':<6}{'part':<7}" + "".join(f"{m:>12}" for m in METRICS)]
    for baseline in BASELINES:
        for lang, parts in results[baseline].items():
            for part, values in parts.items():
                lines.append(f"{baseline:<12}{lang:<6}{part:<7}" + "".join(f"{values[m]:>12.3f}" for m in METRICS))
    rates = ", ".join(f"{k} {v:.0%}" for k, v in results["dictionary_hit_rate"].items())
    lines.append(f"dictionary hits per signed concept: {rates}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="a SynthSign store (with a dictionary split)")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")


def run(args: argparse.Namespace) -> int:
    try:
        results = run_baselines(args.store, args.split)
    except ValueError as err:
        print(f"soke baselines: error: {err}", file=sys.stderr)
        return 2
    print(f"SynthSign baselines on {args.store} [{args.split}] (accumulated DTW cost in metres; lower is better)")
    print(format_table(results))
    print("SLRTP protocol (FastDTW DTW-MJE in metres, lower is better; ratios: 1 is ideal)")
    print(format_slrtp_table(results["slrtp"]))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(results, indent=2) + "\n")
    return 0
