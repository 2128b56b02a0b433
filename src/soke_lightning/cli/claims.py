"""`soke claims`: train and evaluate SOKE's three claims on SynthSign in one command and write the verdicts.

    soke claims [--plan full|quick|tiny] [--out outputs/claims] [--seeds 1 2 3] [--workers 2] [--report-only]
                [--reevaluate] [--length-cap X]

Arms (every one trained with each seed, the same schedule for all, all started from one denoising-pretrained
stage-2 model per tokenizer, as SOKE starts from pretrained mBART): retrieval off / on (plus random-code and
oracle controls of the retrieval model at evaluation), multihead / flattened / parallel decoding, the λ grid and
stage-1 codebook sizes. Writes OUT/claims.md (verdicts first, then every table), OUT/claims.json and PNG plots.
Interrupted runs resume: run the same command again. Plans: full (`make claims`, 134.5 minutes measured on 2 loaded cores),
quick (`make claims QUICK=1`, about 16 minutes), tiny (toy models, about a minute; what the tests run).
"""

from __future__ import annotations

import argparse
import json
import sys

from soke_lightning.pipelines.claims import ARM_GROUPS, PLANS, plan_config, run_claims


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", default="full", choices=sorted(PLANS), help="how much to train (default full)")
    parser.add_argument("--out", default="outputs/claims", help="output folder (default outputs/claims)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="stage-2 seeds per arm (plan default)")
    parser.add_argument("--workers", type=int, default=None, help="trainings at once, one thread each (default 2)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate at most N test sentences (smoke runs)")
    parser.add_argument("--no-judge", action="store_true", help="skip the back-translation judge (B-T BLEU)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: write claims.md / claims.json from the runs already finished in --out "
                             "(a partial or interrupted run; the write-up says what is missing)")
    parser.add_argument("--reevaluate", action="store_true",
                        help="evaluate the finished runs in --out again where an older version of the evaluation "
                             "scored them (new tables), from their checkpoints; nothing finished is trained again")
    parser.add_argument("--length-cap", type=float, default=None, metavar="X",
                        help="evaluate with generation.length_cap X: a sample stops after X times its language's "
                             "largest codes-per-token ratio in training (0, the default: SOKE's 100-code limit "
                             "only); with --reevaluate, finished runs are scored again with it")
    parser.add_argument("--stage2-epochs", type=int, default=None, metavar="N",
                        help="epochs of every stage-2 arm (plan default; the same for all arms)")
    parser.add_argument("--stage2-arg", action="append", default=None, metavar="ARG",
                        help="an extra `soke fit` argument for every stage-2 training, the pretraining included "
                             "(repeatable), e.g. --stage2-arg=--model.init_args.mbart.d_model=256 to test scale")
    parser.add_argument("--only", nargs="+", choices=list(ARM_GROUPS), default=None, metavar="GROUP",
                        help=f"train only these arm groups besides the base ({', '.join(ARM_GROUPS)})")
    parser.add_argument("--pretrain-epochs", type=int, default=None, metavar="N",
                        help="denoising pretraining of the stage-2 model before the arms, shared by all of them "
                             "(0: none; plan default)")


def config_from_args(args: argparse.Namespace):
    """The :class:`ClaimsConfig` of the parsed command line: the plan's, with the options given."""
    overrides = {}
    if args.seeds:
        overrides["seeds"] = tuple(args.seeds)
    if args.workers is not None:
        overrides["workers"] = args.workers
    if args.limit is not None:
        overrides["limit"] = args.limit
    if args.no_judge:
        overrides["judge"] = False
    if args.report_only:
        overrides["report_only"] = True
    if args.reevaluate:
        overrides["reevaluate"] = True
    if args.length_cap is not None:
        overrides["length_cap"] = args.length_cap
    if args.stage2_epochs is not None:
        overrides["stage2_epochs"] = args.stage2_epochs
    if args.stage2_arg:
        overrides["stage2_args"] = (*PLANS[args.plan].get("stage2_args", ()), *args.stage2_arg)
    if args.only:
        overrides["groups"] = tuple(args.only)
    if args.pretrain_epochs is not None:
        overrides["pretrain_epochs"] = args.pretrain_epochs
    return plan_config(args.plan, args.out, **overrides)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        summary = run_claims(cfg, progress=lambda line: print(f"claims: {line}", flush=True))
    except (RuntimeError, ValueError) as err:
        print(f"soke claims: error: {err}", file=sys.stderr)
        return 2
    print()
    print("| claim | paper | ours | verdict |")
    for row in summary["verdicts"]:
        print(f"| {row['claim']} | {row['paper']} | {row['ours']} | {row['verdict']} |")
    print(f"\nclaims: {cfg.out / 'claims.md'} ({summary['minutes']:.1f} min); JSON {cfg.out / 'claims.json'}; "
          f"plots {json.dumps(summary.get('plots', []))}")
    return 0
