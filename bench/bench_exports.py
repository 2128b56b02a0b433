"""Cost of the motion exports per sample (200 frames), against plain ``np.save`` of the raw frames in the same run.

Formats: SMPL-X .npz (with joints), .pose, BVH, GIF (one panel, 300 px); plus the PredictionWriter end to end
(16 samples, npz + pose + bvh, FK included). Ratios are against the ``np.save`` baseline and against builtin FK
(FK is timed with torch's default threads and with one thread).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from soke_lightning.callbacks.prediction_writer import MotionPrediction, PredictionWriter
from soke_lightning.core.layout import RAW_DIM
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.render.exports import export_bvh, export_pose, export_smplx_npz


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str]) -> dict:
    frames = 200
    backend = get_joint_backend("builtin")
    raw = np.random.default_rng(0).normal(0.0, 0.3, (frames, RAW_DIM)).astype(np.float32)
    with torch.no_grad():
        joints = backend(torch.from_numpy(raw)).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        seconds = {
            "np_save_raw_baseline": _best(lambda: np.save(out / "raw.npy", raw), 5),
            "builtin_fk": _best(lambda: backend(torch.from_numpy(raw)), 5),
            "npz": _best(lambda: export_smplx_npz(out / "a.npz", raw, joints=joints, joint_names=backend.joint_names,
                                                  fps=25, text="a sentence", lang="asl", name="a"), 5),
            "pose": _best(lambda: export_pose(out / "a.pose", joints, joint_sets=backend.joint_sets,
                                              joint_names=backend.joint_names, fps=25), 5),
            "bvh": _best(lambda: export_bvh(out / "a.bvh", raw, backend, fps=25), 3),
        }
        # With every core busy (CI, shared machines), torch's intra-op threads can make small ops ~100x slower.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        seconds["builtin_fk_1_thread"] = _best(lambda: backend(torch.from_numpy(raw)), 5)
        torch.set_num_threads(threads)
        from soke_lightning.render.animation import render_animation

        seconds["gif"] = _best(lambda: render_animation([joints], backend.bones, out / "a.gif", fps=25,
                                                        joint_sets=backend.joint_sets, height=300), 1)
        samples = [MotionPrediction(name=f"s/{i}", text="t", lang="asl", raw=raw, fps=25) for i in range(16)]
        writer = PredictionWriter(out / "writer", formats=["npz", "pose", "bvh"])
        (out / "writer").mkdir()

        def run_writer():
            writer._written.clear()
            writer.write(samples)

        writer_s = _best(run_writer, 2)
        sizes = {name: (out / f"a.{name}").stat().st_size for name in ("npz", "pose", "bvh", "gif")}
    base = seconds["np_save_raw_baseline"]
    return {
        "frames": frames,
        "seconds_per_sample": {k: round(v, 5) for k, v in seconds.items()},
        "ratio_vs_np_save": {k: round(v / base, 1) for k, v in seconds.items()},
        "ratio_vs_fk": {k: round(v / seconds["builtin_fk"], 1) for k, v in seconds.items()},
        "file_kib": {k: round(v / 1024, 1) for k, v in sizes.items()},
        "writer_npz_pose_bvh_samples_per_s": round(len(samples) / writer_s, 1),
    }
