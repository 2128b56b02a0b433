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
