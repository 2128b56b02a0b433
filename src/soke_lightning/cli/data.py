"""`soke data`: inspect packed stores.

    soke data info STORE [--json]                       samples / frames / lengths / fps per split and language
    soke data stats STORE [--split train] [--out FILE]  normalisation statistics (default STORE/normalization.pt)
    soke data verify STORE [--split S ...]              check every byte against the hashes recorded at commit

Opening a store (every command) already checks each split's index against its frame file and the manifest (O(records));
``verify`` also reads every frame once (streaming, with a progress bar): it compares both files with the BLAKE2b
hashes recorded when the split was committed and lists the samples with NaN/inf frames. Exit status 0 when the
store is sound, 1 when it found a problem (one line each), 2 when the store cannot be opened at all.
"""

from __future__ import annotations

import json
import sys

from soke_lightning.data.prepare import write_store_stats
from soke_lightning.data.store import open_store


def format_summary(summary: dict, title: str = "") -> str:
    """A table of :meth:`PackedStore.summary`: one row per split x language, then a total row per split."""
    head = f"{'split':<12}{'lang':<6}{'samples':>9}{'frames':>12}{'len min':>9}{'median':>9}{'max':>7}  fps"
    lines = [title] if title else []
    lines += [head, "-" * len(head)]
    for split, s in summary.items():
        for lang, d in s["languages"].items():
            fps = ", ".join(f"{float(k):g}" + (f" (x{v})" if len(d["fps"]) > 1 else "") for k, v in d["fps"].items())
            lines.append(f"{split:<12}{lang:<6}{d['samples']:>9}{d['frames']:>12}{d['length_min']:>9}"
                         f"{d['length_median']:>9g}{d['length_max']:>7}  {fps}")
        if len(s["languages"]) != 1:
            lines.append(f"{split:<12}{'all':<6}{s['samples']:>9}{s['frames']:>12}")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{info,stats,verify}")
    info = sub.add_parser("info", help="counts per split and language: samples, frames, lengths, fps")
    info.add_argument("store", help="store directory (from `soke prepare` or `soke synth`)")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    stats = sub.add_parser("stats", help="compute normalisation statistics (mean/std over all frames of a split)")
    stats.add_argument("store", help="store directory")
    stats.add_argument("--split", default="train", help="split to compute them over (default: train)")
    stats.add_argument("--out", default=None, help="output file (default: STORE/normalization.pt)")
    verify = sub.add_parser("verify", help="read every frame: content hashes recorded at commit, NaN/inf samples")
    verify.add_argument("store", help="store directory")
    verify.add_argument("--split", action="append", dest="splits", metavar="SPLIT",
                        help="only this split (repeatable; default: all)")
    verify.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run(args) -> int:
    if args.action == "info":
        store = open_store(args.store)
        summary = store.summary()
        if args.json:
            print(json.dumps({"store": str(store.root), "info": store.info, "splits": summary}, indent=2,
                             ensure_ascii=False))
        else:
            corpus = store.info.get("corpus", "?")
            print(format_summary(summary, title=f"{store.root} (corpus: {corpus})"))
        return 0
    if args.action == "verify":
        return _verify(args)
    path = write_store_stats(args.store, args.split, args.out)
    print(f"wrote normalisation statistics of {args.store}/{args.split} to {path}")
    return 0


def _verify(args) -> int:
    store = open_store(args.store)
    problems = 0
    for name in args.splits or store.splits:
        split = store.split(name)
        found = split.verify(progress=args.progress)
        problems += len(found)
        status = "ok" if not found else f"{len(found)} problem(s)"
        print(f"{name:<12}{len(split):>9} samples{len(split.frames):>12} frames  {status}")
        for line in found:
            print(f"  {line}")
    if problems:
        print(f"soke data verify: {store.root}: {problems} problem(s) found; re-create the damaged splits "
              f"(`soke prepare ... --overwrite --split S`, or `soke synth`)", file=sys.stderr)
        return 1
    return 0
