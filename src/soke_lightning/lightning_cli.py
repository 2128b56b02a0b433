"""LightningCLI for soke: any LightningModule / LightningDataModule by class_path, OmegaConf interpolation
resolved after all `--config` files and dotted overrides are merged (``parser_mode="omegaconf+"``)."""

from __future__ import annotations

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI


class SokeCLI(LightningCLI):
    """`soke fit|validate|test|predict` — configs live in experiments/ and datamodules/."""

    def __init__(self, args=None, **kwargs):
        from jsonargparse import set_parsing_settings

        # `${model.x}` under a subcommand only resolves with this setting (see ENVIRONMENT_NOTES).
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
