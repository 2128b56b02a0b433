"""Round trips of the motion exports: SMPL-X .npz, pose-format .pose and BVH (parsed and re-animated here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soke_lightning.core.layout import RAW_DIM, RAW_KEYS, RAW_SLICES
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.render.exports import (
    MEDIAPIPE_BODY_LIMBS,
    MEDIAPIPE_BODY_POINTS,
    MEDIAPIPE_HAND_LIMBS,
    MEDIAPIPE_HAND_POINTS,
    POSE_COMPONENTS,
    PoseCanvas,
    export_bvh,
    export_pose,
    export_smplx_npz,
    load_smplx_npz,
    matrix_to_euler_zxy,
    read_pose,
)


@pytest.fixture(scope="module")
def backend():
    return get_joint_backend("builtin")


def _raw(frames: int = 12, seed: int = 0, scale: float = 0.4) -> np.ndarray:
    raw = np.random.default_rng(seed).normal(0.0, scale, (frames, RAW_DIM)).astype(np.float32)
    raw[:, RAW_SLICES["smplx_shape"]] = 0.1
    return raw


def _no_temp_files(folder) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------------------ npz


def test_smplx_npz_round_trip(tmp_path, backend):
    raw = _raw()
    joints = backend(torch.as_tensor(raw)).numpy()
    path = export_smplx_npz(tmp_path / "a/b.npz", torch.as_tensor(raw), joints=joints,
                            joint_names=backend.joint_names, fps=25.0, text="Guten Morgen 你好", lang="dgs",
                            name="x/1")
    assert path == tmp_path / "a/b.npz" and _no_temp_files(path.parent)
    back = load_smplx_npz(path)
    np.testing.assert_array_equal(back.raw, raw)
    np.testing.assert_array_equal(back.joints, joints)
    assert (back.fps, back.text, back.lang, back.name) == (25.0, "Guten Morgen 你好", "dgs", "x/1")
    assert back.joint_names == backend.joint_names
    # The official keys are plain arrays of the right sizes and concatenate back to the raw frames.
    with np.load(path, allow_pickle=False) as data:
        parts = [data[key] for key, _ in RAW_KEYS]
        assert [p.shape for p in parts] == [(12, size) for _, size in RAW_KEYS]
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), raw)
    np.testing.assert_array_equal(back.params()["smplx_rhand_pose"], raw[:, 111:156])


def test_smplx_npz_without_joints_and_errors(tmp_path):
    back = load_smplx_npz(export_smplx_npz(tmp_path / "m.npz", _raw(5), fps=20))
    assert back.joints is None and back.joint_names is None and back.raw.shape == (5, RAW_DIM)
    with pytest.raises(ValueError, match=r"\[T, 179\].*features_to_raw"):
        export_smplx_npz(tmp_path / "bad.npz", np.zeros((5, 133)), fps=20)
    with pytest.raises(ValueError, match="joints must be"):
        export_smplx_npz(tmp_path / "bad.npz", _raw(5), joints=np.zeros((4, 70, 3)), fps=20)
    np.savez(tmp_path / "other.npz", poses=np.zeros(3))
    with pytest.raises(KeyError, match="other.npz.*'raw'"):
        load_smplx_npz(tmp_path / "other.npz")
    assert not (tmp_path / "bad.npz").exists() and _no_temp_files(tmp_path)


# ----------------------------------------------------------------------------------------------------- .pose


def test_pose_round_trip_with_pose_format(tmp_path, backend):
    from pose_format import Pose

    raw = _raw(9, seed=1)
    joints = backend(torch.as_tensor(raw)).numpy()
    canvas = PoseCanvas(width=800, height=600, pixels_per_metre=400.0, centre=(0.0, -0.1, 0.0))
    path = export_pose(tmp_path / "s.pose", joints, joint_sets=backend.joint_sets, joint_names=backend.joint_names,
                       fps=24.0, canvas=canvas)
    pose = Pose.read(path.read_bytes())
    header = pose.header
    assert [c.name for c in header.components] == list(POSE_COMPONENTS)
    assert [c.points for c in header.components] == [list(MEDIAPIPE_BODY_POINTS), list(MEDIAPIPE_HAND_POINTS),
                                                     list(MEDIAPIPE_HAND_POINTS)]
    assert all(c.format == "XYZC" and len(c.colors) == len(c.limbs) > 0 for c in header.components)
    assert (header.dimensions.width, header.dimensions.height) == (800, 600)
    assert pose.body.data.shape == (9, 1, 33 + 42, 3) and pose.body.fps == pytest.approx(24.0)

    # Inverse transform of the stored pixels gives the joints back (float32 file precision).
    back = read_pose(path, canvas)
    sets = backend.joint_sets
    np.testing.assert_allclose(back.lhand, joints[:, list(sets["lhand"])], atol=1e-5)
    np.testing.assert_allclose(back.rhand, joints[:, list(sets["rhand"])], atol=1e-5)
    names = ["NOSE", "LEFT_SHOULDER", "RIGHT_WRIST", "LEFT_EAR", "RIGHT_EYE", "LEFT_HIP"]
    ours = [backend.joint_names.index(n) for n in ("nose", "left_shoulder", "right_wrist", "left_ear", "right_eye",
                                                   "left_hip")]
    np.testing.assert_allclose(back.body[:, [MEDIAPIPE_BODY_POINTS.index(n) for n in names]], joints[:, ours],
                               atol=1e-5)
    # MediaPipe's body hand points are the index/pinky knuckles and the thumb MCP of the hand set.
    np.testing.assert_allclose(back.body[:, MEDIAPIPE_BODY_POINTS.index("LEFT_INDEX")],
                               joints[:, sets["lhand"][5]], atol=1e-5)
    valid = {MEDIAPIPE_BODY_POINTS[i] for i in np.flatnonzero(back.body_valid)}
    assert {"LEFT_KNEE", "MOUTH_LEFT", "LEFT_EYE_INNER"}.isdisjoint(valid) and "RIGHT_HIP" in valid
    assert len(valid) == 19
    # Missing points are masked (confidence 0), present ones have confidence 1.
    conf = np.asarray(pose.body.confidence)[:, 0]
    assert set(np.unique(conf)) == {0.0, 1.0} and conf[:, 33:].min() == 1.0
    # pose-format's own tools recognise the file as MediaPipe Holistic and normalise it by the shoulders.
    from pose_format.utils.generic import detect_known_pose_format

    assert detect_known_pose_format(pose) == "holistic"
    data = pose.normalize().body.data[:, 0]
    shoulders = [header.get_point_index("POSE_LANDMARKS", f"{side}_SHOULDER") for side in ("LEFT", "RIGHT")]
    assert np.linalg.norm(data[:, shoulders[0]] - data[:, shoulders[1]], axis=-1).mean() == pytest.approx(1.0)


def test_pose_image_orientation(tmp_path, backend):
    """A signer facing the camera: their left hand on the image's right, the head above (smaller y) the hips."""
    rest = backend.rest_joints().numpy()[None]
    back = read_pose(export_pose(tmp_path / "r.pose", rest, joint_sets=backend.joint_sets,
                                 joint_names=backend.joint_names, fps=25), PoseCanvas())
    from pose_format import Pose

    pixels = np.asarray(Pose.read((tmp_path / "r.pose").read_bytes()).body.data.data)[0, 0]
    idx = MEDIAPIPE_BODY_POINTS.index
    assert pixels[idx("LEFT_WRIST"), 0] > 500 > pixels[idx("RIGHT_WRIST"), 0]
    assert pixels[idx("NOSE"), 1] < pixels[idx("LEFT_SHOULDER"), 1] < pixels[idx("LEFT_HIP"), 1]
    # The nose is in front of (closer to the camera than) the ears: smaller z, as in MediaPipe.
    assert pixels[idx("NOSE"), 2] < pixels[idx("LEFT_EAR"), 2]
    # The whole rest body (T-pose: 1.73 m arm span) lies on the default canvas.
    body = pixels[:33][back.body_valid, :2]
    assert (body > 0).all() and (body < 1000).all()


def test_pose_limbs_and_canvas_inverse():
    assert all(0 <= a < 33 and 0 <= b < 33 for a, b in MEDIAPIPE_BODY_LIMBS)
    hand_edges = {frozenset(e) for e in MEDIAPIPE_HAND_LIMBS}
    assert len(hand_edges) == 21  # a tree over the 21 points (20 edges) plus the edge closing the palm
    assert set().union(*hand_edges) == set(range(21))
    for finger_base in (1, 5, 9, 13, 17):
        assert all(frozenset((k, k + 1)) in hand_edges for k in range(finger_base, finger_base + 3))
    canvas = PoseCanvas(width=640, height=480, pixels_per_metre=321.0, centre=(0.1, 0.2, -0.3))
    points = np.random.default_rng(0).normal(size=(4, 7, 3))
    np.testing.assert_allclose(canvas.to_metres(canvas.to_pixels(points)), points, atol=1e-12)


def test_pose_rejects_bad_inputs(tmp_path, backend):
    with pytest.raises(ValueError, match=r"\[T, J, 3\]"):
        export_pose(tmp_path / "x.pose", np.zeros((4, 70)), joint_sets=backend.joint_sets, fps=25)
    with pytest.raises(KeyError, match="'lhand'"):
        export_pose(tmp_path / "x.pose", np.zeros((4, 70, 3)), joint_sets={"body": tuple(range(12))}, fps=25)


# ------------------------------------------------------------------------------------------------------ BVH


def _rot(axis: str, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    rows = {"X": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
            "Y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
            "Z": [[c, -s, zero], [s, c, zero], [zero, zero, one]]}[axis]
    return np.moveaxis(np.array(rows), (0, 1), (-2, -1))


def _parse_bvh(text: str):
    """A small BVH reader: joints (name, parent, offset, channels) in file order, frame time, motion [T, C]."""
    tokens = text.split()
    joints, stack, i = [], [], 0
    while tokens[i] != "MOTION":
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            joints.append({"name": tokens[i + 1], "parent": stack[-1] if stack else -1})
            i += 2
        elif tok == "End":  # End Site { OFFSET x y z }
            i += 8
        elif tok == "{":
            stack.append(len(joints) - 1)
            i += 1
        elif tok == "}":
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            joints[-1]["offset"] = np.array([float(v) for v in tokens[i + 1:i + 4]])
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            joints[-1]["channels"] = tokens[i + 2:i + 2 + n]
            i += 2 + n
        else:
            i += 1
    assert tokens[i + 1] == "Frames:" and tokens[i + 3:i + 5] == ["Frame", "Time:"]
    frames, frame_time = int(tokens[i + 2]), float(tokens[i + 5])
    motion = np.array([float(v) for v in tokens[i + 6:]]).reshape(frames, -1)
    return joints, frame_time, motion


def _bvh_forward(joints, motion) -> np.ndarray:
    """World positions [T, J, 3] of a parsed BVH: G_j = G_parent R_j, p_j = p_parent + G_parent offset_j."""
    frames = motion.shape[0]
    positions = np.zeros((frames, len(joints), 3))
    rotations = np.zeros((frames, len(joints), 3, 3))
    column = 0
    for j, joint in enumerate(joints):
        local = np.broadcast_to(np.eye(3), (frames, 3, 3))
        position = joint["offset"]
        for channel in joint["channels"]:
            values = motion[:, column]
            column += 1
            if channel.endswith("position"):
                position = position + np.eye(3)["XYZ".index(channel[0])] * values[:, None]
            else:
                local = local @ _rot(channel[0], np.radians(values))
        if joint["parent"] < 0:
            positions[:, j], rotations[:, j] = position, local
        else:
            parent_rot = rotations[:, joint["parent"]]
            positions[:, j] = positions[:, joint["parent"]] + (parent_rot @ joint["offset"][:, None])[..., 0]
            rotations[:, j] = parent_rot @ local
    assert column == motion.shape[1]
    return positions


@pytest.mark.parametrize(("hand_mean", "unit"), [("relaxed", "cm"), ("flat", "m")])
def test_bvh_round_trip_matches_builtin_fk(tmp_path, hand_mean, unit):
    backend = get_joint_backend("builtin", hand_mean=hand_mean)
    raw = _raw(10, seed=2, scale=0.6)
    raw[3, 0:3] = [0.0, 0.0, 0.0]
    raw[4, 48:51] = [np.pi / 2, 0.0, 0.0]  # a shoulder at Euler gimbal lock (x rotation of 90 degrees)
    path = export_bvh(tmp_path / "m.bvh", raw, backend, fps=12.5, unit=unit)
    joints, frame_time, motion = _parse_bvh(path.read_text())
    assert frame_time == pytest.approx(1 / 12.5) and motion.shape[0] == 10
    assert [j["name"] for j in joints][0] == "pelvis" and sorted(j["name"] for j in joints) == sorted(
        backend.joint_names)
    assert joints[0]["channels"][:3] == ["Xposition", "Yposition", "Zposition"]
    assert all(j["channels"] == ["Zrotation", "Xrotation", "Yrotation"] for j in joints[1:])
    scale = 100.0 if unit == "cm" else 1.0
    ours = _bvh_forward(joints, motion) / scale
    expected = backend(torch.as_tensor(raw, dtype=torch.float64)).numpy()
    order = [backend.joint_names.index(j["name"]) for j in joints]
    assert np.abs(ours - expected[:, order]).max() < 1e-4


def test_bvh_needs_a_skeleton(tmp_path, backend):
    class NotASkeleton:
        joint_names = ("a",)

    with pytest.raises(TypeError, match="builtin"):
        export_bvh(tmp_path / "x.bvh", _raw(2), NotASkeleton(), fps=25)
    with pytest.raises(ValueError, match="unit"):
        export_bvh(tmp_path / "x.bvh", _raw(2), backend, fps=25, unit="inch")


def test_euler_zxy_inverts_rotation_matrices():
    rng = np.random.default_rng(3)
    angles = rng.uniform(-np.pi, np.pi, (200, 3))
    angles[:, 1] = rng.uniform(-np.pi / 2, np.pi / 2, 200)
    angles[:3, 1] = [np.pi / 2, -np.pi / 2, np.pi / 2 - 1e-7]  # gimbal lock and next to it
    matrix = _rot("Z", angles[:, 0]) @ _rot("X", angles[:, 1]) @ _rot("Y", angles[:, 2])
    back = matrix_to_euler_zxy(matrix)
    rebuilt = _rot("Z", back[:, 0]) @ _rot("X", back[:, 1]) @ _rot("Y", back[:, 2])
    np.testing.assert_allclose(rebuilt, matrix, atol=1e-6)
    np.testing.assert_allclose(back[3:], angles[3:], atol=1e-6)


def test_exports_respect_the_umask(tmp_path):
    import os

    from soke_lightning.render.exports import export_smplx_npz

    old = os.umask(0o022)
    try:
        path = export_smplx_npz(tmp_path / "a.npz", np.zeros((4, 179), np.float32), fps=25.0, text="x", lang="asl",
                                name="a")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644
