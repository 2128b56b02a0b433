"""LightningCLI for soke (`soke fit|validate|test|predict`) and DataModules built from their YAML.

Any LightningModule / LightningDataModule by class_path, OmegaConf interpolation resolved after all `--config`
files and dotted overrides are merged (``parser_mode="omegaconf+"``). Checkpoints written before the package was
layered by role name their stage by its old module path; :func:`upgrade_hparams` maps them to today's, so
``--ckpt_path OLD.ckpt`` keeps working.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentError, ArgumentParser, set_parsing_settings
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from soke_lightning.core.errors import ConfigError
from soke_lightning.core.io import load_checkpoint, read_yaml

#: Module paths of checkpoints written before the layering (old prefix -> new prefix).
MOVED_MODULES: dict[str, str] = {
    "soke_lightning.stages.lm_stage.": "soke_lightning.training.lm_stage.",
    "soke_lightning.stages.tokenizer_stage.": "soke_lightning.training.tokenizer_stage.",
    "soke_lightning.stages.backtranslation.": "soke_lightning.training.backtranslation.",
    "soke_lightning.data.synthsign.": "soke_lightning.synthsign.",
    "soke_lightning.data.layout.": "soke_lightning.core.layout.",
    "soke_lightning.data.languages.": "soke_lightning.core.languages.",
}
#: The command-line prefix of model arguments that win over a checkpoint's hyper-parameters.
MODEL_OVERRIDE = "--model.init_args."
#: Back-translation stage arguments that moved into its ``architecture``.
_ARCHITECTURE_KEYS = ("feature_dim", "d_model", "encoder_layers", "decoder_layers", "heads", "ffn_dim", "dropout",
                      "downsample", "max_motion_steps", "max_text_length", "no_repeat_ngram_size")


def upgrade_hparams(value: Any) -> Any:
    """Checkpoint hyper-parameters with today's module paths and argument layout (a copy; unknown values kept).

    >>> upgrade_hparams({"_class_path": "soke_lightning.stages.lm_stage.LMStage", "lr": 0.1})
    {'_class_path': 'soke_lightning.training.lm_stage.LMStage', 'lr': 0.1}
    >>> upgrade_hparams({"_class_path": "soke_lightning.stages.backtranslation.BackTranslationStage", "d_model": 64})
    {'_class_path': 'soke_lightning.training.backtranslation.BackTranslationStage', 'architecture': {'d_model': 64}}
    """
    if isinstance(value, str):
        for old, new in MOVED_MODULES.items():
            if value.startswith(old):
                return new + value[len(old):]
        return value
    if isinstance(value, dict):
        out = {k: upgrade_hparams(v) for k, v in value.items()}
        if str(out.get("_class_path", "")).endswith(".BackTranslationStage") and "architecture" not in out:
            moved = {k: out.pop(k) for k in _ARCHITECTURE_KEYS if k in out}
            if moved:
                out["architecture"] = moved
        return out
    if isinstance(value, list):
        return [upgrade_hparams(v) for v in value]
    return value


class SokeCLI(LightningCLI):
    """`soke fit|validate|test|predict` — configs live in experiments/ and datamodules/."""

    def __init__(self, args=None, **kwargs):
        # `${model.x}` under a subcommand only resolves with this setting (jsonargparse resolves relative interpolation only then).
        set_parsing_settings(omegaconf_absolute_to_relative_paths=True)
        kwargs.setdefault("parser_kwargs", {"parser_mode": "omegaconf+"})
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=args,
            **kwargs,
        )

    def parse_arguments(self, parser, args) -> None:
        # the dotted overrides of a command line (args given as a dict or Namespace have none)
        self._command_line = list(sys.argv[1:] if args is None else args) if args is None or isinstance(
            args, (list, tuple)) else []
        super().parse_arguments(parser, args)

    def _explicit_model_overrides(self) -> dict[tuple[str, ...], Any]:
        """``--model.init_args.KEY[.SUB]=VALUE`` given on the command line: {key path: parsed value}."""
        sub = self.config.get("subcommand")
        out = {}
        for token in getattr(self, "_command_line", []) if sub else []:
            if not token.startswith(MODEL_OVERRIDE):
                continue
            path = tuple(token[len(MODEL_OVERRIDE):].split("=", 1)[0].split("."))
            # the longest prefix the parsed config holds, then into a dict-typed argument (generation.length_cap)
            for i in range(len(path), 0, -1):
                key = "model.init_args." + ".".join(path[:i])
                if key in self.config[sub]:
                    value = self.config[sub][key]
                    for part in path[i:]:
                        value = value.get(part) if isinstance(value, dict) else None
                    out[path] = value
                    break
        return out

    def _parse_ckpt_path(self) -> None:
        """As LightningCLI's: the checkpoint's hyper-parameters fill the model config (so ``--ckpt_path`` alone
        rebuilds the model), after :func:`upgrade_hparams` maps an older checkpoint's module paths and layout.

        Unlike LightningCLI's, a ``--model.init_args.KEY=VALUE`` given on the command line wins over the
        checkpoint's value (e.g. ``soke test --ckpt_path X --model.init_args.generation.length_cap=1``); values
        from ``--config`` files do not (the checkpoint describes the trained model)."""
        if not self.config.get("subcommand"):
            return
        ckpt_path = self.config[self.config.subcommand].get("ckpt_path")
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        ckpt = load_checkpoint(ckpt_path, "checkpoint", "pass a checkpoint written by `soke fit` (e.g. "
                               "CHECKPOINT_DIR/last.ckpt)", weights_only=True)
        hparams = upgrade_hparams(ckpt.get("hyper_parameters", {}))
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        for path, value in self._explicit_model_overrides().items():
            target = hparams
            for key in path[:-1]:
                if not isinstance(target.get(key), dict):
                    target[key] = {}
                target = target[key]
            target[path[-1]] = value
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({self.config.subcommand: {"model": hparams}}, self.config)
        except SystemExit:
            sys.stderr.write(f"soke: the hyper-parameters stored in {ckpt_path} do not parse against this version "
                             f"of the model (see above)\n")
            raise


def build_datamodule(config: str, overrides: Sequence[str] | None = None) -> LightningDataModule:
    """Instantiate the DataModule of a datamodule YAML (class_path/init_args), as LightningCLI would.

    Args:
        config: the YAML path.
        overrides: ``KEY=VALUE`` items applied to its ``init_args`` (``init_args.stores=[DIR]``).
    """
    read_yaml(config, "datamodule YAML")  # a missing file or a YAML syntax error: one line naming file and line
    parser = ArgumentParser(parser_mode="omegaconf", exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    args = ["--data", config]
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE; e.g. init_args.stores=[data/synthsign-demo]")
        args += [f"--data.{key}", value]
    try:
        cfg = parser.parse_args(args)
    except ArgumentError as err:
        detail = " ".join(str(err).split())
        raise ConfigError(f"{config}: does not describe a LightningDataModule ({detail[:300]}); use a YAML from "
                          f"datamodules/ (class_path + init_args)") from None
    return parser.instantiate_classes(cfg).data


def check_config_files(argv: Sequence[str]) -> None:
    """Read every YAML file named on a LightningCLI command line (``--config F``, ``--data F.yaml``, ...) first, so a
    missing file or a YAML syntax error is one line naming the file and line rather than a usage screen.

    Raises:
        ConfigError: the first file that is missing or not valid YAML.
    """
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if not eq:
            value = argv[i + 1] if i + 1 < len(argv) else ""
        if flag in ("--config", "-c") or (flag.startswith("--") and value.endswith((".yaml", ".yml"))
                                          and flag.count(".") == 0):
            if value and not value.lstrip().startswith(("{", "[")):
                read_yaml(value)
