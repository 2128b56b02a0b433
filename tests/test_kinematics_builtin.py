"""Built-in forward kinematics: rest pose, rigidity, locality, joint sets, gradients, batching, feature path."""

from __future__ import annotations

import pytest
import torch

from soke_lightning.core.layout import FEATURE_DIM, FIXED_BETAS, RAW_DIM, RAW_SLICES, features_to_raw
from soke_lightning.kinematics import BODY_SET_NAMES, JointBackend, get_joint_backend
from soke_lightning.kinematics.builtin import RELAXED_HAND_LEFT, BuiltinSkeleton, axis_angle_to_matrix


@pytest.fixture(scope="module")
def flat() -> BuiltinSkeleton:
    return BuiltinSkeleton(hand_mean="flat")


def _skew(v: torch.Tensor) -> torch.Tensor:
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*v.shape[:-1], 3, 3)


def _reference_fk(skeleton: BuiltinSkeleton, raw: torch.Tensor) -> torch.Tensor:
    """Slow, obviously-correct FK of one frame: joint by joint, rotations by the matrix exponential."""
    local = torch.linalg.matrix_exp(_skew(skeleton.local_axis_angle(raw)))
    offsets = skeleton.offsets.to(raw.dtype)
    glob, pos = [None] * skeleton.num_joints, [None] * skeleton.num_joints
    for j, p in enumerate(skeleton.parents):  # parents precede children in SMPL-X order and in our extras
        assert p < j
        if p < 0:
            glob[j], pos[j] = local[j], offsets[j]
        else:
            glob[j] = glob[p] @ local[j]
            pos[j] = pos[p] + glob[p] @ offsets[j]
    return torch.stack(pos)


def _descendants(parents, root: int) -> set[int]:
    out = {root}
    for j, p in enumerate(parents):
        if p in out:
            out.add(j)
    return out


def test_rodrigues_matches_matrix_exp_and_is_finite_at_zero():
    v = torch.cat([torch.randn(64, 3, dtype=torch.float64) * 2, torch.zeros(1, 3, dtype=torch.float64),
                   torch.full((1, 3), 1e-4, dtype=torch.float64)])
    torch.testing.assert_close(axis_angle_to_matrix(v), torch.linalg.matrix_exp(_skew(v)))
    zero = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    axis_angle_to_matrix(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()


def test_zero_pose_is_the_rest_pose(flat):
    joints = flat(torch.zeros(RAW_DIM))
    # Rest positions = sums of offsets along the chain.
    expected = torch.zeros_like(joints)
    for j, p in enumerate(flat.parents):
        expected[j] = flat.offsets[j] + (expected[p] if p >= 0 else 0)
    torch.testing.assert_close(joints, expected)
    names = flat.joint_names
    y = {n: joints[names.index(n), 1].item() for n in ("head", "neck", "pelvis", "left_foot", "nose")}
    assert y["nose"] > y["head"] > y["neck"] > y["pelvis"] > y["left_foot"], "head up, feet down"
    assert joints[names.index("left_wrist"), 0] > 0.5 > -0.5 > joints[names.index("right_wrist"), 0], \
        "T-pose: left arm along +x"
    assert joints[names.index("nose"), 2] > joints[names.index("head"), 2], "the face looks along +z"
    height = joints[:, 1].max() - joints[:, 1].min()
    assert 1.4 < height < 1.9


def test_relaxed_hand_mean_is_added_to_hand_parameters(flat):
    relaxed = BuiltinSkeleton(hand_mean="relaxed")
    raw = torch.zeros(RAW_DIM)
    raw_with_mean = raw.clone()
    left = torch.tensor(RELAXED_HAND_LEFT)
    raw_with_mean[66:111] = left
    raw_with_mean[111:156] = (left.reshape(15, 3) * torch.tensor([1.0, -1.0, -1.0])).reshape(-1)
    torch.testing.assert_close(relaxed(raw), flat(raw_with_mean))
    # The relaxed hand is curled: the middle fingertip is lower (towards the palm) than when flat.
    tip = relaxed.joint_names.index("left_middle_tip")
    assert relaxed(raw)[tip, 1] < flat(raw)[tip, 1] - 0.01
    # Mirror symmetry of the rest pose, relaxed hands included.
    joints = relaxed(raw)
    for j, name in enumerate(relaxed.joint_names):
        if name.startswith("left_"):
            k = relaxed.joint_names.index("right_" + name[5:])
            torch.testing.assert_close(joints[j] * torch.tensor([-1.0, 1.0, 1.0]), joints[k])
    with pytest.raises(ValueError, match="hand_mean"):
        BuiltinSkeleton(hand_mean="curled")


def test_bone_lengths_preserved_under_random_poses(flat):
    raw = torch.randn(16, RAW_DIM, dtype=torch.float64)
    rest = flat(torch.zeros(RAW_DIM, dtype=torch.float64))
    joints = flat(raw)
    for c, p in enumerate(flat.parents):
        if p < 0:
            continue
        length = (joints[:, c] - joints[:, p]).norm(dim=-1)
        torch.testing.assert_close(length, (rest[c] - rest[p]).norm().expand(16))


def test_left_shoulder_rotation_moves_only_its_descendants(flat):
    names = flat.joint_names
    shoulder = names.index("left_shoulder")
    raw = torch.zeros(RAW_DIM)
    raw[3 * shoulder: 3 * shoulder + 3] = torch.tensor([0.0, 0.0, -1.2])  # body_pose slot of joint 16
    moved = (flat(raw) - flat(torch.zeros(RAW_DIM))).norm(dim=-1) > 1e-6
    expected = _descendants(flat.parents, shoulder) - {shoulder}
    assert set(torch.nonzero(moved).flatten().tolist()) == expected
    assert {"left_elbow", "left_wrist", "left_index_tip", "left_thumb3"} <= {names[j] for j in expected}
    # Convention: -z on the left shoulder lowers the left arm.
    assert flat(raw)[names.index("left_wrist"), 1] < -0.2


def test_joint_sets_order_and_names(flat):
    names = flat.joint_names
    assert len(names) == flat.num_joints == 70 and len(set(names)) == 70
    assert [names[j] for j in flat.joint_sets["body"]] == list(BODY_SET_NAMES)
    assert flat.joint_sets["body"] == (12, 16, 17, 18, 19, 20, 21, 59, 58, 57, 56, 55)  # SMPL-X's ids
    for key, side in (("lhand", "left"), ("rhand", "right")):
        hand = [names[j] for j in flat.joint_sets[key]]
        assert len(hand) == 21 and hand[0] == f"{side}_wrist"
        for f, finger in enumerate(("thumb", "index", "middle", "ring", "pinky")):
            assert hand[1 + 4 * f: 5 + 4 * f] == [f"{side}_{finger}{k}" for k in (1, 2, 3)] + [f"{side}_{finger}_tip"]
    fingers = set(flat.joint_sets["lhand"][1:]) | set(flat.joint_sets["rhand"][1:])
    assert len(fingers) == 40
    assert flat.joint_sets["body_align"] == tuple(i for i in range(70) if i not in fingers)
    joints = flat(torch.randn(2, 5, RAW_DIM))
    assert flat.select(joints, "lhand").shape == (2, 5, 21, 3)
    torch.testing.assert_close(flat.select(joints, "body")[..., 0, :], joints[..., names.index("neck"), :])
    with pytest.raises(KeyError, match="face"):
        flat.select(joints, "face")
    for parent, child in flat.bones:
        assert flat.parents[child] == parent


def test_gradcheck_small_float64():
    skeleton = BuiltinSkeleton(hand_mean="relaxed")
    raw = (torch.randn(2, RAW_DIM, dtype=torch.float64) * 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: skeleton(x)[..., [18, 20, 39, 60, 64], :], (raw,))


def test_batched_equals_per_frame_reference(flat):
    raw = torch.randn(3, 4, RAW_DIM, dtype=torch.float64)
    batched = flat(raw)
    assert batched.shape == (3, 4, 70, 3) and batched.dtype == torch.float64
    for i in range(3):
        for t in range(4):
            torch.testing.assert_close(batched[i, t], _reference_fk(flat, raw[i, t]))


def test_from_features_equals_the_reference_fk_of_the_frames_they_came_from():
    # Independent of features_to_raw: the features are raw dims 36..158 and 169..178; the 36 dims before them (root
    # orientation, lower body) are at rest and dims 159..168 hold the fixed shape, so FK of such a frame must equal
    # FK of its features.
    skeleton = get_joint_backend("builtin")
    assert RAW_SLICES["smplx_shape"] == slice(159, 169)
    raw = torch.zeros(2, 3, RAW_DIM, dtype=torch.float64)
    raw[..., 36:159] = torch.randn(2, 3, 123, dtype=torch.float64) * 0.5
    raw[..., 169:179] = torch.randn(2, 3, 10, dtype=torch.float64) * 0.5
    raw[..., 159:169] = torch.tensor(FIXED_BETAS, dtype=torch.float64)
    features = torch.cat([raw[..., 36:159], raw[..., 169:179]], dim=-1)
    assert features.shape[-1] == FEATURE_DIM
    got = skeleton.from_features(features)
    for i in range(2):
        for t in range(3):
            torch.testing.assert_close(got[i, t], _reference_fk(skeleton, raw[i, t]))
    assert not torch.allclose(got[0, 0], got[0, 1])  # the pose moves the joints: not a constant skeleton
    torch.testing.assert_close(skeleton.from_features(features), skeleton(features_to_raw(features)))
    with pytest.raises(ValueError, match="133"):
        skeleton.from_features(torch.zeros(2, RAW_DIM))
    with pytest.raises(ValueError, match="179"):
        skeleton(torch.zeros(2, FEATURE_DIM))


def test_registry():
    backend = get_joint_backend("builtin")
    assert isinstance(backend, JointBackend) and backend is get_joint_backend("builtin")
    assert get_joint_backend("builtin", hand_mean="flat") is not backend
    with pytest.raises(KeyError, match="valid"):
        get_joint_backend("mujoco")
