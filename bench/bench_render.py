"""Built-in forward kinematics and skeleton rendering, each against a simple baseline measured in the same run.

* FK: 256 sequences x 200 frames through ``BuiltinSkeleton`` vs a per-joint loop (batched over frames only).
* Render: a 200-frame single-panel GIF with ``render_animation`` vs a matplotlib animation that updates the line
  artists of a prepared figure per frame (the usual "draw once, update artists" approach) and writes the same GIF.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from soke_lightning.core.layout import RAW_DIM
from soke_lightning.kinematics.builtin import BuiltinSkeleton, axis_angle_to_matrix
from soke_lightning.render.animation import render_animation, write_gif


def _per_joint_fk(skeleton: BuiltinSkeleton, raw: torch.Tensor) -> torch.Tensor:
    local = axis_angle_to_matrix(skeleton.local_axis_angle(raw))
    glob, pos = [None] * skeleton.num_joints, [None] * skeleton.num_joints
    for j, p in enumerate(skeleton.parents):
        if p < 0:
            glob[j], pos[j] = local[..., j, :, :], skeleton.offsets[j].expand(*raw.shape[:-1], 3)
        else:
            glob[j] = glob[p] @ local[..., j, :, :]
            pos[j] = pos[p] + (glob[p] @ skeleton.offsets[j, :, None]).squeeze(-1)
    return torch.stack(pos, dim=-2)


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _matplotlib_gif(joints: np.ndarray, bones, path: Path, fps: float) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    fig = Figure(figsize=(4, 5.4), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lo, hi = joints.reshape(-1, 3).min(0), joints.reshape(-1, 3).max(0)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    lines = [ax.plot([], [], lw=2)[0] for _ in bones]
    images = []
    for frame in joints:
        for line, (a, b) in zip(lines, bones):
            line.set_data([frame[a, 0], frame[b, 0]], [frame[a, 1], frame[b, 1]])
        canvas.draw()
        images.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]))
    write_gif(images, path, fps)


def main(argv: list[str]) -> dict:
    torch.manual_seed(0)
    skeleton = BuiltinSkeleton()
    raw = torch.randn(256, 200, RAW_DIM) * 0.3
    with torch.no_grad():
        torch.testing.assert_close(skeleton(raw[:2]), _per_joint_fk(skeleton, raw[:2]))
        ours = _best(lambda: skeleton(raw), 3)
        baseline = _best(lambda: _per_joint_fk(skeleton, raw), 3)
    small = (raw[:16] * 1).requires_grad_(True)
    backward = _best(lambda: skeleton(small).square().sum().backward(), 3)

    motion = torch.zeros(200, RAW_DIM)
    t = torch.linspace(0, 1, 200)
    motion[:, 48:51] = torch.stack([0 * t, -0.8 * t, -1.2 + 0.6 * t], -1)  # left shoulder
    motion[:, 54:57] = torch.stack([0 * t, -1.5 * t, 0 * t], -1)  # left elbow
    joints = skeleton(motion).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        kw = dict(caption="a benchmark sentence", joint_sets=skeleton.joint_sets)
        render_ours = _best(lambda: render_animation([joints], skeleton.bones, tmp / "a.gif", **kw), 2)
        render_plain = _best(lambda: render_animation([joints], skeleton.bones, tmp / "b.gif", antialias=False,
                                                      **kw), 2)
        render_three = _best(lambda: render_animation([joints] * 3, skeleton.bones, tmp / "c.gif", side_view=True,
                                                      titles=["gt", "rec", "gen"], **kw), 1)
        render_mpl = _best(lambda: _matplotlib_gif(joints, skeleton.bones, tmp / "d.gif", 25), 1)
        gif_kb = (tmp / "a.gif").stat().st_size / 1024
    return {
        "fk_frames": int(raw.shape[0] * raw.shape[1]),
        "fk_builtin_s": round(ours, 3),
        "fk_per_joint_loop_s": round(baseline, 3),
        "fk_speedup": round(baseline / ours, 2),
        "fk_backward_3200_frames_s": round(backward, 3),
        "render_200_frames_single_panel_s": round(render_ours, 3),
        "render_200_frames_single_panel_no_antialias_s": round(render_plain, 3),
        "render_200_frames_three_panels_side_view_s": round(render_three, 3),
        "render_matplotlib_update_artists_s": round(render_mpl, 3),
        "render_speedup_vs_matplotlib": round(render_mpl / render_ours, 2),
        "gif_kib_single_panel": round(gif_kb, 1),
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(main(sys.argv[1:]), indent=2))
