"""SignMotionMetrics: keys, aggregation (hand, avg), de-duplication, and the 2-process DDP run (which also checks the
SLRTP sum-state metrics)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from soke_lightning.metrics import JointPart, SignMotionMetrics, dtw_jpe, dtw_pa_jpe, parts_from_joint_sets

SCRIPTS = Path(__file__).parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import ddp_metrics  # noqa: E402


def test_keys_and_values_match_functional():
    pred, target, lp, lt, langs, names = ddp_metrics.make_data()
    metric = ddp_metrics.new_metric()
    ddp_metrics._update(metric, list(range(ddp_metrics.NUM_SAMPLES)), (pred, target, lp, lt, langs, names))
    out = metric.compute()
    assert metric.higher_is_better is False
    expected_keys = {f"test/{v}/{lang}/{p}" for v in ("dtw_jpe", "dtw_pa_jpe", "dtw_mje")
                     for lang in ("asl", "csl", "dgs") for p in ("body", "lhand", "rhand", "hand", "avg")}
    assert set(out) == expected_keys
    asl = [i for i, lang in enumerate(langs) if lang == "asl"]
    sets = ddp_metrics.PARTS
    body = dtw_jpe(pred[asl], target[asl], lp[asl], lt[asl], align_index=0, eval_joints=sets["body"]).mean()
    assert out["test/dtw_jpe/asl/body"].item() == pytest.approx(body.item(), rel=1e-12)
    lh = dtw_pa_jpe(pred[asl][:, :, sets["lhand"]], target[asl][:, :, sets["lhand"]], lp[asl], lt[asl]).mean()
    rh = dtw_pa_jpe(pred[asl][:, :, sets["rhand"]], target[asl][:, :, sets["rhand"]], lp[asl], lt[asl]).mean()
    pa_body = dtw_pa_jpe(pred[asl], target[asl], lp[asl], lt[asl], align_joints=sets["body_align"],
                         eval_joints=sets["body"]).mean()
    assert out["test/dtw_pa_jpe/asl/lhand"].item() == pytest.approx(lh.item(), rel=1e-12)
    assert out["test/dtw_pa_jpe/asl/hand"].item() == pytest.approx((lh + rh).item() / 2, rel=1e-12)
    # avg weights by evaluated joints: 4 body, 5 + 5 hand joints here (12 and 42 for SOKE's sets)
    avg = (4 * pa_body + 10 * (lh + rh) / 2) / 14
    assert out["test/dtw_pa_jpe/asl/avg"].item() == pytest.approx(avg.item(), rel=1e-12)


def test_repeated_names_are_counted_once_and_reset_clears():
    data = ddp_metrics.make_data()
    once, twice = ddp_metrics.new_metric(), ddp_metrics.new_metric()
    ddp_metrics._update(once, [0, 1, 2, 3], data)
    ddp_metrics._update(twice, [0, 1, 2, 3, 0, 2], data)
    a, b = once.compute(), twice.compute()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].item() == b[key].item()
    twice.reset()
    assert twice.key == [] and twice.score == []


def test_unknown_language_and_variant_fail_loudly():
    with pytest.raises(ValueError, match="unknown DTW variants"):
        SignMotionMetrics([JointPart("lhand", None)], variants=("dtw_pa",))
    metric = SignMotionMetrics([JointPart("lhand", None)], languages=("asl",))
    x = torch.zeros(1, 4, 3, 3)
    with pytest.raises(KeyError, match="not scored"):
        metric.update(x, x, None, None, ["csl"], ["a"])
    with pytest.raises(KeyError, match="lacks"):
        parts_from_joint_sets({"body": [0]})


@pytest.mark.ddp
def test_two_process_ddp_equals_single_process(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp.json"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "ddp_metrics.py"), str(port), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["scored"] == 8  # the sampler really padded 7 samples to 8
    assert result["ddp"].keys() == result["single"].keys() and result["ddp"]
    for key, value in result["single"].items():
        assert result["ddp"][key] == pytest.approx(value, rel=1e-12), key
    # the SLRTP sum-state metrics in the same two processes (disjoint shards)
    assert result["slrtp_ddp"].keys() == result["slrtp_single"].keys()
    assert {"chrf", "wer", "wer/csl", "test/slrtp_dtw_mje/all"} <= set(result["slrtp_ddp"])
    for key, value in result["slrtp_single"].items():
        assert result["slrtp_ddp"][key] == pytest.approx(value, rel=1e-12), key


def test_with_the_builtin_joint_backend():
    kinematics = pytest.importorskip("soke_lightning.kinematics")
    backend = kinematics.get_joint_backend("builtin")
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 2, 16, 133, generator=gen) * 0.2  # [pred/target, B, T, 133] denormalised features
    with torch.no_grad():
        joints = backend.from_features(feats)
    metric = SignMotionMetrics(parts_from_joint_sets(backend.joint_sets), prefix="val/")
    metric.update(joints[0], joints[1], torch.tensor([16, 9]), torch.tensor([12, 16]), ["asl", "csl"], ["a", "b"])
    out = metric.compute()
    assert len(out) == 2 * 2 * 5 and all(torch.isfinite(v) and v > 0 for v in out.values())
    # identical sequences score zero under both variants
    same = SignMotionMetrics(parts_from_joint_sets(backend.joint_sets))
    same.update(joints[0], joints[0], None, None, ["dgs", "dgs"], ["a", "b"])
    assert all(v.item() == pytest.approx(0.0, abs=1e-6) for v in same.compute().values())
