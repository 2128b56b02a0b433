"""A built-in SMPL-X-like skeleton: batched, differentiable forward kinematics with no licensed model file.

The kinematic tree is SMPL-X's (55 joints); the rest offsets are hand-authored plausible adult proportions in
metres (about 1.67 m tall, 1.73 m arm span), not SMPL-X's template. No shape (betas) or expression dependence.

Conventions (the same as SMPL-X, so motion authored for one backend looks the same in the other):

* Frame: **y up, x towards the model's LEFT, z forward** (the direction the person faces). A front view (the
  viewer faces the person, looking along -z) therefore shows the model's left on the viewer's right.
* Rest pose: a T-pose. Arms horizontal (left arm along +x, right arm along -x), palms facing down (-y), fingers
  straight along the arm, thumbs pointing forward (+z) and slightly down. The pelvis sits at (0, -0.35, 0),
  the head joint at y ~ 0.27, as in SMPL-X's template.
* Pose: each joint's rotation is a local axis-angle vector expressed in its parent's frame (right-handed;
  positive angle = counter-clockwise looking down the axis). Global rotation ``G_j = G_parent R_j``; position
  ``p_j = p_parent + G_parent offset_j``. The root orientation rotates the whole body about the pelvis. There is
  no translation.
* Useful signs (left side; mirror for the right: ``(rx, ry, rz) -> (rx, -ry, -rz)``):
    - left shoulder (joint 16): rotation about **-z** lowers the left arm (``(0, 0, -1.2)`` brings it near the
      side), +z raises it; **-y** swings it forward (+z, in front of the body), +y backwards.
    - right shoulder (17): **+z** lowers the right arm, **+y** brings it forward.
    - left elbow (18): **-y** bends the forearm forward (towards +z); right elbow (19): **+y**.
    - left fingers: **-z** flexes (curls towards the palm); right fingers: **+z**.
    - neck / head: +x nods the head down (chin towards the chest), -x tilts it back; y turns it.

Hands: with ``hand_mean="relaxed"`` (default; SOKE uses ``flat_hand_mean=False``) the hand parameters are offsets
from :data:`RELAXED_HAND_LEFT` (a hand-authored, slightly curled mean hand; the right hand is its mirror), so that
zero hand parameters show a relaxed hand as with the smplx backend. ``hand_mean="flat"`` uses them as they are.

Output joints (J = 70): 0-54 the SMPL-X skeleton (0-21 body, 22 jaw, 23/24 left/right eyeball, 25-39 left hand,
40-54 right hand, each hand in SMPL-X order index, middle, pinky, ring, thumb with 3 joints), then five head
points attached to the head (55 nose, 56 right eye, 57 left eye, 58 right ear, 59 left ear, as SMPL-X's extra
joints) and ten fingertips attached to each finger's third joint (60-64 left thumb, index, middle, ring, pinky;
65-69 right). The body set therefore has SMPL-X's ids: 12, 16, 17, 18, 19, 20, 21, 59, 58, 57, 56, 55.
"""

from __future__ import annotations

import numpy as np
import torch

from soke_lightning.core.layout import RAW_DIM, RAW_SLICES, SMPLX_BODY_JOINTS, SMPLX_HAND_JOINTS
from soke_lightning.kinematics.base import JointBackend, body_set, hand_set

NUM_SKELETON_JOINTS = 55
HAND_MEANS = ("relaxed", "flat")

#: SMPL-X parent of each of the 55 skeleton joints (-1 for the root).
SMPLX_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,  # body 0-21
    15, 15, 15,  # jaw, left eyeball, right eyeball
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,  # left hand
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,  # right hand
)

# Hand-authored offsets from the parent joint, metres, for the model's LEFT side and the midline; the right side is
# the mirror image (x -> -x). Keys are joint names without the side prefix where a side exists.
_PELVIS_REST = (0.0, -0.35, 0.0)
_BODY_OFFSETS: dict[str, tuple[float, float, float]] = {
    "hip": (0.060, -0.090, -0.010),
    "spine1": (0.0, 0.110, -0.020),
    "knee": (0.045, -0.375, 0.005),
    "spine2": (0.0, 0.135, 0.0),
    "ankle": (-0.020, -0.405, -0.035),
    "spine3": (0.0, 0.055, 0.025),
    "foot": (0.030, -0.055, 0.120),
    "neck": (0.0, 0.165, -0.030),
    "collar": (0.045, 0.085, -0.005),
    "head": (0.0, 0.155, 0.020),
    "shoulder": (0.120, 0.050, -0.015),
    "elbow": (0.260, -0.010, -0.020),
    "wrist": (0.250, 0.005, 0.0),
    "jaw": (0.0, -0.020, 0.030),
    "eyeball": (0.032, 0.065, 0.060),
}
#: Offsets of the points attached to the head joint (left side / midline).
_HEAD_POINTS: dict[str, tuple[float, float, float]] = {
    "nose": (0.0, 0.035, 0.105),
    "eye": (0.032, 0.065, 0.085),
    "ear": (0.075, 0.040, -0.005),
}
#: Left-hand offsets per finger: joint 1 from the wrist, joints 2, 3 and the tip from the previous joint.
_FINGER_OFFSETS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "index": ((0.088, 0.004, 0.026), (0.036, -0.002, 0.002), (0.024, -0.002, 0.001), (0.022, -0.002, 0.0)),
    "middle": ((0.094, 0.004, 0.004), (0.039, -0.002, 0.0), (0.026, -0.002, 0.0), (0.024, -0.002, 0.0)),
    "pinky": ((0.074, -0.002, -0.038), (0.027, -0.002, -0.004), (0.019, -0.002, -0.002), (0.019, -0.002, -0.001)),
    "ring": ((0.087, 0.002, -0.018), (0.035, -0.002, -0.002), (0.025, -0.002, -0.001), (0.022, -0.002, 0.0)),
    "thumb": ((0.024, -0.012, 0.026), (0.026, -0.006, 0.024), (0.022, -0.004, 0.016), (0.020, -0.003, 0.012)),
}


def _relaxed_left_hand() -> tuple[float, ...]:
    """A slightly curled left hand, 15 x 3 axis-angle in SMPL-X hand order (finger flexion is about -z)."""
    flex = {  # radians per joint 1, 2, 3: the ulnar fingers curl a little more, as in a resting hand
        "index": (0.15, 0.20, 0.10), "middle": (0.20, 0.25, 0.12), "pinky": (0.30, 0.30, 0.15),
        "ring": (0.25, 0.28, 0.14),
    }
    values: list[float] = []
    for joint in SMPLX_HAND_JOINTS:
        finger, k = joint[:-1], int(joint[-1]) - 1
        if finger == "thumb":
            # Thumb: tucked slightly towards the palm (about +x, i.e. the tip moves down) and flexed a little.
            values += [(0.10, 0.15, 0.05)[k], 0.0, -(0.05, 0.10, 0.10)[k]]
        else:
            values += [0.0, 0.0, -flex[finger][k]]
    return tuple(values)


#: The relaxed mean hand of ``hand_mean="relaxed"`` for the left hand (45 values, SMPL-X hand order).
RELAXED_HAND_LEFT: tuple[float, ...] = _relaxed_left_hand()


def mirror_axis_angle(values: np.ndarray) -> np.ndarray:
    """Mirror axis-angle vectors [..., 3] across the sagittal plane (x -> -x): (rx, ry, rz) -> (rx, -ry, -rz)."""
    values = np.asarray(values, dtype=np.float64)
    return values * np.array([1.0, -1.0, -1.0])


def _skeleton_definition() -> tuple[list[str], list[int], np.ndarray]:
    """Names, parents and rest offsets [70, 3] (the root's "offset" is its rest position)."""
    names = list(SMPLX_BODY_JOINTS) + ["jaw", "left_eyeball", "right_eyeball"]
    names += [f"left_{j}" for j in SMPLX_HAND_JOINTS] + [f"right_{j}" for j in SMPLX_HAND_JOINTS]
    parents = list(SMPLX_PARENTS)
    offsets = np.zeros((len(names), 3))

    def side_offset(name: str, table: dict) -> np.ndarray:
        for side, sign in (("left_", 1.0), ("right_", -1.0)):
            if name.startswith(side):
                return np.array(table[name[len(side):]]) * np.array([sign, 1.0, 1.0])
        return np.array(table[name])

    for j, name in enumerate(names):
        if j == 0:
            offsets[j] = _PELVIS_REST
        elif j < NUM_SKELETON_JOINTS - 30:
            offsets[j] = side_offset(name, _BODY_OFFSETS)
        else:
            side, joint = name.split("_", 1)
            finger, k = joint[:-1], int(joint[-1]) - 1
            offsets[j] = side_offset(f"{side}_x", {"x": _FINGER_OFFSETS[finger][k]})

    head = names.index("head")
    for point, side in (("nose", ""), ("eye", "right_"), ("eye", "left_"), ("ear", "right_"), ("ear", "left_")):
        names.append(f"{side}{point}")
        parents.append(head)
        offsets = np.vstack([offsets, side_offset(f"{side}{point}", _HEAD_POINTS)])
    for side in ("left", "right"):
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            names.append(f"{side}_{finger}_tip")
            parents.append(names.index(f"{side}_{finger}3"))
            offsets = np.vstack([offsets, side_offset(f"{side}_x", {"x": _FINGER_OFFSETS[finger][3]})])
    return names, parents, offsets


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Batched Rodrigues formula, stable and differentiable at zero.

    Args:
        axis_angle: [..., 3] rotation vectors (angle in radians = norm).

    Returns:
        [..., 3, 3] rotation matrices.
    """
    theta2 = (axis_angle * axis_angle).sum(-1)
    small = theta2 < 1e-4
    # Evaluate the exact branch on a safe value so neither branch produces NaN gradients (torch.where
    # back-propagates into both).
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = theta2_safe.sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0 + theta2 * theta2 / 120.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0 + theta2 * theta2 / 720.0, (1.0 - torch.cos(theta)) / theta2_safe)
    # R = I + a K + b K^2 with K^2 = v v^T - theta^2 I, written out element by element (no 3x3 matmul).
    c = 1.0 - b * theta2
    x, y, z = axis_angle.unbind(-1)
    bxy, bxz, byz = b * x * y, b * x * z, b * y * z
    ax, ay, az = a * x, a * y, a * z
    matrix = torch.stack([
        c + b * x * x, bxy - az, bxz + ay,
        bxy + az, c + b * y * y, byz - ax,
        bxz - ay, byz + ax, c + b * z * z,
    ], dim=-1)
    return matrix.reshape(*axis_angle.shape[:-1], 3, 3)


def _finger_ids(ids: dict[str, int]) -> set[int]:
    """Ids of the 15 finger joints and 5 fingertips of each hand (the hand sets minus their wrists)."""
    return set(hand_set(ids, "left")[1:]) | set(hand_set(ids, "right")[1:])


class BuiltinSkeleton(JointBackend):
    """Forward kinematics of the built-in skeleton: raw [..., 179] -> joints [..., 70, 3] in metres.

    Args:
        hand_mean: "relaxed" (default, like SMPL-X with ``flat_hand_mean=False``: hand parameters are offsets from
            :data:`RELAXED_HAND_LEFT` and its mirror) or "flat" (parameters are used as they are).
    """

    name = "builtin"

    def __init__(self, hand_mean: str = "relaxed"):
        super().__init__()
        if hand_mean not in HAND_MEANS:
            raise ValueError(f"hand_mean must be one of {HAND_MEANS}, got {hand_mean!r}")
        self.hand_mean_mode = hand_mean
        names, parents, offsets = _skeleton_definition()
        self.joint_names = tuple(names)
        self.parents = tuple(parents)
        ids = {n: i for i, n in enumerate(names)}
        self.joint_sets = {
            "body": body_set(ids),
            "lhand": hand_set(ids, "left"),
            "rhand": hand_set(ids, "right"),
            # SOKE fits the body Procrustes on all 144 SMPL-X joints, of which ~100 are rigid head/face/torso/leg
            # points, so that fit is essentially a torso+head alignment. Our 70 joints are 57 % finger points: fitting
            # on all of them would let the fingers drag the body alignment (body DTW-PA-JPE then exceeds DTW-JPE).
            # So the builtin backend fits on every joint except the finger joints and fingertips (wrists included).
            "body_align": tuple(i for i in range(len(names)) if i not in _finger_ids(ids)),
        }
        hidden = {ids["jaw"], ids["left_eyeball"], ids["right_eyeball"]}
        self.bones = tuple((p, c) for c, p in enumerate(parents) if p >= 0 and c not in hidden)

        # Evaluate joints level by level of the tree: joints are permuted so each depth is a contiguous block.
        # A joint's parent is always in the previous depth, so each level only gathers from the level before it:
        # one batched matmul per depth instead of one per joint, and no growing buffers. Only joints with children
        # carry a rotation (a leaf's rotation moves nothing).
        depth = [0] * len(parents)
        for j, p in enumerate(parents):
            depth[j] = 0 if p < 0 else depth[p] + 1
        order = sorted(range(len(parents)), key=lambda j: (depth[j], j))
        position = {j: i for i, j in enumerate(order)}
        has_child = {p for p in parents if p >= 0}
        rotating = [j for j in order if j in has_child]
        blocks = [[j for j in order if depth[j] == d] for d in range(max(depth) + 1)]
        #: Per depth >= 1: (parent index in the previous block, parent index among the previous block's rotating
        #: joints, indices of this block's rotating joints, their range in the rotating order).
        self._levels: list[tuple[list[int], list[int], list[int], int, int]] = []
        rot_start = 1
        for d in range(1, len(blocks)):
            previous = blocks[d - 1]
            previous_rotating = [j for j in previous if j in has_child]
            inner = [k for k, j in enumerate(blocks[d]) if j in has_child]
            self._levels.append(([previous.index(parents[j]) for j in blocks[d]],
                                 [previous_rotating.index(parents[j]) for j in blocks[d]],
                                 inner, rot_start, rot_start + len(inner)))
            rot_start += len(inner)
        self.register_buffer("_order", torch.tensor(order), persistent=False)
        self.register_buffer("_rotating", torch.tensor(rotating), persistent=False)
        self.register_buffer("_inverse", torch.tensor([position[j] for j in range(len(order))]), persistent=False)
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.float32), persistent=False)
        mean = np.zeros(90)
        if hand_mean == "relaxed":
            left = np.asarray(RELAXED_HAND_LEFT).reshape(15, 3)
            mean = np.concatenate([left.reshape(-1), mirror_axis_angle(left).reshape(-1)])
        self.register_buffer("hand_mean", torch.tensor(mean, dtype=torch.float32), persistent=False)

    def rest_joints(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Joints of the all-zero frame ([70, 3]); with ``hand_mean="relaxed"`` the hands are relaxed."""
        return self(torch.zeros(RAW_DIM, dtype=dtype, device=self.offsets.device))

    def local_axis_angle(self, raw: torch.Tensor) -> torch.Tensor:
        """Per-joint local axis-angle of all 70 joints ([..., 70, 3]; zero for eyeballs and attached points)."""
        if raw.shape[-1] != RAW_DIM:
            raise ValueError(f"builtin skeleton expects official frames [..., {RAW_DIM}], got shape "
                             f"{tuple(raw.shape)}; 133-d features go through from_features()")
        lead = raw.shape[:-1]
        hands = raw[..., 66:156] + self.hand_mean.to(raw.dtype)
        zeros = raw.new_zeros(*lead, 3 * (2 + self.num_joints - NUM_SKELETON_JOINTS))
        parts = [raw[..., 0:66], raw[..., RAW_SLICES["smplx_jaw_pose"]], zeros[..., :6], hands, zeros[..., 6:]]
        return torch.cat(parts, dim=-1).reshape(*lead, self.num_joints, 3)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        """Args: raw [..., 179] official frames. Returns: joints [..., 70, 3] in metres (dtype/device of raw)."""
        if raw.shape[-1] != RAW_DIM:
            raise ValueError(f"builtin skeleton expects official frames [..., {RAW_DIM}], got shape "
                             f"{tuple(raw.shape)}; 133-d features go through from_features()")
        lead = raw.shape[:-1]
        # Joints-first layout [joint, frame, ...]: gathering parents then copies contiguous blocks.
        axis_angle = self.local_axis_angle(raw.reshape(-1, RAW_DIM))[:, self._rotating, :].transpose(0, 1)
        local = axis_angle_to_matrix(axis_angle)
        offsets = self.offsets.to(raw.dtype)[self._order][:, None, :, None]
        rot = local[0:1]
        pos = offsets[0:1, :, :, 0].expand(1, axis_angle.shape[1], 3)
        positions, start = [pos], 1
        for parent_pos, parent_rot_ids, inner, rot_start, rot_end in self._levels:
            parent_rot = rot[parent_rot_ids]
            end = start + len(parent_pos)
            pos = pos[parent_pos] + (parent_rot @ offsets[start:end]).squeeze(-1)
            positions.append(pos)
            rot = parent_rot[inner] @ local[rot_start:rot_end]
            start = end
        return torch.cat(positions)[self._inverse].transpose(0, 1).reshape(*lead, self.num_joints, 3)

    def bone_lengths(self) -> torch.Tensor:
        """Length of each joint's offset from its parent ([70]; the root's entry is its distance to the origin)."""
        return self.offsets.norm(dim=-1)


__all__ = ["BuiltinSkeleton", "RELAXED_HAND_LEFT", "SMPLX_PARENTS", "axis_angle_to_matrix", "mirror_axis_angle"]
