"""PredictionWriter: files per sample and format from Trainer.predict, name handling, repeats, two DDP ranks."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from soke_lightning.callbacks import MotionPrediction, PredictionWriter, safe_stem
from soke_lightning.core.layout import FEATURE_DIM, RAW_DIM, features_to_raw

NAMES = ["how2sign/clip_0", "how2sign_clip_0", "csl/你好", "dgs-1", "dgs-1"]  # a '/' clash and a repeated name


def _motion(i: int, frames: int = 6) -> np.ndarray:
    raw = np.random.default_rng(i).normal(0.0, 0.3, (frames + i, RAW_DIM)).astype(np.float32)
    return raw


class _Names(Dataset):
    def __init__(self, names):
        self.names = names

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        return i


class _Generator(pl.LightningModule):
    """Returns one MotionPrediction per index; sample 2 comes as 133-d features, samples 0 and 2 with a reference."""

    def __init__(self, names):
        super().__init__()
        self.names = names
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def predict_step(self, batch, batch_idx):
        out = []
        for i in batch.tolist():
            motion = _motion(i)
            if i == 2:
                motion = torch.from_numpy(motion[:, list(range(36, 159)) + list(range(169, 179))])
            reference = _motion(i + 10, frames=4) if i in (0, 2) else None
            out.append(MotionPrediction(name=self.names[i], text=f"sentence {i}", lang=["asl", "csl", "dgs"][i % 3],
                                        raw=motion, fps=25.0, reference_raw=reference))
        return out


def _predict(tmp_path, formats, names=NAMES, **kwargs):
    writer = PredictionWriter(tmp_path / "out", formats=formats, **kwargs)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, callbacks=[writer])
    trainer.predict(_Generator(names), dataloaders=DataLoader(_Names(names), batch_size=2),
                    return_predictions=kwargs.get("write_interval") == "epoch")
    return writer


def test_writer_files_per_sample_and_format(tmp_path, capsys, caplog):
    from pose_format import Pose

    from soke_lightning.kinematics import get_joint_backend
    from soke_lightning.render.exports import load_smplx_npz

    with caplog.at_level(logging.INFO):
        writer = _predict(tmp_path, ["npz", "pose", "bvh"])
    out = tmp_path / "out"
    stems = [safe_stem(n) for n in NAMES[:4]]
    assert len(set(stems)) == 4 and stems[1] == "how2sign_clip_0" and stems[3] == "dgs-1"
    assert stems[0].startswith("how2sign_clip_0-") and stems[2].startswith("csl_你好-")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{s}{ext}" for s in stems for ext in (".npz", ".pose", ".bvh")] + ["index.rank0.jsonl"])
    assert (writer.num_written, writer.num_skipped) == (4, 1)

    backend = get_joint_backend("builtin")
    for i, stem in enumerate(stems):
        motion = load_smplx_npz(out / f"{stem}.npz")
        expected = _motion(i)
        if i == 2:  # given as features: root and lower body at rest, fixed betas
            expected = features_to_raw(expected[:, list(range(36, 159)) + list(range(169, 179))])
        np.testing.assert_array_equal(motion.raw, expected)
        np.testing.assert_allclose(motion.joints, backend(torch.from_numpy(expected)).numpy(), atol=1e-6)
        assert (motion.name, motion.text, motion.fps) == (NAMES[i], f"sentence {i}", 25.0)
        pose = Pose.read((out / f"{stem}.pose").read_bytes())
        assert pose.body.data.shape[0] == expected.shape[0]
        assert (out / f"{stem}.bvh").read_text().startswith("HIERARCHY\nROOT pelvis")

    index = [json.loads(line) for line in (out / "index.rank0.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["name"] for r in index] == NAMES[:4] and index[2]["text"] == "sentence 2"
    assert index[0]["files"] == [f"{stems[0]}.npz", f"{stems[0]}.pose", f"{stems[0]}.bvh"]
    assert capsys.readouterr().out == ""  # the writer never prints
    assert any("4 samples written" in r.getMessage() for r in caplog.records)


def test_writer_gif_with_reference_and_epoch_interval(tmp_path):
    from PIL import Image

    names = NAMES[:2]
    writer = _predict(tmp_path, ["gif"], names=names, write_interval="epoch", gif_height=120)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{safe_stem(n)}.gif" for n in names] +
                                                           ["index.rank0.jsonl"])
    with Image.open(out / f"{safe_stem(names[0])}.gif") as with_reference, \
            Image.open(out / f"{safe_stem(names[1])}.gif") as alone:
        # The longer of the two sequences sets the length: the 14-frame reference vs 7 frames alone.
        assert (with_reference.n_frames, alone.n_frames) == (14, 7)
        assert with_reference.width > alone.width  # two panels (ground truth | prediction) vs one
    assert writer.num_written == 2


def test_rerun_replaces_index(tmp_path):
    _predict(tmp_path, ["npz"], names=NAMES[3:4])
    _predict(tmp_path, ["npz"], names=NAMES[3:4])
    assert len((tmp_path / "out" / "index.rank0.jsonl").read_text().splitlines()) == 1


def test_motion_prediction_and_writer_validation(tmp_path):
    features = torch.randn(5, FEATURE_DIM, dtype=torch.float64)
    sample = MotionPrediction(name="a", text="t", lang="asl", raw=features, fps=20)
    assert sample.raw.shape == (5, RAW_DIM) and sample.raw.dtype == np.float32 and sample.reference_raw is None
    with pytest.raises(ValueError, match=r"'bad'.*\[T>0, 179\]"):
        MotionPrediction(name="bad", text="", lang="asl", raw=np.zeros((5, 100)), fps=20)
    with pytest.raises(ValueError, match="fps"):
        MotionPrediction(name="x", text="", lang="asl", raw=np.zeros((5, RAW_DIM)), fps=0)
    with pytest.raises(ValueError, match="formats"):
        PredictionWriter(tmp_path, formats=["npz", "mp4"])
    with pytest.raises(ValueError, match="bvh.*builtin"):
        PredictionWriter(tmp_path, formats=["bvh"], backend="smplx")
    with pytest.raises(TypeError, match="MotionPrediction"):
        PredictionWriter(tmp_path, formats=["npz"]).write([{"name": "x"}])


def test_safe_stem_never_merges_names():
    names = ["a/b", "a_b", "a\\b", "../x", ".x", "", "x" * 300, "ok-1.2_3"]
    stems = [safe_stem(n) for n in names]
    assert len(set(stems)) == len(names)
    assert all("/" not in s and "\\" not in s and not s.startswith(".") and 0 < len(s) <= 130 for s in stems)
    assert safe_stem("ok-1.2_3") == "ok-1.2_3"


def test_writer_from_config_class_path(tmp_path):
    """LightningCLI configs name the callback by its class path; jsonargparse resolves and builds it."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch import Callback

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--callbacks", type=list[Callback])
    cfg = parser.parse_args(["--callbacks", json.dumps([{
        "class_path": "soke_lightning.callbacks.PredictionWriter",
        "init_args": {"out_dir": str(tmp_path), "formats": ["npz", "bvh"]}}])])
    writer = parser.instantiate_classes(cfg).callbacks[0]
    assert isinstance(writer, PredictionWriter) and writer.formats == ["npz", "bvh"]


_DDP_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import lightning.pytorch as pl
from torch.utils.data import DataLoader
from test_callbacks_prediction_writer import _Generator, _Names
from soke_lightning.callbacks import PredictionWriter

names = [f"clip/{{i}}" for i in range(5)]
writer = PredictionWriter({out!r}, formats=["npz"])
trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_progress_bar=False,
                     enable_checkpointing=False, enable_model_summary=False, callbacks=[writer])
trainer.predict(_Generator(names), dataloaders=DataLoader(_Names(names), batch_size=2), return_predictions=False)
# A file per rank, then a barrier: rank 0 may end rank 1's process as soon as it exits, so a print from rank 1
# could be lost (seen as a flaky single RANK line).
import pathlib
import torch.distributed as dist
pathlib.Path({out!r}, f"count.rank{{trainer.global_rank}}").write_text(str(writer.num_written))
if dist.is_available() and dist.is_initialized():
    dist.barrier()
"""


@pytest.mark.ddp
def test_writer_two_ddp_ranks(tmp_path):
    """Each rank writes its own samples: every name once, two disjoint per-rank indexes, one total logged."""
    out = tmp_path / "out"
    script = tmp_path / "ddp_predict.py"
    script.write_text(textwrap.dedent(_DDP_SCRIPT.format(tests=str(Path(__file__).parent), out=str(out))))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = sorted(int((out / f"count.rank{r}").read_text()) for r in (0, 1))
    assert counts == [2, 3]
    assert "5 samples written" in result.stderr + result.stdout
    indexes = [[json.loads(x)["name"] for x in (out / f"index.rank{r}.jsonl").read_text().splitlines()]
               for r in (0, 1)]
    assert sorted(indexes[0] + indexes[1]) == [f"clip/{i}" for i in range(5)]
    assert len({p.name for p in out.glob("*.npz")}) == 5


def test_writer_with_smplx_backend(tmp_path):
    """The .pose/.npz path only relies on joint sets and names, so the SMPL-X backend works as well."""
    pytest.importorskip("smplx")
    from soke_lightning.render.exports import MEDIAPIPE_BODY_POINTS, load_smplx_npz, read_pose
    from test_metrics_smplx_backend import write_random_smplx

    (tmp_path / "model" / "smplx").mkdir(parents=True)
    write_random_smplx(tmp_path / "model" / "smplx" / "SMPLX_NEUTRAL.npz")
    writer = PredictionWriter(tmp_path / "out", formats=["npz", "pose"], backend="smplx",
                              backend_kwargs={"model_dir": str(tmp_path / "model")})
    writer.write([MotionPrediction(name="clip", text="t", lang="asl", raw=_motion(0), fps=25)])
    motion = load_smplx_npz(tmp_path / "out" / "clip.npz")
    back = read_pose(tmp_path / "out" / "clip.pose")
    backend = writer.backend
    np.testing.assert_allclose(back.rhand, backend.select(torch.from_numpy(motion.joints), "rhand").numpy(),
                               atol=1e-5)
    hip = MEDIAPIPE_BODY_POINTS.index("LEFT_HIP")
    assert back.body_valid[hip]
    np.testing.assert_allclose(back.body[:, hip], motion.joints[:, backend.joint_names.index("left_hip")], atol=1e-5)
