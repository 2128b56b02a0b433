"""Small MediaPipe-Holistic-like `.pose` files written with pose-format, for the keypoint-corpus tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HAND_OFFSETS = np.linspace(-1, 1, 21)


def holistic_pose(frames: int, seed: int, *, fps: float = 25.0, drop_left_hand: tuple[int, ...] = (),
                  with_face: bool = False, hidden_points: tuple[tuple[int, int], ...] = ()):
    """A Holistic-shaped Pose (33 body, [face], 21 + 21 hand points, XYZC) of a person moving their arms.

    Args:
        drop_left_hand: frames where the left hand is zeroed (MediaPipe's "not detected").
        hidden_points: (frame, flat point index) pairs given confidence 0.
    """
    from pose_format import Pose
    from pose_format.numpy.pose_body import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

    from soke_lightning.core.feature_layout import load_feature_layout

    layout = load_feature_layout("holistic_face" if with_face else "holistic")
    rng = np.random.default_rng(seed)
    comps = [PoseHeaderComponent(c.name, list(c.points), list(c.limbs), [(255, 0, 0)] * len(c.limbs), "XYZC")
             for c in layout.components]
    header = PoseHeader(0.2, PoseHeaderDimensions(640, 480, 0), comps)
    total = sum(len(c.points) for c in layout.components)
    t = np.arange(frames)[:, None]
    data = 300 + 60 * rng.standard_normal((1, total, 3)) + 20 * np.sin(t / 5.0 + rng.random((1, total)))[..., None]
    body = layout.components[0].points
    data[:, body.index("LEFT_SHOULDER")] = [380, 200, -10]
    data[:, body.index("RIGHT_SHOULDER")] = [260, 205, -12]
    conf = np.ones((frames, total))
    left = sum(len(c.points) for c in layout.components[:-2])
    for f in drop_left_hand:
        data[f, left:left + 21] = 0.0
        conf[f, left:left + 21] = 0.0
    for f, k in hidden_points:
        conf[f, k] = 0.0
    body_data = NumPyPoseBody(fps=fps, data=data[:, None].astype(np.float32), confidence=conf[:, None].astype(np.float32))
    return Pose(header, body_data)


def write_corpus(root: Path, rows: list[dict], *, frames: int = 24, with_face: bool = False) -> Path:
    """Write one .pose file per row (``file`` key) and the index CSV; returns the CSV path."""
    root.mkdir(parents=True, exist_ok=True)
    columns = sorted({k for r in rows for k in r if k not in ("drop_left_hand", "frames")})
    for i, r in enumerate(rows):
        pose = holistic_pose(r.get("frames", frames), seed=i, drop_left_hand=tuple(r.get("drop_left_hand", ())),
                             with_face=with_face)
        path = root / r["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            pose.write(fh)
    index = root / "index.csv"
    with open(index, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in columns})
    return index
