"""`soke sweep FILE`: run a wandb-format sweep YAML locally (grid / random), one subprocess per configuration.

The same YAML serves ``wandb sweep FILE`` + ``wandb agent`` (when a wandb server is reachable) and this runner
(no server, no network). The runner builds each run's argv exactly as a wandb agent does: the ``command:`` list with
its macros expanded — ``${env}`` -> ``/usr/bin/env``, ``${interpreter}`` -> the current Python (the agent's
``python``), ``${program}`` -> ``program:``, ``${args}`` -> ``--key=value`` per parameter with ``str(value)``,
``${args_no_hyphens}``, ``${args_no_boolean_flags}``, ``${args_json}`` and ``${envvar:NAME}``.

    soke sweep experiments/sweeps/codebook.yaml --out outputs/sweeps/codebook [--max-runs 4] [--extra='ARGS']

Each configuration runs in ``OUT/runs/<id>`` (given to the run as ``$SOKE_OUT``, so every shipped config writes its
checkpoints and logs there; stdout/stderr go to ``OUT/runs/<id>/log.txt``). The swept metric is read after the run
from what its logger wrote below that folder: the wandb summary (``wandb-summary.json``; online runs write it,
offline ones do not) or, failing that, the last value of the metric's column in a CSVLogger ``metrics.csv`` — the run's final value, the one
a wandb sweep ranks by. A target config without a logger therefore needs ``experiments/trainer/csv.yaml`` (or
``wandb.yaml``, which logs to both) in the command.

Results: one JSON line per finished run in ``OUT/results.jsonl`` (resume: configurations recorded with status
``ok`` are skipped when the same command is run again; failed ones run again; an id depends on the swept values
only, so use another ``--out`` after changing ``--extra``), the table ``OUT/results.md``
(best first, also printed) and a plot ``OUT/<metric>.png``.

Before the first run the swept keys are checked against the target config (``--print_config`` of the command
without the swept arguments): a key the config does not have stops the sweep with the list of such keys.
``--extra='ARGS'`` appends arguments to every run's argv (e.g. shorter schedules for a smoke run);
``--replace OLD=NEW`` swaps one token of the command (e.g. the demo config for the debug one).
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from soke_lightning.pipelines.sweep import (
    RESULTS_FILE,
    apply_replacements,
    build_argv,
    config_id,
    expand,
    load_sweep,
    metric_filename,
    results_table,
    run_sweep,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="wandb sweep YAML (experiments/sweeps/*.yaml)")
    parser.add_argument("--out", default=None, help="output folder (default: $SOKE_OUT/sweeps/<file stem>)")
    parser.add_argument("--max-runs", type=int, default=None, help="run at most N configurations (random: draw N)")
    parser.add_argument("--seed", type=int, default=0, help="seed of a random sweep's draws (keep it to resume)")
    parser.add_argument("--replace", action="append", default=[], metavar="OLD=NEW",
                        help="replace a token of the command, e.g. experiments/stage1/demo.yaml=experiments/stage1/"
                             "debug.yaml (repeatable)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per run before it is killed")
    parser.add_argument("--no-check", action="store_true", help="skip checking the swept keys against the config")
    parser.add_argument("--extra", action="append", default=[], metavar="'ARGS'",
                        help="arguments appended to every run's argv, shell-quoted, after an `=`: "
                             "--extra='--trainer.max_epochs=1 --data.init_args.batch_size=8' (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print each run's argv and exit")


def run(args: argparse.Namespace) -> int:
    spec = apply_replacements(load_sweep(args.file), args.replace)
    args.extra = [token for chunk in args.extra for token in shlex.split(chunk)]
    out = Path(args.out or Path(os.environ.get("SOKE_OUT", "outputs")) / "sweeps" / spec.source.stem)
    if args.dry_run:
        for params in expand(spec, args.max_runs, args.seed):
            print(config_id(params), " ".join(build_argv(spec, params, extra=args.extra)))
        return 0
    records = run_sweep(spec, out, args.max_runs, args.seed, args.extra, check=not args.no_check,
                        timeout=args.timeout)
    print(results_table(records, spec), end="")
    print(f"\nresults: {out / 'results.md'}, {out / RESULTS_FILE}, plot {out / metric_filename(spec.metric)}")
    return 0 if records and all(r["status"] == "ok" for r in records) else 1
