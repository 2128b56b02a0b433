"""`soke prepare`: convert an official corpus (How2Sign, CSL-Daily, Phoenix-2014T) or a `.pose` corpus into a store.

    soke prepare --corpus csl_daily --root /data/CSL-Daily --out stores/csl_daily [--split train] [--workers 8]
    soke prepare --corpus pose --root /data/my-poses --index clips.csv --out stores/mine [--layout holistic]

A `.pose` corpus (pose-format files, e.g. MediaPipe Holistic) is described by an index CSV with the columns
file, text, language and optionally split, start, end (seconds), spoken (mBART tag of the text language) and
name. Points are picked by the keypoint layout (--layout: a shipped name or a YAML file), normalised per sample
(origin: mean mid-shoulder point, unit: mean shoulder width, y up) and missing points are kept as a mask. A sign
language the registry lacks is declared by the corpus with its ISO 639-3 code (e.g. ``ase``, ``gsg``).

Official corpora:
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

from soke_lightning.core.errors import ConfigError
from soke_lightning.core.feature_layout import shipped_layouts
from soke_lightning.data.official import READERS
from soke_lightning.data.pose_corpus import prepare_pose_corpus
from soke_lightning.data.prepare import default_workers, prepare_corpus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", required=True,
                        help=f"corpus to convert: {', '.join(sorted(READERS))}, or 'pose' for .pose files (--index)")
    parser.add_argument("--root", required=True,
                        help="corpus folder in the official release layout (pose: the folder the CSV paths start in)")
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
    parser.add_argument("--index", default=None,
                        help="pose: index CSV with columns file,text,language[,split,start,end,spoken,name]")
    parser.add_argument("--layout", default="holistic",
                        help=f"pose: keypoint feature layout, shipped ({', '.join(shipped_layouts())}) or a YAML "
                             f"path (default holistic)")
    parser.add_argument("--name", default="pose", help="pose: corpus id recorded in the store (default 'pose')")
    parser.add_argument("--spoken-code", default="en_XX",
                        help="pose: mBART tag of the texts' language for rows without a 'spoken' column")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    if args.corpus == "pose":
        return _run_pose(args)
    if args.index is not None:
        raise ConfigError("--index: only for --corpus pose (a .pose corpus's CSV); drop it or use --corpus pose")
    report = prepare_corpus(args.corpus, args.root, args.out, splits=args.splits, workers=args.workers,
                            overwrite=args.overwrite, exclude=args.exclude, stats=args.stats,
                            min_frames=args.min_frames, progress=args.progress)
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if args.json else report.format())
    return 0


def _run_pose(args: argparse.Namespace) -> int:
    if args.index is None:
        raise ConfigError("--corpus pose needs --index FILE.csv (columns file,text,language[,split,start,end,spoken,"
                          "name])")
    report = prepare_pose_corpus(args.root, args.index, args.out, layout=args.layout, corpus=args.name,
                                 spoken_code=args.spoken_code, min_frames=args.min_frames,
                                 overwrite=args.overwrite, stats=args.stats)
    if args.json:
        print(json.dumps({"corpus": report.corpus, "layout": report.layout, "out": report.out,
                          "languages": report.languages, "stats_path": report.stats_path,
                          "splits": {k: vars(v) for k, v in report.splits.items()}}, indent=2, ensure_ascii=False))
    else:
        print(report.format())
    return 0
