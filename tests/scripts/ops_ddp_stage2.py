"""Stage-2 training under a real 2-process launch on CPU (gloo), checked from inside the ranks.

    python tests/scripts/ops_ddp_stage2.py STORE TOKENIZER_CKPT TOKEN_CACHE OUT [--val-samples N]

One process; Lightning starts the second (``devices=2, strategy=ddp``, experiments/trainer/ddp.yaml) with the
stage-2 debug config (tiny random mBART over the frozen stage-1 tokenizer and its token cache). Every rank checks,
with all_gather: before every optimizer step the (DDP-averaged) gradients are identical on all ranks while the
ranks trained on disjoint samples; after training every parameter is identical, and so is the embedded text
tokenizer (trained on rank 0 and broadcast). After fit all ranks run ``trainer.validate`` and ``trainer.test``;
then rank zero leaves the process group and evaluates the same weights in ONE process (a fresh Trainer): the DTW
metrics (and every other logged value except wall-clock latency) must equal the 2-process ones. ``--val-samples``
odd gives the ranks uneven validation shards (the evaluation samplers never repeat samples). The evaluation batch
size is 1: generation of a zero-padded batch is not bit-identical to one sample at a time, so only equal batch
composition makes the two runs comparable. Rank zero writes ``OUT/result.json``; a failed check raises.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from ddp_sync import SyncCheck  # this folder (sys.path[0] of the script and of every rank it starts)
from lightning.pytorch import Trainer

ROOT = Path(__file__).resolve().parents[2]
WALL_CLOCK = ("latency",)


class LMSyncCheck(SyncCheck):
    """Also: the trained parameters are exactly the LM's (the frozen tokenizer is no submodule) and every rank holds
    the same text tokenizer."""

    def synced(self, pl_module):
        params = list(pl_module.named_parameters())
        assert params and all(name.startswith("lm.") for name, _ in params), [n for n, _ in params][:5]
        return params

    def extra_checks(self, pl_module):
        vocab = [None] * dist.get_world_size()
        dist.all_gather_object(vocab, sorted(pl_module.text_tokenizer.hf.get_vocab().items()))
        assert all(v == vocab[0] for v in vocab), "the ranks hold different text tokenizers"


def _values(results: list[dict]) -> dict[str, float]:
    return {k: float(v) for k, v in results[0].items() if not any(w in k for w in WALL_CLOCK)}


def _compare(ref: dict, ddp: dict, what: str) -> float:
    assert ref.keys() == ddp.keys(), (what, sorted(set(ref) ^ set(ddp)))
    assert any("dtw_pa_jpe" in k for k in ref), (what, sorted(ref))
    worst = max(abs(ref[k] - ddp[k]) / max(1.0, abs(ref[k])) for k in ref)
    assert worst < 1e-5, (what, {k: (ref[k], ddp[k]) for k in ref if abs(ref[k] - ddp[k]) > 1e-6})
    return worst


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    for name in ("store", "tokenizer_ckpt", "token_cache", "out"):
        parser.add_argument(name)
    parser.add_argument("--val-samples", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from soke_lightning.cli.lightning import SokeCLI

    cli = SokeCLI(args=[
        "--config", str(ROOT / "experiments/stage2/debug.yaml"), "--config", str(ROOT / "experiments/trainer/ddp.yaml"),
        "--data", str(ROOT / "datamodules/synthsign.yaml"), f"--data.init_args.stores=[{args.store}]",
        f"--data.init_args.token_cache={args.token_cache}", f"--model.init_args.tokenizer_ckpt={args.tokenizer_ckpt}",
        "--data.init_args.batch_size=4", "--data.init_args.eval_batch_size=1",
        f"--data.init_args.val_max_samples={args.val_samples}", "--trainer.accelerator=cpu", "--trainer.devices=2",
        "--trainer.num_nodes=1", "--trainer.max_epochs=2", "--trainer.limit_train_batches=3",
        f"--trainer.default_root_dir={args.out}", "--trainer.callbacks=[]", "--trainer.enable_checkpointing=false",
    ], run=False)
    trainer, model, dm = cli.trainer, cli.model, cli.datamodule
    check = LMSyncCheck()
    trainer.callbacks.append(check)
    trainer.fit(model, dm)
    assert check.steps == 6 and trainer.world_size == 2, (check.steps, trainer.world_size)
    ddp_val = _values(trainer.validate(model, dm, verbose=False))
    ddp_test = _values(trainer.test(model, dm, verbose=False))
    rank = trainer.global_rank
    dist.barrier()
    dist.destroy_process_group()
    if rank != 0:
        return 0
    from soke_lightning.data.datamodule import SignDataModule

    single = Trainer(accelerator="cpu", devices=1, strategy="auto", num_nodes=1, logger=False,
                     enable_progress_bar=False, enable_model_summary=False)
    ref_dm = SignDataModule(**{k: v for k, v in dm.hparams.items() if not k.startswith("_")})
    ref_val = _values(single.validate(model, ref_dm, verbose=False))
    ref_test = _values(single.test(model, ref_dm, verbose=False))
    worst = max(_compare(ref_val, ddp_val, "validate"), _compare(ref_test, ddp_test, "test"))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "result.json").write_text(json.dumps({
        "optimizer_steps": check.steps, "world_size": 2, "val_samples": len(ref_dm.datasets["val"]),
        "test_samples": len(ref_dm.datasets["test"]), "worst_relative_difference": worst,
        "ddp_val": ddp_val, "single_val": ref_val, "ddp_test": ddp_test, "single_test": ref_test}, indent=1))
    print(f"ops_ddp_stage2: OK ({check.steps} synchronised steps, worst metric difference {worst:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
