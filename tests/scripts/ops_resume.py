"""Stage-1 training for the exact-resume test (tests/test_ops_resume.py): full run, run to be killed, resumed run.

    python tests/scripts/ops_resume.py STORE OUT [--pause-at STEP] [--ckpt PATH]
                                     [--stage2 TOKENIZER_CKPT TOKEN_CACHE]

Stage-1 debug config (or stage 2's with ``--stage2``: tiny mBART over a frozen tokenizer and its token cache),
training samples in batches of 2 (12 samples: 6 steps per epoch), 2 epochs, deterministic CPU settings, a
checkpoint after every optimizer step (``OUT/checkpoints/last.ckpt``; what a long job gets from
``train_time_interval`` / ``every_n_train_steps``). With ``--pause-at K`` the process writes ``OUT/paused`` at the
start of the batch after optimizer step K (the checkpoint of step K is on disk then) and sleeps until the test kills
it with SIGKILL. At the end it writes ``OUT/final.pt``: the model's state dict, the global step, the validation
metrics, the optimizer state and the names of the samples trained on per step.

Exact mid-epoch resume relies on SignDataModule's training sampler skipping the batches a restored checkpoint
already trained (:class:`soke_lightning.data.sampler.SkipTrainedBatches`).
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback

ROOT = Path(__file__).resolve().parents[2]


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
    parser.add_argument("--stage2", nargs=2, default=None, metavar=("TOKENIZER_CKPT", "TOKEN_CACHE"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from soke_lightning.cli.lightning import SokeCLI

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
