"""LightningCLI for soke (`soke fit|validate|test|predict`) and DataModules built from their YAML: any LightningModule / LightningDataModule by class_path, OmegaConf interpolation
resolved after all `--config` files and dotted overrides are merged (``parser_mode="omegaconf+"``)."""

from __future__ import annotations

from collections.abc import Sequence

from jsonargparse import ArgumentParser, set_parsing_settings
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI


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


def build_datamodule(config: str, overrides: Sequence[str] | None = None) -> LightningDataModule:
    """Instantiate the DataModule of a datamodule YAML (class_path/init_args), as LightningCLI would.

    Args:
        config: the YAML path.
        overrides: ``KEY=VALUE`` items applied to its ``init_args`` (``init_args.stores=[DIR]``).
    """
    parser = ArgumentParser(parser_mode="omegaconf", exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    args = ["--data", config]
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. init_args.stores=[data/synthsign-demo]")
        args += [f"--data.{key}", value]
    cfg = parser.parse_args(args)
    return parser.instantiate_classes(cfg).data
