"""`soke claims`: the frequency grouping, the paired statistics, the arms of a plan, and the whole run on the
tiny plan (trains, evaluates, writes claims.md / claims.json / plots, and resumes without training again)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from soke_lightning.cli import main as soke_main
from soke_lightning.pipelines.claims import (
    PLANS,
    Concepts,
    arm_args,
    copy_table,
    covered_steps,
    duration_table,
    frequency_group,
    paired_change,
    plan_arms,
    plan_config,
    slrtp_table,
    verdicts,
    write_markdown,
)


def test_frequency_groups_on_a_hand_made_example():
    known = Concepts(train_counts={"asl": Counter({"cat": 7, "dog": 2, "owl": 1}), "dgs": Counter({"cat": 1})},
                     in_dictionary={"asl": {"dog", "emu"}, "dgs": set()}, word_concept={})
    assert frequency_group(["cat"], "asl", known) == "seen+no_entry"
    assert frequency_group(["cat", "dog"], "asl", known) == "rare+entry"      # 2 training sentences: rare
    assert frequency_group(["cat", "owl"], "asl", known) == "rare+no_entry"   # rare, but no dictionary entry
    assert frequency_group(["emu", "dog"], "asl", known) == "unseen+entry"    # the rarest concept decides
    assert frequency_group(["yak"], "asl", known) == "unseen+no_entry"
    assert frequency_group(["cat"], "dgs", known) == "rare+no_entry"          # counts are per language
    assert frequency_group(["dog"], "asl", known, rare_max=1) == "seen+entry"


def test_paired_change_and_its_interval():
    base = {f"s{i}": 2.0 + (i % 3) for i in range(30)}
    better = {k: 0.8 * v for k, v in base.items()}
    out = paired_change(base, better, resamples=200)
    assert out["change"] == pytest.approx(-0.2) and out["n"] == 30
    assert out["low"] == pytest.approx(-0.2) and out["high"] == pytest.approx(-0.2)  # a constant ratio: no spread
    noisy = {k: v * (0.7 if i % 2 else 1.1) for i, (k, v) in enumerate(base.items())}
    out = paired_change(base, noisy, resamples=500)
    assert out["low"] < out["change"] < out["high"]
    assert paired_change(base, better, names=["s1", "s2", "missing"])["n"] == 2


def test_every_plan_trains_each_claims_arm():
    for plan in ("full", "quick", "tiny"):
        cfg = plan_config(plan, "/tmp/unused")
        names = [a.name for a in plan_arms(cfg)]
        assert names[:2] == ["base", "retrieval"] and len(set(names)) == len(names)
        assert {a.group for a in plan_arms(cfg)} >= {"base", "retrieval", "decoding"}
        assert len(cfg.seeds) >= 2
    full = plan_config("full", "/tmp/unused")
    assert len(full.seeds) >= 3
    assert {a.value for a in plan_arms(full) if a.group == "decoding"} == {"flattened", "parallel"}
    assert sorted(a.value for a in plan_arms(full) if a.group == "lambda") == [0.0, 0.2, 0.4, 0.5]
    (oracle,) = [a for a in plan_arms(full) if a.group == "diagnostic"]
    assert oracle.retrieval and oracle.retrieval_settings == {"exemplar": "oracle"}
    args = arm_args(full, oracle, 1, Path("store"), {"cache": Path("c"), "ckpt": Path("k"), "dictionary": Path("d")})
    settings = json.loads(next(a for a in args if a.startswith("--model.init_args.retrieval_settings="))
                          .split("=", 1)[1])
    assert settings["exemplar"] == "oracle" and settings["dictionary"] == "d"
    assert "retrieval-oracle" not in [a.name for a in plan_arms(plan_config("full", "/tmp/unused", oracle_arm=False))]
    only = plan_config("full", "/tmp/unused", groups=("retrieval",))
    assert [a.name for a in plan_arms(only)] == ["base", "retrieval"]
    with pytest.raises(ValueError, match="unknown arm groups"):
        plan_config("full", "/tmp/unused", groups=("speed",))
    tokenizer = {"cache": Path("c"), "ckpt": Path("k"), "dictionary": Path("d"), "pretrained": Path("p.ckpt")}
    assert "--model.init_args.init_ckpt=p.ckpt" in arm_args(full, plan_arms(full)[0], 1, Path("store"), tokenizer)


def test_verdicts_follow_the_numbers():
    c = {"change": -0.2, "low": -0.3, "high": -0.1, "n": 50}
    flat = {"change": 0.0, "low": -0.01, "high": 0.01, "n": 50}
    table = {"all": c, "asl": c, "csl": flat, "dgs": c}
    summary = {"retrieval": {"dtw_jpe": {"retrieval": table, "random": {"all": flat}, "oracle": {"all": c},
                                         "plain": {"all": flat}}}}
    rows = {r["claim"]: r["verdict"] for r in verdicts(summary)}
    assert rows["retrieval lowers DTW-JPE (asl)"] == "reproduced"
    assert rows["retrieval lowers DTW-JPE (csl)"] == "not reproduced"
    assert rows["random codes of the same length do not help (content matters)"] == "reproduced"


def test_slrtp_table_pools_the_model_samples_beside_the_baselines(tmp_path):
    # per-sample sums: error sum, error count, wrist path lengths (pred l, r; gt l, r), length ratio
    a = {"lang": "asl", "slrtp": [2.0, 100, 1.0, 1.0, 2.0, 2.0, 1.0]}
    b = {"lang": "dgs", "slrtp": [6.0, 100, 3.0, 1.0, 2.0, 4.0, 0.5]}
    gt = {"asl": {"slrtp_dtw_mje": 0.0, "wrist_distance_ratio": 1.0, "duration_ratio": 1.0}}
    table = slrtp_table([{"samples": [a, b]}], {"slrtp": {"ground_truth": gt}})
    assert list(table) == ["model", "ground_truth"] and table["ground_truth"] == gt
    assert table["model"]["asl"] == {"slrtp_dtw_mje": 0.02, "wrist_distance_ratio": 0.5, "duration_ratio": 1.0}
    assert table["model"]["all"]["slrtp_dtw_mje"] == pytest.approx(0.04)  # 8 / 200, pooled
    assert table["model"]["all"]["wrist_distance_ratio"] == pytest.approx((4 / 4 + 2 / 6) / 2)
    assert table["model"]["all"]["duration_ratio"] == pytest.approx(0.75)
    assert slrtp_table([{"samples": [{"lang": "asl"}]}], {}) is None  # results without the sums
    md = write_markdown({"verdicts": [], "slrtp": table}, tmp_path / "claims.md").read_text()
    assert "## SLRTP protocol (base arm)" in md and "| model | all | 0.0400 | 0.6667 | 0.7500 |" in md


def test_covered_steps_copy_and_duration_tables(tmp_path):
    import numpy as np

    from soke_lightning.retrieval.matcher import Match, RetrievedEntry

    def entry(word):
        return RetrievedEntry(Match(word, "asl", 0, len(word)), np.zeros((2, 3), np.int64), 2)

    concept = {"owl": "OWL", "cat": "CAT", "emu": "EMU"}.get
    # 40 stored frames, 10 code steps of 4 frames: OWL spans frames 8..15 (steps 2, 3), CAT 24..39 (steps 6..9)
    covered = covered_steps([entry("owl"), entry("cat"), entry("emu")], lambda lang, w: concept(w),
                            ["DOG", "OWL", "CAT"], [[0, 8], [8, 16], [24, 40]], 40, 10, 4)
    assert covered.astype(int).tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 1, 1]  # EMU is not signed: covers nothing
    # copy counts per variant: [hits covered, covered, hits rest, rest]
    runs = [{"samples": [{"copy": {"plain": [2, 10, 5, 10], "oracle": [9, 10, 5, 10]}},
                         {"copy": {"plain": [3, 10, 5, 10], "oracle": [10, 10, 6, 10]}}]},
            {"samples": [{"copy": {"plain": [0, 0, 2, 4], "oracle": [0, 0, 2, 4]}}]}]
    table = copy_table(runs)
    assert table["oracle"] == {"covered": 0.95, "rest": 13 / 24, "covered_steps": 20}
    assert table["plain"]["covered"] == 0.25
    assert copy_table([{"samples": [{"scores": {}}]}]) == {}  # no retrieval: no table
    # durations: per variant [frames, stopped on its own]; an old record (frames only) counts as plain
    samples = [{"gt_frames": 100, "durations": {"plain": [100, True], "retrieval": [400, False]}},
               {"gt_frames": 50, "durations": {"plain": [75, True], "retrieval": [50, True]}}]
    durations = duration_table([{"samples": samples}])
    assert durations["plain"] == {"ratio": 1.25, "median": 1.25, "cut": 0.0, "n": 2}
    assert durations["retrieval"]["ratio"] == 2.5 and durations["retrieval"]["cut"] == 0.5
    assert duration_table([{"samples": [{"gt_frames": 80, "frames": 100}]}])["plain"]["cut"] is None
    md = write_markdown({"verdicts": [], "copying": {"retrieval-oracle": table},
                         "durations": {"retrieval": durations}}, tmp_path / "claims.md").read_text()
    assert "| retrieval-oracle | oracle | 95.0 % | 54.2 % | 20 |" in md
    assert "| retrieval | retrieval | 2.50 | 2.50 | 50.0 % |" in md


@pytest.mark.slow
def test_soke_claims_runs_the_tiny_plan_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "claims"
    argv = ["claims", "--plan", "tiny", "--out", str(out), "--seeds", "1", "--limit", "9"]
    assert soke_main(argv) == 0
    printed = capsys.readouterr().out
    assert "| claim | paper | ours | verdict |" in printed and "claims.md" in printed
    summary = json.loads((out / "claims.json").read_text())
    names = {r["claim"] for r in summary["verdicts"]}
    assert "retrieval lowers DTW-JPE (asl)" in names
    assert "multihead runs 1/3 of flattened's decoder steps" in names
    assert {"lambda", "codebook"} <= set(summary["sweeps"])
    assert summary["backtranslation"] is not None
    if plan_config("tiny", out).pretrain_epochs:  # every arm started from the shared denoising checkpoint
        pretrained = json.loads((out / "pretrain" / "base" / "done.json").read_text())["ckpt"]
        assert f"initialised the LM from {pretrained}" in (out / "runs" / "base" / "seed1" / "log.txt").read_text()
    decoding = summary["decoding"]
    assert decoding["flattened"]["steps_per_sample"] > decoding["multihead"]["steps_per_sample"]
    for variant in ("retrieval", "random", "oracle", "plain"):
        assert variant in summary["retrieval"]["dtw_jpe"]
    assert summary["durations"]["base"]["plain"]["cut"] is not None  # evaluated runs record where they stopped
    assert set(summary["durations"]["retrieval"]) == {"plain", "retrieval", "random", "oracle"}
    for table in summary["copying"].values():  # teacher-forced accuracies of the samples with an oracle prompt
        assert set(table) == {"plain", "retrieval", "oracle"}
        assert all(0 <= c["covered"] <= 1 for c in table.values() if c["covered"] is not None)
    markdown = (out / "claims.md").read_text()
    assert "## Decoding schemes" in markdown and "**(best)**" in markdown
    assert all((out / name).is_file() for name in ("retrieval.png", "lambda.png"))
    evals = sorted(out.glob("runs/*/seed*/eval.json"))
    assert len(evals) == len(plan_arms(plan_config("tiny", out)))
    stamps = [p.stat().st_mtime_ns for p in evals]
    assert soke_main(argv) == 0  # resumes: every run is done, nothing is trained or evaluated again
    assert [p.stat().st_mtime_ns for p in evals] == stamps
    # --reevaluate scores a run recorded by an older evaluation again from its checkpoint, and only that run
    old = out / "runs" / "retrieval" / "seed1" / "eval.json"
    record = json.loads(old.read_text())
    for s in record["samples"]:
        s.pop("copy", None), s.pop("durations", None)
    del record["eval_version"]
    old.write_text(json.dumps(record))
    others = [p for p in evals if p != old]
    stamps = [p.stat().st_mtime_ns for p in others]
    assert soke_main([*argv, "--reevaluate"]) == 0
    assert json.loads(old.read_text())["eval_version"] >= 2
    assert "durations" in json.loads(old.read_text())["samples"][0]
    assert [p.stat().st_mtime_ns for p in others] == stamps
    assert soke_main([*argv, "--reevaluate", "--report-only"]) == 2
    # another length cap: refused without --reevaluate (runs scored two ways are never mixed), then re-scored
    assert soke_main([*argv, "--length-cap", "1"]) == 2
    assert "--reevaluate" in capsys.readouterr().err
    assert soke_main([*argv, "--length-cap", "1", "--reevaluate"]) == 0
    assert all(json.loads(p.read_text())["length_cap"] == 1.0 for p in evals)
    assert "generation.length_cap = 1" in (out / "claims.md").read_text()
    # --report-only trains nothing and says what is missing
    removed = out / "runs" / "decoding-flattened" / "seed1" / "eval.json"
    removed.unlink()
    assert soke_main([*argv, "--report-only"]) == 0
    assert not removed.exists()
    partial = json.loads((out / "claims.json").read_text())
    assert partial["runs"]["finished"] == len(evals) - 1 and partial["runs"]["per_arm"]["decoding-flattened"] == 0
    assert "flattened" not in partial["decoding"]
    assert "Partial run: " in (out / "claims.md").read_text()


def test_report_only_refuses_a_folder_without_a_run(tmp_path, capsys):
    assert soke_main(["claims", "--plan", "tiny", "--out", str(tmp_path / "none"), "--report-only"]) == 2
    err = capsys.readouterr().err
    assert "not a claims run folder (no baselines.json)" in err


def test_config_paths_resolve_from_the_working_directory_or_the_checkout(tmp_path, monkeypatch):
    from soke_lightning.pipelines.claims import config_path

    monkeypatch.chdir(tmp_path)
    assert config_path("experiments/stage2/demo.yaml").is_file()  # found in the checkout
    (tmp_path / "mine.yaml").write_text("seed_everything: 1\n")
    assert config_path("mine.yaml") == tmp_path / "mine.yaml"
    with pytest.raises(ValueError, match="config nothere.yaml: no such file here or in"):
        config_path("nothere.yaml")
    assert plan_config("tiny", "rel").out == tmp_path / "rel"  # absolute: trainings run from the checkout


def _trainings_of(out: Path) -> list[int]:
    """PIDs of `soke fit` processes whose SOKE_OUT lies under ``out`` (Linux /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"soke_lightning.cli\x00fit" in (proc / "cmdline").read_bytes():
                env = (proc / "environ").read_bytes().split(b"\0")
                if any(e.startswith(b"SOKE_OUT=" + str(out).encode()) for e in env):
                    pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_terminating_a_claims_run_stops_its_trainings(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "claims"
    run = subprocess.Popen([sys.executable, "-m", "soke_lightning.cli", "claims", "--plan", "tiny", "--out", str(out),
                            "--seeds", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "WANDB_MODE": "disabled"})
    try:
        deadline = time.time() + 300
        while not _trainings_of(out) and time.time() < deadline and run.poll() is None:
            time.sleep(0.5)
        children = _trainings_of(out)
        assert children, "no training started within 5 minutes"
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 128 + signal.SIGTERM
        time.sleep(1)
        assert _trainings_of(out) == []  # nothing left running: no orphan writes into the run folder
        assert not list(out.glob("runs/*/seed*/eval.json"))  # a cut-off training is never evaluated
    finally:
        if run.poll() is None:
            run.kill()


def test_resuming_with_other_training_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "claims"
    out.mkdir()
    saved = {"stage2_epochs": 99, "workers": 7}  # no pretrain_epochs: a folder older than the field (0)
    (out / "config.json").write_text(json.dumps(saved))
    assert soke_main(["claims", "--plan", "tiny", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "stage2_epochs: 99 -> 1" in err and "pretrain_epochs: 0 -> 1" in err and "new --out" in err
    assert "workers" not in err and json.loads((out / "config.json").read_text()) == saved


def test_a_training_that_ends_while_the_run_stops_is_not_taken_as_finished(tmp_path, monkeypatch):
    """Lightning stops gracefully on SIGTERM: exit 0 and a last.ckpt of an unfinished schedule. Once the run is
    stopping, _fit refuses whatever the training left, so it is never evaluated."""
    import soke_lightning.pipelines.claims as claims

    class Finished:  # a training that exits 0 after writing its checkpoint
        def __init__(self, argv, cwd, env, stdout, stderr):
            (tmp_path / "run" / "last.ckpt").write_bytes(b"x")

        def wait(self, timeout=None):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(claims.subprocess, "Popen", Finished)
    assert claims._fit("experiments/stage2/debug.yaml", tmp_path / "run", tmp_path, []).name == "last.ckpt"
    claims._STOPPING.set()
    try:
        with pytest.raises(RuntimeError, match="stopped with the claims run"):
            claims._fit("experiments/stage2/debug.yaml", tmp_path / "run", tmp_path, [])
    finally:
        claims._STOPPING.clear()


def test_a_last_checkpoint_of_an_earlier_epoch_is_refused(tmp_path, monkeypatch):
    """Lightning saves a monitor-free checkpoint only after validation when check_val_every_n_epoch > 1, so a
    12-epoch run validated every 8 epochs left epoch 8's weights as last.ckpt; _fit checks the saved epoch."""
    import torch

    import soke_lightning.pipelines.claims as claims

    saved_epoch = {"value": 7}

    class Finished:  # a training that exits 0 after writing a checkpoint of some epoch
        def __init__(self, argv, cwd, env, stdout, stderr):
            torch.save({"epoch": saved_epoch["value"]}, tmp_path / "run" / "last.ckpt")

        def wait(self, timeout=None):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(claims.subprocess, "Popen", Finished)
    with pytest.raises(RuntimeError, match="holds epoch 7 .* trained 12 epochs.*save_on_train_epoch_end"):
        claims._fit("experiments/stage2/debug.yaml", tmp_path / "run", tmp_path, [], epochs=12)
    saved_epoch["value"] = 11
    assert claims._fit("experiments/stage2/debug.yaml", tmp_path / "run", tmp_path, [], epochs=12).name == "last.ckpt"


def test_every_last_checkpoint_config_saves_at_the_end_of_each_training_epoch():
    """The shipped configs' monitor-free ``last`` checkpoints must not depend on validation having run."""
    import yaml

    root = Path(__file__).resolve().parents[1] / "experiments"
    checked = 0
    for path in sorted(root.rglob("*.yaml")):
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        callbacks = ((config.get("trainer") or {}).get("callbacks") or []) if isinstance(config, dict) else []
        for cb in callbacks:
            args = cb.get("init_args") or {} if isinstance(cb, dict) else {}
            if str(cb.get("class_path", "")).endswith("ModelCheckpoint") and args.get("filename") == "last":
                checked += 1
                assert args.get("save_on_train_epoch_end") is True, f"{path}: last checkpoint without " \
                                                                    f"save_on_train_epoch_end: true"
    assert checked >= 5


def test_command_line_options_reach_the_claims_config():
    import argparse

    from soke_lightning.cli.claims import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--plan", "tiny", "--out", "/tmp/x", "--length-cap", "1.5", "--stage2-epochs", "3",
                              "--stage2-arg=--model.init_args.mbart.d_model=64", "--stage2-arg=--trainer.max_time=1"])
    cfg = config_from_args(args)
    assert cfg.length_cap == 1.5 and cfg.stage2_epochs == 3
    # the plan's own stage-2 arguments stay first; every stage-2 training (pretraining included) gets them
    assert cfg.stage2_args == (*PLANS["tiny"]["stage2_args"], "--model.init_args.mbart.d_model=64",
                               "--trainer.max_time=1")
    assert config_from_args(parser.parse_args(["--plan", "quick"])).length_cap == 0.0
    with pytest.raises(ValueError, match="length_cap must be >= 0"):
        config_from_args(parser.parse_args(["--length-cap", "-1"]))
