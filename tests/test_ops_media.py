"""ValidationMedia: a stage-1 debug fit with wandb (offline, in a tmp dir) and CSV loggers writes ground truth |
reconstruction GIFs, logs them as wandb videos with a text table, and logs the resolved config."""

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from test_stage1_stage import make_store

    return make_store(tmp_path_factory.mktemp("media_store"), {"train": 1, "val": 1, "test": 1})


def test_validation_media_reach_wandb_and_disk(store, tmp_path, monkeypatch):
    import wandb
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    from soke_lightning.callbacks.media import ValidationMedia
    from soke_lightning.cli.lightning import SokeCLI

    monkeypatch.setenv("WANDB_MODE", "offline")
    if wandb.run is not None:  # a run left open by an earlier test (WANDB_MODE=disabled) would be reused
        wandb.finish()
    wandb.teardown()  # settings cached by an earlier wandb use in this process (WANDB_MODE=disabled) are dropped
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("SOKE_OUT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["soke"])  # LightningCLI warns when it also sees pytest's arguments
    cli = SokeCLI(args=[
        "fit", "--config", str(ROOT / "experiments/stage1/debug.yaml"), "--config", str(ROOT / "experiments/trainer/wandb.yaml"),
        "--data", str(ROOT / "datamodules/synthsign.yaml"), f"--data.init_args.stores=[{store}]",
        "--data.init_args.batch_size=3", "--trainer.max_epochs=1", "--trainer.callbacks.init_args.num_samples=2",
        "--trainer.callbacks.init_args.max_frames=12", "--trainer.callbacks.init_args.height=120",
    ])
    trainer = cli.trainer
    media = next(cb for cb in trainer.callbacks if isinstance(cb, ValidationMedia))
    wandb_logger = next(lg for lg in trainer.loggers if isinstance(lg, WandbLogger))
    assert any(isinstance(lg, CSVLogger) for lg in trainer.loggers)
    try:
        run = wandb_logger.experiment
        # the resolved config (SaveConfigCallback's config.yaml) is in the wandb run config
        assert run.config["config"]["model"]["init_args"]["tokenizer"]["init_args"]["codebook_sizes"]["body"] == 8
        assert len(media.logged) == 2
        for record in media.logged:
            path = Path(record["path"])
            assert path.suffix == ".gif" and path.stat().st_size > 1000 and path.is_relative_to(tmp_path)
            assert record["text"] and record["lang"] in ("asl", "csl", "dgs")
        index = [json.loads(x) for x in (tmp_path / "stage1-debug" / "media" / "media.jsonl").read_text().splitlines()]
        assert [r["path"] for r in index] == [r["path"] for r in media.logged]
        files = Path(run.dir)
        videos = sorted(files.glob("media/videos/val/media/*.gif"))
        tables = sorted(files.glob("media/table/val/media_table_*.table.json"))
        assert len(videos) >= 2 and len(tables) == 1, sorted(str(p) for p in files.rglob("*"))
        table = json.loads(tables[0].read_text())
        assert table["columns"] == ["step", "name", "lang", "text", "clip"] and len(table["data"]) == 2
        assert {row[1] for row in table["data"]} == {r["name"] for r in media.logged}
        assert "val/mpjpe_pa_hand" in trainer.callback_metrics
    finally:
        wandb.finish()
        wandb.teardown()


def test_media_samples_hook_and_tokenizer_fallback():
    """A stage decides what is shown through media_samples(batch, k); stage 1 falls back to gt | reconstruction."""
    from soke_lightning.callbacks.media import MediaSample, ValidationMedia, generation_media, tokenizer_media
    from soke_lightning.core.batch import SignBatch
    from soke_lightning.models.tokenizer import SignTokenizer

    tok = SignTokenizer(width=8, code_dim=8, depth=1, codebook_sizes={"body": 4, "lhand": 4, "rhand": 4}).eval()
    lengths = torch.tensor([8, 4])
    mask = torch.arange(8)[None] < lengths[:, None]
    batch = SignBatch(poses=torch.randn(2, 8, 133) * mask[..., None], lengths=lengths, mask=mask, text=["a", "b"],
                      lang=["asl", "csl"], name=["x", "y"], corpus=["synthsign", "csl_daily"])
    stage = torch.nn.Module()
    stage.tokenizer = tok
    samples = tokenizer_media(stage, batch, 5)
    assert [s.name for s in samples] == ["synthsign/x", "csl_daily/y"]
    assert [s.sequences[0].shape[0] for s in samples] == [8, 4] and samples[1].titles[1] == "reconstruction"
    assert torch.allclose(samples[1].sequences[0], tok.normalizer.denormalize(batch.poses[1, :4]))
    # stage 2: ground truth | generated through generate(prompts, langs), prompts when the batch has them
    calls = []

    def generate(prompts, langs):
        calls.append((prompts, langs))
        return torch.ones(len(prompts), 6, 133), torch.tensor([6, 3][: len(prompts)])

    stage.generate = generate
    batch.prompt = ["a + dict", "b + dict"]
    generated = generation_media(stage, batch, 1)
    assert calls == [(["a + dict"], ["asl"])] and len(generated) == 1
    assert generated[0].titles == ["ground truth", "generated"] and generated[0].sequences[1].shape == (6, 133)
    with pytest.raises(ValueError, match="num_samples"):
        ValidationMedia(num_samples=0)
    assert MediaSample("n", "t", "asl", [torch.zeros(3, 133)], ["generated"]).fps == 25.0
