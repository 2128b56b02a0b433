"""`soke data`: inspect packed stores.

    soke data info STORE [--json]                       samples / frames / lengths / fps per split and language
    soke data stats STORE [--split train] [--out FILE]  normalisation statistics (default STORE/normalization.pt)
"""

from __future__ import annotations

import json

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
    sub = parser.add_subparsers(dest="action", required=True, metavar="{info,stats}")
    info = sub.add_parser("info", help="counts per split and language: samples, frames, lengths, fps")
    info.add_argument("store", help="store directory (from `soke prepare` or `soke synth`)")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    stats = sub.add_parser("stats", help="compute normalisation statistics (mean/std over all frames of a split)")
    stats.add_argument("store", help="store directory")
    stats.add_argument("--split", default="train", help="split to compute them over (default: train)")
    stats.add_argument("--out", default=None, help="output file (default: STORE/normalization.pt)")


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
    path = write_store_stats(args.store, args.split, args.out)
    print(f"wrote normalisation statistics of {args.store}/{args.split} to {path}")
    return 0
