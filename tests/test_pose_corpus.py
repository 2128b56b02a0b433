"""Feature layouts as data and `.pose` corpora: YAML layouts, `soke prepare --corpus pose`, the keypoint store."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from pose_files import write_corpus
from soke_lightning.core.feature_layout import (
    LAYOUT_DIR,
    LayoutError,
    check_same_layout,
    load_feature_layout,
    shipped_layouts,
)
from soke_lightning.core.languages import LANGUAGES
from soke_lightning.core.layout import SOKE_LAYOUT
from soke_lightning.data.datamodule import SignDataModule
from soke_lightning.data.pose_corpus import PoseCorpusError, prepare_pose_corpus, read_index
from soke_lightning.data.store import StoreError, StoreWriter, open_store

pytest.importorskip("pose_format")


def test_shipped_layouts_parse():
    assert {"smplx179", "holistic", "holistic_face"} <= set(shipped_layouts())
    smplx = load_feature_layout("smplx179")
    assert (smplx.raw_dim, smplx.feature_dim) == (179, 133)
    assert smplx.streams("soke") == SOKE_LAYOUT
    hol = load_feature_layout("holistic")
    assert hol.part_points["lhand"] == tuple(range(19, 40)) and len(hol.points) == 61
    assert hol.raw_dim == 61 * 3 + 61 and [p.dim for p in hol.parts] == [57, 63, 63]
    assert hol.points[hol.align_points["rhand"]] == ("RIGHT_HAND_LANDMARKS", "WRIST")
    face = load_feature_layout("holistic_face")
    assert [p.name for p in face.parts] == ["body", "face", "lhand", "rhand"] and face.codebook_sizes["face"] == 64


def test_user_yaml_layout_and_errors(tmp_path):
    spec = yaml.safe_load((LAYOUT_DIR / "holistic.yaml").read_text())
    spec["name"] = "hands_only"
    spec["components"] = spec["components"][1:]
    spec["parts"] = spec["parts"][1:]
    spec["normalisation"] = {"shoulders": ["LEFT_HAND_LANDMARKS.WRIST", "RIGHT_HAND_LANDMARKS.WRIST"]}
    path = tmp_path / "hands.yaml"
    path.write_text(yaml.safe_dump(spec))
    mine = load_feature_layout(str(path))
    assert mine.name == "hands_only" and mine.feature_dim == 42 * 3
    with pytest.raises(LayoutError, match="hands_only.*holistic"):
        check_same_layout(mine, "the store", load_feature_layout("holistic"), "the tokenizer")
    spec["parts"][0]["align"] = "LEFT_HAND_LANDMARKS.NOPE"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(LayoutError, match="NOPE"):
        load_feature_layout(str(path))
    with pytest.raises(LayoutError, match="unknown feature layout 'nope'"):
        load_feature_layout("nope")


def _rows():
    return [
        {"file": "a/hello.pose", "text": "hello", "language": "ase", "split": "train", "drop_left_hand": (2, 3, 4)},
        {"file": "b/world.pose", "text": "world", "language": "gsg", "spoken": "de_DE", "split": "train"},
        {"file": "c/long.pose", "text": "long clip", "language": "asl", "split": "train", "start": "0.2",
         "end": "0.8", "frames": 40},
        {"file": "d/val.pose", "text": "val", "language": "ase", "split": "val"},
    ]


def test_prepare_pose_corpus(tmp_path):
    rows = _rows() + [{"file": "e/gone.pose", "text": "gone", "language": "ase", "split": "train"}]
    index = write_corpus(tmp_path / "corpus", rows)
    (tmp_path / "corpus" / "e" / "gone.pose").unlink()  # a row naming a missing file is skipped and counted
    out = tmp_path / "store"
    report = prepare_pose_corpus(tmp_path / "corpus", index, out, layout="holistic")
    assert report.splits["train"].written == 3 and report.splits["train"].skipped == {"missing_file": 1}
    store = open_store(out)
    layout = store.layout
    assert layout.name == "holistic" and store.manifest["raw_dim"] == layout.raw_dim
    # unknown sign languages are declared by the corpus: ISO 639-3 code + a target tag
    assert LANGUAGES["ase"].sign_tag == "en_ASE" and LANGUAGES["gsg"].sign_tag == "de_GSG"
    train = store.split("train")
    hello = train.by_name("a_hello")
    assert hello.frames.shape == (24, layout.raw_dim)
    assert train.by_name("c_long@0.2-0.8").frames.shape[0] == 15  # 0.2 s .. 0.8 s at 25 fps
    # per-sample normalisation: mid-shoulder origin, shoulder-width unit, y up
    pts = hello.frames[:, : layout.feature_dim].reshape(24, -1, 3)
    a, b = layout.scale_points
    np.testing.assert_allclose((pts[:, a] + pts[:, b]).mean(0) / 2, 0.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(pts[:, a] - pts[:, b], axis=-1).mean(), 1.0, atol=1e-5)
    assert pts[0, a, 0] > pts[0, b, 0]  # the left shoulder (image right) stays at +x
    # the zeroed left hand is kept as a mask, with zeros in the frame
    visible = layout.feature_mask(hello.frames)
    lhand = layout.parts[1].indices
    assert not visible[2:5][:, lhand].any() and visible[5:][:, lhand].all()
    assert (hello.frames[2:5][:, lhand] == 0).all()
    assert hello.meta["source"] == "a/hello.pose" and hello.meta["scale"] > 0
    # the DataModule reads the layout from the store: masked points are 0 (the mean) and flagged
    dm = SignDataModule([str(out)], batch_size=4, min_len=8, max_len=64, unit_len=4)
    batch = next(iter(dm.train_dataloader()))
    assert batch.poses.shape[-1] == layout.feature_dim and batch.feature_mask.shape == batch.poses.shape
    assert (batch.poses[~batch.feature_mask] == 0).all() and (~batch.feature_mask).any()
    assert torch.equal(batch.feature_mask.any(-1), batch.mask)


def test_prepare_pose_errors(tmp_path):
    index = write_corpus(tmp_path / "c", _rows()[:1])
    bad = tmp_path / "bad.csv"
    bad.write_text("file,words,language\nx.pose,hi,ase\n")
    with pytest.raises(PoseCorpusError, match="missing columns \\['text'\\]"):
        read_index(bad)
    bad.write_text("file,text,language\nx.pose,hi,American\n")
    with pytest.raises(PoseCorpusError, match="bad.csv:2.*ISO 639-3"):
        prepare_pose_corpus(tmp_path / "c", bad, tmp_path / "s0")
    with pytest.raises(LayoutError, match="keypoint layout"):
        prepare_pose_corpus(tmp_path / "c", index, tmp_path / "s1", layout="smplx179")
    prepare_pose_corpus(tmp_path / "c", index, tmp_path / "s2", layout="holistic")
    with pytest.raises(LayoutError, match="'smplx179'.*'holistic'"):
        StoreWriter(tmp_path / "s2")  # an SMPL-X writer on a keypoint store is refused, naming both layouts
    with pytest.raises(StoreError, match="holds corpus 'pose'"):
        prepare_pose_corpus(tmp_path / "c", index, tmp_path / "s2", corpus="other")


def test_prepare_cli_for_pose_corpora(tmp_path, capsys):
    import argparse

    from soke_lightning.cli import prepare

    parser = argparse.ArgumentParser()
    prepare.add_arguments(parser)
    assert "--index" in parser.format_help() and "holistic" in parser.format_help()
    index = write_corpus(tmp_path / "c", _rows()[:2])
    out = tmp_path / "s"
    from soke_lightning.cli import main as soke_main

    # user errors go through the command's error boundary: one line, exit code 2
    assert soke_main(["prepare", "--corpus", "pose", "--root", str(tmp_path / "c"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("soke prepare: --corpus pose needs --index")
    args = parser.parse_args(["--corpus", "pose", "--root", str(tmp_path / "c"), "--index", str(index),
                              "--out", str(out), "--layout", "holistic"])
    assert prepare.run(args) == 0
    printed = capsys.readouterr().out
    assert "pose (holistic)" in printed and "['ase', 'gsg']" in printed
    assert open_store(out).layout.name == "holistic"
    argv = ["prepare", "--corpus", "pose", "--root", str(tmp_path / "c"), "--index", str(index),
            "--out", str(tmp_path / "s2"), "--layout", "nope"]
    assert soke_main(argv) == 2
    assert "unknown feature layout 'nope'" in capsys.readouterr().err


def test_keypoint_pose_export_round_trip_and_drawing(tmp_path):
    from pose_format import Pose

    from soke_lightning.render.keypoints import (
        drawable_points,
        export_keypoint_pose,
        keypoint_header,
        read_keypoint_pose,
    )

    layout = load_feature_layout("holistic")
    rng = np.random.default_rng(0)
    points = rng.normal(size=(6, layout.num_points, 3))
    visible = np.ones((6, layout.num_points), bool)
    visible[2:4, list(layout.part_points["lhand"])] = False
    path = export_keypoint_pose(tmp_path / "x.pose", points, layout, 25.0, visible)
    pose = Pose.read(path.read_bytes())
    assert [c.points for c in pose.header.components] == [c.points for c in keypoint_header(layout).components]
    back, seen, fps = read_keypoint_pose(path, layout)
    assert fps == 25.0 and np.array_equal(seen, visible)
    np.testing.assert_allclose(back[visible], points[visible], atol=1e-4)
    with pytest.raises(ValueError, match="not those of layout 'holistic_face'"):
        read_keypoint_pose(path, load_feature_layout("holistic_face"))
    drawn = drawable_points(back, seen, layout)  # a missing hand is drawn where it was last seen
    lhand = list(layout.part_points["lhand"])
    np.testing.assert_allclose(drawn[2:4, lhand], np.broadcast_to(back[1, lhand], (2, len(lhand), 3)))
