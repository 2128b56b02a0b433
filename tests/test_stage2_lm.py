"""Stage 2 end to end on a tiny SynthSign store (CPU, tiny random mBART): every stage-2 config instantiates;
stage-1 debug fit -> `soke encode` -> stage-2 debug fit + test through the `soke` LightningCLI with the metric keys;
the frozen tokenizer stays in eval mode, untouched and out of the stage-2 state_dict; contract errors name both
values; checkpoints rebuild through LMStage.from_checkpoint; decoding pads streams by repeating their last frame."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

from soke_lightning.data.datamodule import SignDataModule
from soke_lightning.data.token_cache import TokenCacheError
from soke_lightning.models.generation import GenerationResult
from soke_lightning.models.tokenizer import SignTokenizer, tokenizer_hash

ROOT = Path(__file__).resolve().parents[1]
#: Complete stage-2 experiments (overlays such as demo_retrieval.yaml have no model section; test_configs_parse
#: parses those on top of the base config).
CONFIGS = sorted(p for p in (ROOT / "experiments" / "stage2").glob("*.yaml") if "\nmodel:" in p.read_text())
SPLITS = ["train", "val", "test"]
_PIPELINE: dict = {}


def _cli(args, run=True):
    from soke_lightning.cli.lightning import SokeCLI

    return SokeCLI(args=args, run=run)


def pipeline(tmp_path_factory) -> dict:
    """Once per session: tiny SynthSign store -> stage-1 debug fit -> token cache -> stage-2 debug fit + test."""
    if _PIPELINE:
        return _PIPELINE
    from soke_lightning.cli import encode
    from soke_lightning.synthsign.generator import generate

    root = tmp_path_factory.mktemp("stage2")
    store = root / "tiny"
    generate(store, preset="tiny", seed=0)
    data = ["--data", str(ROOT / "datamodules/synthsign.yaml"), "--data.init_args.stores", f"[{store}]",
            "--data.init_args.batch_size", "8", "--data.init_args.eval_batch_size", "18"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOKE_OUT", str(root / "out"))
        mp.setattr(sys, "argv", ["soke"])
        _cli(["fit", "--config", str(ROOT / "experiments/stage1/debug.yaml"), *data, "--trainer.max_epochs", "1"])
        stage1 = root / "out" / "stage1-debug" / "checkpoints" / "last.ckpt"
        cache = root / "tokens"
        encode.run(argparse.Namespace(tokenizer=str(stage1), data=str(ROOT / "datamodules/synthsign.yaml"),
                                      out=str(cache), splits=SPLITS, set=[f"init_args.stores=[{store}]"],
                                      batch_size=16, device="cpu", preview=0, preview_out=None))
        stage2_args = ["--config", str(ROOT / "experiments/stage2/debug.yaml"), *data,
                       "--data.init_args.token_cache", str(cache), "--model.init_args.tokenizer_ckpt", str(stage1)]
        fit = _cli(["fit", *stage2_args])
        ckpt = root / "out" / "stage2-debug" / "checkpoints" / "last.ckpt"
        test = _cli(["test", *stage2_args, "--ckpt_path", str(ckpt)])
    _PIPELINE.update(store=store, stage1=stage1, cache=cache, ckpt=ckpt, fit=fit, test=test, root=root,
                     stage2_args=stage2_args)
    return _PIPELINE


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return pipeline(tmp_path_factory)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_stage2_config_instantiates(config, monkeypatch, tmp_path):
    monkeypatch.setenv("SOKE_OUT", str(tmp_path))
    monkeypatch.setenv("SOKE_SYNTHSIGN", str(tmp_path / "store"))
    monkeypatch.setenv("SOKE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("SOKE_MBART", str(tmp_path / "mbart-large-cc25"))
    monkeypatch.setattr(sys, "argv", ["soke"])
    extra = [] if "data:" in config.read_text() else ["--data", str(ROOT / "datamodules" / "synthsign.yaml")]
    cli = _cli(["--config", str(config), *extra, "--trainer.accelerator", "cpu", "--trainer.devices", "1",
                "--trainer.strategy", "auto"], run=False)
    assert type(cli.model).__name__ == "LMStage" and cli.model.lm is None  # built in setup, from the tokenizer
    hp = cli.model.hparams
    assert hp.decoding == "multihead"
    if config.stem == "soke":
        assert hp.lr == 2e-4 and tuple(hp.betas) == (0.9, 0.99) and hp.weight_decay == 0
        assert hp.min_lr == 1e-6 and hp.scheduler_interval == "epoch"
        assert hp.mbart == hp.text_tokenizer == str(tmp_path / "mbart-large-cc25")
        assert cli.model.generation_config.max_codes == 100 and not cli.model.generation_config.do_sample
        assert cli.trainer.max_epochs == 150


def test_debug_fit_and_test_log_dtw_per_language_and_part(run):
    metrics = run["test"].trainer.callback_metrics
    for lang in ("asl", "csl", "dgs", "all"):
        for variant in ("dtw_jpe", "dtw_pa_jpe"):
            for part in ("body", "lhand", "rhand", "hand", "avg"):
                key = f"test/{variant}/{lang}/{part}"
                assert key in metrics and torch.isfinite(metrics[key]) and metrics[key] > 0, key
    assert 1 <= float(metrics["test/steps_per_sample"]) <= 16 + 1  # debug max_codes = 16
    assert float(metrics["test/latency_ms_per_sample"]) > 0
    assert float(metrics["test/frames_per_sample"]) >= 4
    # the SLRTP protocol beside SOKE's DTW: per language and pooled, test only
    for lang in ("asl", "csl", "dgs", "all"):
        assert float(metrics[f"test/slrtp_dtw_mje/{lang}"]) > 0
        assert float(metrics[f"test/duration_ratio/{lang}"]) > 0
        assert f"test/wrist_distance_ratio/{lang}" in metrics
    val = run["fit"].trainer.callback_metrics
    assert not any("slrtp" in k for k in val)
    assert "val/dtw_pa_jpe/csl/rhand" in val and "val/loss" in val and "train/loss" in val
    # the text tokenizer was saved next to the logs
    assert (Path(run["fit"].trainer.log_dir) / "text_tokenizer" / "tokenizer.json").is_file()


def test_frozen_tokenizer_is_eval_untouched_and_not_saved(run):
    model = run["fit"].model
    tok = model.tokenizer
    assert not tok.training and not any(p.requires_grad for p in tok.parameters())
    assert tokenizer_hash(tok) == tokenizer_hash(run["stage1"])  # training did not move it
    assert not any(k.startswith(("tokenizer.", "_frozen")) for k in model.state_dict())
    optimised = {id(p) for group in run["fit"].trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimised == {id(p) for p in model.lm.parameters()}
    raw = torch.load(run["ckpt"], weights_only=False)
    assert all(k.startswith(("lm.", "metrics.")) for k in raw["state_dict"]), sorted(raw["state_dict"])[:5]
    entry = raw["soke_lm"]
    assert entry["tokenizer_hash"] == tokenizer_hash(run["stage1"])
    assert Path(entry["tokenizer_ckpt"]) == run["stage1"].resolve() and "tokenizer.json" in entry["text_tokenizer"]


def test_checkpoint_rebuilds_and_generates_like_the_trained_model(run):
    from soke_lightning.training.lm_stage import LMStage

    stage = LMStage.from_checkpoint(run["ckpt"])
    trained = run["fit"].model.cpu().eval()
    for key, value in trained.lm.state_dict().items():
        assert torch.equal(value, stage.lm.state_dict()[key]), key
    prompts, langs = ["In the morning the student flies to the zoo.", "明天天气很好"], ["asl", "csl"]
    feats, lengths, result = stage.generate(prompts, langs)
    feats2, lengths2, _ = trained.generate(prompts, langs)
    assert torch.equal(lengths, lengths2) and torch.allclose(feats, feats2)
    assert feats.shape == (2, int(lengths.max()), 133) and (lengths % 4 == 0).all()
    assert (result.codes[..., 0][result.codes[..., 0] >= 0] < 8).all()  # body codebook of the debug tokenizer


def _datamodule(run, **kw):
    dm = SignDataModule([str(run["store"])], token_cache=str(run["cache"]), batch_size=8, **kw)
    dm.setup("fit")
    return dm


def test_datamodule_serves_codes_padded_with_minus_one(run):
    dm = _datamodule(run)
    batch = next(iter(dm.val_dataloader()))
    assert batch.codes.shape[0] == len(batch) and batch.codes.shape[2] == 3
    assert torch.equal(batch.code_lengths, batch.lengths // 4)  # L = T / 4
    for i, n in enumerate(batch.code_lengths.tolist()):
        assert (batch.codes[i, :n] >= 0).all() and (batch.codes[i, n:] == -1).all()
    # docs/design.md §4.5 augmentation: training codes centre-cropped to a multiple of 4, maybe one dropped
    aug = _datamodule(run, code_unit=4, code_drop_prob=1.0)
    train, plain = aug.datasets["train"], dm.datasets["train"]
    for i in range(6):
        full, cut = plain[i].codes, train[i].codes
        assert cut.shape[0] == (full.shape[0] // 4) * 4 - 1
        assert any(torch.equal(cut, full[s:s + cut.shape[0]]) for s in range(full.shape[0] - cut.shape[0] + 1))
    assert torch.equal(aug.datasets["val"][0].codes, dm.datasets["val"][0].codes)  # evaluation never augmented
    with pytest.raises(ValueError, match="need a token_cache"):
        SignDataModule([str(run["store"])], code_unit=4)


def test_contract_errors_name_both_values(run, tmp_path):
    from soke_lightning.training.lm_stage import ContractError, LMStage

    dm = _datamodule(run)
    theirs = tokenizer_hash(run["stage1"])
    # same sizes, other weights: the cache's hash differs
    other = SignTokenizer.from_checkpoint(run["stage1"])
    with torch.no_grad():
        other.vaes["body"].quantizer.codebook.add_(1.0)
    other_path = tmp_path / "other.ckpt"
    other.save_checkpoint(other_path)
    ours = tokenizer_hash(other_path)
    stage = LMStage(tokenizer_ckpt=str(other_path), mbart={"d_model": 16})
    with pytest.raises(ContractError) as err:
        stage.check_contract(dm)
    assert theirs in str(err.value) and ours in str(err.value)
    with pytest.raises(TokenCacheError) as err:
        dm.check_token_cache(ours)
    assert theirs in str(err.value) and ours in str(err.value)
    # other codebook sizes
    small = SignTokenizer(width=16, code_dim=8, depth=1, codebook_sizes={"body": 4, "lhand": 16, "rhand": 16})
    small.normalizer.load_state_dict(other.normalizer.state_dict())
    small.save_checkpoint(tmp_path / "small.ckpt")
    with pytest.raises(ContractError, match=r"'body': 8.*'body': 4"):
        LMStage(tokenizer_ckpt=str(tmp_path / "small.ckpt"), mbart={"d_model": 16}).check_contract(dm)
    # the stage-2 checkpoint refuses a stage-1 file whose hash changed
    with pytest.raises(ContractError) as err:
        LMStage.from_checkpoint(run["ckpt"], tokenizer_ckpt=str(other_path))
    assert theirs in str(err.value) and ours in str(err.value)
    with pytest.raises(ContractError, match="expects"):
        _ = LMStage(tokenizer_ckpt=str(other_path), mbart={"d_model": 16}, tokenizer_hash=theirs).tokenizer


def test_decode_streams_pads_each_part_with_its_last_frame(run):
    from soke_lightning.models.tokenizer import decode_streams

    tok = SignTokenizer.from_checkpoint(run["stage1"])
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6], [7, 8, 9], [2, 3, 4]]])
    codes[0, 2:, 1] = -1  # lhand: 2 codes, rhand: 1 code (mean pose), body: 4
    codes[0, 1:, 2] = -1
    result = GenerationResult(codes, torch.tensor([4]), torch.tensor([[4, 2, 1]]), torch.tensor([True]), 5)
    feats, lengths = decode_streams(tok, result)
    assert lengths.tolist() == [16] and feats.shape == (1, 16, 133)
    parts = tok.layout.split(feats)
    assert torch.allclose(parts["body"][0], tok.part("body").decode(codes[:, :, 0])[0])
    lhand = tok.part("lhand").decode(codes[:, :2, 1])[0]
    assert torch.allclose(parts["lhand"][0, :8], lhand) and torch.allclose(parts["lhand"][0, 8:], lhand[-1:].expand(8, -1))
    assert (parts["rhand"] == 0).all()


def test_predict_step_returns_motion_predictions_with_ground_truth(run, tmp_path):
    from soke_lightning.callbacks.prediction_writer import PredictionWriter
    from soke_lightning.training.lm_stage import LMStage

    stage = LMStage.from_checkpoint(run["ckpt"])
    batch = next(iter(_datamodule(run).val_dataloader()))
    batch.prompt = [f"{t} extra" for t in batch.text]  # the retrieval callback's field is what gets encoded
    seen = []
    encode = stage.encode_prompts
    stage.encode_prompts = lambda texts, langs: seen.append(list(texts)) or encode(texts, langs)
    predictions = stage.predict_step(batch, 0)
    assert seen == [batch.prompt]
    assert [p.name for p in predictions] == batch.keys and [p.text for p in predictions] == batch.text
    for p, n in zip(predictions, batch.lengths.tolist()):
        assert p.raw.shape[1] == 179 and p.raw.shape[0] % 4 == 0 and p.reference_raw.shape == (n, 179)
        assert p.fps == 25.0
    paths = PredictionWriter(tmp_path, formats=["npz"]).write(predictions[:2])
    assert len(paths) == 2 and all(path.is_file() for path in paths)


def test_slrtp_switch_is_validated():
    from soke_lightning.training.lm_stage import LMStage

    assert LMStage(tokenizer_ckpt="unused.ckpt", mbart={}).hparams.slrtp is True  # on by default
    assert LMStage(tokenizer_ckpt="unused.ckpt", mbart={}, slrtp=False).hparams.slrtp is False
    with pytest.raises(ValueError, match="slrtp must be true or false"):
        LMStage(tokenizer_ckpt="unused.ckpt", mbart={}, slrtp="yes")


def test_from_features_with_lengths_poses_only_valid_frames():
    from soke_lightning.kinematics import get_joint_backend

    backend = get_joint_backend("builtin")
    feats = torch.randn(3, 7, 133, generator=torch.Generator().manual_seed(1)) * 0.2
    lengths = torch.tensor([7, 3, 1])
    full = backend.from_features(feats)
    packed = backend.from_features(feats, lengths)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(packed[b, :n], full[b, :n], atol=1e-6)
        assert (packed[b, n:] == 0).all()
    with pytest.raises(ValueError, match="lengths"):
        backend.from_features(feats, torch.tensor([1, 2]))


def test_bench_eval_times_the_test_split_before_and_after_with_equal_results(run, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_eval", ROOT / "bench" / "bench_eval.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert "make demo" in bench.main(["--ckpt", str(tmp_path / "none.ckpt")])["skipped"]
    out = bench.main(["--ckpt", str(run["ckpt"]), "--store", str(run["store"]), "--repeats", "1", "--limit", "9"])
    assert out["same_codes"] and max(out["max_rel_diff"].values()) < 1e-9
    assert set(out["seconds"]) == {"before", "after"} and out["sentences"] >= 9
    assert all(v >= 0 for arm in out["seconds"].values() for v in arm.values())


def test_cap_result_cuts_each_sample_after_its_cap_and_marks_it_unfinished():
    from soke_lightning.models.generation import cap_result

    codes = torch.arange(2 * 5 * 3).view(2, 5, 3)
    codes[1, 2:] = -1  # sample 1 stopped on </s> after 2 codes
    result = GenerationResult(codes, torch.tensor([5, 2]), torch.tensor([[5, 5, 5], [2, 2, 2]]),
                              torch.tensor([False, True]), 6)
    capped = cap_result(result, torch.tensor([3, 3]))
    assert capped.lengths.tolist() == [3, 2] and capped.part_lengths.tolist() == [[3, 3, 3], [2, 2, 2]]
    assert capped.finished.tolist() == [False, True]  # sample 1 ended before its cap: still finished
    assert torch.equal(capped.codes[0, :3], codes[0, :3]) and (capped.codes[0, 3:] == -1).all()
    assert torch.equal(capped.codes[1], codes[1])
    finished_at_cap = cap_result(GenerationResult(codes[:1], torch.tensor([3]), torch.tensor([[3, 3, 3]]),
                                                  torch.tensor([True]), 4), torch.tensor([2]))
    assert finished_at_cap.lengths.tolist() == [2] and finished_at_cap.finished.tolist() == [False]


def test_length_cap_is_learnt_at_fit_stored_and_bounds_every_generation(run, tmp_path):
    from soke_lightning.training.lm_stage import LMStage

    dm = _datamodule(run)
    rows = dm.code_lengths("train")
    assert len(rows) == len(dm.texts("train")) and all(n >= 1 for _, _, n in rows)
    stage = LMStage.from_checkpoint(run["ckpt"])
    ratio = stage.code_length_ratio
    assert set(ratio) == {"asl", "csl", "dgs"} and all(r > 0 for r in ratio.values())
    assert ratio == pytest.approx(stage.learn_length_ratio(rows))  # what setup("fit") learnt and saved
    # every training sentence fits its own cap at scale 1: the ratio is the largest of the split
    texts, langs, counts = zip(*rows)
    caps = stage.length_caps(list(texts), list(langs), 1.0, 10_000)
    assert (caps >= torch.tensor(counts)).all() and (caps == torch.tensor(counts)).any()
    prompts, langs = ["In the morning the student flies to the zoo.", "明天天气很好", "Morgen regnet es."], \
        ["asl", "csl", "dgs"]
    free = stage.generate(prompts, langs, max_codes=16, stop_on="never")[2]
    assert free.lengths.tolist() == [16, 16, 16]
    _, lengths, capped = stage.generate(prompts, langs, max_codes=16, stop_on="never", length_cap=0.2)
    caps = stage.length_caps(prompts, langs, 0.2, 16)
    assert (caps < 16).all() and torch.equal(capped.lengths, caps) and not capped.finished.any()
    assert torch.equal(lengths, caps * stage.tokenizer.downsample_rate)
    for b in range(3):  # the same codes as the uncapped run, up to the cap
        assert torch.equal(capped.codes[b, : int(caps[b])], free.codes[b, : int(caps[b])])
    # a model without learnt ratios (an older checkpoint) and no DataModule: the error names the fix
    stage.code_length_ratio = None
    with pytest.raises(ValueError, match="length_cap=0"):
        stage.generate(prompts, langs, length_cap=1.0)
    with pytest.raises(ValueError, match="length_cap must be >= 0"):
        stage.generate(prompts, langs, length_cap=-1.0)


def test_command_line_model_arguments_win_over_the_checkpoints_hyper_parameters(run, monkeypatch):
    from soke_lightning.cli.lightning import SokeCLI

    class Parsed(SokeCLI):  # parse and instantiate, run nothing
        def _run_subcommand(self, subcommand):
            pass

    monkeypatch.setenv("SOKE_OUT", str(run["root"] / "out"))
    monkeypatch.setattr(sys, "argv", ["soke"])
    base = ["test", *run["stage2_args"], "--ckpt_path", str(run["ckpt"])]
    stored = Parsed(args=base).model
    assert stored.generation_config.max_codes == 16 and stored.generation_config.length_cap == 0  # debug.yaml
    changed = Parsed(args=[*base, "--model.init_args.generation.length_cap=1.5", "--model.init_args.slrtp",
                           "false"]).model
    assert changed.generation_config.length_cap == 1.5 and changed.hparams.slrtp is False
    assert changed.generation_config.max_codes == 16  # the checkpoint's other generation settings stay
