"""`soke backtranslate`: translate motion back to text with a trained back-translation model and score B-T BLEU.

    soke backtranslate --model CKPT --store DIR [--split test] [--mean-pose] [--json OUT]
    soke backtranslate --model CKPT --predictions DIR [--mean-pose] [--json OUT]
    soke backtranslate --model CKPT --store DIR --generate STAGE2_CKPT --mean-pose --json OUT   (the whole triple)
    soke backtranslate --model CKPT --store DIR --generate STAGE2_CKPT --mean-pose --dictionary   (+ dictionary)

Sources (each scored per language with BLEU-1..4 and ROUGE-L, ×100, :func:`soke_lightning.metrics.bleu.bleu_rouge`,
and the SLRTP challenge's chrF and WER, ×100, :mod:`soke_lightning.metrics.functional.slrtp`; character level for
Chinese):

* ``ground_truth`` (``--store``): the split's ground-truth motion (SOKE's length rule applied, as in training) — the
  ceiling a generator can reach under this judge;
* ``predictions`` (``--predictions``): a :class:`~soke_lightning.callbacks.prediction_writer.PredictionWriter` folder
  (``index.rank*.jsonl`` gives name, text and language; motion from ``<stem>.npz``);
* ``generated`` (``--generate STAGE2_CKPT``, with ``--store``): the split's sentences signed by a stage-2 checkpoint
  (greedy, as ``soke generate``; nothing written to disk) — the score of the generator;
* ``mean_pose`` (``--mean-pose``): the judge's training mean frame held for each sample's length — the floor;
* ``dictionary`` (``--dictionary``, with ``--store``): the dictionary-concatenation baseline of ``soke baselines``
  (the store needs a ``dictionary`` split).

With ``--store``, the motion of every source is also scored against the ground truth with the SLRTP 2025 protocol
("SLRTP protocol" table; docs/evaluation.md §6.7): FastDTW DTW-MJE (metres, on the 52 body and hand joints of the
built-in skeleton), the wrist distance ratio (1 ideal, a motionless pose 0) and the duration ratio (1 ideal); the
ground truth's row is 0 / 1 / 1 by construction.

With ground truth, generated motion and the mean pose together the tool also checks, per language, that BLEU-4 is
ordered ceiling > generated > floor (``"ordered"`` in the JSON; a judge that cannot tell them apart is not a judge).

The JSON holds ``{"model", "store", "split", "predictions", "generate", "sources": {source: {lang: {bleu1..4,
rouge_l, chrf, wer}, "all": mean over languages}}, "slrtp": {source: {lang: {slrtp_dtw_mje, wrist_distance_ratio,
duration_ratio}}} (``all`` pooled) or null, "ordered": {lang: bool} or null, "samples": {source: [{"name", "lang",
"text", "hypothesis"}]}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from soke_lightning.core.io import atomic_write_text
from soke_lightning.metrics.slrtp import SLRTP_SCORES
from soke_lightning.models.backtranslation import BackTranslator
from soke_lightning.pipelines.backtranslate import (
    BT_SCORES,
    dictionary_records,
    generate_records,
    ordering,
    read_predictions,
    read_store,
    score_records,
    slrtp_motion,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="back-translation checkpoint (experiments/backtranslation)")
    parser.add_argument("--store", default=None, help="packed store: back-translate its ground-truth motion")
    parser.add_argument("--split", default="test", help="store split (default: test)")
    parser.add_argument("--predictions", default=None,
                        help="PredictionWriter folder (index.rank*.jsonl + .npz files): back-translate them")
    parser.add_argument("--generate", default=None, metavar="STAGE2_CKPT",
                        help="with --store: sign the split's sentences with this stage-2 checkpoint and score them")
    parser.add_argument("--tokenizer", default=None,
                        help="--generate: stage-1 checkpoint instead of the path stored in the stage-2 checkpoint")
    parser.add_argument("--device", default="cpu", help="torch device of --generate and the judge (default cpu)")
    parser.add_argument("--mean-pose", action="store_true",
                        help="also score the mean-pose baseline (mean frame held for each sample's length)")
    parser.add_argument("--dictionary", action="store_true",
                        help="with --store: also score the dictionary-concatenation baseline (needs the store's "
                             "dictionary split)")
    parser.add_argument("--max-samples", type=int, default=None, help="score only the first N samples per source")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", default=None, help="write scores and hypotheses to this JSON file")


def format_table(sources: dict, columns=BT_SCORES, width: int = 9, digits: int = 2) -> str:
    """One row per source and language: {source: {lang: {column: value}}}."""
    lines = [f"{'source':<14}{'lang':<6}" + "".join(f"{s:>{width}}" for s in columns)]
    for source, scores in sources.items():
        for lang, values in scores.items():
            lines.append(f"{source:<14}{lang:<6}" + "".join(f"{values[s]:>{width}.{digits}f}" for s in columns))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.store is None and args.predictions is None:
        raise SystemExit("soke backtranslate: give --store DIR (ground truth) and/or --predictions DIR")
    translator = BackTranslator.from_checkpoint(args.model).to(args.device)
    inputs: dict[str, list[dict]] = {}
    if args.store is not None:
        inputs["ground_truth"] = read_store(args.store, args.split)
    if args.predictions is not None:
        inputs["predictions"] = read_predictions(args.predictions)
    if args.max_samples is not None:
        inputs = {k: v[: args.max_samples] for k, v in inputs.items()}
    if args.generate is not None:
        if "ground_truth" not in inputs:
            raise SystemExit("soke backtranslate: --generate signs the sentences of --store DIR; give --store")
        inputs["generated"] = generate_records(args.generate, inputs["ground_truth"], args.tokenizer,
                                               args.batch_size, args.device)
    if args.dictionary:
        if "ground_truth" not in inputs:
            raise SystemExit("soke backtranslate: --dictionary concatenates the dictionary signs of --store DIR; "
                             "give --store")
        try:
            inputs["dictionary"] = dictionary_records(args.store, inputs["ground_truth"], args.split)
        except KeyError as err:
            print(f"soke backtranslate: --dictionary: {err.args[0]}", file=sys.stderr)
            return 2
    sources, samples = {}, {}
    for source, records in list(inputs.items()):
        sources[source], samples[source] = score_records(translator, records, args.batch_size, progress=source)
    if args.mean_pose:
        records = next(iter(inputs.values()))
        sources["mean_pose"], samples["mean_pose"] = score_records(translator, records, args.batch_size,
                                                                   mean_pose=True, progress="mean_pose")
    print(f"back-translation with {args.model} (BLEU-n, ROUGE-L, chrF and WER x100; Chinese on characters; "
          f"WER: lower is better)")
    print(format_table(sources))
    slrtp = None
    if "ground_truth" in inputs:
        mean = translator.normalizer.mean.detach().cpu().numpy() if args.mean_pose else None
        slrtp = slrtp_motion(inputs, mean)
        print("SLRTP protocol (FastDTW DTW-MJE in metres, lower is better; ratios: 1 is ideal)")
        print(format_table(slrtp, SLRTP_SCORES, width=22, digits=4))
    ordered = ordering(sources)
    if ordered is not None:
        print("BLEU-4 ground_truth > model > mean_pose: "
              + ", ".join(f"{lang} {'yes' if ok else 'NO'}" for lang, ok in ordered.items()))
    if args.json:
        out = {"model": str(args.model), "store": args.store, "split": args.split, "predictions": args.predictions,
               "generate": args.generate, "sources": sources, "slrtp": slrtp, "ordered": ordered,
               "samples": samples}
        atomic_write_text(Path(args.json), json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 0
