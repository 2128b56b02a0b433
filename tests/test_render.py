"""Skeleton rendering: GIF/MP4/PNG output, side-by-side panels, held last frames, orientation, captions, `soke render`."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from soke_lightning import cli
from soke_lightning.core.io import safe_stem
from soke_lightning.core.layout import RAW_DIM
from soke_lightning.data.store import Sample, StoreWriter
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.render import animation
from soke_lightning.render.animation import SkeletonRenderer, render_animation, render_still

SHOULDER_L = slice(48, 51)  # body_pose slot of SMPL-X joint 16


@pytest.fixture(scope="module")
def backend():
    return get_joint_backend("builtin")


def _motion(backend, frames: int, amplitude: float = 1.0) -> np.ndarray:
    """Left arm swinging down over time; everything else at rest."""
    raw = torch.zeros(frames, RAW_DIM)
    raw[:, SHOULDER_L] = torch.stack([torch.zeros(frames), torch.zeros(frames),
                                      -amplitude * torch.linspace(0, 1, frames)], -1)
    return backend(raw).numpy()


def _gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as im:
        out = []
        for k in range(im.n_frames):
            im.seek(k)
            out.append(np.asarray(im.convert("RGB")).astype(int))
    return out


def _box(img: np.ndarray, box) -> np.ndarray:
    left, top, w, h = box
    return img[top:top + h, left:left + w]


def _hand_mask(img: np.ndarray, key: str) -> np.ndarray:
    """Pixels clearly of a hand's hue: orange (red >> blue) for the left hand, blue (blue >> red) for the right."""
    img = img.astype(int)
    red, blue = img[..., 0], img[..., 2]
    return red - blue > 80 if key == "lhand" else blue - red > 80


def test_gif_side_by_side_shorter_sequence_holds_its_last_frame(backend, tmp_path):
    long, short = _motion(backend, 12), _motion(backend, 5)
    path = render_animation([long, short], backend.bones, tmp_path / "a" / "cmp.gif", titles=["long", "short"],
                            caption="a test sentence", fps=20, joint_sets=backend.joint_sets, antialias=False)
    assert path == tmp_path / "a" / "cmp.gif" and path.is_file()
    frames = _gif_frames(path)
    renderer = SkeletonRenderer([long, short], backend.bones, titles=["long", "short"], caption="a test sentence",
                                joint_sets=backend.joint_sets, antialias=False)
    assert len(frames) == 12 and frames[0].shape == (renderer.size[1], renderer.size[0], 3)
    # The GIF holds what the renderer draws (palette quantisation changes colours only slightly).
    assert np.abs(frames[7] - renderer.frame(7)).mean() < 1.0
    long_front, short_front = renderer.views[0][0].box, renderer.views[1][0].box
    # The short sequence holds its last frame; the long one keeps moving; the axis limits stay fixed.
    assert np.array_equal(_box(frames[4], short_front), _box(frames[11], short_front))
    assert not np.array_equal(_box(frames[4], long_front), _box(frames[11], long_front))
    assert np.array_equal(frames[3][:long_front[1] - 20], frames[10][:long_front[1] - 20]), "titles move"


def test_static_sequence_gives_identical_frames_and_front_view_orientation(backend):
    rest = backend(torch.zeros(4, RAW_DIM)).numpy()
    renderer = SkeletonRenderer([rest], backend.bones, joint_sets=backend.joint_sets)
    a, b = renderer.frame(0), renderer.frame(3)
    assert np.array_equal(a, b)
    front = _box(a, renderer.views[0][0].box)
    left = np.nonzero(_hand_mask(front, "lhand"))[1]
    right = np.nonzero(_hand_mask(front, "rhand"))[1]
    assert left.size > 20 and right.size > 20, "both hands drawn in their colours"
    # Camera faces the person: the model's left hand (+x) is on the viewer's right.
    assert left.mean() > front.shape[1] * 0.6 > front.shape[1] * 0.4 > right.mean()
    # Zoomed hand insets: the right-hand inset (viewer's left) holds the right hand's colour only.
    inset_r = _box(a, renderer.views[0][1].box)
    assert _hand_mask(inset_r, "rhand").sum() > 4 * _hand_mask(front, "rhand").sum()
    assert _hand_mask(inset_r, "lhand").sum() == 0


def test_side_view_and_input_validation(backend):
    seq = _motion(backend, 3)
    with_side = SkeletonRenderer([torch.from_numpy(seq)], backend.bones, joint_sets=backend.joint_sets,
                                 side_view=True)
    assert [len(v) for v in with_side.views] == [4]
    without_sets = SkeletonRenderer([seq], backend.bones)
    assert len(without_sets.views[0]) == 1  # no hand insets without joint sets
    with pytest.raises(ValueError, match="same joints"):
        SkeletonRenderer([seq, seq[:, :10]], backend.bones)
    with pytest.raises(ValueError, match=r"\[T>0, J, 3\]"):
        SkeletonRenderer([seq[0]], backend.bones)
    with pytest.raises(ValueError, match="titles"):
        SkeletonRenderer([seq], backend.bones, titles=["a", "b"])
    with pytest.raises(ValueError, match=".gif or .mp4"):
        render_animation([seq], backend.bones, "x.avi")


def test_mp4_or_fallback_to_gif(backend, tmp_path, monkeypatch, caplog):
    seq = _motion(backend, 6)
    pytest.importorskip("imageio_ffmpeg")
    path = render_animation([seq], backend.bones, tmp_path / "clip.mp4", joint_sets=backend.joint_sets)
    assert path.suffix == ".mp4" and path.stat().st_size > 1000

    def broken(*args, **kwargs):
        raise OSError("no ffmpeg here")

    monkeypatch.setattr(animation, "_write_mp4", broken)
    with caplog.at_level(logging.WARNING, logger=animation.__name__):
        path = render_animation([seq], backend.bones, tmp_path / "clip2.mp4", joint_sets=backend.joint_sets)
    assert path == tmp_path / "clip2.gif" and len(_gif_frames(path)) == 6
    assert "imageio-ffmpeg" in caplog.text


def test_render_still_contact_sheet(backend, tmp_path):
    seq = _motion(backend, 30)
    path = render_still([seq, seq[:10]], backend.bones, tmp_path / "sheet.png", frames=6, columns=3,
                        caption="sheet", joint_sets=backend.joint_sets, height=120)
    renderer = SkeletonRenderer([seq, seq[:10]], backend.bones, joint_sets=backend.joint_sets, height=120)
    with Image.open(path) as im:
        width, height = im.size
        pixels = np.asarray(im.convert("RGB")).astype(int)
    assert width == 3 * renderer.size[0] and height > 2 * renderer.size[1]
    # Not a blank sheet: every column of panels has drawn pixels (skeleton, not the background colour) ...
    drawn = (np.abs(pixels - pixels[0, 0]).sum(axis=-1) > 30)
    column = renderer.size[0]
    for c in range(3):
        assert drawn[:, c * column:(c + 1) * column].mean() > 0.002, f"column {c} of the contact sheet is empty"
    # ... and the drawing depends on the motion: another motion gives another sheet.
    other = render_still([seq[::-1] * 0.5, seq[:10]], backend.bones, tmp_path / "other.png", frames=6, columns=3,
                         caption="sheet", joint_sets=backend.joint_sets, height=120)
    with Image.open(other) as im:
        assert not np.array_equal(np.asarray(im.convert("RGB")).astype(int), pixels)


def test_chinese_caption_renders_or_warns(monkeypatch, caplog):
    animation._warn_no_cjk_font.cache_clear()
    monkeypatch.setattr(animation, "find_cjk_font", lambda: None)
    with caplog.at_level(logging.WARNING, logger=animation.__name__):
        img = animation.text_image("我们今天去学校。", 300)
    assert img.ndim == 3 and img.shape[1] == 300 and "CJK font" in caplog.text
    monkeypatch.undo()
    animation.find_cjk_font.cache_clear()
    if animation.find_cjk_font() is None:
        if os.environ.get("SOKE_CI"):  # CI installs the font (.ci/run): there the check must run, not skip
            pytest.fail("SOKE_CI is set but no CJK font is installed (apt-get install fonts-wqy-microhei)")
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-microhei)")
    # With a real font, different characters give different ink (missing glyphs would all be the same box).
    a, b = animation.text_image("我们", 200), animation.text_image("学校", 200)
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_wrap_keeps_all_text():
    lines = animation._wrap("the quick brown fox jumps over the lazy dog " * 4, 200, 15)
    assert len(lines) > 1 and " ".join(lines).split() == ("the quick brown fox jumps over the lazy dog " * 4).split()
    cjk = "我们今天去学校" * 6
    lines = animation._wrap(cjk, 150, 15)
    assert len(lines) > 1 and "".join(lines) == cjk


def _write_store(root):
    rng = np.random.default_rng(0)
    with StoreWriter(root, {"corpus": "test"}).split("test") as split:
        for name, text, lang in (("asl_one", "hello there", "asl"), ("test/dgs_two", "guten morgen", "dgs"),
                                 ("asl_three", "good night", "asl"), ("csl_four", "你好", "csl")):
            frames = (rng.standard_normal((8, RAW_DIM)) * 0.2).astype(np.float32)
            split.add(Sample(name, text, lang, "synthsign", frames, 25.0))
    with StoreWriter(root).split("val") as split:
        split.add(Sample("asl_val", "only asl here", "asl", "synthsign", np.zeros((4, RAW_DIM), np.float32), 25.0))


def test_soke_render_tool(tmp_path, capsys):
    store = tmp_path / "store"
    _write_store(store)
    out = tmp_path / "out"
    assert cli.main(["render", str(store), "--split", "test", "--n", "5", "--lang", "asl", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "test_asl_one.gif"), str(out / "test_asl_three.gif")]
    assert len(_gif_frames(printed[0])) == 8
    assert cli.main(["render", str(store), "--names", "test/dgs_two", "--format", "png", "--out", str(out)]) == 0
    # A name with '/' gets the shared file-name rule: made safe, plus a hash of the original (no collisions).
    assert capsys.readouterr().out.split() == [str(out / f"test_{safe_stem('test/dgs_two')}.png")]
    assert safe_stem("test/dgs_two").startswith("test_dgs_two-")
    capsys.readouterr()
    assert cli.main(["render", str(store), "--lang", "bsl", "--out", str(out)]) == 2
    assert capsys.readouterr().err == "soke render: unknown language 'bsl'; valid languages: asl, csl, dgs\n"
    assert cli.main(["render", str(store), "--split", "val", "--lang", "dgs", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"soke render: split 'val' of {store}: no samples with lang='dgs'; it has "
                                       f"['asl']\n")
    pytest.importorskip("smplx")
    assert cli.main(["render", str(store), "--backend", "smplx", "--smplx-dir", str(tmp_path / "none"),
                     "--out", str(out)]) == 2
    assert "SMPLX_NEUTRAL" in capsys.readouterr().err
