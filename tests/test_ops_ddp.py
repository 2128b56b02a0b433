"""Multi-process stage-1 training on CPU (gloo), launched as on a cluster: 2 processes on one machine, 2 simulated
nodes through torchrun, 2 SLURM tasks; gradients/codebooks in sync and validation metrics == one process
(subprocess scripts: DDP under pytest re-runs pytest)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "ops_ddp_stage1.py"
LAUNCH_VARS = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK",
               "TORCHELASTIC_RUN_ID", "LOCAL_WORLD_SIZE")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS and not k.startswith("SLURM_")}
    env.update(HF_HUB_OFFLINE="1", WANDB_MODE="disabled", OMP_NUM_THREADS="1", **extra)
    return env


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from test_stage1_stage import make_store

    root = tmp_path_factory.mktemp("ddp_stores")
    # even: 6 validation samples = 3 per rank, no padding; odd: 3 samples, Lightning pads rank 1 with a repeat
    return {"even": make_store(root / "even", {"train": 2, "val": 2, "test": 1}),
            "odd": make_store(root / "odd", {"train": 2, "val": 1, "test": 1})}


def _check(procs, out: Path, mode: str, environment: str) -> dict:
    for proc in procs:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    result = json.loads((out / "result.json").read_text())
    assert result["mode"] == mode and result["cluster_environment"] == environment
    assert result["optimizer_steps"] >= 2 and result["worst_relative_difference"] < 1e-5
    assert "val/mpjpe_pa_hand" in result["ddp_metrics"] and "val/body/perplexity" in result["ddp_metrics"]
    return result


@pytest.mark.ddp
def test_two_processes_on_one_machine(stores, tmp_path):
    out = tmp_path / "spawn"
    proc = subprocess.run([sys.executable, str(SCRIPT), "spawn", str(stores["even"]), str(out)],
                          capture_output=True, text=True, timeout=300, env=_clean_env(MASTER_PORT=str(_free_port())))
    _check([proc], out, "spawn", "LightningEnvironment")


def _launch_pair(argv_for_rank, env_for_rank, timeout=300):
    procs = [subprocess.Popen(argv_for_rank(r), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env_for_rank(r)) for r in range(2)]
    results = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        results.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return results


@pytest.mark.slow  # about 20 s; the 2-process test covers the same training checks by default
@pytest.mark.ddp
def test_two_torchrun_nodes_on_localhost(stores, tmp_path):
    out, port = tmp_path / "node", _free_port()

    def argv(rank):
        return [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
                f"--node_rank={rank}", "--master_addr=127.0.0.1", f"--master_port={port}",
                str(SCRIPT), "node", str(stores["even"]), str(out)]

    procs = _launch_pair(argv, lambda r: _clean_env())
    result = _check(procs, out, "node", "TorchElasticEnvironment")
    assert result["node_rank"] == 0


def _slurm_env(rank: int, port: int, **extra) -> dict:
    return _clean_env(SLURM_NTASKS="2", SLURM_NTASKS_PER_NODE="1", SLURM_NNODES="2", SLURM_PROCID=str(rank),
                      SLURM_LOCALID="0", SLURM_NODEID=str(rank), SLURM_JOB_ID="4242", SLURM_JOB_NAME="soke-stage1",
                      SLURM_NODELIST="127.0.0.1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **extra)


def test_slurm_variables_select_the_slurm_environment(monkeypatch):
    """In one process: the Trainer of experiments/trainer/ddp.yaml reads rank, world and addresses from SLURM_*."""
    from lightning.fabric.plugins.environments import SLURMEnvironment
    from lightning.pytorch import Trainer
    from lightning.pytorch.utilities.rank_zero import rank_zero_only
    from lightning_utilities.core.rank_zero import rank_zero_only as utils_rank_zero_only

    # the Trainer below sets the process-wide rank to 1: restore it afterwards, or later tests log as rank 1
    for flag in (rank_zero_only, utils_rank_zero_only):
        monkeypatch.setattr(flag, "rank", getattr(flag, "rank", 0))

    for key, value in _slurm_env(1, 12910).items():
        if key.startswith("SLURM_") or key.startswith("MASTER_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("MASTER_ADDR")
    monkeypatch.delenv("MASTER_PORT")
    monkeypatch.setenv("SLURM_NODELIST", "gpu[017-018]")
    trainer = Trainer(accelerator="cpu", devices=1, num_nodes=2, strategy="ddp", logger=False)
    env = trainer.strategy.cluster_environment
    assert isinstance(env, SLURMEnvironment) and env.auto_requeue
    assert (trainer.global_rank, trainer.world_size, trainer.node_rank, trainer.local_rank) == (1, 2, 1, 0)
    assert env.main_address == "gpu017" and env.main_port == 15000 + 4242
    # the launcher refuses a job whose tasks per node disagree with `devices` (before any process group exists)
    env.validate_settings(num_devices=1, num_nodes=2)
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")
    with pytest.raises(ValueError, match="devices=1"):
        env.validate_settings(num_devices=1, num_nodes=2)


@pytest.mark.slow  # the in-process test above covers detection; this one trains (about 15 s)
@pytest.mark.ddp
def test_two_slurm_tasks(stores, tmp_path):
    out, port = tmp_path / "slurm", _free_port()
    procs = _launch_pair(lambda r: [sys.executable, str(SCRIPT), "slurm", str(stores["even"]), str(out)],
                         lambda r: _slurm_env(r, port))
    _check(procs, out, "slurm", "SLURMEnvironment")


@pytest.mark.slow
@pytest.mark.ddp
def test_padding_repeats_do_not_change_validation_metrics(stores, tmp_path):
    out = tmp_path / "odd"
    proc = subprocess.run([sys.executable, str(SCRIPT), "spawn", str(stores["odd"]), str(out)],
                          capture_output=True, text=True, timeout=300, env=_clean_env(MASTER_PORT=str(_free_port())))
    _check([proc], out, "spawn", "LightningEnvironment")
