"""Denoising pretraining of the stage-2 LM (objective: denoise) and starting a run from it (init_ckpt): the span
masking, the prompts, weights carried over by token, and the errors for a checkpoint that does not fit."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from soke_lightning.models.denoise import (
    DenoiseSettings,
    denoise_prompts,
    eval_rng,
    mask_spans,
    noised_motion_string,
    permuted_segments,
    transfer_weights,
)
from soke_lightning.models.text_tokenizer import MASK_TOKEN, motion_string
from test_stage2_lm import _cli, pipeline


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return pipeline(tmp_path_factory)


def test_mask_spans_cover_about_the_ratio_and_never_everything():
    rng = np.random.default_rng(0)
    settings = DenoiseSettings(mask_ratio=0.35, mean_span=3.5)
    for length in (1, 2, 5, 40, 100):
        spans = mask_spans(length, settings, rng)
        covered = sum(e - s for s, e in spans)
        assert covered == min(int(round(0.35 * length)), length - 1)
        assert all(0 <= s < e <= length for s, e in spans)
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))  # disjoint, sorted, separated


def test_noised_string_keeps_visible_codes_in_order_and_one_mask_per_span():
    codes = torch.arange(30).reshape(10, 3)
    parts = ("body", "lhand", "rhand")
    rng = np.random.default_rng(3)
    text = noised_motion_string(codes, parts, DenoiseSettings(mask_ratio=0.4), np.random.default_rng(3))
    spans = mask_spans(10, DenoiseSettings(mask_ratio=0.4), rng)
    assert text.count(MASK_TOKEN) == len(spans) >= 1
    keep = [i for i in range(10) if not any(s <= i < e for s, e in spans)]
    assert text.replace(MASK_TOKEN, "") == motion_string(codes[keep], parts)
    assert noised_motion_string(codes, parts, DenoiseSettings(mask_ratio=0.0), rng) == motion_string(codes, parts)
    capped = noised_motion_string(codes, parts, DenoiseSettings(mask_ratio=0.0, max_steps=4), rng)
    assert capped == motion_string(codes[:4], parts)


def test_segment_permutation_shuffles_whole_segments_after_separators():
    settings = DenoiseSettings(mask_ratio=0.0, segment_steps=5)
    rng = np.random.default_rng(0)
    for units in (1, 2, 9, 40):
        segments = permuted_segments(units, settings, rng)
        covered = sorted(i for a, b in segments for i in range(a, b))
        assert covered == list(range(units))  # every unit exactly once
        assert len(segments) == max(1, min(units, round(units / 5))) if units > 1 else len(segments) == 1
    orders = {tuple(permuted_segments(40, settings, np.random.default_rng(k))) for k in range(5)}
    assert len(orders) > 1 and any(list(o) != sorted(o) for o in orders)  # the order is random
    assert permuted_segments(40, DenoiseSettings(), rng) == [(0, 40)]  # off by default

    codes = torch.arange(60).reshape(20, 3)
    parts = ("body", "lhand", "rhand")
    text = noised_motion_string(codes, parts, settings, np.random.default_rng(1), "asl")
    pieces = text.split(" Key word ")[1:]
    assert len(pieces) == 4 and [p.split(",")[0] for p in pieces] == ["1", "2", "3", "4"]
    bodies = [p.split(", ", 1)[1] for p in pieces]
    # put back in time order, the segments are the whole sequence
    assert "".join(sorted(bodies, key=lambda b: int(b.split("_")[1].split(">")[0]))) == motion_string(codes, parts)
    masked = noised_motion_string(codes, parts, DenoiseSettings(mask_ratio=0.4, segment_steps=5),
                                  np.random.default_rng(2), "csl")
    assert MASK_TOKEN in masked and masked.count("<body_") == 12  # 8 of 20 steps masked
    with pytest.raises(ValueError, match="language"):
        noised_motion_string(codes, parts, settings, rng)
    with pytest.raises(ValueError, match="segment_steps"):
        DenoiseSettings(segment_steps=-1)
    prompts = denoise_prompts(codes[None], torch.tensor([20]), parts, settings, np.random.default_rng(1), ["asl"])
    assert prompts == [text]


def test_eval_prompts_are_fixed_by_the_batch():
    codes = torch.randint(0, 9, (3, 12, 3), generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([12, 7, 2])
    parts = ("body", "lhand", "rhand")
    first = denoise_prompts(codes, lengths, parts, DenoiseSettings(), eval_rng(["a", "b", "c"]))
    assert first == denoise_prompts(codes, lengths, parts, DenoiseSettings(), eval_rng(["a", "b", "c"]))
    assert len(first) == 3 and first[2].count(MASK_TOKEN) == 1 and first[2].count("<") == 4  # 2 steps, 1 masked


def test_settings_and_objective_are_checked(run):
    from soke_lightning.training.lm_stage import LMStage

    with pytest.raises(ValueError, match="mask_ratio"):
        DenoiseSettings(mask_ratio=1.0)
    common = dict(tokenizer_ckpt=str(run["stage1"]), mbart={"d_model": 16})
    with pytest.raises(ValueError, match="objective"):
        LMStage(**common, objective="copy")
    with pytest.raises(ValueError, match="valid keys"):
        LMStage(**common, objective="denoise", denoise_settings={"ratio": 0.3})
    with pytest.raises(ValueError, match="retrieval must be false"):
        LMStage(**common, objective="denoise", retrieval=True)


def test_transfer_weights_matches_rows_by_token_and_grows_positions():
    target = {"shared.weight": torch.zeros(4, 2), "embed_positions.weight": torch.zeros(5, 2),
              "fc.weight": torch.zeros(2, 2), "final_logits_bias": torch.zeros(1, 4)}
    source = {"shared.weight": torch.tensor([[1.0, 1], [2, 2], [3, 3]]), "embed_positions.weight": torch.ones(3, 2),
              "fc.weight": torch.full((2, 2), 7.0), "final_logits_bias": torch.tensor([[0.1, 0.2, 0.3]])}
    state, report = transfer_weights(target, source, "src.ckpt", {"a": 0, "new": 1, "b": 2, "c": 3},
                                     {"a": 0, "b": 1, "c": 2})
    assert state["shared.weight"].tolist() == [[1, 1], [0, 0], [2, 2], [3, 3]]
    assert state["final_logits_bias"][0].tolist() == pytest.approx([0.1, 0, 0.2, 0.3])
    assert state["embed_positions.weight"][:3].eq(1).all() and state["embed_positions.weight"][3:].eq(0).all()
    assert state["fc.weight"].eq(7).all()
    assert report == {"shared_tokens": 3, "new_tokens": 1, "resized": ["embed_positions.weight (3, 2) -> (5, 2)"]}
    with pytest.raises(ValueError, match="fc.weight.*shape"):
        transfer_weights({**target, "fc.weight": torch.zeros(3, 2)}, source, "src.ckpt",
                         {"a": 0, "new": 1, "b": 2, "c": 3}, {"a": 0, "b": 1, "c": 2})
    with pytest.raises(ValueError, match="no tensor 'extra'"):
        transfer_weights({**target, "extra": torch.zeros(1)}, source, "src.ckpt",
                         {"a": 0, "new": 1, "b": 2, "c": 3}, {"a": 0, "b": 1, "c": 2})


def test_denoise_pretraining_then_init_ckpt(run, tmp_path, monkeypatch):
    """A denoise fit trains on masked codes; a translate fit started from it begins with its
    weights (parallel decoding: the part start tags are new rows), and a mismatched checkpoint is refused."""
    from soke_lightning.core.errors import SokeError
    from soke_lightning.training.lm_stage import LMStage

    monkeypatch.setenv("SOKE_OUT", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["soke"])
    args = [a for a in run["stage2_args"]]
    pre = _cli(["fit", *args, "--model.init_args.objective=denoise", "--trainer.max_epochs=3",
                '--model.init_args.denoise_settings={"segment_steps": 3}',  # permuted segments, per-sample language
                "--trainer.default_root_dir", str(tmp_path / "pre")])
    losses = [float(v) for k, v in pre.trainer.logged_metrics.items() if k == "train/loss"]
    assert losses and np.isfinite(losses).all()
    pre_ckpt = tmp_path / "stage2-debug" / "checkpoints" / "last.ckpt"
    assert pre_ckpt.is_file()
    pretrained = LMStage.from_checkpoint(pre_ckpt)
    assert pretrained.hparams.objective == "denoise"
    assert pretrained.denoise_settings.segment_steps == 3

    fine = _cli(["fit", *args, f"--model.init_args.init_ckpt={pre_ckpt}", "--model.init_args.decoding=parallel",
                 "--trainer.max_epochs=1", "--trainer.limit_train_batches=0", "--trainer.limit_val_batches=0"])
    lm, src = fine.model.lm, pretrained.lm
    vocab, src_vocab = fine.model.text_tokenizer.hf.get_vocab(), pretrained.text_tokenizer.hf.get_vocab()
    assert len(vocab) > len(src_vocab)  # the parallel scheme's part start tags
    table, src_table = lm.mbart.get_input_embeddings().weight, src.mbart.get_input_embeddings().weight
    for token in ("<body_3>", "<rhand_1>", "</s>"):
        assert torch.equal(table[vocab[token]], src_table[src_vocab[token]])
    name = "mbart.model.decoder.layers.0.fc1.weight"
    assert torch.equal(lm.state_dict()[name], src.state_dict()[name])

    bad = ["fit", *args, f"--model.init_args.init_ckpt={pre_ckpt}", "--model.init_args.mbart.d_model=24",
           "--trainer.max_epochs=1", "--trainer.limit_train_batches=0", "--trainer.limit_val_batches=0"]
    with pytest.raises(SokeError, match="shape"):
        _cli(bad)
    with pytest.raises(SokeError, match="does not exist|not"):
        _cli(["fit", *args, f"--model.init_args.init_ckpt={tmp_path / 'none.ckpt'}", "--trainer.max_epochs=1"])
