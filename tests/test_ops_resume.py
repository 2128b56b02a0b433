"""Exact resume: a stage-1 run killed with SIGKILL in the middle of an epoch and resumed from its last step
checkpoint ends with the same weights, optimizer state and metrics as an uninterrupted run (bit-identical on CPU)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "ops_resume.py"


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


def _run(*args, timeout=240) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def _assert_same(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), f"{what}: {key} differs"
        elif isinstance(a[key], dict):
            _assert_same(a[key], b[key], f"{what}.{key}")
        else:
            assert a[key] == b[key], f"{what}: {key}: {a[key]} != {b[key]}"


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The store and an uninterrupted 2-epoch run (12 steps)."""
    from test_stage1_stage import make_store

    root = tmp_path_factory.mktemp("resume")
    store = make_store(root / "store", {"train": 4, "val": 1, "test": 1})
    _run(store, root / "full")
    return store, torch.load(root / "full" / "final.pt", weights_only=False)


def _kill_and_resume(store: Path, cut: Path, *flags: str) -> dict:
    pause_at = 3  # epoch 0 has 6 steps: killed after step 3, in the middle of the first epoch
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(store), str(cut), "--pause-at", str(pause_at), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    deadline = time.monotonic() + 240
    while not (cut / "paused").exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run never reached the kill point"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and not (cut / "final.pt").exists()
    assert (cut / "paused").read_text() == f"0 {pause_at}"  # epoch 0, batch 3: mid-epoch
    last = cut / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=False)
    assert ckpt["global_step"] == pause_at and ckpt["epoch"] == 0
    _run(store, cut, "--ckpt", last, *flags)
    return torch.load(cut / "final.pt", weights_only=False)


def _assert_resumed_equals_full(a: dict, b: dict, pause_at: int = 3, steps: int = 12) -> None:
    assert a["global_step"] == b["global_step"] == steps
    # the resumed run trained exactly the batches the full run trained after step 3, in the same order
    assert {s: n for s, n in a["names"].items() if s >= pause_at} == b["names"]
    _assert_same(a["model"], b["model"], "model")
    _assert_same(a["optimizer"]["state"], b["optimizer"]["state"], "optimizer")
    timing = [k for k in a["metrics"] if "latency" in k]  # wall-clock, not a result
    assert {k: v for k, v in a["metrics"].items() if k not in timing} == \
        {k: v for k, v in b["metrics"].items() if k not in timing}


@pytest.mark.slow  # three short training processes (about 40 s on 2 busy cores)
def test_sigkill_mid_epoch_then_resume_is_bit_identical(full_run, tmp_path):
    """The shipped SignDataModule: the resumed epoch starts after the batches the checkpoint already trained."""
    store, full = full_run
    _assert_resumed_equals_full(full, _kill_and_resume(store, tmp_path / "cut"))


@pytest.mark.slow  # the stage-2 test pipeline (stage 1 + token cache) and three short stage-2 runs (about 1.5 min)
def test_stage2_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, tmp_path_factory):
    """Stage 2 (tiny mBART, frozen tokenizer, token cache) killed mid-epoch resumes bit-identically; its checkpoint
    carries the tokenizer hash and the text tokenizer it was trained with."""
    from test_stage2_lm import pipeline

    run = pipeline(tmp_path_factory)
    stage2 = ["--stage2", str(run["stage1"]), str(run["cache"])]
    _run(run["store"], tmp_path / "full", *stage2)
    full = torch.load(tmp_path / "full" / "final.pt", weights_only=False)
    steps_per_epoch = full["global_step"] // 2
    assert steps_per_epoch > 3
    resumed = _kill_and_resume(run["store"], tmp_path / "cut", *stage2)
    _assert_resumed_equals_full(full, resumed, steps=full["global_step"])
