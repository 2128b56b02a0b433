"""TokenizerStage end to end on a tiny store: every stage-1 config parses, debug fit via the `soke` CLI,
checkpoints usable by SignTokenizer.from_checkpoint, metrics per language and part, bit-identical resume."""

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from soke_lightning.core.layout import RAW_DIM, RAW_SLICES
from soke_lightning.data.normalization import STATS_FILE, compute_stats, save_stats
from soke_lightning.data.store import Sample, StoreWriter
from soke_lightning.models.tokenizer import CHECKPOINT_KEY, SignTokenizer

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "experiments" / "stage1").glob("*.yaml"))
LANGS = (("asl", "synthsign"), ("csl", "synthsign"), ("dgs", "synthsign"))


def make_store(root: Path, per_lang: dict[str, int] | None = None, seed: int = 0) -> Path:
    """A small store of smooth random upper-body/hand motion (40-90 frames) in three languages + stats."""
    rng = np.random.default_rng(seed)
    per_lang = per_lang or {"train": 4, "val": 2, "test": 2, "dictionary": 1}
    moving = np.r_[36:159, 169:179]
    writer = StoreWriter(root, {"corpus": "test"})
    for split, n in per_lang.items():
        with writer.split(split) as out:
            for lang, corpus in LANGS:
                for i in range(n):
                    t = int(rng.integers(40, 90))
                    phase = rng.uniform(0, 2 * np.pi, moving.size)
                    freq = rng.uniform(0.02, 0.15, moving.size)
                    frames = np.zeros((t, RAW_DIM), np.float32)
                    frames[:, moving] = 0.3 * np.sin(np.arange(t)[:, None] * freq * 2 * np.pi + phase)
                    frames[:, RAW_SLICES["smplx_shape"]] = 0.1
                    out.add(Sample(f"{lang}_{split}_{i}", f"text {i}", lang, corpus, frames, 25.0))
    from soke_lightning.data.store import open_store

    store = open_store(root)
    mean, std, count = compute_stats(s.frames for s in store.split("train"))
    save_stats(root / STATS_FILE, mean, std, count, "test store")
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("store"))


def _cli(args, run=True):
    from soke_lightning.cli.lightning import SokeCLI

    return SokeCLI(args=args, run=run)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_stage1_config_instantiates(config, store, monkeypatch):
    monkeypatch.setenv("SOKE_SYNTHSIGN", str(store))
    extra = [] if "data:" in config.read_text() else ["--data", str(ROOT / "datamodules" / "synthsign.yaml")]
    cli = _cli(["--config", str(config), *extra, "--trainer.accelerator", "cpu", "--trainer.devices", "1",
                "--trainer.strategy", "auto"], run=False)
    assert type(cli.model).__name__ == "TokenizerStage"
    assert isinstance(cli.model.tokenizer, SignTokenizer)
    if config.stem == "soke":
        assert cli.model.tokenizer.codebook_sizes == {"body": 96, "lhand": 192, "rhand": 192}
        assert cli.model.tokenizer.config["width"] == 512
        assert cli.model.hparams.lr == 2e-4 and cli.model.hparams.commit_weight == 0.02


def _fit_args(store, out, *more):
    return ["fit", "--config", str(ROOT / "experiments/stage1/debug.yaml"),
            "--data", str(ROOT / "datamodules/synthsign.yaml"), "--data.init_args.stores", f"[{store}]",
            "--data.init_args.batch_size", "4", "--data.init_args.seed", "3", "--trainer.default_root_dir", str(out),
            *more]


def test_debug_fit_writes_loadable_checkpoints_and_metrics(store, tmp_path, monkeypatch):
    monkeypatch.setenv("SOKE_OUT", str(tmp_path))
    cli = _cli(_fit_args(store, tmp_path))
    metrics = cli.trainer.callback_metrics
    for key in ("val/mpjpe_body", "val/mpjpe_pa_body", "val/mpjpe_hand", "val/mpjpe_pa_hand",
                "val/asl/mpjpe_pa_hand", "val/dgs/mpjpe_body", "val/body/perplexity", "val/rhand/usage"):
        assert key in metrics and torch.isfinite(metrics[key]), key
    assert 0 < float(metrics["val/lhand/usage"]) <= 1
    assert float(metrics["val/mpjpe_pa_hand"]) <= float(metrics["val/mpjpe_hand"]) + 1e-3
    ckpt_dir = tmp_path / "stage1-debug" / "checkpoints"
    for name in ("best.ckpt", "last.ckpt"):
        raw = torch.load(ckpt_dir / name, weights_only=False)
        assert raw[CHECKPOINT_KEY]["prefix"] == "tokenizer."
        tok = SignTokenizer.from_checkpoint(ckpt_dir / name)
        assert tok.codebook_sizes == {"body": 8, "lhand": 16, "rhand": 16}
        assert all(bool(v.quantizer.initialised) for v in tok.vaes.values())
    # the normalisation statistics travelled into the checkpoint
    stats = torch.load(store / STATS_FILE)
    assert torch.allclose(tok.normalizer.mean[:30], stats["mean"][36:66])


class StopAfterFirstEpoch(Callback):
    """Interrupts a 2-epoch run after its first epoch, so the LR schedule is the uninterrupted run's."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


@pytest.mark.slow  # three Lightning runs; tests/test_models_tokenizer.py covers the same at model level by default
def test_resume_from_checkpoint_is_bit_identical(store, tmp_path, monkeypatch):
    monkeypatch.setenv("SOKE_OUT", str(tmp_path / "a"))
    full = _cli(_fit_args(store, tmp_path / "a"))
    monkeypatch.setenv("SOKE_OUT", str(tmp_path / "b"))
    cut = _cli(_fit_args(store, tmp_path / "b", "--trainer.callbacks+=test_stage1_stage.StopAfterFirstEpoch"))
    assert cut.trainer.current_epoch == 1 and 0 < cut.trainer.global_step < full.trainer.global_step
    first = tmp_path / "b" / "stage1-debug" / "checkpoints" / "last.ckpt"
    monkeypatch.setenv("SOKE_OUT", str(tmp_path / "c"))
    resumed = _cli(_fit_args(store, tmp_path / "c", "--ckpt_path", str(first)))
    a, b = full.model.tokenizer.state_dict(), resumed.model.tokenizer.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert int(resumed.model.tokenizer.vaes["body"].quantizer.num_updates) == full.trainer.global_step


def _batch(lengths, t_max, lang="asl"):
    from soke_lightning.core.batch import SignBatch

    b = len(lengths)
    lengths = torch.tensor(lengths)
    mask = torch.arange(t_max)[None] < lengths[:, None]
    poses = torch.arange(t_max, dtype=torch.float32)[None, :, None].expand(b, t_max, 133) * mask[..., None]
    return SignBatch(poses=poses.clone(), lengths=lengths, mask=mask, text=[""] * b, lang=[lang] * b,
                     name=[str(i) for i in range(b)], corpus=["synthsign"] * b)


def test_train_windows_are_aligned_slices_and_losses_mask_padding():
    from soke_lightning.training.tokenizer_stage import TokenizerStage

    tok = SignTokenizer(width=8, code_dim=8, depth=1, codebook_sizes={"body": 4, "lhand": 4, "rhand": 4})
    with pytest.raises(ValueError, match="multiple of the down-sampling rate 4"):
        TokenizerStage(tok, train_window=30)
    stage = TokenizerStage(tok, train_window=16, velocity_weight=1.0)
    torch.manual_seed(0)
    poses, lengths, mask, _ = stage._windows(_batch([40, 12], 40))
    assert poses.shape == (2, 16, 133) and lengths.tolist() == [16, 12]
    start = int(poses[0, 0, 0])
    assert start % 4 == 0 and torch.equal(poses[0, :, 0], torch.arange(start, start + 16, dtype=torch.float32))
    assert torch.equal(poses[1, :12, 0], torch.arange(12, dtype=torch.float32)) and (poses[1, 12:] == 0).all()
    # padded frames do not count in the reconstruction loss ("exclude"), they do in "reference"
    target = torch.zeros(1, 8, 133)
    recon = torch.zeros(1, 8, 133)
    recon[:, 4:] = 5.0
    m = torch.tensor([[True] * 4 + [False] * 4])
    assert stage._recon_loss(recon, target, m) == 0
    assert TokenizerStage(tok, loss_padding="reference")._recon_loss(recon, target, m) == 0
    assert stage._recon_loss(recon, target, torch.ones_like(m)) > 0


def test_joint_loss_measures_root_relative_joint_error_and_ignores_padding():
    from soke_lightning.training.tokenizer_stage import TokenizerStage

    tok = SignTokenizer(width=8, code_dim=8, depth=1, codebook_sizes={"body": 4, "lhand": 4, "rhand": 4})
    stage = TokenizerStage(tok, joint_weight=1.0)
    torch.manual_seed(0)
    target = 0.3 * torch.randn(1, 8, 133)
    m = torch.tensor([[True] * 4 + [False] * 4])
    recon = target.clone()
    recon[:, 4:] += 3.0  # padding only
    assert stage._joint_loss(recon, target, m) == 0
    # a right-wrist rotation (features 27-29: joint 21) moves the right hand: the loss sees it, with a gradient
    recon = target.clone().requires_grad_(True)
    bent = recon + torch.nn.functional.pad(torch.full((1, 8, 3), 0.5), (27, 103))
    loss = stage._joint_loss(bent, target, m)
    assert loss > 1e-3
    loss.backward()
    assert recon.grad[0, :4, 27:30].abs().sum() > 0 and recon.grad[0, 4:].abs().sum() == 0
    # rotating the jaw by the same amount moves far fewer joints (and less) than the wrist
    jaw = target + torch.nn.functional.pad(torch.full((1, 8, 3), 0.5), (120, 10))
    assert stage._joint_loss(jaw, target, m) < loss
