"""Stage-1 training for the exact-resume test (tests/test_ops_resume.py): full run, run to be killed, resumed run.

    python tests/scripts/ops_resume.py STORE OUT [--pause-at STEP] [--ckpt PATH] [--skip-trained]
                                     [--stage2 TOKENIZER_CKPT TOKEN_CACHE]

Stage-1 debug config (or stage 2's with ``--stage2``: tiny mBART over a frozen tokenizer and its token cache),
training samples in batches of 2 (12 samples: 6 steps per epoch), 2 epochs, deterministic CPU settings, a
checkpoint after every optimizer step (``OUT/checkpoints/last.ckpt``; what a long job gets from
``train_time_interval`` / ``every_n_train_steps``). With ``--pause-at K`` the process writes ``OUT/paused`` at the
start of the batch after optimizer step K (the checkpoint of step K is on disk then) and sleeps until the test kills
it with SIGKILL. At the end it writes ``OUT/final.pt``: the model's state dict, the global step, the validation
metrics, the optimizer state and the names of the samples trained on per step.

``--skip-trained`` applies :func:`skip_trained_batches`, the change to ``SignDataModule`` that exact mid-epoch
resume needs (requested from the data module's owner): Lightning restores its loop counters from a mid-epoch
checkpoint but restarts a plain DataLoader at the epoch's first batch, so without it the resumed epoch trains the
first batches again and never sees the rest.
"""

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback
from torch.utils.data import DistributedSampler

ROOT = Path(__file__).resolve().parents[2]


class SkipTrained(DistributedSampler):
    """Wraps the training sampler: each pass starts after the batches the fit loop says this epoch already trained.

    ``trained()`` is read lazily, when the DataLoader asks for the first index of a pass: by then Lightning has
    restored its loop counters from the checkpoint (0 in a fresh epoch; the batches done before a mid-epoch
    checkpoint after a restart). Derives from DistributedSampler, like the samplers it wraps, so Lightning does not
    wrap it again under DDP; ``set_epoch`` goes to the wrapped sampler, whose order depends only on seed and epoch.
    """

    def __init__(self, sampler, batch_size: int, trained):  # no super().__init__: it would need a process group
        self.sampler, self.batch_size, self.trained = sampler, batch_size, trained

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:  # the full epoch: Lightning counts a resumed epoch's batches from the checkpoint
        return len(self.sampler)

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.trained() * self.batch_size, None)


def skip_trained_batches() -> None:
    """Make SignDataModule's training sampler start after the batches a mid-epoch checkpoint already trained."""
    from soke_lightning.data.datamodule import SignDataModule

    original = SignDataModule.train_sampler

    def train_sampler(self, ds):
        sampler = original(self, ds)
        if sampler is None or self.trainer is None:
            return sampler
        progress = self.trainer.fit_loop.epoch_loop.batch_progress
        return SkipTrained(sampler, self.batch_size, lambda: progress.current.ready)

    SignDataModule.train_sampler = train_sampler


class Pause(Callback):
    def __init__(self, step: int, marker: Path):
        self.step, self.marker = step, marker

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            self.marker.write_text(f"{trainer.current_epoch} {batch_idx}")
            time.sleep(600)


class Record(Callback):
    """Sample names per optimizer step (to show the resumed run continued the same epoch order)."""

    def __init__(self):
        self.names: dict[int, list[str]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.names[trainer.global_step] = list(batch.keys)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("out")
    parser.add_argument("--pause-at", type=int, default=None)
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--skip-trained", action="store_true")
    parser.add_argument("--stage2", nargs=2, default=None, metavar=("TOKENIZER_CKPT", "TOKEN_CACHE"))
    args = parser.parse_args(argv)
    if args.skip_trained:
        skip_trained_batches()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from soke_lightning.lightning_cli import SokeCLI

    stage, stage_args = ["--config", str(ROOT / "experiments/stage1/debug.yaml")], []
    if args.stage2:
        stage = ["--config", str(ROOT / "experiments/stage2/debug.yaml")]
        stage_args = [f"--model.init_args.tokenizer_ckpt={args.stage2[0]}",
                      f"--data.init_args.token_cache={args.stage2[1]}"]
    cli = SokeCLI(args=[
        *stage, "--data", str(ROOT / "datamodules/synthsign.yaml"),
        f"--data.init_args.stores=[{args.store}]", *stage_args, "--data.init_args.batch_size=2", "--data.init_args.seed=5",
        "--trainer.max_epochs=2", "--trainer.deterministic=true", f"--trainer.default_root_dir={out}",
        "--trainer.callbacks=[]", "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        f"--trainer.callbacks.dirpath={out / 'checkpoints'}", "--trainer.callbacks.every_n_train_steps=1",
        "--trainer.callbacks.save_last=true", "--trainer.callbacks.save_top_k=0",
    ], run=False)
    record = Record()
    cli.trainer.callbacks.append(record)
    if args.pause_at is not None:
        cli.trainer.callbacks.append(Pause(args.pause_at, out / "paused"))
    cli.trainer.fit(cli.model, cli.datamodule, ckpt_path=args.ckpt)
    metrics = {k: float(v) for k, v in cli.trainer.validate(cli.model, cli.datamodule, verbose=False)[0].items()}
    torch.save({"model": cli.model.state_dict(), "global_step": cli.trainer.global_step,
                "metrics": metrics, "optimizer": cli.trainer.optimizers[0].state_dict(), "names": record.names},
               out / "final.pt")
    print(f"ops_resume: done at step {cli.trainer.global_step}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
