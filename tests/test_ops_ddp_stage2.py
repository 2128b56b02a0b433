"""Stage 2 with 2 DDP processes on CPU (gloo): training steps run with identical gradients, parameters and text
tokenizer on both ranks, and the validation/test DTW metrics equal one process's (uneven validation shards
included). Subprocess script tests/scripts/ops_ddp_stage2.py (DDP under pytest re-runs pytest)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_ops_ddp import _clean_env, _free_port

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "ops_ddp_stage2.py"


@pytest.mark.slow  # the stage-2 test pipeline plus a 2-process fit, validate and test (about 1-2 min on 2 cores)
@pytest.mark.ddp
def test_stage2_two_processes_match_one(tmp_path, tmp_path_factory):
    from test_stage2_lm import pipeline

    run = pipeline(tmp_path_factory)
    out = tmp_path / "ddp"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(run["store"]), str(run["stage1"]), str(run["cache"]),
                           str(out), "--val-samples", "7"],
                          capture_output=True, text=True, timeout=600, env=_clean_env(MASTER_PORT=str(_free_port())))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    result = json.loads((out / "result.json").read_text())
    assert result["optimizer_steps"] == 6 and result["val_samples"] == 7 and result["test_samples"] >= 6
    assert result["worst_relative_difference"] < 1e-5
    for stage in ("val", "test"):
        metrics = result[f"ddp_{stage}"]
        assert f"{stage}/dtw_pa_jpe/all/avg" in metrics and f"{stage}/dtw_jpe/asl/rhand" in metrics
        assert metrics[f"{stage}/dtw_pa_jpe/all/avg"] > 0
