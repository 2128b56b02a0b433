"""The `soke` command lists its subcommands and rejects unknown ones."""

import subprocess
import sys

from soke_lightning import cli


def test_help_lists_subcommands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("fit", "validate", "test", "predict"):
        assert name in out
    for name in cli._available_tools():
        assert name in out


def test_unknown_command(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_console_script_help_is_fast_and_light():
    # `soke --help` must not import torch/lightning (it should answer instantly)
    code = "import sys; from soke_lightning import cli; cli.main(['--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def test_checkpoints_from_before_the_layering_name_todays_modules():
    from soke_lightning.cli.lightning import upgrade_hparams

    old = {"_class_path": "soke_lightning.stages.lm_stage.LMStage", "lr": 0.002,
           "tokenizer": {"class_path": "soke_lightning.models.tokenizer.SignTokenizer"}, "paths": ["x"]}
    new = upgrade_hparams(old)
    assert new["_class_path"] == "soke_lightning.training.lm_stage.LMStage"
    assert new["tokenizer"] == old["tokenizer"] and new["paths"] == ["x"] and new["lr"] == 0.002
    judge = upgrade_hparams({"_class_path": "soke_lightning.stages.backtranslation.BackTranslationStage",
                             "d_model": 64, "heads": 2, "lr": 1e-3})
    assert judge == {"_class_path": "soke_lightning.training.backtranslation.BackTranslationStage", "lr": 1e-3,
                     "architecture": {"d_model": 64, "heads": 2}}
    assert upgrade_hparams(new) == new  # today's checkpoints pass unchanged
