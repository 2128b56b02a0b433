"""Back-translation: sum-state BLEU/ROUGE equals the reference scorer, the model learns a tiny corpus and decodes it
greedily, the debug experiment trains through `soke fit` into a checkpoint that `BackTranslator.from_checkpoint` and
`soke backtranslate` (store, PredictionWriter folder, mean pose) read."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from soke_lightning.core.layout import RAW_DIM, RAW_SLICES
from soke_lightning.data.normalization import STATS_FILE, compute_stats, save_stats
from soke_lightning.data.store import Sample, StoreWriter, open_store
from soke_lightning.metrics.bleu import BleuRougeStats
from soke_lightning.metrics.functional.bleu import bleu_rouge
from soke_lightning.models.backtranslation import BackTranslationConfig, BackTranslationModel, BackTranslator

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = {"asl": ["the bird cries", "my friend eats bread"], "csl": ["我 爱 你", "今天 下雨"],
             "dgs": ["der hund schläft", "ich trinke wasser"]}


def test_bleu_rouge_stats_equal_reference_scorer():
    hyps = {"asl": ["the bird cries loudly", "my friend eats", "a cat"],
            "csl": ["我爱你们", "今天下雨了", "好"],
            "dgs": ["der hund schläft", "ich trinke", "wasser ich trinke"]}
    refs = {"asl": ["the bird cries", "my friend eats bread", "the cat sleeps"],
            "csl": ["我 爱 你", "今天 下雨", "你好"],
            "dgs": ["der hund schläft", "ich trinke wasser", "ich trinke wasser"]}
    metric = BleuRougeStats(["asl", "csl", "dgs"])
    for k in range(3):  # three updates with one sentence of each language, in mixed order
        langs = ["dgs", "asl", "csl"]
        metric.update([hyps[lang][k] for lang in langs], [refs[lang][k] for lang in langs], langs)
    got = metric.compute()
    for lang in hyps:
        want = bleu_rouge(hyps[lang], refs[lang], lang)
        for key, value in want.items():
            assert got[lang][key] == pytest.approx(value, abs=1e-6), (lang, key)
    assert 0 < got["asl"]["bleu1"] < 100 and got["dgs"]["bleu4"] > 0


def _motion(seed: int, t: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    phase, freq = torch.rand(133, generator=g) * 6.28, 0.05 + 0.2 * torch.rand(133, generator=g)
    return torch.sin(torch.arange(t)[:, None] * freq + phase)


def test_model_overfits_four_pairs_and_greedy_decodes_them():
    torch.manual_seed(0)
    vocab, pad, eos = 12, 1, 2
    cfg = BackTranslationConfig(vocab_size=vocab, pad_id=pad, eos_id=eos, d_model=32, encoder_layers=1,
                                decoder_layers=1, heads=2, ffn_dim=64, dropout=0.0, downsample=4, max_text_length=8)
    model = BackTranslationModel(cfg)
    targets = [[4, 5, 6], [7, 8], [9, 4, 10, 11], [5]]
    lengths = torch.tensor([48, 40, 64, 52])
    feats = torch.zeros(4, 64, 133)
    for i, t in enumerate(lengths.tolist()):
        feats[i, :t] = _motion(i, t)
    start = torch.full((4,), 3)
    width = max(map(len, targets)) + 1
    inp = torch.full((4, width), pad)
    lab = torch.full((4, width), -100)
    for i, row in enumerate(targets):
        inp[i, : len(row) + 1] = torch.tensor([3, *row])
        lab[i, : len(row) + 1] = torch.tensor([*row, eos])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    first = None
    for _ in range(150):
        loss = F.cross_entropy(model(feats, lengths, inp).flatten(0, 1), lab.flatten(), ignore_index=-100)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert float(loss) < 0.05 * first
    assert model.greedy(feats, lengths, start) == targets
    # padding beyond a sequence's length does not change its translation
    noisy = feats.clone()
    noisy[1, 40:] = 5.0
    assert model.greedy(noisy, lengths, start)[1] == targets[1]


def make_store(root: Path, per_split: dict[str, int] | None = None) -> Path:
    """A tiny store: each sentence has its own smooth motion pattern (same pattern in every split)."""
    per_split = per_split or {"train": 4, "val": 2, "test": 2}
    moving = np.r_[36:159, 169:179]
    writer = StoreWriter(root, {"corpus": "bt-test"})
    for split, n in per_split.items():
        with writer.split(split) as out:
            for li, (lang, sentences) in enumerate(SENTENCES.items()):
                for i in range(n):
                    k = i % len(sentences)
                    rng = np.random.default_rng(10 * li + k)
                    t = 40 + 8 * k + 4 * (i // len(sentences))
                    phase, freq = rng.uniform(0, 6.28, moving.size), rng.uniform(0.02, 0.15, moving.size)
                    frames = np.zeros((t, RAW_DIM), np.float32)
                    frames[:, moving] = 0.3 * np.sin(np.arange(t)[:, None] * freq * 6.28 + phase)
                    frames[:, RAW_SLICES["smplx_shape"]] = 0.1
                    out.add(Sample(f"{lang}_{split}_{i}", sentences[k], lang, "synthsign", frames, 25.0))
    mean, std, count = compute_stats(s.frames for s in open_store(root).split("train"))
    save_stats(root / STATS_FILE, mean, std, count, "bt test store")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(store, checkpoint) of the debug experiment fitted for a few steps through the `soke fit` CLI."""
    from soke_lightning.cli.lightning import SokeCLI

    tmp = tmp_path_factory.mktemp("bt")
    store = make_store(tmp / "store")
    mp = pytest.MonkeyPatch()
    mp.setenv("SOKE_OUT", str(tmp / "out"))
    try:
        cli = SokeCLI(args=["fit", "--config", str(ROOT / "experiments/backtranslation/debug.yaml"),
                            "--data", str(ROOT / "datamodules/synthsign.yaml"),
                            "--data.init_args.stores", f"[{store}]", "--data.init_args.batch_size", "6",
                            "--trainer.max_epochs", "3"], run=True)
    finally:
        mp.undo()
    metrics = cli.trainer.callback_metrics
    return store, tmp / "out" / "backtranslation-debug" / "checkpoints" / "last.ckpt", metrics


def test_debug_fit_logs_bleu_and_checkpoint_rebuilds_translator(trained):
    store, ckpt, metrics = trained
    for key in ("val/bleu4", "val/asl/bleu4", "val/csl/bleu4", "val/dgs/bleu4", "val/loss"):
        assert key in metrics and torch.isfinite(metrics[key]), key
    translator = BackTranslator.from_checkpoint(ckpt)
    stats = torch.load(store / STATS_FILE)
    assert torch.allclose(translator.normalizer.mean[:30], stats["mean"][36:66])
    assert translator.model.config.d_model == 32
    assert translator.text_tokenizer.token_id("zh_CN") == int(translator.start_ids(["csl"])[0])
    frames = open_store(store).split("test")[0].frames
    texts = translator.translate_raw([frames, frames[:44]], ["asl", "dgs"])
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    with pytest.raises(ValueError, match=r"\[B, T, 133\]"):
        translator.translate(torch.zeros(1, 10, 179), torch.tensor([10]), ["asl"])


def test_from_checkpoint_refuses_other_checkpoints(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "soke_tokenizer": {}}, path)
    with pytest.raises(KeyError, match="not a back-translation checkpoint"):
        BackTranslator.from_checkpoint(path)


def test_backtranslate_tool_store_predictions_and_mean_pose(trained, tmp_path, capsys):
    from soke_lightning.callbacks.prediction_writer import MotionPrediction, PredictionWriter
    from soke_lightning.cli import backtranslate as backtranslate_cli

    store, ckpt, _ = trained
    split = open_store(store).split("test")
    writer = PredictionWriter(out_dir=tmp_path / "pred", formats=["npz"])
    writer._written, writer._skipped, writer._rank = {}, 0, 0
    writer.out_dir.mkdir(parents=True)
    writer.write([MotionPrediction(name=f"synthsign/{s.name}", text=s.text, lang=s.lang, raw=s.frames, fps=25.0)
                  for s in (split[i] for i in range(len(split)))])
    parser = argparse.ArgumentParser()
    backtranslate_cli.add_arguments(parser)
    out_json = tmp_path / "bt.json"
    args = parser.parse_args(["--model", str(ckpt), "--store", str(store), "--predictions", str(tmp_path / "pred"),
                              "--mean-pose", "--json", str(out_json)])
    assert backtranslate_cli.run(args) == 0
    printed = capsys.readouterr().out
    assert "ground_truth" in printed and "mean_pose" in printed and "predictions" in printed
    result = json.loads(out_json.read_text())
    assert set(result["sources"]) == {"ground_truth", "predictions", "mean_pose"}
    for source in result["sources"].values():
        assert set(source) == {"asl", "csl", "dgs", "all"}
        assert set(source["asl"]) == {"bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "chrf", "wer"}
    assert "SLRTP protocol" in printed
    slrtp = result["slrtp"]
    assert set(slrtp) == {"ground_truth", "predictions", "mean_pose"}
    for lang in ("asl", "csl", "dgs", "all"):
        assert slrtp["ground_truth"][lang] == {"slrtp_dtw_mje": 0.0, "wrist_distance_ratio": 1.0,
                                               "duration_ratio": 1.0}
        assert slrtp["mean_pose"][lang]["wrist_distance_ratio"] == 0.0
        assert slrtp["mean_pose"][lang]["duration_ratio"] == 1.0
        # the predictions are the uncropped ground truth: at least as long, close in space
        assert slrtp["predictions"][lang]["duration_ratio"] >= 1.0
        assert slrtp["predictions"][lang]["slrtp_dtw_mje"] < slrtp["mean_pose"][lang]["slrtp_dtw_mje"]
    # --dictionary needs a dictionary split: a one-line error, no traceback
    args = parser.parse_args(["--model", str(ckpt), "--store", str(store), "--dictionary"])
    assert backtranslate_cli.run(args) == 2
    assert "dictionary" in capsys.readouterr().err
    # the predictions are the ground-truth frames (uncropped): same sentences, same references
    assert [s["text"] for s in result["samples"]["predictions"]] == [s["text"] for s in result["samples"]["ground_truth"]]
    # ... so they must score exactly as the ground truth does
    assert result["sources"]["predictions"] == result["sources"]["ground_truth"]
    assert len(result["samples"]["mean_pose"]) == len(split)


def test_backtranslate_tool_names_a_missing_index(tmp_path):
    from soke_lightning.pipelines.backtranslate import read_predictions

    with pytest.raises(FileNotFoundError, match="index.rank"):
        read_predictions(tmp_path)


def _stage(**kw):
    """A BackTranslationStage with a tiny network for SENTENCES' tokenizer (built without a trainer)."""
    from soke_lightning.models.backtranslation import CHECKPOINT_FORMAT, BackTranslationArchitecture
    from soke_lightning.models.text_tokenizer import TextTokenizer, tokenizer_files
    from soke_lightning.training.backtranslation import BackTranslationStage

    architecture = BackTranslationArchitecture(d_model=32, encoder_layers=1, decoder_layers=1, heads=2, ffn_dim=64,
                                               dropout=0.0, downsample=4, max_text_length=24, no_repeat_ngram_size=3)
    stage = BackTranslationStage(architecture=architecture, **kw)
    texts = [t for sentences in SENTENCES.values() for t in sentences]
    tok = TextTokenizer.train(texts, vocab_size=120)
    stage._install({"format": CHECKPOINT_FORMAT, "model": stage.model_kwargs(tok), "text_tokenizer": tokenizer_files(tok)})
    return stage


def _batch(lengths):
    from soke_lightning.core.batch import SignBatch

    lengths = torch.tensor(lengths)
    poses = torch.zeros(len(lengths), int(lengths.max()), 133)
    for i, t in enumerate(lengths.tolist()):
        poses[i, :t] = _motion(i, t)
    langs = ["asl", "csl", "dgs"][: len(lengths)]
    return SignBatch(poses=poses, lengths=lengths, mask=poses[..., 0] != 0, text=[SENTENCES[x][0] for x in langs],
                     lang=langs, name=langs, corpus=["synthsign"] * len(langs))


def test_time_stretch_resamples_each_motion_and_noise_perturbs_it():
    torch.manual_seed(0)
    batch = _batch([40, 64, 52])
    stretched, lengths = _stage(time_stretch=0.25).augment(batch.poses, batch.lengths)
    ratios = lengths.float() / batch.lengths.float()
    assert ((ratios >= 0.75 - 0.02) & (ratios <= 1.25 + 0.02)).all() and not torch.equal(lengths, batch.lengths)
    assert stretched.shape[1] == int(lengths.max())
    for i, n in enumerate(lengths.tolist()):
        # resampling keeps the end points of every motion and leaves the padding at zero
        assert torch.allclose(stretched[i, 0], batch.poses[i, 0], atol=1e-6)
        assert torch.allclose(stretched[i, n - 1], batch.poses[i, int(batch.lengths[i]) - 1], atol=1e-6)
        assert not stretched[i, n:].any()
    off_poses, off_lengths = _stage().augment(batch.poses, batch.lengths)
    assert off_poses is batch.poses and off_lengths is batch.lengths
    noisy, same = _stage(feature_noise=0.1).augment(batch.poses, batch.lengths)
    assert torch.equal(same, batch.lengths) and 0.05 < float((noisy - batch.poses).std()) < 0.2


def test_bag_of_words_loss_trains_the_encoder_on_the_sentence_tokens():
    torch.manual_seed(0)
    stage = _stage(bow_weight=1.0)
    batch = _batch([40, 64, 52])
    ce, bow = stage._loss(batch)
    assert bow is not None and torch.isfinite(bow) and bow > 0
    bow.backward()
    assert stage.translator.model.front[0].weight.grad.abs().sum() > 0  # reaches the motion front end
    assert stage.translator.model.decoder.layers[0].linear1.weight.grad is None  # not the decoder
    opt = torch.optim.Adam(stage.translator.parameters(), lr=3e-3)
    for _ in range(60):
        opt.zero_grad()
        ce, bow = stage._loss(batch)
        (ce + bow).backward()
        opt.step()
    # minimum of the bag loss: log(number of distinct tokens) per sentence (uniform over the sentence's tokens)
    inp, lab = stage.targets(batch.text, batch.lang)
    floor = np.mean([np.log(len(set(row[row >= 0].tolist()) - {2})) for row in lab])
    assert bow.item() < floor + 0.5
    assert _stage()._loss(batch)[1] is None


def test_ordering_needs_all_three_sources():
    from soke_lightning.pipelines.backtranslate import ordering

    def s(v):
        return {"asl": {"bleu4": v}, "csl": {"bleu4": v / 2}}

    assert ordering({"ground_truth": s(40), "generated": s(20), "mean_pose": s(1)}) == {"asl": True, "csl": True}
    assert ordering({"ground_truth": s(40), "predictions": s(50), "mean_pose": s(1)}) == {"asl": False, "csl": False}
    assert ordering({"ground_truth": s(40), "mean_pose": s(1)}) is None


def test_greedy_decoding_never_repeats_an_ngram():
    from soke_lightning.models.backtranslation import ban_repeats

    logits = torch.zeros(2, 10)
    tokens = torch.tensor([[3, 5, 6, 5], [3, 7, 8, 9]])
    banned = ban_repeats(logits, tokens, 2)  # row 0 ends with 5, and "5 6" occurred: 6 is banned
    assert torch.isinf(banned[0, 6]) and torch.isfinite(banned[0]).sum() == 9 and torch.isfinite(banned[1]).all()
    assert torch.isinf(ban_repeats(logits, tokens, 1)[1, [3, 7, 8, 9]]).all()
    # a model that always prefers token 7, then token 8: it loops without the rule and stops repeating with it
    preference = torch.full((12,), -5.0)
    preference[7], preference[8], preference[2] = 3.0, 2.0, 1.0
    for n in (0, 2):
        cfg = BackTranslationConfig(vocab_size=12, d_model=16, encoder_layers=1, decoder_layers=1, heads=2,
                                    ffn_dim=32, dropout=0.0, max_text_length=10, no_repeat_ngram_size=n)
        model = BackTranslationModel(cfg).eval()
        model.decode = lambda tokens, memory, pad: preference.expand(tokens.shape[0], tokens.shape[1], -1)
        row = model.greedy(torch.zeros(1, 16, 133), torch.tensor([16]), torch.tensor([3]))[0]
        bigrams = list(zip([3, *row], row))
        if n == 0:
            assert row == [7] * 10
        else:
            assert len(bigrams) == len(set(bigrams)) and row[:2] == [7, 7] and len(row) < 10
