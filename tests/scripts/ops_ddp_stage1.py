"""Stage-1 training under a real multi-process launch on CPU (gloo), checked from inside the ranks.

    python tests/scripts/ops_ddp_stage1.py MODE STORE OUT

MODE:
  spawn  one process; Lightning starts the second (``devices=2, strategy=ddp``), as on one 2-GPU machine;
  node   one process per simulated node, started by ``torchrun --nnodes=2 --nproc_per_node=1 --node_rank=R``
         (``devices=1, num_nodes=2``);
  slurm  one process per SLURM task, with the SLURM_* variables set by the caller (``devices=1, num_nodes=2``,
         as ``srun`` with ``--ntasks-per-node=1`` on 2 nodes would).

Every rank checks, with all_gather: before every optimizer step the (DDP-averaged) gradients are identical on all
ranks while the ranks saw different samples; after training every parameter and buffer (codebooks, EMA statistics,
quantizer counters) is identical. After fit, all ranks run ``trainer.validate``; then rank zero leaves the process
group and validates the same weights in ONE process (a fresh Trainer) — the two metric dicts must be equal (the
evaluation batch size is 1: a zero-padded batch changes the reconstruction near a sequence's end, so only equal batch
composition makes the two runs comparable). With a validation set whose size is not a multiple of the world size
Lightning's DistributedSampler repeats samples to pad the shards; a metric that counts them shows. Rank zero writes
``OUT/result.json``; a failed check raises (non-zero exit).
"""

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from ddp_sync import SyncCheck  # this folder (sys.path[0] of the script and of every rank it starts)
from lightning.pytorch import Trainer

ROOT = Path(__file__).resolve().parents[2]


def _build(store: str, out: str, devices: int, num_nodes: int):
    from soke_lightning.cli.lightning import SokeCLI

    args = ["--config", str(ROOT / "experiments/stage1/debug.yaml"), "--config", str(ROOT / "experiments/trainer/ddp.yaml"),
            "--data", str(ROOT / "datamodules/synthsign.yaml"),
            f"--data.init_args.stores=[{store}]", "--data.init_args.batch_size=2", "--data.init_args.eval_batch_size=1",
            "--trainer.accelerator=cpu", f"--trainer.devices={devices}", f"--trainer.num_nodes={num_nodes}",
            "--trainer.max_epochs=2", f"--trainer.default_root_dir={out}", "--trainer.callbacks=[]",
            "--trainer.enable_checkpointing=false"]
    return SokeCLI(args=args, run=False)


def main(argv: list[str]) -> int:
    mode, store, out = argv
    torch.set_num_threads(1)
    devices, num_nodes = (2, 1) if mode == "spawn" else (1, 2)
    cli = _build(store, out, devices, num_nodes)
    trainer, model, dm = cli.trainer, cli.model, cli.datamodule
    env = type(trainer.strategy.cluster_environment).__name__
    check = SyncCheck()
    trainer.callbacks.append(check)
    trainer.fit(model, dm)
    assert check.steps > 0 and trainer.world_size == 2, (check.steps, trainer.world_size)
    ddp_metrics = {k: float(v) for k, v in trainer.validate(model, dm, verbose=False)[0].items()}
    rank = trainer.global_rank
    dist.barrier()
    dist.destroy_process_group()
    if rank != 0:
        return 0
    single = Trainer(accelerator="cpu", devices=1, strategy="auto", num_nodes=1, logger=False,
                     enable_progress_bar=False, enable_model_summary=False)
    from soke_lightning.data.datamodule import SignDataModule

    ref_dm = SignDataModule(**{k: v for k, v in dm.hparams.items() if not k.startswith("_")})
    ref = {k: float(v) for k, v in single.validate(model, ref_dm, verbose=False)[0].items()}
    assert ref.keys() == ddp_metrics.keys(), (sorted(ref), sorted(ddp_metrics))
    worst = max(abs(ref[k] - ddp_metrics[k]) / max(1.0, abs(ref[k])) for k in ref)
    assert worst < 1e-5, {k: (ref[k], ddp_metrics[k]) for k in ref if abs(ref[k] - ddp_metrics[k]) > 1e-6}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "result.json").write_text(json.dumps({
        "mode": mode, "cluster_environment": env, "optimizer_steps": check.steps, "global_step": trainer.global_step,
        "val_samples_single": len(ref_dm.datasets["val"]), "worst_relative_difference": worst,
        "ddp_metrics": ddp_metrics, "single_metrics": ref,
        "node_rank": int(os.environ.get("GROUP_RANK", os.environ.get("SLURM_NODEID", 0)))}, indent=1))
    print(f"ops_ddp_stage1 {mode}: OK ({env}, {check.steps} synchronised steps, worst metric difference {worst:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
