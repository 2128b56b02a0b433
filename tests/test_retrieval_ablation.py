"""scripts/retrieval_ablation.py on the tiny SynthSign debug pipeline (tests/test_stage2_lm.py): its per-sample
DTW-JPE / DTW-PA-JPE averaged per language equal `soke test`'s numbers for the same checkpoint, retrieval off
(the pipeline's checkpoint) and on (a short retrieval-switch fit); the on-prompts are exactly the
RetrievalCallback's; groups partition the split; the length / prompt diagnostics agree with the samples; the
command prints the table, writes the JSON and refuses bad input with a clear message."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from soke_lightning.callbacks.retrieval import RetrievalCallback

ROOT = Path(__file__).resolve().parents[1]
LANGS = ("asl", "csl", "dgs")
PARTS = ("body", "lhand", "rhand", "hand", "avg")
VARIANTS = ("dtw_jpe", "dtw_pa_jpe")


def _script():
    spec = importlib.util.spec_from_file_location("retrieval_ablation", ROOT / "scripts" / "retrieval_ablation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ablation = _script()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The pipeline's retrieval-off checkpoint and test metrics, and a retrieval-on fit (1 epoch of 2 batches of
    the debug config) with its checkpoint, test metrics and callback."""
    from soke_lightning.cli.lightning import SokeCLI
    from test_stage2_lm import pipeline

    run = pipeline(tmp_path_factory)
    root = tmp_path_factory.mktemp("ablation")
    args = ["--config", str(ROOT / "experiments/stage2/debug.yaml"), "--data", str(ROOT / "datamodules/synthsign.yaml"),
            f"--data.init_args.stores=[{run['store']}]", "--data.init_args.batch_size=8",
            "--data.init_args.eval_batch_size=18", f"--data.init_args.token_cache={run['cache']}",
            f"--model.init_args.tokenizer_ckpt={run['stage1']}", "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=0", f"--trainer.default_root_dir={root}",
            "--trainer.callbacks=[]", "--trainer.enable_checkpointing=false", "--model.init_args.retrieval=True",
            f"--model.init_args.retrieval_settings={{dictionary: {root / 'dict.json'}}}"]
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.setattr(sys, "argv", ["soke"])
        cli = SokeCLI(args=args, run=False)
        cli.trainer.fit(cli.model, cli.datamodule)
        on_ckpt = root / "on.ckpt"
        cli.trainer.save_checkpoint(on_ckpt)
        cli.trainer.test(cli.model, cli.datamodule, verbose=False)
    callback = next(c for c in cli.trainer.callbacks if isinstance(c, RetrievalCallback))
    off_metrics = {k: float(v) for k, v in run["test"].trainer.callback_metrics.items()}
    on_metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    return dict(run=run, on_ckpt=on_ckpt, off_metrics=off_metrics, on_metrics=on_metrics, callback=callback,
                dictionary=root / "dict.json", root=root)


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation_out") / "report.json"
    argv = ["--off", str(runs["run"]["ckpt"]), "--on", str(runs["on_ckpt"]), "--store", str(runs["run"]["store"]),
            "--rare-max", "1", "--json", str(out)]
    assert ablation.main(argv) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("side", ["off", "on"])
def test_per_sample_means_equal_the_stage_test_numbers(report, runs, side):
    expected = runs[f"{side}_metrics"]
    got = report["metrics"][side]["all"]
    samples = [s[side] for s in report["samples"]]
    for lang in (*LANGS, "all"):
        for variant in VARIANTS:
            for part in PARTS:
                key = f"test/{variant}/{lang}/{part}"
                assert got[lang][variant][part] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
    # the same means straight from the per-sample rows of the JSON
    for lang in LANGS:
        rows = [s for s in samples if s["lang"] == lang]
        mean = sum(r["scores"]["dtw_pa_jpe"]["avg"] for r in rows) / len(rows)
        assert mean == pytest.approx(expected[f"test/dtw_pa_jpe/{lang}/avg"], rel=1e-5)
    # logged per batch with batch_size weights = the mean over samples
    assert expected["test/frames_per_sample"] == pytest.approx(sum(s["gen_frames"] for s in samples) / len(samples),
                                                               rel=1e-5)


def test_on_prompts_are_the_callbacks_and_off_prompts_are_plain(report, runs):
    from soke_lightning.training.lm_stage import LMStage

    stage = LMStage.from_checkpoint(runs["on_ckpt"])
    cb = runs["callback"]
    on = report["sides"]["on"]["retrieval"]
    assert on["dictionary"] == str(runs["dictionary"].resolve()) and on["settings"] == cb.settings()
    assert on["recorded"]["digest"] == on["digest"]
    from soke_lightning.retrieval import SignDictionary

    sign_dict = SignDictionary.load(runs["dictionary"])
    texts = [s["text"] for s in report["samples"]]
    langs = [s["on"]["lang"] for s in report["samples"]]
    built = ablation.retrieval_prompts(stage, sign_dict, on["settings"], texts, langs)
    for (prompt, kept, _), text, lang, sample in zip(built, texts, langs, report["samples"]):
        assert prompt == cb.prompt(text, lang)
        assert [e.word for e in kept] == sample["on"]["entries"]
        assert sample["on"]["prompt_tokens"] == stage.text_tokenizer.count_tokens(prompt) + 2
        assert sample["off"]["entries"] == [] and sample["off"]["prompt_tokens"] == \
            stage.text_tokenizer.count_tokens(text) + 2
    assert sum(bool(s["on"]["entries"]) for s in report["samples"]) >= len(texts) // 2


def test_groups_partition_the_split_and_follow_the_training_counts(report, runs):
    from collections import Counter

    from soke_lightning.data.store import open_store

    store = open_store(runs["run"]["store"])
    counts = {lang: Counter() for lang in LANGS}
    for r in store.split("train").records:
        counts[r["lang"]].update(set(r["meta"]["concepts"]))
    groups = {g: {s["name"] for s in report["samples"] if g in s["groups"]} for g in ablation.GROUPS}
    assert len(groups["all"]) == len(report["samples"]) == len(store.split("test"))
    assert groups["rare"] | groups["common"] == groups["all"] and not groups["rare"] & groups["common"]
    assert groups["rare_hit"] | groups["rare_miss"] == groups["rare"] and not groups["rare_hit"] & groups["rare_miss"]
    assert groups["rare"] and groups["common"], "the tiny preset should have both rare and common sentences"
    for s in report["samples"]:
        lang = s["on"]["lang"]
        assert s["rare"] == [c for c in s["concepts"] if counts[lang][c] <= 1]
        assert set(s["rare_hit"]) <= set(s["rare"])
    for side in ("off", "on"):
        for group in ("rare", "common"):
            assert report["metrics"][side][group]["n"]["all"] == len(groups[group])
    if groups["rare"] and groups["common"]:
        assert "rare" in report["change"] and "asl" in report["change"]["all"]


def test_diagnostics_agree_with_the_samples(report):
    samples = report["samples"]
    n = len(samples)
    for side in ("off", "on"):
        d = report["diagnostics"][side]["all"]
        rows = [s[side] for s in samples]
        assert d["samples"] == n
        assert d["gen_minus_gt_frames"] == pytest.approx(sum(r["gen_frames"] - r["gt_frames"] for r in rows) / n)
        assert d["retrieved_steps_per_prompt"] == pytest.approx(sum(sum(r["entry_steps"]) for r in rows) / n)
        assert all(r["gen_frames"] % 4 == 0 and r["gen_frames"] >= 4 for r in rows)
        assert all(r["gt_frames"] % 4 == 0 and 40 <= r["gt_frames"] <= 400 for r in rows)
    assert report["diagnostics"]["off"]["all"]["entries_per_prompt"] == 0
    on = report["diagnostics"]["on"]["all"]
    assert on["entries_per_prompt"] > 0 and all(1 <= k <= 10 for s in samples for k in s["on"]["entry_steps"])
    assert on["rare_injected_sentences"] <= on["rare_hit_sentences"] <= on["rare_sentences"]
    corr = on["corr_len_error_vs_retrieved_steps"]
    errors = np.array([s["on"]["gen_frames"] - s["on"]["gt_frames"] for s in samples], float)
    steps = np.array([sum(s["on"]["entry_steps"]) for s in samples], float)
    if n < 3 or errors.std() == 0 or steps.std() == 0:
        assert corr is None  # undefined, and reported as such rather than as a number
    else:  # Pearson's r from its definition, over the per-sample rows of the same report
        ex, ey = errors - errors.mean(), steps - steps.mean()
        assert corr == pytest.approx(float((ex * ey).sum() / np.sqrt((ex ** 2).sum() * (ey ** 2).sum())), abs=1e-9)
    assert report["paired"]["all"]["pairs"] == n


def test_table_and_errors(runs, capsys, tmp_path):
    argv = ["--off", str(runs["run"]["ckpt"]), "--store", str(runs["run"]["store"]), "--limit", "3"]
    assert ablation.main(argv) == 0
    out = capsys.readouterr().out
    assert "dtw_pa_jpe" in out and "side off" in out and "gen-gt" in out
    assert ablation.main(["--store", str(runs["run"]["store"])]) == 2
    assert "give --off CKPT and/or --on CKPT" in capsys.readouterr().err
    assert ablation.main(["--on", str(runs["run"]["ckpt"]), "--store", str(runs["run"]["store"])]) == 2
    assert "no RetrievalCallback state" in capsys.readouterr().err
    assert ablation.main(["--off", str(tmp_path / "missing.ckpt"), "--store", str(runs["run"]["store"])]) == 2
    assert "missing.ckpt does not exist" in capsys.readouterr().err
