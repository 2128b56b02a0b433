"""SynthSign phonology: handshapes, locations, orientations, movements and their synthesis as SMPL-X rotations.

A sign is composed from a handful of discrete choices (:class:`SignSpec`). Its motion is synthesised in joint space:
the dominant (right) hand's palm point follows a small 3-D path around a location on or in front of the body, with a
palm orientation; a batched Levenberg-Marquardt inverse kinematics on the built-in skeleton's arm chain turns every
frame into shoulder / elbow / wrist rotations (within :data:`JOINT_LIMITS`). The left arm is the mirror image
(symmetric signs), a static base hand, or at rest. Finger poses come from handshapes (flexion patterns per finger)
as offsets from the relaxed mean hand, like SMPL-X ``flat_hand_mean=False`` data.

Conventions are SMPL-X's (y up, x = the model's left, z forward, local axis-angle per joint); see
``soke_lightning.kinematics.builtin``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from soke_lightning.core.layout import FIXED_BETAS, RAW_DIM, RAW_SLICES
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.kinematics.builtin import RELAXED_HAND_LEFT

# ----------------------------------------------------------------------------------------------- raw frame slots


def _body_joint(j: int) -> slice:
    """Raw slice of SMPL-X body joint j (1..21)."""
    start = RAW_SLICES["smplx_body_pose"].start + 3 * (j - 1)
    return slice(start, start + 3)


NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = (
    _body_joint(j) for j in range(12, 22))
LHAND, RHAND = RAW_SLICES["smplx_lhand_pose"], RAW_SLICES["smplx_rhand_pose"]
JAW, EXPR = RAW_SLICES["smplx_jaw_pose"], RAW_SLICES["smplx_expr"]

#: Largest rotation angle (radians) any frame may have per joint group; checked by the tests.
JOINT_LIMITS: dict[str, float] = {
    "neck": 0.45, "head": 0.45, "collar": 0.35, "shoulder": 2.6, "elbow": 2.6, "wrist": 1.5, "finger": 2.0,
    "jaw": 0.35,
}
#: Range of each expression coefficient.
EXPRESSION_LIMIT = 2.0
#: Elbow flexion range (radians) about the elbow's local y axis (right arm +y, left arm -y).
ELBOW_FLEX_RANGE = (0.0, 2.5)

MIRROR = np.array([1.0, -1.0, -1.0])


def mirror(aa: np.ndarray) -> np.ndarray:
    """Mirror axis-angle vectors [..., 3k] across the sagittal plane (x -> -x): (rx, ry, rz) -> (rx, -ry, -rz)."""
    shape = aa.shape
    return (aa.reshape(*shape[:-1], -1, 3) * MIRROR).reshape(shape)


_LIMIT_SLOTS: tuple[tuple[slice, str], ...] = (
    (NECK, "neck"), (HEAD, "head"), (L_COLLAR, "collar"), (R_COLLAR, "collar"), (L_SHOULDER, "shoulder"),
    (R_SHOULDER, "shoulder"), (L_ELBOW, "elbow"), (R_ELBOW, "elbow"), (L_WRIST, "wrist"), (R_WRIST, "wrist"),
    (JAW, "jaw"),
)


def clamp_rotations(raw: np.ndarray) -> np.ndarray:
    """Shorten any joint rotation beyond :data:`JOINT_LIMITS` (and expression beyond the limit), in place.

    Signer amplitude and noise act on top of the IK solutions; this keeps every frame in the stated ranges.
    """
    for sl, group in _LIMIT_SLOTS:
        v = raw[:, sl]
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        raw[:, sl] = v * np.minimum(1.0, JOINT_LIMITS[group] / np.maximum(norm, 1e-12))
    for sl in (LHAND, RHAND):
        v = raw[:, sl].reshape(len(raw), 15, 3)
        norm = np.linalg.norm(v, axis=2, keepdims=True)
        raw[:, sl] = (v * np.minimum(1.0, JOINT_LIMITS["finger"] / np.maximum(norm, 1e-12))).reshape(len(raw), 45)
    raw[:, EXPR] = np.clip(raw[:, EXPR], -EXPRESSION_LIMIT, EXPRESSION_LIMIT)
    return raw


# ------------------------------------------------------------------------------------------------ rotation maths


def rodrigues(aa: np.ndarray) -> np.ndarray:
    """Axis-angle [..., 3] -> rotation matrices [..., 3, 3]."""
    theta = np.sqrt((aa * aa).sum(-1))
    safe = np.where(theta < 1e-12, 1.0, theta)
    x, y, z = aa[..., 0] / safe, aa[..., 1] / safe, aa[..., 2] / safe
    s, c = np.sin(theta), np.cos(theta)
    C = 1.0 - c
    return np.stack([
        c + x * x * C, x * y * C - z * s, x * z * C + y * s,
        y * x * C + z * s, c + y * y * C, y * z * C - x * s,
        z * x * C - y * s, z * y * C + x * s, c + z * z * C,
    ], axis=-1).reshape(*aa.shape[:-1], 3, 3)


def log_map(R: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> axis-angle [..., 3] (angles below pi)."""
    cos = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos)
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], axis=-1)
    sin = np.sin(theta)
    scale = np.where(sin < 1e-8, 0.5, theta / (2.0 * np.where(sin < 1e-8, 1.0, sin)))
    return v * scale[..., None]


def ease(t: np.ndarray) -> np.ndarray:
    """Smooth 0 -> 1 ramp with zero velocity at both ends (cosine ease)."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(t, 0.0, 1.0))


# ---------------------------------------------------------------------------------------------------- handshapes

# Finger states: flexion (radians) of joints 1, 2, 3 (knuckle, middle, end).
FINGER_STATES: dict[str, tuple[float, float, float]] = {
    "ext": (0.0, 0.0, 0.0), "flex": (1.45, 1.6, 0.9), "bent": (1.35, 0.1, 0.05), "curve": (0.55, 0.75, 0.5),
    "round": (0.85, 0.9, 0.6), "hook": (0.15, 1.45, 1.0),
}
# Thumb states: left-hand axis-angle of thumb joints 1, 2, 3.
THUMB_STATES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "side": ((0.05, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    "open": ((-0.2, -0.55, 0.1), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    "across": ((0.9, 0.1, -0.3), (0.0, 0.0, -0.6), (0.0, 0.0, -0.6)),
    "touch": ((0.7, -0.3, -0.1), (0.0, 0.0, -0.35), (0.0, 0.0, -0.35)),
}
#: name -> (index, middle, ring, pinky finger states, thumb state, spread in radians). Frequency weight last.
HANDSHAPES: dict[str, tuple[str, str, str, str, str, float, float]] = {
    "B": ("ext", "ext", "ext", "ext", "across", 0.0, 3.0),
    "5": ("ext", "ext", "ext", "ext", "open", 0.28, 3.0),
    "1": ("ext", "flex", "flex", "flex", "across", 0.0, 3.0),
    "A": ("flex", "flex", "flex", "flex", "side", 0.0, 2.0),
    "S": ("flex", "flex", "flex", "flex", "across", 0.0, 2.0),
    "V": ("ext", "ext", "flex", "flex", "across", 0.3, 1.5),
    "W": ("ext", "ext", "ext", "flex", "touch", 0.25, 1.0),
    "Y": ("flex", "flex", "flex", "ext", "open", 0.2, 1.0),
    "L": ("ext", "flex", "flex", "flex", "open", 0.0, 1.5),
    "C": ("curve", "curve", "curve", "curve", "open", 0.0, 1.5),
    "O": ("round", "round", "round", "round", "touch", 0.0, 1.5),
    "claw": ("hook", "hook", "hook", "hook", "open", 0.28, 1.0),
    "X": ("hook", "flex", "flex", "flex", "across", 0.0, 1.0),
    "bentB": ("bent", "bent", "bent", "bent", "side", 0.0, 1.5),
    "F": ("round", "ext", "ext", "ext", "touch", 0.2, 1.0),
}


@functools.cache
def _relaxed_left() -> np.ndarray:
    return np.asarray(RELAXED_HAND_LEFT, dtype=np.float64)


@functools.cache
def handshape_pose(name: str, side: str = "right") -> np.ndarray:
    """The 45 hand parameters of handshape ``name`` (offsets from the relaxed mean hand), for ``side``."""
    try:
        index, middle, ring, pinky, thumb, spread, _ = HANDSHAPES[name]
    except KeyError:
        raise KeyError(f"unknown handshape {name!r}; valid: {sorted(HANDSHAPES)}") from None
    fingers = {"index": (index, -1.0), "middle": (middle, -0.15), "pinky": (pinky, 1.1), "ring": (ring, 0.5)}
    absolute = []
    for finger in ("index", "middle", "pinky", "ring"):
        state, spread_sign = fingers[finger]
        flex = FINGER_STATES[state]
        for k in range(3):
            # Left hand: flexion about -z; spreading (abduction) about y, the index towards +z (the thumb side).
            absolute.append((0.0, spread * spread_sign if k == 0 else 0.0, -flex[k]))
    absolute += list(THUMB_STATES[thumb])
    left = np.asarray(absolute, dtype=np.float64).reshape(-1) - _relaxed_left()
    left.setflags(write=False)
    return left if side == "left" else mirror(left)


# --------------------------------------------------------------------------------------------- arm chain and IK


@dataclass(frozen=True)
class ArmGeometry:
    """Rest offsets of the RIGHT arm chain (metres), read from the built-in skeleton."""

    collar: np.ndarray  # right collar position (spine3 is never rotated)
    shoulder: np.ndarray  # offset collar -> shoulder
    elbow: np.ndarray  # shoulder -> elbow
    wrist: np.ndarray  # elbow -> wrist
    palm: np.ndarray  # wrist -> palm point (half way to the middle fingertip)
    landmarks: dict  # name -> rest position of head / face points


@functools.cache
def arm_geometry() -> ArmGeometry:
    import torch

    backend = get_joint_backend("builtin", hand_mean="flat")
    with torch.no_grad():
        J = backend.rest_joints().double().numpy()
    names = {n: i for i, n in enumerate(backend.joint_names)}
    p = {n: J[names[n]] for n in ("right_collar", "right_shoulder", "right_elbow", "right_wrist",
                                  "right_middle_tip", "neck", "head", "nose", "jaw", "right_eye")}
    return ArmGeometry(
        collar=p["right_collar"], shoulder=p["right_shoulder"] - p["right_collar"],
        elbow=p["right_elbow"] - p["right_shoulder"], wrist=p["right_wrist"] - p["right_elbow"],
        palm=0.5 * (p["right_middle_tip"] - p["right_wrist"]),
        landmarks={k: p[k] for k in ("neck", "head", "nose", "jaw", "right_eye")},
    )


_EY, _EX = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])
_PALM_NORMAL, _FINGER_DIR = np.array([0.0, -1.0, 0.0]), np.array([-1.0, 0.0, 0.0])  # right hand at rest
_N_PARAMS = 8  # shoulder 3, elbow flexion, forearm twist, wrist 3
_SHOULDER_PRIOR = np.array([0.0, 0.55, 0.9])
#: IK starting points: hand in front of the chest, and hand raised to the face (elbow forward and up).
INIT_CHEST = np.array([0.0, 0.55, 0.9, 1.5, 0.0, 0.0, 0.0, 0.0])
INIT_FACE = np.array([0.0, 1.0, 0.35, 2.3, -0.5, 0.0, 0.0, 0.0])


def _elbow_matrix(flex: np.ndarray, twist: np.ndarray) -> np.ndarray:
    return rodrigues(flex[..., None] * _EY) @ rodrigues(twist[..., None] * _EX)


def arm_forward(params: np.ndarray, collar_aa: np.ndarray, geo: ArmGeometry,
                collar: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Right-arm forward kinematics for params [N, 8] -> positions / hand axes [N, 3].

    ``collar`` optionally passes the precomputed (collar rotation [N, 3, 3], shoulder position [N, 3]).
    """
    if collar is None:
        Gc = rodrigues(collar_aa)
        ps = geo.collar + Gc @ geo.shoulder
    else:
        Gc, ps = collar
    Gs = Gc @ rodrigues(params[:, 0:3])
    pe = ps + Gs @ geo.elbow
    Ge = Gs @ _elbow_matrix(params[:, 3], params[:, 4])
    pw = pe + Ge @ geo.wrist
    Gw = Ge @ rodrigues(params[:, 5:8])
    return {"shoulder": ps, "elbow": pe, "wrist": pw, "palm": pw + Gw @ geo.palm,
            "normal": Gw @ _PALM_NORMAL, "finger": Gw @ _FINGER_DIR}


def _hinge(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _residuals(params, target, normal, finger, collar, geo, w_orient) -> np.ndarray:
    fk = arm_forward(params, None, geo, collar)
    flex, twist, wrist = params[:, 3], params[:, 4], params[:, 5:8]
    res = [
        100.0 * (fk["palm"] - target),
        w_orient[:, None] * (fk["normal"] - normal),
        0.6 * w_orient[:, None] * (fk["finger"] - finger),
        # keep the elbow below the shoulder and outside the torso, as people do
        4.0 * _hinge(fk["elbow"][:, 1:2] - fk["shoulder"][:, 1:2] + 0.01),
        4.0 * _hinge(fk["elbow"][:, 0:1] - fk["shoulder"][:, 0:1] - 0.03),
        0.25 * (params[:, 0:3] - _SHOULDER_PRIOR),
        0.3 * twist[:, None], 0.5 * wrist,
        6.0 * _hinge(np.abs(wrist) - 0.8), 6.0 * _hinge(-flex[:, None]), 6.0 * _hinge(flex[:, None] - 2.4),
        6.0 * _hinge(np.abs(twist[:, None]) - 1.5),
        6.0 * _hinge(np.sqrt((params[:, 0:3] ** 2).sum(1, keepdims=True)) - 2.4),
    ]
    return np.concatenate(res, axis=1)


def solve_arm(target: np.ndarray, normal: np.ndarray, finger: np.ndarray, *, collar_aa: np.ndarray | None = None,
              w_orient: np.ndarray | None = None, init: np.ndarray | None = None,
              iterations: int = 18) -> np.ndarray:
    """Batched right-arm inverse kinematics.

    Args:
        target: [N, 3] palm-point positions (metres, body frame).
        normal / finger: [N, 3] wanted palm normal and finger direction (unit vectors).
        collar_aa: [N, 3] right collar rotation (shrug), zeros by default.
        w_orient: [N] weight of the orientation terms (default 1).
        init: [N, 8] starting parameters (shoulder 3, flexion, twist, wrist 3); default: hand in front of the chest.
        iterations: Levenberg-Marquardt steps.

    Returns:
        [N, 9] right shoulder, elbow and wrist axis-angle.
    """
    geo = arm_geometry()
    n = target.shape[0]
    collar_aa = np.zeros((n, 3)) if collar_aa is None else collar_aa
    w_orient = np.ones(n) if w_orient is None else w_orient
    params = np.tile(INIT_CHEST, (n, 1)) if init is None else np.array(init, dtype=np.float64)
    Gc = rodrigues(collar_aa)
    args = (target, normal, finger, (Gc, geo.collar + Gc @ geo.shoulder), geo, w_orient)
    lam = np.full(n, 1e-2)
    r = _residuals(params, *args)
    cost = (r * r).sum(1)
    eps = 1e-5
    for _ in range(iterations):
        J = np.empty((n, r.shape[1], _N_PARAMS))
        for k in range(_N_PARAMS):
            dp = params.copy()
            dp[:, k] += eps
            J[:, :, k] = (_residuals(dp, *args) - r) / eps
        JtJ = np.einsum("nri,nrj->nij", J, J)
        Jtr = np.einsum("nri,nr->ni", J, r)
        A = JtJ + lam[:, None, None] * np.eye(_N_PARAMS)
        step = np.linalg.solve(A, -Jtr[..., None])[..., 0]
        trial = params + step
        r_trial = _residuals(trial, *args)
        cost_trial = (r_trial * r_trial).sum(1)
        better = cost_trial < cost
        params = np.where(better[:, None], trial, params)
        r = np.where(better[:, None], r_trial, r)
        cost = np.where(better, cost_trial, cost)
        lam = np.where(better, lam * 0.3, lam * 4.0)
    elbow = log_map(_elbow_matrix(params[:, 3], params[:, 4]))
    return np.concatenate([params[:, 0:3], elbow, params[:, 5:8]], axis=1)


# ----------------------------------------------------------------------------------- locations and orientations

_UNIT = {"up": (0, 1, 0), "down": (0, -1, 0), "fwd": (0, 0, 1), "in": (0, 0, -1), "left": (1, 0, 0),
         "right": (-1, 0, 0)}


def _dir(name: str) -> np.ndarray:
    v = np.zeros(3)
    for part in name.split("+"):
        v += np.asarray(_UNIT[part], dtype=np.float64)
    return v / np.linalg.norm(v)


#: Orientation name -> (palm normal, finger direction) of the dominant (right) hand.
ORIENTATIONS: dict[str, tuple[str, str]] = {
    "palm_down": ("down", "fwd+left"), "palm_left": ("left", "fwd"), "palm_up": ("up", "fwd+left"),
    "palm_out": ("fwd", "up"), "palm_in_up": ("in", "up+left"), "palm_in_across": ("in", "left"),
    "palm_left_up": ("left", "up"), "palm_down_across": ("down", "left"),
}

#: Location name -> (anchor landmark or None, offset metres, allowed orientations, frequency weight, contact dir).
LOCATIONS: dict[str, tuple[str | None, tuple[float, float, float], tuple[str, ...], float, str]] = {
    "neutral": (None, (-0.09, -0.03, 0.33), ("palm_down", "palm_left", "palm_up", "palm_out", "palm_left_up"), 4.0,
                "down"),
    "chest": (None, (-0.03, -0.02, 0.17), ("palm_in_across", "palm_in_up"), 1.5, "in"),
    "stomach": (None, (-0.04, -0.17, 0.19), ("palm_in_across", "palm_up"), 0.8, "in"),
    "chin": ("jaw", (-0.01, -0.055, 0.13), ("palm_in_up", "palm_left_up", "palm_down_across"), 1.2, "in"),
    "mouth": ("nose", (-0.01, -0.04, 0.08), ("palm_in_up", "palm_left_up"), 0.8, "in"),
    "forehead": ("nose", (-0.02, 0.08, 0.06), ("palm_in_up", "palm_down_across", "palm_left_up"), 1.0, "in"),
    "cheek": ("right_eye", (-0.05, -0.06, 0.05), ("palm_in_up", "palm_left_up"), 0.8, "left"),
    "shoulder": (None, (0.12, 0.06, 0.12), ("palm_in_up",), 0.7, "in"),
    "side": (None, (-0.33, -0.12, 0.14), ("palm_left", "palm_down"), 0.8, "right"),
    "base_hand": (None, (0.0, -0.04, 0.30), ("palm_down", "palm_left", "palm_down_across"), 1.5, "down"),
}
#: Where the passive base hand sits (left palm point) and how it faces.
BASE_HAND_TARGET = np.array([0.04, -0.10, 0.30])
BASE_HAND_ORIENTATION = ("up", "fwd+right")


def location_target(name: str) -> np.ndarray:
    """Palm-point target [3] of the dominant hand at location ``name`` (body frame, metres)."""
    anchor, offset, *_ = LOCATIONS[name]
    base = np.zeros(3) if anchor is None else arm_geometry().landmarks[anchor]
    return base + np.asarray(offset, dtype=np.float64)


# ------------------------------------------------------------------------------------------------------ movements

MOVEMENTS: dict[str, float] = {
    "hold": 1.0, "line": 3.0, "arc": 2.0, "circle": 1.5, "tap": 2.0, "twist": 1.0, "shape_change": 1.5,
    "zigzag": 1.0,
}
PATH_DIRECTIONS = ("up", "down", "fwd", "left", "right", "fwd+left", "up+right", "down+left")


@dataclass(frozen=True)
class SignSpec:
    """The discrete and continuous choices that make up one sign (one concept in one sign language)."""

    concept: str
    hand_use: str  # "one", "sym", "alt" (symmetric, alternating phase) or "base"
    handshape: str
    end_handshape: str  # differs from handshape for "shape_change"
    base_handshape: str
    location: str
    orientation: str
    movement: str
    direction: str
    plane: str
    amplitude: float  # metres
    repetitions: int
    frames: int
    jaw: float  # mouthing amplitude (radians)
    mouth_rate: float  # mouthing cycles per sign
    expression: tuple[float, ...]  # 10 expression offsets
    head: tuple[float, float]  # head nod / turn accompanying the sign (radians)

    def key(self) -> tuple:
        """What makes two signs look different (used to keep a language's signs distinct)."""
        return (self.hand_use, self.handshape, self.end_handshape, self.location, self.orientation, self.movement,
                self.direction)


def _weighted(rng: np.random.Generator, table: dict, weight_of) -> str:
    names = list(table)
    w = np.array([weight_of(table[n]) for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def draw_sign(concept: str, rng: np.random.Generator) -> SignSpec:
    """Compose a random sign for ``concept`` from the phonology tables."""
    hand_use = str(rng.choice(["one", "sym", "alt", "base"], p=[0.5, 0.2, 0.1, 0.2]))
    if hand_use == "base":
        location = "base_hand"
    else:
        location = _weighted(rng, {k: v for k, v in LOCATIONS.items() if k != "base_hand"}, lambda v: v[3])
        if hand_use in ("sym", "alt") and location in ("chin", "mouth", "forehead", "cheek", "shoulder"):
            location = str(rng.choice(["neutral", "chest", "side"]))
    orientation = str(rng.choice(LOCATIONS[location][2]))
    handshape = _weighted(rng, HANDSHAPES, lambda v: v[-1])
    movement = _weighted(rng, MOVEMENTS, lambda v: v)
    end_handshape = handshape
    if movement == "shape_change":
        while end_handshape == handshape:
            end_handshape = _weighted(rng, HANDSHAPES, lambda v: v[-1])
    face = location in ("chin", "mouth", "forehead", "cheek", "shoulder")
    amplitude = float(rng.uniform(0.03, 0.07) if face else rng.uniform(0.05, 0.13))
    repetitions = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2])) if movement in ("circle", "tap", "twist",
                                                                                  "zigzag", "shape_change") else 1
    if movement == "tap":
        repetitions = max(repetitions, 2)
    expression = rng.normal(0.0, 0.45, 10) * (rng.random() < 0.5)
    return SignSpec(
        concept=concept, hand_use=hand_use, handshape=handshape, end_handshape=end_handshape,
        base_handshape=str(rng.choice(["B", "5", "S", "C"])), location=location, orientation=orientation,
        movement=movement, direction=str(rng.choice(PATH_DIRECTIONS)),
        plane=str(rng.choice(["front", "side", "flat"])), amplitude=amplitude, repetitions=repetitions,
        frames=int(rng.integers(14, 31)), jaw=float(rng.uniform(0.0, 0.18) * (rng.random() < 0.6)),
        mouth_rate=float(rng.uniform(0.8, 2.5)), expression=tuple(float(x) for x in expression.round(4)),
        head=(float(rng.normal(0, 0.06)), float(rng.normal(0, 0.06))),
    )


_PLANES = {"front": ((-1, 0, 0), (0, 1, 0)), "side": ((0, 0, 1), (0, 1, 0)), "flat": ((-1, 0, 0), (0, 0, 1))}


def movement_path(spec: SignSpec, t: np.ndarray) -> np.ndarray:
    """Palm-point displacement [T, 3] (metres) of the dominant hand at normalised times ``t`` in [0, 1]."""
    a, reps = spec.amplitude, spec.repetitions
    d = _dir(spec.direction)
    u, v = (np.asarray(x, dtype=np.float64) for x in _PLANES[spec.plane])
    te = ease(t)[:, None]
    m = spec.movement
    if m == "line":
        return a * (te - 0.5) * d
    if m == "arc":
        ang = np.pi * te
        return 0.5 * a * (-np.cos(ang) * u + (np.sin(ang) - 0.5) * v)
    if m == "circle":
        ang = 2.0 * np.pi * reps * te
        return 0.4 * a * (np.cos(ang) * u + np.sin(ang) * v - u)
    if m == "tap":
        contact = _dir(LOCATIONS[spec.location][4])
        return -0.35 * a * np.abs(np.sin(np.pi * reps * t))[:, None] * contact
    if m == "zigzag":
        side = np.cross(d, [0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        side = side / np.linalg.norm(side)
        return a * (te - 0.5) * d + 0.3 * a * np.sin(2.0 * np.pi * reps * t)[:, None] * side
    # hold, twist, shape_change: the hand stays (a slight drift keeps it alive)
    return 0.12 * a * (te - 0.5) * d


def rest_frame() -> np.ndarray:
    """The rest pose: arms hanging slightly forward, elbows a little bent, relaxed hands, neutral face."""
    raw = np.zeros(RAW_DIM)
    raw[R_SHOULDER] = (0.0, 0.15, 1.22)
    raw[R_ELBOW] = (0.0, 0.45, 0.0)
    raw[L_SHOULDER] = mirror(raw[R_SHOULDER])
    raw[L_ELBOW] = mirror(raw[R_ELBOW])
    raw[RAW_SLICES["smplx_shape"]] = FIXED_BETAS
    return raw


def _collar_shrug(height: np.ndarray) -> np.ndarray:
    """Right collar rotation [T, 3] raising the shoulder a little when the hand is high (right collar: +z lifts...)."""
    lift = np.clip((height + 0.05) / 0.45, 0.0, 1.0)
    out = np.zeros((height.shape[0], 3))
    out[:, 2] = -0.12 * lift
    return out


def sign_targets(spec: SignSpec) -> dict[str, np.ndarray]:
    """Per-frame IK targets of one sign (citation form): dominant and, if moving, mirrored left hand."""
    T = spec.frames
    t = np.linspace(0.0, 1.0, T)
    centre = location_target(spec.location)
    path = movement_path(spec, t)
    n_name, f_name = ORIENTATIONS[spec.orientation]
    out = {"right": centre + path, "right_normal": np.tile(_dir(n_name), (T, 1)),
           "right_finger": np.tile(_dir(f_name), (T, 1))}
    if spec.hand_use in ("sym", "alt"):
        shift = np.array([-0.1, 0.0, 0.0]) if spec.location in ("neutral", "chest", "stomach") else np.zeros(3)
        right = centre + shift + path
        if spec.hand_use == "alt":
            path_l = movement_path(spec, (t + 0.5) % 1.0) if spec.movement in ("circle", "tap", "zigzag") \
                else -path
        else:
            path_l = path
        out["right"] = right
        # the left hand is solved as a right hand in the mirrored world
        out["left"] = centre + shift + path_l
        out["left_normal"], out["left_finger"] = out["right_normal"], out["right_finger"]
    elif spec.hand_use == "base":
        out["left"] = np.tile(BASE_HAND_TARGET * np.array([-1.0, 1.0, 1.0]), (T, 1))
        n_b, f_b = BASE_HAND_ORIENTATION
        # mirrored world: the base hand's "right" finger direction becomes "left" after mirroring back
        out["left_normal"] = np.tile(_dir(n_b), (T, 1))
        out["left_finger"] = np.tile(_dir(f_b.replace("right", "left")), (T, 1))
    return out


def _keyframes(T: int, stride: int) -> np.ndarray:
    return np.unique(np.append(np.arange(0, T, stride), T - 1))


def synthesize_signs(specs: list[SignSpec], stride: int = 2) -> list[np.ndarray]:
    """Citation-form motion of many signs at once: one batched IK over their keyframes.

    IK runs on every ``stride``-th frame (and the last); the joint angles in between are interpolated.

    Returns:
        one float64 [T_i, 179] raw frame array per spec (canonical signer, no transitions).
    """
    rest = rest_frame()
    targets = []
    for s in specs:
        keys = _keyframes(s.frames, stride)
        targets.append({k: v[keys] for k, v in sign_targets(s).items()})
    pos, nrm, fng, owner, hand, init = [], [], [], [], [], []
    for i, tg in enumerate(targets):
        for side in ("right", "left"):
            if side in tg:
                pos.append(tg[side])
                nrm.append(tg[f"{side}_normal"])
                fng.append(tg[f"{side}_finger"])
                owner.append(np.full(len(tg[side]), i))
                hand.append(np.full(len(tg[side]), side == "left"))
                high = side == "right" and specs[i].location in ("forehead", "cheek", "chin", "mouth")
                init.append(np.tile(INIT_FACE if high else INIT_CHEST, (len(tg[side]), 1)))
    P, N, F = np.concatenate(pos), np.concatenate(nrm), np.concatenate(fng)
    collar = _collar_shrug(P[:, 1])
    sol = np.concatenate([solve_arm(P, N, F, collar_aa=collar, init=np.concatenate(init)), collar], axis=1)
    owner_all, left_all = np.concatenate(owner), np.concatenate(hand)
    out: list[np.ndarray] = []
    for i, spec in enumerate(specs):
        T = spec.frames
        t = np.linspace(0.0, 1.0, T)
        keys = _keyframes(T, stride)

        def dense(values: np.ndarray, T: int = T, keys: np.ndarray = keys) -> np.ndarray:
            return np.stack([np.interp(np.arange(T), keys, values[:, j]) for j in range(values.shape[1])], 1)

        raw = np.tile(rest, (T, 1))
        sel_r = (owner_all == i) & ~left_all
        right = dense(sol[sel_r])
        raw[:, R_SHOULDER], raw[:, R_ELBOW], raw[:, R_WRIST] = right[:, 0:3], right[:, 3:6], right[:, 6:9]
        raw[:, R_COLLAR] = right[:, 9:12]
        sel_l = (owner_all == i) & left_all
        if sel_l.any():
            left = mirror(dense(sol[sel_l]))
            raw[:, L_SHOULDER], raw[:, L_ELBOW], raw[:, L_WRIST] = left[:, 0:3], left[:, 3:6], left[:, 6:9]
            raw[:, L_COLLAR] = left[:, 9:12]
        if spec.movement == "twist":
            raw[:, R_WRIST.start] += 0.45 * np.sin(2.0 * np.pi * spec.repetitions * t)
            if spec.hand_use in ("sym", "alt"):
                raw[:, L_WRIST.start] += 0.45 * np.sin(2.0 * np.pi * spec.repetitions * t)
        # handshapes (with a change, the second shape takes over in the middle of the sign)
        start, end = handshape_pose(spec.handshape), handshape_pose(spec.end_handshape)
        if spec.movement == "shape_change":
            if spec.repetitions > 1:
                w = 0.5 - 0.5 * np.cos(2.0 * np.pi * (spec.repetitions - 0.5) * t)
            else:
                w = ease((t - 0.25) / 0.5)
        else:
            w = np.zeros(T)
        raw[:, RHAND] = (1.0 - w)[:, None] * start + w[:, None] * end
        if spec.hand_use in ("sym", "alt"):
            raw[:, LHAND] = mirror(raw[:, RHAND])
        elif spec.hand_use == "base":
            raw[:, LHAND] = handshape_pose(spec.base_handshape, "left")
        # non-manuals: mouthing (jaw about +x), an expression, a small head movement
        raw[:, JAW.start] = spec.jaw * 0.5 * (1.0 - np.cos(2.0 * np.pi * spec.mouth_rate * t))
        raw[:, EXPR] = np.asarray(spec.expression) * np.sin(np.pi * t)[:, None] ** 0.5
        raw[:, HEAD.start] += spec.head[0] * np.sin(np.pi * t)
        raw[:, HEAD.start + 1] += spec.head[1] * np.sin(np.pi * t)
        out.append(raw)
    return out
