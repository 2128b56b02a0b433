"""The `soke` command: LightningCLI subcommands (fit/validate/test/predict) plus one module per tool verb.

Every command lives in ``cli/<verb>.py`` (``soke dict`` in ``cli/dict.py``): a module with ``add_arguments(parser)``
and ``run(args) -> int | None`` that parses, calls a pipeline and prints. This registry imports a command's module
only when it runs, so `soke --help` stays fast; it is the one place in the package with lazy imports of our own
modules (see docs/design.md, "Layers").

It is also the one error boundary of every command: an error caused by the user's input (any
:class:`~soke_lightning.core.errors.SokeError`, a missing file, bad JSON/YAML, an unknown language) becomes one line
``soke <command>: <file or key>: <what is wrong>; <the fix>`` on stderr and exit code 2; any other exception is a bug
and keeps its traceback. ``soke --debug ...`` (or ``SOKE_DEBUG=1``) prints the traceback of user errors too.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
import warnings
from pathlib import Path

from soke_lightning.core.errors import one_line, user_error_message

LIGHTNING_SUBCOMMANDS: dict[str, str] = {
    "fit": "train a stage from experiment YAML (`soke fit --config experiments/stage1/demo.yaml`)",
    "validate": "run the validation loop of a config/checkpoint",
    "test": "run the test loop (metrics per language and part)",
    "predict": "run prediction (generation / reconstruction) with a config/checkpoint",
}

#: name -> (module, one-line help). Order is the order shown by `soke --help`.
TOOLS: dict[str, tuple[str, str]] = {
    "synth": ("soke_lightning.cli.synth", "generate the embedded SynthSign corpus"),
    "prepare": ("soke_lightning.cli.prepare", "convert an official corpus or a .pose corpus into a packed store"),
    "data": ("soke_lightning.cli.data", "inspect packed stores (`soke data info STORE`), compute normalisation stats"),
    "baselines": ("soke_lightning.cli.baselines", "score the mean-pose and dictionary baselines"),
    "render": ("soke_lightning.cli.render", "render samples of a store as skeleton animations (GIF)"),
    "encode": ("soke_lightning.cli.encode", "export token codes of every sample with a trained tokenizer"),
    "import-official": ("soke_lightning.cli.import_official", "convert the official SOKE tokenizer checkpoint"),
    "generate": ("soke_lightning.cli.generate", "text -> sign motion (.npz, joints, GIF) with a stage-2 checkpoint"),
    "dict": ("soke_lightning.cli.dict", "sign dictionaries for retrieval: build / import / match / info"),
    "sweep": ("soke_lightning.cli.sweep", "run a wandb-format sweep locally (grid / random), resumable"),
    "backtranslate": ("soke_lightning.cli.backtranslate", "sign -> text back-translation and B-T BLEU/ROUGE"),
    "report": ("soke_lightning.cli.report", "write a self-contained HTML evaluation report of a run"),
    "claims": ("soke_lightning.cli.claims", "train and evaluate SOKE's claims on SynthSign; verdicts in claims.md"),
    "serve": ("soke_lightning.cli.serve", "a local web demo (Gradio): type a sentence, watch it signed, download it"),
}


def _available_tools() -> dict[str, tuple[str, str]]:
    """Tools whose module exists in this checkout (a tool arrives with its issue).

    Checked on the file system: importing the packages would pull in torch and make `soke --help` slow.
    """
    root = Path(__file__).resolve().parent.parent

    def exists(module: str) -> bool:
        rel = Path(*module.split(".")[1:])
        return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()

    return {n: t for n, t in TOOLS.items() if exists(t[0])}


def _main_help() -> str:
    lines = [
        "usage: soke <command> [options]",
        "",
        "soke-lightning: SOKE (Signs as Tokens) multilingual text -> 3D sign-language motion.",
        "",
        "Training and evaluation (LightningCLI; `soke fit --help` lists every option):",
    ]
    lines += [f"  {name:<16}{text}" for name, text in LIGHTNING_SUBCOMMANDS.items()]
    lines += ["", "Tools (`soke <tool> --help` for options):"]
    lines += [f"  {name:<16}{text}" for name, (_, text) in _available_tools().items()]
    lines += [
        "",
        "Errors in the input print one line `soke <command>: <file or key>: <problem>; <fix>` and exit with code 2;",
        "`soke --debug <command> ...` (or SOKE_DEBUG=1) also prints their traceback.",
        "",
        "Environment: HF_HUB_OFFLINE defaults to 1, WANDB_MODE to offline;",
        "SOKE_DATA_ROOT / SOKE_SMPLX_DIR point at user data (see README).",
    ]
    return "\n".join(lines)


def run_lightning(argv: list[str]) -> int:
    """Run a LightningCLI subcommand with OmegaConf interpolation resolved after merging configs."""
    from omegaconf.errors import InterpolationResolutionError

    # lazy: `soke --help` must not import torch
    from soke_lightning.cli.lightning import SokeCLI, check_config_files

    check_config_files(argv[1:])
    try:
        # From the console script LightningCLI reads sys.argv itself (passing both makes it warn).
        SokeCLI(args=None if argv == sys.argv[1:] else argv)
    except InterpolationResolutionError as err:
        # An unset ${oc.env:...} in a config: say which variable, not a traceback.
        print(f"soke {argv[0]}: a config value could not be resolved: {one_line(str(err))}; set the environment "
              "variable it names (SOKE_DATA_ROOT, SOKE_STATS_DIR, SOKE_SYNTHSIGN; see README) or override the value "
              "on the command line (e.g. --data.stores '[path]')", file=sys.stderr)
        return 2
    return 0


def run_tool(name: str, argv: list[str], label: list[str] | None = None) -> int:
    """Parse ``argv`` for tool ``name`` and run it; ``label`` receives the sub-action (``dict match``) for messages."""
    module_name, text = TOOLS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"soke {name}", description=module.__doc__ or text,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    if label is not None and isinstance(getattr(args, "action", None), str):
        label.append(args.action)
    result = module.run(args)
    return int(result or 0)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (a redirect, pytest's capture), not to the
    stream that was current when ``main`` ran: a stale, closed one would turn every later log line into an error."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _configure_logging(level: str) -> None:
    """Our loggers print through one handler; Lightning keeps its own (a root handler would print its lines twice)."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    package = logging.getLogger("soke_lightning")
    package.handlers[:] = [handler]
    package.setLevel(level)
    package.propagate = False
    # Lightning's own deprecation noise about torch internals is not actionable for users.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `soke` console script (see the module docstring for the error boundary)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    _configure_logging(os.environ.get("SOKE_LOG_LEVEL", "INFO"))
    from_console = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("SOKE_DEBUG", "") not in ("", "0") or "--debug" in argv
    if "--debug" in argv:
        argv = [a for a in argv if a != "--debug"]
        if from_console:  # LightningCLI reads sys.argv itself when run from the console script
            sys.argv = [sys.argv[0], *argv]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_main_help())
        return 0
    command, rest = argv[0], argv[1:]
    tools = _available_tools()
    if command not in LIGHTNING_SUBCOMMANDS and command not in tools:
        print(f"soke: unknown command {command!r}. Valid: {', '.join([*LIGHTNING_SUBCOMMANDS, *tools])}",
              file=sys.stderr)
        return 2
    label = [command]
    try:
        if command in LIGHTNING_SUBCOMMANDS:
            return run_lightning(argv)
        return run_tool(command, rest, label)
    except Exception as exc:  # the boundary: user errors become one line, bugs keep their traceback
        message = user_error_message(exc)
        if message is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"soke {' '.join(label)}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
