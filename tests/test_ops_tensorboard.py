"""TensorBoard logging by config (experiments/trainer/tensorboard.yaml): a stage-1 debug fit writes TensorBoard event
files when `tensorboard` or `tensorboardX` is installed; without either (this project's default install) the config
stops at start-up with Lightning's error naming both packages (quoted by jsonargparse), before any training."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AVAILABLE = [name for name in ("tensorboard", "tensorboardX") if importlib.util.find_spec(name) is not None]


def _cli(tmp_path, monkeypatch, run: bool):
    from soke_lightning.cli.lightning import SokeCLI
    from test_stage1_stage import make_store

    store = make_store(tmp_path / "store", {"train": 2, "val": 1, "test": 1})
    monkeypatch.setenv("SOKE_OUT", str(tmp_path / "out"))
    monkeypatch.setattr(sys, "argv", ["soke"])
    args = ["--config", str(ROOT / "experiments/stage1/debug.yaml"),
            "--config", str(ROOT / "experiments/trainer/tensorboard.yaml"),
            "--data", str(ROOT / "datamodules/synthsign.yaml"), f"--data.init_args.stores=[{store}]",
            "--data.init_args.batch_size=2", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1", "--trainer.log_every_n_steps=1"]
    return SokeCLI(args=["fit", *args] if run else args, run=run)


@pytest.mark.skipif(not AVAILABLE, reason="neither tensorboard nor tensorboardX is installed (not a dependency; "
                                          "`pip install tensorboard` to use experiments/trainer/tensorboard.yaml)")
def test_tensorboard_config_writes_event_files(tmp_path, monkeypatch):
    cli = _cli(tmp_path, monkeypatch, run=True)
    assert type(cli.trainer.logger).__name__ == "TensorBoardLogger"
    events = list((tmp_path / "out" / "tb").rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events), events
    assert Path(cli.trainer.logger.log_dir).parent == tmp_path / "out" / "tb"
    assert (Path(cli.trainer.logger.log_dir) / "hparams.yaml").is_file()


@pytest.mark.skipif(bool(AVAILABLE), reason=f"{AVAILABLE} installed: the event-file test runs instead")
def test_without_tensorboard_the_config_fails_at_start_naming_the_packages(tmp_path, monkeypatch):
    # jsonargparse reports the logger's ModuleNotFoundError as a ValueError that quotes it
    with pytest.raises((ValueError, ModuleNotFoundError), match="Neither `tensorboard` nor `tensorboardX` is "
                                                                  "available") as err:
        _cli(tmp_path, monkeypatch, run=False)
    assert "TensorBoardLogger" in str(err.value)
    assert not (tmp_path / "out" / "tb").exists()  # nothing trained or written
