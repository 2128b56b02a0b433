"""`soke report RUN_DIR`: collect what a run left into ``RUN_DIR/report_inputs.json`` and write a self-contained
HTML evaluation report (``RUN_DIR/report.html``, or ``--out``).

    soke report outputs/stage1-demo --baselines outputs/demo/baselines.json
    soke report outputs/stage2-demo --predictions outputs/stage2-demo/predictions --backtranslation bt.json
    soke report RUN_DIR --no-collect        (render an existing report_inputs.json, e.g. written by a stage's test)

Collection (skipped with ``--no-collect`` when ``RUN_DIR/report_inputs.json`` exists), each piece only when present:

* test metrics: the last value of every column of ``RUN_DIR/logs/test/metrics.csv``;
* codebook usage: the quantizers' EMA counts from the checkpoint (``--ckpt``, default ``RUN_DIR/checkpoints/
  best.ckpt``): a stage-1 checkpoint directly, a stage-2 one through the stage-1 checkpoint it names;
* baselines (``--baselines``, ``soke baselines --json``) and back-translation scores (``--backtranslation``,
  ``soke backtranslate --json``; its back-translated sentences of the generated motion are shown under the
  sample animations);
* per-sample DTW errors (mean over body / lhand / rhand of DTW-PA-JPE, accumulated cost in metres) of the model and of
  the mean pose on the ``--split`` of the store (``--store``, default: the store the checkpoint was trained on).
  The model's motion: the stage-1 reconstruction (stage-1 checkpoint) or the generated motion of a PredictionWriter
  folder (``--predictions``, default ``RUN_DIR/predictions``); their per language x part means join the baselines
  table as ``model``;
* the SLRTP protocol table (FastDTW DTW-MJE, wrist distance ratio, duration ratio per language and pooled): the
  model's row from the stage-2 test metrics (``test/slrtp_dtw_mje/<lang>``, ...) or, without them, from the scored
  samples' motion; the ground truth, mean pose and dictionary rows from ``--baselines`` (``"slrtp"``), else from
  ``--backtranslation``;
* the best / median / worst samples rendered as GIFs (model | ground truth) into ``RUN_DIR/report/``.
"""

from __future__ import annotations

import argparse
import sys

from soke_lightning.pipelines.report import ReportOptions, write_run_report
from soke_lightning.report.html import INPUTS_FILE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run's output folder (e.g. outputs/stage1-demo)")
    parser.add_argument("--out", default=None, help="HTML file to write (default RUN_DIR/report.html)")
    parser.add_argument("--no-collect", action="store_true",
                        help=f"render RUN_DIR/{INPUTS_FILE} as it is instead of collecting it again")
    parser.add_argument("--ckpt", default=None, help="checkpoint (default RUN_DIR/checkpoints/best.ckpt)")
    parser.add_argument("--store", default=None, help="store of the ground truth (default: the checkpoint's)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--predictions", default=None, help="PredictionWriter folder of generated motion")
    parser.add_argument("--baselines", default=None, help="`soke baselines --json` output")
    parser.add_argument("--backtranslation", default=None, help="`soke backtranslate --json` output")
    parser.add_argument("--max-samples", type=int, default=None, help="score only the first N samples of the split")
    parser.add_argument("--title", default=None)


def run(args: argparse.Namespace) -> int:
    opts = ReportOptions(args.run_dir, ckpt=args.ckpt, store=args.store, split=args.split, predictions=args.predictions,
                         baselines=args.baselines, backtranslation=args.backtranslation,
                         max_samples=args.max_samples, title=args.title)
    try:
        out = write_run_report(opts, args.out, reuse_inputs=args.no_collect)
    except FileNotFoundError as err:
        print(f"soke report: {err}", file=sys.stderr)
        return 2
    print(f"report: {out.resolve()}")
    return 0
