"""The smplx joint backend on a structurally valid random SMPL-X model written by the test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("smplx")

from soke_lightning.core.layout import FEATURE_DIM, RAW_DIM, RAW_SLICES  # noqa: E402
from soke_lightning.kinematics import get_joint_backend  # noqa: E402
from soke_lightning.kinematics.smplx_backend import HAND_REGRESSION, SmplxBackend  # noqa: E402

NUM_VERTICES = 10475
SMPLX_PARENTS = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)
# vertices smplx hard-codes as extra joints -> the joint they belong to
SPECIAL_VERTICES = {9120: 15, 9929: 15, 9448: 15, 616: 15, 6: 15, 5770: 10, 5780: 10, 8846: 10, 8463: 11,
                    8474: 11, 8635: 11}
for _side, (_wrist, _fingers) in HAND_REGRESSION.items():
    for _rows, _tip in _fingers:
        SPECIAL_VERTICES[_tip] = _rows[2]


def write_random_smplx(path) -> None:
    """A random SMPL-X .npz with every key smplx reads: rigid one-hot skinning, regressor = vertex means."""
    rng = np.random.default_rng(0)
    joints = np.zeros((55, 3))
    for j in range(1, 55):
        joints[j] = joints[SMPLX_PARENTS[j]] + rng.normal(0, 0.08, 3)
    owner = np.arange(NUM_VERTICES) % 55
    for v, j in SPECIAL_VERTICES.items():
        owner[v] = j
    verts = joints[owner] + rng.normal(0, 0.01, (NUM_VERTICES, 3))
    weights = np.zeros((NUM_VERTICES, 55))
    weights[np.arange(NUM_VERTICES), owner] = 1.0
    regressor = weights.T / weights.sum(0)[:, None]
    faces = rng.integers(0, NUM_VERTICES, (20000, 3))
    bary = rng.dirichlet(np.ones(3), 51)
    shapedirs = rng.normal(0, 0.005, (NUM_VERTICES, 3, 20))
    shapedirs[owner != 15, :, 10:] = 0.0  # expression moves the head only, as in the real model
    np.savez_compressed(
        path,
        v_template=verts.astype(np.float32), f=faces.astype(np.int64), J_regressor=regressor.astype(np.float32),
        kintree_table=np.array([[4294967295] + list(SMPLX_PARENTS[1:]), list(range(55))], dtype=np.int64),
        weights=weights.astype(np.float32),
        shapedirs=shapedirs.astype(np.float32),
        posedirs=np.zeros((NUM_VERTICES, 3, 486), np.float32),
        hands_componentsl=np.eye(45, dtype=np.float32), hands_componentsr=np.eye(45, dtype=np.float32),
        hands_meanl=rng.normal(0, 0.1, 45).astype(np.float32), hands_meanr=rng.normal(0, 0.1, 45).astype(np.float32),
        lmk_faces_idx=rng.integers(0, 20000, 51).astype(np.int64), lmk_bary_coords=bary.astype(np.float32),
        dynamic_lmk_faces_idx=rng.integers(0, 20000, (79, 17)).astype(np.int64),
        dynamic_lmk_bary_coords=rng.dirichlet(np.ones(3), (79, 17)).astype(np.float32),
    )


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    root = tmp_path_factory.mktemp("smplx_model")
    (root / "smplx").mkdir()
    write_random_smplx(root / "smplx" / "SMPLX_NEUTRAL.npz")
    return SmplxBackend(model_dir=root, chunk_size=4)


def _random_raw(n: int, seed: int = 0) -> torch.Tensor:
    raw = torch.randn(n, RAW_DIM, generator=torch.Generator().manual_seed(seed)) * 0.3
    return raw


def test_joint_sets_and_shapes(backend):
    assert backend.joint_sets["body"] == (12, 16, 17, 18, 19, 20, 21, 59, 58, 57, 56, 55)
    assert backend.joint_sets["body_align"] == tuple(range(144))
    assert backend.joint_sets["lhand"] == tuple(range(144, 165))
    assert backend.joint_sets["rhand"] == tuple(range(165, 186))
    assert backend.num_joints == 186 and backend.joint_names[55] == "nose"
    joints = backend(_random_raw(10).reshape(2, 5, RAW_DIM))  # 10 frames in chunks of 4
    assert joints.shape == (2, 5, 186, 3) and torch.isfinite(joints).all()
    assert all(0 <= p < 186 and 0 <= c < 186 for p, c in backend.bones)


def test_hand_sets_are_the_regressed_points(backend):
    # rigid one-hot skinning: a J-regressor row on the posed mesh equals the posed skeleton joint, and a
    # fingertip vertex equals smplx's fingertip joint (66-70 left, 71-75 right)
    joints = backend(_random_raw(6, seed=1))
    for side, hand, first_tip in (("left", "lhand", 66), ("right", "rhand", 71)):
        wrist, fingers = HAND_REGRESSION[side]
        expected = [wrist]
        for f, (rows, _) in enumerate(fingers):
            expected += list(rows) + [first_tip + f]
        points = backend.select(joints, hand)
        torch.testing.assert_close(points, joints[:, expected], atol=2e-5, rtol=0)


def test_features_fixed_betas_and_rest_root(backend):
    feats = torch.randn(3, FEATURE_DIM, generator=torch.Generator().manual_seed(2)) * 0.3
    joints = backend.from_features(feats)
    assert joints.shape == (3, 186, 3)
    # root orientation and lower body at rest: the pelvis does not move between frames
    torch.testing.assert_close(joints[:, 0], joints[:1, 0].expand(3, 3))
    raw = _random_raw(2, seed=3)
    other = raw.clone()
    other[:, RAW_SLICES["smplx_shape"]] += 1.0  # the frame's own betas are ignored (SOKE's fixed shape)
    torch.testing.assert_close(backend(raw), backend(other))
    # the pose matters: bending the left elbow moves the left wrist
    bent = raw.clone()
    bent[:, RAW_SLICES["smplx_body_pose"].start + 3 * 17 + 1] += 1.0  # body_pose of joint 18 (left elbow), y
    assert (backend(bent)[:, 20] - backend(raw)[:, 20]).norm(dim=-1).min() > 1e-3


def test_registry_env_var_and_missing_file(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("SOKE_SMPLX_DIR", str(backend.model_file))
    from_env = get_joint_backend("smplx", chunk_size=64)
    assert isinstance(from_env, SmplxBackend) and from_env.model_file == backend.model_file
    monkeypatch.delenv("SOKE_SMPLX_DIR")
    with pytest.raises(FileNotFoundError, match="SMPLX_NEUTRAL.npz"):
        SmplxBackend(model_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="SOKE_SMPLX_DIR"):
        SmplxBackend()
