"""A keypoint corpus end to end (tiny, CPU): `.pose` files -> `soke prepare --corpus pose` -> store -> stage 1 ->
`soke encode` -> stage 2 fit + test -> `soke generate` `.pose` files that pose-format reads back with the layout's
header and the same points; `soke render` from the layout's connections; masked points change neither losses nor
metrics; a mismatched feature layout between store, tokenizer and LM is refused naming both."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pose_files import write_corpus
from soke_lightning.core.feature_layout import LAYOUT_DIR, LayoutError, load_feature_layout
from soke_lightning.data.datamodule import SignDataModule
from soke_lightning.data.pose_corpus import prepare_pose_corpus
from soke_lightning.metrics.functional.keypoints import keypoint_errors, keypoint_metric_names
from soke_lightning.metrics.functional.parts import keypoint_parts, score_parts
from soke_lightning.models.tokenizer import SignTokenizer
from soke_lightning.render.keypoints import keypoint_header, read_keypoint_pose
from soke_lightning.training.lm_stage import ContractError, LMStage
from soke_lightning.training.tokenizer_stage import TokenizerStage

pytest.importorskip("pose_format")
ROOT = Path(__file__).resolve().parents[1]
DATA = str(ROOT / "datamodules" / "synthsign.yaml")
WORDS = ["hello", "world", "thank you", "good morning", "name", "sign", "yes", "no"]


def _cli(args, run=True):
    from soke_lightning.cli.lightning import SokeCLI

    return SokeCLI(args=args, run=run)


def _rows():
    rows = []
    for i in range(20):
        split = "train" if i < 12 else ("val" if i < 16 else "test")
        rows.append({"file": f"{split}/{i:02d}.pose", "text": WORDS[i % len(WORDS)],
                     "language": "ase" if i % 2 else "gsg", "spoken": "en_XX" if i % 2 else "de_DE",
                     "split": split, "drop_left_hand": (3, 4, 5) if i % 3 == 0 else ()})
    return rows


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from soke_lightning.cli import encode

    root = tmp_path_factory.mktemp("pose")
    index = write_corpus(root / "corpus", _rows())
    store = root / "store"
    prepare_pose_corpus(root / "corpus", index, store, layout="holistic")
    data = ["--data", DATA, "--data.init_args.stores", f"[{store}]", "--data.init_args.batch_size", "6",
            "--data.init_args.min_len", "16", "--data.init_args.max_len", "32"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOKE_OUT", str(root / "out"))
        mp.setattr(sys, "argv", ["soke"])
        fit1 = _cli(["fit", "--config", str(ROOT / "experiments/stage1/keypoints_debug.yaml"), *data])
        stage1 = root / "out" / "stage1-keypoints-debug" / "checkpoints" / "last.ckpt"
        cache = root / "tokens"
        encode.run(argparse.Namespace(tokenizer=str(stage1), data=DATA, out=str(cache),
                                      splits=["train", "val", "test"],
                                      set=[f"init_args.stores=[{store}]", "init_args.min_len=16",
                                           "init_args.max_len=32"],
                                      batch_size=8, device="cpu", preview=0, preview_out=None))
        stage2_args = ["--config", str(ROOT / "experiments/stage2/keypoints_debug.yaml"), *data,
                       "--data.init_args.token_cache", str(cache), "--model.init_args.tokenizer_ckpt", str(stage1)]
        _cli(["fit", *stage2_args])
        ckpt = root / "out" / "stage2-keypoints-debug" / "checkpoints" / "last.ckpt"
        test = _cli(["test", *stage2_args, "--ckpt_path", str(ckpt)])
    return dict(root=root, store=store, stage1=stage1, ckpt=ckpt, fit1=fit1, test=test, corpus=root / "corpus",
                index=index)


def test_both_stages_train_and_score_keypoints(run):
    stage1 = run["fit1"].trainer.callback_metrics
    for name in keypoint_metric_names(load_feature_layout("holistic")):
        assert torch.isfinite(stage1[f"val/{name}"]), name
    assert "val/ase/kpe_rhand" in stage1 and "val/mpjpe_body" not in stage1
    tok = SignTokenizer.from_checkpoint(run["stage1"])
    assert tok.feature_layout.name == "holistic" and tok.feature_dim == 61 * 3
    metrics = run["test"].trainer.callback_metrics
    for lang in ("ase", "gsg", "all"):
        for part in ("body", "lhand", "rhand", "avg"):
            assert torch.isfinite(metrics[f"test/dtw_jpe/{lang}/{part}"]), (lang, part)
    assert "test/dtw_pa_jpe/all/avg" not in metrics
    entry = torch.load(run["ckpt"], weights_only=False)["soke_lm"]
    assert entry["feature_layout"]["name"] == "holistic" and "ase" in entry["languages"]


def test_generate_writes_pose_files_read_back_identically(run, tmp_path, capsys):
    from pose_format import Pose

    from soke_lightning.cli import generate

    parser = argparse.ArgumentParser()
    generate.add_arguments(parser)
    out = tmp_path / "gen"
    args = parser.parse_args(["--ckpt", str(run["ckpt"]), "--out", str(out), "--store", str(run["store"]),
                              "--split", "test", "--n", "1", "--formats", "pose", "npz", "gif"])
    assert generate.run(args) == 0
    assert "keypoint layout 'holistic'" in capsys.readouterr().out
    layout = load_feature_layout("holistic")
    poses = sorted(out.glob("*.pose"))
    assert len(poses) == 2  # one per language
    for path in poses:
        pose = Pose.read(path.read_bytes())
        header = keypoint_header(layout)
        assert [(c.name, c.points, [tuple(x) for x in c.limbs], c.format) for c in pose.header.components] == \
            [(c.name, c.points, [tuple(x) for x in c.limbs], c.format) for c in header.components]
        points, visible, fps = read_keypoint_pose(path, layout)
        written = np.load(path.with_suffix(".npz"))["points"]
        assert visible.all() and fps == 25.0 and points.shape == written.shape
        np.testing.assert_allclose(points, written, atol=1e-4)
        assert path.with_suffix(".gif").stat().st_size > 1000


def test_render_draws_keypoint_store(run, tmp_path, capsys):
    from soke_lightning.cli import render

    parser = argparse.ArgumentParser()
    render.add_arguments(parser)
    args = parser.parse_args([str(run["store"]), "--split", "train", "--lang", "ase", "--n", "1",
                              "--out", str(tmp_path)])
    assert render.run(args) == 0
    gifs = list(tmp_path.glob("*.gif"))
    assert len(gifs) == 1 and gifs[0].stat().st_size > 1000


def test_mismatched_layouts_are_refused_naming_both(run, tmp_path):
    spec = yaml.safe_load((LAYOUT_DIR / "holistic.yaml").read_text())
    spec["name"] = "holistic_custom"
    spec["parts"][0]["codebook"] = 32
    custom = tmp_path / "custom.yaml"
    custom.write_text(yaml.safe_dump(spec))
    other = tmp_path / "other"
    prepare_pose_corpus(run["corpus"], run["index"], other, layout=str(custom))
    dm = SignDataModule([str(other)], batch_size=4, min_len=16, max_len=32)
    stage = TokenizerStage(SignTokenizer.from_checkpoint(run["stage1"]))
    stage.trainer = type("T", (), {"datamodule": dm})()
    with pytest.raises(LayoutError, match="'holistic_custom'.*but the tokenizer uses 'holistic'"):
        stage.setup("fit")
    lm = LMStage.from_checkpoint(run["ckpt"])
    with pytest.raises(ContractError, match="'holistic_custom'.*but the tokenizer .*last.ckpt uses 'holistic'"):
        lm.check_contract(dm)
    with pytest.raises(LayoutError, match="'holistic_custom'.*'holistic'"):
        _ = SignDataModule([str(run["store"]), str(other)], min_len=16, max_len=32).feature_layout
    # a stage-2 checkpoint whose recorded layout is not its tokenizer's
    ckpt = torch.load(run["ckpt"], weights_only=False)
    ckpt["soke_lm"]["feature_layout"] = {"name": "smplx179", "fingerprint": "d5ce4c31eb03"}
    bad = tmp_path / "bad.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(ContractError, match="'smplx179'.*uses 'holistic'"):
        LMStage.from_checkpoint(bad)


def test_masked_points_change_neither_losses_nor_metrics(run):
    layout = load_feature_layout("holistic")
    tok = SignTokenizer.from_checkpoint(run["stage1"])
    stage = TokenizerStage(tok)
    g = torch.Generator().manual_seed(0)
    recon, target = torch.randn(2, 8, layout.feature_dim, generator=g), torch.randn(2, 8, layout.feature_dim, generator=g)
    mask = torch.ones(2, 8, dtype=torch.bool)
    fm = torch.rand(2, 8, layout.feature_dim, generator=g) > 0.3
    changed = torch.where(fm, target, target + 100.0)
    assert torch.equal(stage._recon_loss(recon, target, mask, fm), stage._recon_loss(recon, changed, mask, fm))
    assert torch.equal(stage._velocity_loss(recon, target, mask, fm), stage._velocity_loss(recon, changed, mask, fm))
    assert not torch.equal(stage._recon_loss(recon, target, mask), stage._recon_loss(recon, changed, mask))
    # keypoint errors and DTW scores ignore missing ground-truth points
    pred, gt = torch.randn(8, layout.num_points, 3, generator=g), torch.randn(8, layout.num_points, 3, generator=g)
    visible = torch.rand(8, layout.num_points, generator=g) > 0.3
    gt_changed = torch.where(visible[..., None], gt, gt + 50.0)
    a, b = keypoint_errors(layout, pred, gt, visible), keypoint_errors(layout, pred, gt_changed, visible)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    parts = keypoint_parts(layout)
    s1 = score_parts(pred[None], gt[None], None, None, parts, ["dtw_jpe"], target_visible=visible[None])
    s2 = score_parts(pred[None], gt_changed[None], None, None, parts, ["dtw_jpe"], target_visible=visible[None])
    assert torch.equal(s1, s2) and torch.isfinite(s1).all()
    # with every point visible the masked DTW equals the ordinary one
    full = torch.ones_like(visible)
    s3 = score_parts(pred[None], gt[None], None, None, parts, ["dtw_jpe"], target_visible=full[None])
    s4 = score_parts(pred[None], gt[None], None, None, parts, ["dtw_jpe"])
    torch.testing.assert_close(s3, s4)


def test_smplx_only_commands_refuse_keypoint_stores(run, capsys):
    from soke_lightning.cli import baselines

    assert baselines.run(argparse.Namespace(store=str(run["store"]), split="test", json=None)) == 2
    assert "keypoint layout 'holistic'" in capsys.readouterr().err
