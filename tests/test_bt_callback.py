"""B-T BLEU in the LM stage's test by config: `soke test` of the stage-2 debug experiment with a
BackTranslationScorer added on the command line logs test/bt_{bleu1..4,rouge_l}/{lang,all}, equal to back-translating
the same generated motion outside the trainer; the judge stays out of the LM's state; step outputs carrying the motion
are used as they are; bad set-ups fail with the fix in the message."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from soke_lightning.callbacks.backtranslation import BackTranslationScorer
from soke_lightning.metrics.functional.bleu import SCORES
from test_stage2_lm import _cli, pipeline

ROOT = Path(__file__).resolve().parents[1]
SCORER = "soke_lightning.callbacks.backtranslation.BackTranslationScorer"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The stage-2 debug pipeline plus a back-translation debug judge fitted on the same tiny store."""
    run = pipeline(tmp_path_factory)
    out = tmp_path_factory.mktemp("bt_judge")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOKE_OUT", str(out))
        mp.setattr(sys, "argv", ["soke"])
        _cli(["fit", "--config", str(ROOT / "experiments/backtranslation/debug.yaml"),
              "--data", str(ROOT / "datamodules/synthsign.yaml"), "--data.init_args.stores", f"[{run['store']}]",
              "--data.init_args.batch_size", "8", "--trainer.max_epochs", "2"])
    judge = out / "backtranslation-debug" / "checkpoints" / "last.ckpt"
    assert judge.is_file()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOKE_OUT", str(run["root"] / "out"))
        mp.setattr(sys, "argv", ["soke"])
        test = _cli(["test", *run["stage2_args"], "--ckpt_path", str(run["ckpt"]),
                     f"--trainer.callbacks+={SCORER}", f"--trainer.callbacks.init_args.model_ckpt={judge}"])
    return {**run, "judge": judge, "bt_test": test}


def test_lm_test_logs_bt_scores_equal_to_offline_backtranslation(setup):
    from soke_lightning.models.backtranslation import BackTranslator
    from soke_lightning.pipelines.backtranslate import generate_records, read_store, score_records

    metrics = setup["bt_test"].trainer.callback_metrics
    for lang in ("asl", "csl", "dgs", "all"):
        for name in SCORES:
            key = f"test/bt_{name}/{lang}"
            assert key in metrics and 0.0 <= float(metrics[key]) <= 100.0, key
    assert float(metrics["test/bt_bleu1/all"]) > 0  # not all-zero scores: the comparison below means something
    assert "test/dtw_pa_jpe/all/avg" in metrics  # the LM stage's own metrics are still there
    # the same generated motion back-translated outside the trainer (same batch sizes as the debug test run)
    records = read_store(setup["store"], "test")
    generated = generate_records(setup["ckpt"], records, tokenizer=str(setup["stage1"]), batch_size=18)
    scores, samples = score_records(BackTranslator.from_checkpoint(setup["judge"]), generated, batch_size=18)
    assert {s["name"] for s in samples} == {r["name"] for r in records}
    for lang in ("asl", "csl", "dgs", "all"):
        for name in (*SCORES, "chrf", "wer"):  # the SLRTP chrF and WER too
            assert float(metrics[f"test/bt_{name}/{lang}"]) == pytest.approx(scores[lang][name], abs=1e-3), (lang,
                                                                                                            name)
    # the judge is not part of the LM: nothing of it in the stage-2 model's state
    model = setup["bt_test"].model
    assert not any("translator" in k or "judge" in k for k in model.state_dict())


class _NoGenerate(torch.nn.Module):
    """An LM stand-in whose generate must not be called (the step's outputs carry the motion)."""

    metric_languages = ["asl", "dgs"]
    device = torch.device("cpu")

    def generate(self, prompts, langs):
        raise AssertionError("generate called although the step returned the motion")


def test_step_outputs_with_motion_are_used_as_they_are(setup):
    scorer = BackTranslationScorer(model_ckpt=str(setup["judge"]))
    module = _NoGenerate()
    scorer.setup(None, module, "test")
    scorer.on_test_epoch_start(None, module)
    norm = scorer.translator.normalizer
    feats = norm.mean.expand(2, 40, -1).clone()  # the judge's mean pose, denormalised
    batch = SimpleNamespace(text=["a b", "c d"], lang=["asl", "dgs"], prompt=None)
    hyps = scorer.score_batch("test", module, {"features": feats, "lengths": torch.tensor([40, 24])}, batch)
    assert len(hyps) == 2 and all(isinstance(h, str) for h in hyps)
    assert set(scorer.scores["test"].compute()) == {"asl", "dgs"}


def test_bad_setups_fail_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="stages must be"):
        BackTranslationScorer(model_ckpt="x.ckpt", stages=["train"])
    scorer = BackTranslationScorer(model_ckpt=str(tmp_path / "missing.ckpt"))
    with pytest.raises(FileNotFoundError, match="make train-backtranslation"):
        _ = scorer.translator
    with pytest.raises(TypeError, match="generate"):
        scorer.setup(None, torch.nn.Linear(1, 1), "test")
