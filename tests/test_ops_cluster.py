"""Cluster launchers (experiments/cluster): the sbatch scripts and torchrun.sh build the right `soke fit` command —
one task per GPU, devices/num_nodes from the job, resume from an hpc checkpoint or the newest last.ckpt —
checked with stand-ins for `srun` and Python that record their argv (no SLURM, no GPU needed)."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "experiments" / "cluster"

RECORDER = """#!/bin/bash
if [ "$1" = "-c" ]; then echo "${FAKE_GPUS:-0}"; exit 0; fi
printf '%s\\n' "$(basename "$0")" "$@" > "$RECORD"
"""


@pytest.fixture
def fake_bin(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("srun", "python"):
        (bin_dir / name).write_text(RECORDER)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _run(script: str, env: dict, *args: str) -> list[str]:
    proc = subprocess.run(["bash", str(CLUSTER / script), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Path(env["RECORD"]).read_text().splitlines()


def _slurm_env(fake_bin: Path, tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(PATH=f"{fake_bin}:{env['PATH']}", RECORD=str(tmp_path / "argv.txt"), SLURM_JOB_ID="77",
               SLURM_NNODES="2", SLURM_NTASKS_PER_NODE="4(x2)", SLURM_SUBMIT_DIR=str(ROOT),
               SOKE_OUT=str(tmp_path / "out"), **extra)
    return env


def _value(argv: list[str], flag: str) -> str:
    hits = [a.split("=", 1)[1] for a in argv if a.startswith(flag + "=")]
    assert len(hits) == 1, (flag, argv)
    return hits[0]


def test_sbatch_stage1_runs_one_task_per_gpu_with_devices_and_nodes_from_the_job(fake_bin, tmp_path):
    argv = _run("slurm_stage1.sbatch", _slurm_env(fake_bin, tmp_path), "--data.init_args.batch_size=320")
    assert argv[0] == "srun" and "--kill-on-bad-exit=1" in argv
    fit = argv[argv.index("soke_lightning.cli"):]
    assert fit[1] == "fit" and fit[fit.index("--config") + 1] == "experiments/stage1/soke.yaml"
    assert "experiments/trainer/ddp.yaml" in fit and "experiments/cluster/long_job.yaml" in fit
    assert _value(fit, "--trainer.devices") == "4" and _value(fit, "--trainer.num_nodes") == "2"
    assert _value(fit, "--ckpt_path") == "last"
    assert fit[-1] == "--data.init_args.batch_size=320" and fit[fit.index("--data") + 1] == "datamodules/unified.yaml"
    header = (CLUSTER / "slurm_stage1.sbatch").read_text()
    assert "#SBATCH --requeue" in header and "#SBATCH --signal=SIGUSR1@" in header
    assert "#SBATCH --ntasks-per-node=6" in header and "#SBATCH --gpus-per-node=6" in header


def test_requeued_job_resumes_from_the_hpc_checkpoint(fake_bin, tmp_path):
    env = _slurm_env(fake_bin, tmp_path)
    (tmp_path / "out" / "stage1-soke").mkdir(parents=True)
    (tmp_path / "out" / "stage1-soke" / "hpc_ckpt_1.ckpt").write_bytes(b"")
    argv = _run("slurm_stage1.sbatch", env)
    assert not any(a.startswith("--ckpt_path") for a in argv), argv  # Lightning picks hpc_ckpt_N itself


def test_sbatch_stage2_passes_tokenizer_and_token_cache(fake_bin, tmp_path):
    env = _slurm_env(fake_bin, tmp_path, TOKENIZER="ck/last.ckpt", TOKENS="tok", CONFIG="experiments/stage2/x.yaml")
    fit = _run("slurm_stage2.sbatch", env)
    assert "experiments/stage2/x.yaml" in fit
    assert _value(fit, "--model.init_args.tokenizer_ckpt") == "ck/last.ckpt"
    assert _value(fit, "--data.init_args.token_cache") == "tok"


def test_torchrun_launcher_per_node(fake_bin, tmp_path):
    env = {**os.environ, "PYTHON": str(fake_bin / "python"), "RECORD": str(tmp_path / "argv.txt"),
           "NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1", "FAKE_GPUS": "8"}
    argv = _run("torchrun.sh", env, "experiments/stage1/soke.yaml", "--ckpt_path=/x/last.ckpt")
    assert argv[1:3] == ["-m", "torch.distributed.run"]
    for flag, value in (("--nnodes", "2"), ("--nproc_per_node", "8"), ("--node_rank", "1"),
                        ("--master_addr", "10.0.0.1"), ("--trainer.devices", "8"), ("--trainer.num_nodes", "2"),
                        ("--trainer.accelerator", "gpu"), ("--ckpt_path", "/x/last.ckpt")):
        assert _value(argv, flag) == value
    cpu = _run("torchrun.sh", {**env, "FAKE_GPUS": "0", "NNODES": "1"}, "experiments/stage1/debug.yaml")
    assert _value(cpu, "--trainer.accelerator") == "cpu" and _value(cpu, "--nproc_per_node") == "1"
    assert _value(cpu, "--ckpt_path") == "last"
