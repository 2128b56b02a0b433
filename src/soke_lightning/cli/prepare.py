"""`soke prepare`: convert an official corpus (How2Sign, CSL-Daily, Phoenix-2014T) into a packed store.

    soke prepare --corpus csl_daily --root /data/CSL-Daily --out stores/csl_daily [--split train] [--workers 8]

Frames are read in parallel worker processes (output order = split-file order) and kept RAW (179-d); resampling
and length rules happen at load time. Each split is written atomically (a crash never leaves a split that looks
complete) and verified by re-opening the store (sample count, names, frame total and a checksum of every byte).
Resumable: complete splits are skipped unless --overwrite, and an interrupted split resumes from the chunk files
under STORE/.prepare-<split>/ (if the split file and options are unchanged; a chunk whose source files changed in
size or modification time is read again; --overwrite re-reads everything). Runs on different splits of one --out
may go at once (commits are serialised by the store's lock); a second run on the same split is refused while the
first holds it. A crash leaves either the old split or the new one; the next run finishes or reports "exists".
Unusable samples (unreadable frame pickle, missing key, wrong shape, NaN/inf, fewer than 4 frames, no pose folder)
are skipped with a warning naming the file and counted in the summary.
STORE/normalization.pt is computed from the train split unless --no-stats.
"""

from __future__ import annotations

import argparse
import json

from soke_lightning.data.official import READERS
from soke_lightning.data.prepare import default_workers, prepare_corpus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", required=True, help=f"corpus to convert: {', '.join(sorted(READERS))}")
    parser.add_argument("--root", required=True, help="corpus folder in the official release layout")
    parser.add_argument("--out", required=True, help="store directory to create or extend")
    parser.add_argument("--split", action="append", dest="splits", metavar="SPLIT",
                        help="only this split (train/val/test; repeatable); default: all")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"reader processes (default {default_workers()}; 0 = in this process)")
    parser.add_argument("--overwrite", action="store_true", help="rebuild splits that are already complete")
    parser.add_argument("--exclude", default=None, help="file with sample names to leave out, one per line")
    parser.add_argument("--min-frames", type=int, default=4, help="skip samples with fewer frames (default 4)")
    parser.add_argument("--no-stats", dest="stats", action="store_false",
                        help="do not write STORE/normalization.pt from the train split")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    report = prepare_corpus(args.corpus, args.root, args.out, splits=args.splits, workers=args.workers,
                            overwrite=args.overwrite, exclude=args.exclude, stats=args.stats,
                            min_frames=args.min_frames, progress=args.progress)
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if args.json else report.format())
    return 0
