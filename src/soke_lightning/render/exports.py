"""Files users take away: SMPL-X parameters (.npz), pose-format skeletons (.pose) and BVH animations (.bvh).

* :func:`export_smplx_npz` / :func:`load_smplx_npz`: the official 179-d frames split into their SMPL-X keys
  (``smplx_root_pose`` [T, 3], ``smplx_body_pose`` [T, 63], ...; docs/design.md §2.2, hand poses relative to the mean
  hand as with ``flat_hand_mean=False``), the whole ``raw`` [T, 179], optional ``joints`` [T, J, 3] (metres) and
  ``joint_names``, plus ``fps``, ``text``, ``lang`` and ``name``. Readable with ``np.load`` (no pickle).
* :func:`export_pose` / :func:`read_pose`: a ``pose_format.Pose`` with the MediaPipe Holistic component names and
  point orders (``POSE_LANDMARKS`` 33 points, ``LEFT_HAND_LANDMARKS`` / ``RIGHT_HAND_LANDMARKS`` 21 points), so
  pose-format tools and the ``pose-viewer`` web component read it like a Holistic file. Body points we have no joint
  for (inner/outer eyes, mouth, knees down) get confidence 0 (pose-viewer skips them); the neck has no MediaPipe
  name and is not written. Coordinates are pixels on a :class:`PoseCanvas` (see there for the transform).
* :func:`export_bvh`: the built-in skeleton's tree and animation as BVH (root: 3 positions + 3 rotations, every
  other joint: 3 rotations, channel order Z X Y; offsets in centimetres by default; frame time 1 / fps).

Every writer writes to a temporary file in the destination folder and renames it (``os.replace``), so a reader
never sees a half-written file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from soke_lightning.core.io import atomic_write
from soke_lightning.core.layout import RAW_DIM, RAW_KEYS, RAW_SLICES
from soke_lightning.kinematics.builtin import axis_angle_to_matrix

#: MediaPipe Pose landmark names (``mediapipe.solutions.holistic.PoseLandmark`` order), as in Holistic .pose files.
MEDIAPIPE_BODY_POINTS: tuple[str, ...] = (
    "NOSE", "LEFT_EYE_INNER", "LEFT_EYE", "LEFT_EYE_OUTER", "RIGHT_EYE_INNER", "RIGHT_EYE", "RIGHT_EYE_OUTER",
    "LEFT_EAR", "RIGHT_EAR", "MOUTH_LEFT", "MOUTH_RIGHT", "LEFT_SHOULDER", "RIGHT_SHOULDER", "LEFT_ELBOW",
    "RIGHT_ELBOW", "LEFT_WRIST", "RIGHT_WRIST", "LEFT_PINKY", "RIGHT_PINKY", "LEFT_INDEX", "RIGHT_INDEX",
    "LEFT_THUMB", "RIGHT_THUMB", "LEFT_HIP", "RIGHT_HIP", "LEFT_KNEE", "RIGHT_KNEE", "LEFT_ANKLE", "RIGHT_ANKLE",
    "LEFT_HEEL", "RIGHT_HEEL", "LEFT_FOOT_INDEX", "RIGHT_FOOT_INDEX",
)
#: MediaPipe hand landmark names: wrist, then thumb, index, middle, ring, pinky with 4 points each (base to tip).
#: Our hand joint sets have the same order (wrist, then each finger's joints 1-3 and its tip).
MEDIAPIPE_HAND_POINTS: tuple[str, ...] = ("WRIST",) + tuple(
    f"{finger}_{joint}"
    for finger, joints in (("THUMB", ("CMC", "MCP", "IP", "TIP")), ("INDEX_FINGER", ("MCP", "PIP", "DIP", "TIP")),
                           ("MIDDLE_FINGER", ("MCP", "PIP", "DIP", "TIP")), ("RING_FINGER", ("MCP", "PIP", "DIP", "TIP")),
                           ("PINKY", ("MCP", "PIP", "DIP", "TIP")))
    for joint in joints
)
#: Skeleton lines of the MediaPipe pose (pairs of indices into :data:`MEDIAPIPE_BODY_POINTS`).
MEDIAPIPE_BODY_LIMBS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13), (13, 15),
    (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20), (11, 23),
    (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (28, 30), (29, 31), (30, 32), (27, 31),
    (28, 32),
)
#: Skeleton lines of a MediaPipe hand (``HAND_CONNECTIONS``): the palm, then each finger from base to tip.
MEDIAPIPE_HAND_LIMBS: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 5), (5, 9), (9, 13), (13, 17), (0, 17),
    (1, 2), (2, 3), (3, 4), (5, 6), (6, 7), (7, 8), (9, 10), (10, 11), (11, 12),
    (13, 14), (14, 15), (15, 16), (17, 18), (18, 19), (19, 20),
)

#: Component names written to .pose files (those of MediaPipe Holistic).
POSE_COMPONENTS: tuple[str, ...] = ("POSE_LANDMARKS", "LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS")
_LIMB_COLOURS = {"POSE_LANDMARKS": (70, 70, 80), "LEFT_HAND_LANDMARKS": (230, 85, 13),
                 "RIGHT_HAND_LANDMARKS": (33, 113, 181)}

#: MediaPipe body point -> (joint set, position in that set) of our backends (docs/evaluation.md §6.1 set orders).
_BODY_FROM_SETS: dict[str, tuple[str, int]] = {
    "LEFT_SHOULDER": ("body", 1), "RIGHT_SHOULDER": ("body", 2), "LEFT_ELBOW": ("body", 3),
    "RIGHT_ELBOW": ("body", 4), "LEFT_WRIST": ("body", 5), "RIGHT_WRIST": ("body", 6), "LEFT_EAR": ("body", 7),
    "RIGHT_EAR": ("body", 8), "LEFT_EYE": ("body", 9), "RIGHT_EYE": ("body", 10), "NOSE": ("body", 11),
    # MediaPipe's body model puts these at the knuckles of the index and pinky and the thumb's MCP joint.
    "LEFT_INDEX": ("lhand", 5), "LEFT_PINKY": ("lhand", 17), "LEFT_THUMB": ("lhand", 2),
    "RIGHT_INDEX": ("rhand", 5), "RIGHT_PINKY": ("rhand", 17), "RIGHT_THUMB": ("rhand", 2),
}
#: MediaPipe body points taken by joint name when the backend has them (not in any SOKE joint set).
_BODY_FROM_NAMES: dict[str, str] = {"LEFT_HIP": "left_hip", "RIGHT_HIP": "right_hip"}


def _numpy(x, name: str, dtype=np.float32) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array or tensor, got {type(x).__name__}") from err


def _check_raw(raw_frames, where: str) -> np.ndarray:
    raw = _numpy(raw_frames, "raw_frames")
    if raw.ndim != 2 or raw.shape[1] != RAW_DIM:
        raise ValueError(f"{where}: raw_frames must be official frames [T, {RAW_DIM}], got shape {raw.shape}; "
                         f"turn denormalised 133-d features into them with soke_lightning.core.layout.features_to_raw")
    return raw


# ----------------------------------------------------------------------------------------------- SMPL-X .npz


@dataclass
class SmplxMotion:
    """The content of an exported SMPL-X ``.npz`` (see :func:`export_smplx_npz`).

    Attributes:
        raw: [T, 179] official frames (float32).
        fps: frames per second.
        text: the sentence.
        lang: sign-language key (``"asl"``, ``"csl"``, ``"dgs"``).
        name: sample name.
        joints: [T, J, 3] joint positions in metres, or None.
        joint_names: J names, or None.
    """

    raw: np.ndarray
    fps: float
    text: str = ""
    lang: str = ""
    name: str = ""
    joints: np.ndarray | None = None
    joint_names: tuple[str, ...] | None = None

    def params(self) -> dict[str, np.ndarray]:
        """The official SMPL-X keys: ``{"smplx_root_pose": [T, 3], "smplx_body_pose": [T, 63], ...}``."""
        return {key: self.raw[:, RAW_SLICES[key]] for key, _ in RAW_KEYS}


def export_smplx_npz(path, raw_frames, *, fps: float, text: str = "", lang: str = "", name: str = "",
                     joints=None, joint_names: Sequence[str] | None = None) -> Path:
    """Write SMPL-X parameters of one motion to an ``.npz`` (atomically).

    Args:
        path: destination file (the name is used as given; parents are created).
        raw_frames: [T, 179] official frames (numpy or torch).
        fps: frames per second.
        text, lang, name: the sentence, sign-language key and sample name.
        joints: optional [T, J, 3] joints in metres (e.g. ``get_joint_backend("builtin")(raw)``).
        joint_names: optional J names of those joints (``backend.joint_names``).

    Returns:
        The path written. Keys: the seven official keys of :data:`~soke_lightning.core.layout.RAW_KEYS`, ``raw``,
        ``fps``, ``text``, ``lang``, ``name`` and, when given, ``joints`` / ``joint_names``.
    """
    raw = _check_raw(raw_frames, f"export_smplx_npz({path})")
    arrays: dict[str, np.ndarray] = {key: raw[:, RAW_SLICES[key]] for key, _ in RAW_KEYS}
    arrays.update(raw=raw, fps=np.float64(fps), text=np.str_(text), lang=np.str_(lang), name=np.str_(name))
    if joints is not None:
        joints = _numpy(joints, "joints")
        if joints.ndim != 3 or joints.shape[0] != raw.shape[0] or joints.shape[2] != 3:
            raise ValueError(f"export_smplx_npz({path}): joints must be [T={raw.shape[0]}, J, 3], got {joints.shape}")
        arrays["joints"] = joints
    if joint_names is not None:
        if joints is None or len(joint_names) != joints.shape[1]:
            raise ValueError(f"export_smplx_npz({path}): joint_names needs joints with one name per joint; got "
                             f"{len(joint_names)} names for joints {None if joints is None else joints.shape}")
        arrays["joint_names"] = np.asarray(list(joint_names), dtype=np.str_)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_smplx_npz(path) -> SmplxMotion:
    """Read a file written by :func:`export_smplx_npz`.

    Raises:
        KeyError naming the file and the missing key when it is not such a file.
    """
    with np.load(path, allow_pickle=False) as data:
        if "raw" not in data:
            raise KeyError(f"{path}: no 'raw' array (keys: {sorted(data.files)}); not written by export_smplx_npz")
        return SmplxMotion(
            raw=data["raw"], fps=float(data["fps"]), text=str(data["text"]), lang=str(data["lang"]),
            name=str(data["name"]), joints=data["joints"] if "joints" in data else None,
            joint_names=tuple(str(n) for n in data["joint_names"]) if "joint_names" in data else None,
        )


# --------------------------------------------------------------------------------------------------- .pose


@dataclass(frozen=True)
class PoseCanvas:
    """How joints in metres become .pose pixels (and back).

    ``pixel = (cx + s (x - x0),  cy - s (y - y0),  -s (z - z0))`` with ``s = pixels_per_metre``,
    ``(cx, cy) = (width / 2, height / 2)`` and ``(x0, y0, z0) = centre``: the model's left (+x) goes to the image's
    right, as for a signer facing the camera; y is flipped (image y points down); z is flipped so that smaller z is
    closer to the camera, as in MediaPipe. The transform is a rotation by 180° about x plus a scale and a shift, so
    :meth:`to_metres` inverts it exactly (up to float32 rounding of the file).

    The defaults frame SOKE's motion (pelvis fixed near y = -0.35 m, no translation): the 2 x 2 m square around
    ``centre`` fills a 1000 x 1000 canvas, with the person in the middle.
    """

    width: int = 1000
    height: int = 1000
    pixels_per_metre: float = 500.0
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def to_pixels(self, metres: np.ndarray) -> np.ndarray:
        """[..., 3] metres -> [..., 3] pixels."""
        m = np.asarray(metres, dtype=np.float64) - np.asarray(self.centre)
        s = self.pixels_per_metre
        return np.stack([self.width / 2 + s * m[..., 0], self.height / 2 - s * m[..., 1], -s * m[..., 2]], -1)

    def to_metres(self, pixels: np.ndarray) -> np.ndarray:
        """[..., 3] pixels -> [..., 3] metres (inverse of :meth:`to_pixels`)."""
        p = np.asarray(pixels, dtype=np.float64)
        s = self.pixels_per_metre
        m = np.stack([(p[..., 0] - self.width / 2) / s, (self.height / 2 - p[..., 1]) / s, -p[..., 2] / s], -1)
        return m + np.asarray(self.centre)


@dataclass
class PoseJoints:
    """Joints read back from a .pose file, in metres (see :func:`read_pose`).

    Attributes:
        body: [T, 33, 3] MediaPipe body points (:data:`MEDIAPIPE_BODY_POINTS`).
        body_valid: [33] bool, True where the point was written (confidence > 0).
        lhand, rhand: [T, 21, 3] hand points in :data:`MEDIAPIPE_HAND_POINTS` order.
        fps: frames per second.
    """

    body: np.ndarray
    body_valid: np.ndarray
    lhand: np.ndarray
    rhand: np.ndarray
    fps: float


def _body_sources(joint_sets: Mapping[str, Sequence[int]], joint_names: Sequence[str] | None) -> dict[int, int]:
    """MediaPipe body point index -> our joint id, for the points the backend provides."""
    for key in ("body", "lhand", "rhand"):
        if key not in joint_sets:
            raise KeyError(f"joint_sets needs {key!r} (backend.joint_sets); got {sorted(joint_sets)}")
    out = {MEDIAPIPE_BODY_POINTS.index(p): int(joint_sets[s][k]) for p, (s, k) in _BODY_FROM_SETS.items()}
    names = list(joint_names or ())
    for point, joint in _BODY_FROM_NAMES.items():
        if joint in names:
            out[MEDIAPIPE_BODY_POINTS.index(point)] = names.index(joint)
    return out


def pose_from_joints(joints, *, joint_sets: Mapping[str, Sequence[int]], fps: float,
                     joint_names: Sequence[str] | None = None, canvas: PoseCanvas = PoseCanvas()):
    """Build a ``pose_format.Pose`` (one person, components :data:`POSE_COMPONENTS`, format XYZC).

    Args:
        joints: [T, J, 3] joints in metres from a joint backend.
        joint_sets: ``backend.joint_sets`` ("body" 12 ids in SOKE order, "lhand"/"rhand" 21 ids each).
        fps: frames per second.
        joint_names: ``backend.joint_names`` (hips are taken by name when present).
        canvas: the metres -> pixels transform.

    Returns:
        The Pose; points the backend has get confidence 1, the others 0 (and zero coordinates).
    """
    from pose_format import Pose
    from pose_format.numpy.pose_body import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

    joints = _numpy(joints, "joints")
    if joints.ndim != 3 or joints.shape[2] != 3:
        raise ValueError(f"pose_from_joints: joints must be [T, J, 3] metres, got shape {joints.shape}")
    frames = joints.shape[0]
    body_ids = _body_sources(joint_sets, joint_names)
    for key in ("lhand", "rhand"):
        if len(joint_sets[key]) != len(MEDIAPIPE_HAND_POINTS):
            raise ValueError(f"joint_sets[{key!r}] must have {len(MEDIAPIPE_HAND_POINTS)} ids (wrist + 5 fingers x 4),"
                             f" got {len(joint_sets[key])}")
    body = np.zeros((frames, len(MEDIAPIPE_BODY_POINTS), 3))
    body_conf = np.zeros((frames, len(MEDIAPIPE_BODY_POINTS)))
    points = list(body_ids)
    body[:, points] = canvas.to_pixels(joints[:, [body_ids[p] for p in points]])
    body_conf[:, points] = 1.0
    hands = [canvas.to_pixels(joints[:, list(joint_sets[key])]) for key in ("lhand", "rhand")]
    data = np.concatenate([body, *hands], axis=1)[:, None].astype(np.float32)
    confidence = np.concatenate([body_conf, np.ones((frames, 2 * len(MEDIAPIPE_HAND_POINTS)))], axis=1)
    components = []
    for name, names, limbs in zip(POSE_COMPONENTS, (MEDIAPIPE_BODY_POINTS, MEDIAPIPE_HAND_POINTS,
                                                    MEDIAPIPE_HAND_POINTS),
                                  (MEDIAPIPE_BODY_LIMBS, MEDIAPIPE_HAND_LIMBS, MEDIAPIPE_HAND_LIMBS), strict=True):
        components.append(PoseHeaderComponent(name=name, points=list(names), limbs=list(limbs),
                                              colors=[_LIMB_COLOURS[name]] * len(limbs), point_format="XYZC"))
    header = PoseHeader(version=0.2, dimensions=PoseHeaderDimensions(width=canvas.width, height=canvas.height, depth=0),
                        components=components)
    return Pose(header, NumPyPoseBody(fps=float(fps), data=data, confidence=confidence[:, None].astype(np.float32)))


def export_pose(path, joints, *, joint_sets: Mapping[str, Sequence[int]], fps: float,
                joint_names: Sequence[str] | None = None, canvas: PoseCanvas = PoseCanvas()) -> Path:
    """Write joints as a ``.pose`` file (pose-format; read with ``pose_format.Pose.read`` or pose-viewer).

    Args: see :func:`pose_from_joints`; ``path`` is the destination (parents are created).

    Returns:
        The path written.
    """
    pose = pose_from_joints(joints, joint_sets=joint_sets, fps=fps, joint_names=joint_names, canvas=canvas)
    return atomic_write(path, pose.write)


def read_pose(path, canvas: PoseCanvas = PoseCanvas()) -> PoseJoints:
    """Read a .pose file written by :func:`export_pose` back into metres (first person).

    Raises:
        ValueError naming the file when its components are not :data:`POSE_COMPONENTS` with the MediaPipe points.
    """
    from pose_format import Pose

    pose = Pose.read(Path(path).read_bytes())
    found = [(c.name, len(c.points)) for c in pose.header.components]
    expected = [(POSE_COMPONENTS[0], len(MEDIAPIPE_BODY_POINTS))] + [(c, len(MEDIAPIPE_HAND_POINTS))
                                                                     for c in POSE_COMPONENTS[1:]]
    if found != expected:
        raise ValueError(f"{path}: components {found}, expected {expected} (a file written by export_pose)")
    data = np.asarray(pose.body.data.data)[:, 0]
    conf = np.asarray(pose.body.confidence)[:, 0]
    metres = canvas.to_metres(data)
    n_body, n_hand = len(MEDIAPIPE_BODY_POINTS), len(MEDIAPIPE_HAND_POINTS)
    body_valid = (conf[:, :n_body] > 0).any(axis=0)
    return PoseJoints(body=metres[:, :n_body], body_valid=body_valid, lhand=metres[:, n_body:n_body + n_hand],
                      rhand=metres[:, n_body + n_hand:], fps=float(pose.body.fps))


# ----------------------------------------------------------------------------------------------------- BVH

#: Rotation channel order of every BVH joint: the local rotation is ``Rz(a) @ Rx(b) @ Ry(c)``.
BVH_ROTATION_ORDER = "ZXY"
_BVH_UNITS = {"cm": 100.0, "m": 1.0}


def matrix_to_euler_zxy(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> Euler angles [..., 3] (a, b, c) in radians with ``R = Rz(a) Rx(b) Ry(c)``.

    b is in [-pi/2, pi/2]; at gimbal lock (|b| = pi/2) c is set to 0 and a carries the remaining rotation.
    """
    r = np.asarray(matrix, dtype=np.float64)
    b = np.arcsin(np.clip(r[..., 2, 1], -1.0, 1.0))
    locked = np.abs(r[..., 2, 1]) > 1.0 - 1e-9
    a = np.where(locked, np.arctan2(r[..., 1, 0], r[..., 0, 0]), np.arctan2(-r[..., 0, 1], r[..., 1, 1]))
    c = np.where(locked, 0.0, np.arctan2(-r[..., 2, 0], r[..., 2, 2]))
    return np.stack([a, b, c], axis=-1)


def _bvh_skeleton(backend):
    for attribute in ("parents", "offsets", "local_axis_angle", "joint_names"):
        if not hasattr(backend, attribute):
            raise TypeError(f"export_bvh needs the builtin joint backend (a skeleton with parents, rest offsets and "
                            f"local rotations); {type(backend).__name__} has no {attribute!r}. Use "
                            f"get_joint_backend('builtin')")
    return list(backend.parents), backend.offsets.detach().cpu().double().numpy(), list(backend.joint_names)


def export_bvh(path, raw_frames, backend, *, fps: float, unit: str = "cm") -> Path:
    """Write official frames as a BVH animation of the builtin skeleton (atomically).

    Hierarchy: the skeleton's tree rooted at the pelvis, one ``JOINT`` per skeleton joint (70 for the builtin
    backend, named as ``backend.joint_names``), ``OFFSET`` = the rest offset from the parent; leaves end in an
    ``End Site`` whose offset (30 % of the leaf's own offset) only gives animation tools a bone length. The root's
    ``OFFSET`` is zero and its position channels hold its absolute position (readers that add the offset and those
    that do not agree). Channels: root ``Xposition Yposition Zposition Zrotation Xrotation Yrotation``, others
    ``Zrotation Xrotation Yrotation`` in degrees: local rotation ``Rz Rx Ry`` of the joint's axis-angle
    (``backend.local_axis_angle``, so the relaxed mean hand of ``hand_mean="relaxed"`` is included). World
    transforms chain as usual: ``G_j = G_parent R_j``, ``p_j = p_parent + G_parent offset_j``. Axes are SMPL-X's
    (y up, z forward).

    Args:
        path: destination .bvh.
        raw_frames: [T, 179] official frames.
        backend: ``get_joint_backend("builtin")`` (any skeleton with ``parents``, ``offsets``,
            ``local_axis_angle``).
        fps: frames per second (``Frame Time`` = 1 / fps).
        unit: "cm" (default, what most animation tools expect) or "m".

    Returns:
        The path written.
    """
    if unit not in _BVH_UNITS:
        raise ValueError(f"export_bvh: unit must be one of {sorted(_BVH_UNITS)}, got {unit!r}")
    if fps <= 0:
        raise ValueError(f"export_bvh: fps must be positive, got {fps}")
    raw = _check_raw(raw_frames, f"export_bvh({path})")
    parents, offsets, names = _bvh_skeleton(backend)
    scale = _BVH_UNITS[unit]
    with torch.no_grad():
        local = backend.local_axis_angle(torch.as_tensor(raw, dtype=torch.float64))
        euler = np.degrees(matrix_to_euler_zxy(axis_angle_to_matrix(local).numpy()))  # [T, J, 3]
    children: dict[int, list[int]] = {j: [] for j in range(len(parents))}
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    order: list[int] = []  # depth-first joint order = order of the MOTION channels

    def fmt(values) -> str:
        return " ".join(f"{v:.6f}" for v in values)

    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        order.append(j)
        if parents[j] < 0:
            lines.extend([f"{pad}ROOT {names[j]}", f"{pad}{{", f"{pad}  OFFSET {fmt((0.0, 0.0, 0.0))}",
                          f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"])
        else:
            lines.extend([f"{pad}JOINT {names[j]}", f"{pad}{{", f"{pad}  OFFSET {fmt(offsets[j] * scale)}",
                          f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation"])
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {fmt(0.3 * offsets[j] * scale)}",
                          f"{pad}  }}"])
        lines.append(f"{pad}}}")

    roots = [j for j, p in enumerate(parents) if p < 0]
    if len(roots) != 1:
        raise ValueError(f"export_bvh: the skeleton must have one root, found {len(roots)} joints without parent")
    emit(roots[0], 0)
    lines.extend(["MOTION", f"Frames: {raw.shape[0]}", f"Frame Time: {1.0 / fps:.8f}"])
    root_position = offsets[roots[0]] * scale  # the builtin skeleton has no translation: the pelvis stays put
    for t in range(raw.shape[0]):
        lines.append(fmt(np.concatenate([root_position, euler[t, order].reshape(-1)])))
    text = "\n".join(lines) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


__all__ = [
    "BVH_ROTATION_ORDER", "MEDIAPIPE_BODY_LIMBS", "MEDIAPIPE_BODY_POINTS", "MEDIAPIPE_HAND_LIMBS",
    "MEDIAPIPE_HAND_POINTS", "POSE_COMPONENTS", "PoseCanvas", "PoseJoints", "SmplxMotion", "export_bvh",
    "export_pose", "export_smplx_npz", "load_smplx_npz", "matrix_to_euler_zxy", "pose_from_joints", "read_pose",
]
