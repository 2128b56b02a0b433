"""Keypoint layouts on screen and on disk: `.pose` files with the layout's header, and points ready to draw.

* :func:`keypoint_pose` / :func:`export_keypoint_pose` write points of a keypoint feature layout (normalised units,
  y up) as a ``pose_format.Pose`` whose header is the layout's source header: every declared component with all its
  points and limbs, format XYZC (XYC for 2-D layouts). Kept points get confidence 1 (0 where missing), the other
  points of the components confidence 0, so pose-viewer draws a Holistic file. Coordinates are pixels on
  :data:`KEYPOINT_CANVAS` (``pixel = (500 + 150 x, 500 - 150 (y + 0.5), -150 z)``: 150 pixels per shoulder width).
* :func:`read_keypoint_pose` reads such a file back into layout points (the exact inverse, up to float32).
* :func:`drawable_points` fills missing points for drawing only (last seen position, else the part's alignment
  point), so a skeleton animation never jumps to the origin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from soke_lightning.core.feature_layout import FeatureLayout
from soke_lightning.core.io import atomic_write
from soke_lightning.render.exports import PoseCanvas

#: Pixels of a `.pose` file written from normalised keypoints (units of shoulder widths, origin mid-shoulder).
KEYPOINT_CANVAS = PoseCanvas(width=1000, height=1000, pixels_per_metre=150.0, centre=(0.0, -0.5, 0.0))


def _flat_ids(layout: FeatureLayout) -> list[int]:
    """Index of every kept layout point among all points of the header's components."""
    offsets, start = {}, 0
    for comp in layout.components:
        offsets[comp.name] = start
        start += len(comp.points)
    by_comp = {c.name: c for c in layout.components}
    return [offsets[c] + by_comp[c].points.index(p) for c, p in layout.points]


def keypoint_header(layout: FeatureLayout):
    """The ``PoseHeader`` of a layout: its source components with all their points and limbs."""
    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

    fmt = "XYZC" if len(layout.dims) == 3 else "XYC"
    comps = [PoseHeaderComponent(name=c.name, points=list(c.points), limbs=[tuple(x) for x in c.limbs],
                                 colors=[(80, 80, 80)] * len(c.limbs), point_format=fmt)
             for c in layout.components]
    return PoseHeader(version=0.2, dimensions=PoseHeaderDimensions(width=KEYPOINT_CANVAS.width,
                                                                   height=KEYPOINT_CANVAS.height, depth=0),
                      components=comps)


def keypoint_pose(points, layout: FeatureLayout, fps: float, visible=None):
    """Build a ``pose_format.Pose`` (one person) from layout points.

    Args:
        points: [T, K, 3] points of ``layout`` (normalised units; z ignored for 2-D layouts).
        layout: a keypoint feature layout.
        fps: frames per second.
        visible: optional bool [T, K]; False points are written with confidence 0 and zero coordinates.
    """
    from pose_format import Pose
    from pose_format.numpy.pose_body import NumPyPoseBody

    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (layout.num_points, 3):
        raise ValueError(f"keypoint_pose: points must be [T, {layout.num_points}, 3] for layout {layout.name!r}, "
                         f"got {points.shape}")
    frames = points.shape[0]
    total = sum(len(c.points) for c in layout.components)
    c = len(layout.dims)
    data = np.zeros((frames, total, c))
    conf = np.zeros((frames, total))
    ids = _flat_ids(layout)
    vis = np.ones((frames, layout.num_points), bool) if visible is None else np.asarray(visible, bool)
    data[:, ids] = np.where(vis[..., None], KEYPOINT_CANVAS.to_pixels(points)[..., :c], 0.0)
    conf[:, ids] = vis
    body = NumPyPoseBody(fps=float(fps), data=data[:, None].astype(np.float32),
                         confidence=conf[:, None].astype(np.float32))
    return Pose(keypoint_header(layout), body)


def export_keypoint_pose(path, points, layout: FeatureLayout, fps: float, visible=None) -> Path:
    """Write :func:`keypoint_pose` atomically to ``path`` (parents created); returns the path."""
    pose = keypoint_pose(points, layout, fps, visible)
    return atomic_write(path, pose.write)


def read_keypoint_pose(path, layout: FeatureLayout) -> tuple[np.ndarray, np.ndarray, float]:
    """Read a `.pose` file written by :func:`export_keypoint_pose` -> (points [T, K, 3], visible [T, K], fps).

    Raises:
        ValueError naming the file when its header is not the layout's.
    """
    from pose_format import Pose

    pose = Pose.read(Path(path).read_bytes())
    found = [(c.name, list(c.points)) for c in pose.header.components]
    expected = [(c.name, list(c.points)) for c in layout.components]
    if found != expected:
        raise ValueError(f"{path}: its components {[n for n, _ in found]} are not those of layout "
                         f"{layout.name!r} {[n for n, _ in expected]} (with the same points)")
    ids = _flat_ids(layout)
    data = np.asarray(pose.body.data.data)[:, 0][:, ids].astype(np.float64)
    if data.shape[-1] == 2:
        data = np.concatenate([data, np.zeros((*data.shape[:-1], 1))], axis=-1)
    visible = np.asarray(pose.body.confidence)[:, 0][:, ids] > 0
    points = np.where(visible[..., None], KEYPOINT_CANVAS.to_metres(data), 0.0)
    if len(layout.dims) == 2:
        points[..., 2] = 0.0
    return points, visible, float(pose.body.fps)


def drawable_points(points: np.ndarray, visible: np.ndarray | None, layout: FeatureLayout) -> np.ndarray:
    """[T, K, 3] points with missing ones filled for drawing: the last seen position of the point, else (never
    seen so far) its part's alignment point in that frame, else the origin."""
    out = np.array(points, dtype=np.float64)
    if visible is None:
        return out
    visible = np.asarray(visible, bool)
    last = np.full(out.shape[1:], np.nan)
    for t in range(len(out)):
        seen = visible[t]
        last[seen] = out[t, seen]
        out[t, ~seen] = last[~seen]
    for part, ids in layout.part_points.items():
        a = layout.align_points[part]
        ids = list(ids)
        hole = np.isnan(out[:, ids]).any(-1)
        anchor = np.nan_to_num(out[:, a], nan=0.0)
        out[:, ids] = np.where(hole[..., None], anchor[:, None], out[:, ids])
    return np.nan_to_num(out, nan=0.0)
