"""The SMPL-X pose layout, declared once as data: the 179-d official frame, the 133-d feature vector, the streams.

Official frame (docs/design.md §2.2): root 3 | body 63 (joints 1-21) | lhand 45 | rhand 45 | jaw 3 | shape 10 | expr 10.
Feature vector (§2.3): drop root + body joints 1-11 (raw 0:36) and shape (raw 159:169) -> 133 dims:
  0-29 body joints 12-21, 30-74 left hand, 75-119 right hand, 120-122 jaw, 123-132 expression.
Streams: body = features 0-29 + 120-132 (43), lhand = 30-74 (45), rhand = 75-119 (45).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

RAW_DIM = 179
FEATURE_DIM = 133

#: Keys of an official per-frame pickle, in concatenation order, with their sizes (docs/design.md §2.2).
RAW_KEYS: tuple[tuple[str, int], ...] = (
    ("smplx_root_pose", 3),
    ("smplx_body_pose", 63),
    ("smplx_lhand_pose", 45),
    ("smplx_rhand_pose", 45),
    ("smplx_jaw_pose", 3),
    ("smplx_shape", 10),
    ("smplx_expr", 10),
)


def _raw_slices() -> dict[str, slice]:
    out, start = {}, 0
    for key, size in RAW_KEYS:
        out[key] = slice(start, start + size)
        start += size
    return out


#: Slice of each official key inside the 179-d raw frame.
RAW_SLICES: dict[str, slice] = _raw_slices()
assert sum(size for _, size in RAW_KEYS) == RAW_DIM

#: Raw indices kept in the 133-d feature vector, in feature order.
FEATURE_FROM_RAW: np.ndarray = np.concatenate([np.arange(36, 159), np.arange(169, 179)])
assert FEATURE_FROM_RAW.size == FEATURE_DIM

#: One shape vector for every subject and frame (docs/design.md §2.8 step 4).
FIXED_BETAS: tuple[float, ...] = (
    -0.07284723, 0.1795129, -0.27608207, 0.135155, 0.10748172,
    0.16037364, -0.01616933, -0.03450319, 0.01369138, 0.01108842,
)

#: SMPL-X body joint names 0..21 (joint i>0 is body_pose[3(i-1):3i]).
SMPLX_BODY_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
#: The 15 hand joints in SMPL-X order (each hand pose is 15 x 3 axis-angle).
SMPLX_HAND_JOINTS: tuple[str, ...] = (
    "index1", "index2", "index3", "middle1", "middle2", "middle3", "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3", "thumb1", "thumb2", "thumb3",
)


@dataclass(frozen=True)
class PartSpec:
    """One tokenizer stream: a name and the feature indices it reads (in order)."""

    name: str
    indices: tuple[int, ...]

    @property
    def dim(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class PoseLayout:
    """The feature vector and its partition into streams. The default is SOKE's three-part split."""

    feature_dim: int
    parts: tuple[PartSpec, ...]

    @property
    def part_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parts)

    def part(self, name: str) -> PartSpec:
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(f"unknown part {name!r}; this layout has {list(self.part_names)}")

    def part_dims(self) -> dict[str, int]:
        return {p.name: p.dim for p in self.parts}

    def split(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """[..., feature_dim] -> {part: [..., part_dim]}."""
        if features.shape[-1] != self.feature_dim:
            raise ValueError(f"expected last dim {self.feature_dim}, got {tuple(features.shape)}")
        return {p.name: features[..., list(p.indices)] for p in self.parts}

    def merge(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """{part: [..., part_dim]} -> [..., feature_dim]; every feature must be covered by exactly one part."""
        missing = [p.name for p in self.parts if p.name not in parts]
        if missing:
            raise KeyError(f"missing parts {missing}; got {sorted(parts)}")
        ref = parts[self.parts[0].name]
        out = ref.new_zeros(*ref.shape[:-1], self.feature_dim)
        for p in self.parts:
            x = parts[p.name]
            if x.shape[-1] != p.dim:
                raise ValueError(f"part {p.name!r} must have {p.dim} features, got {x.shape[-1]}")
            out[..., list(p.indices)] = x
        return out


#: SOKE's decoupled streams (docs/design.md §2.3).
SOKE_LAYOUT = PoseLayout(
    feature_dim=FEATURE_DIM,
    parts=(
        PartSpec("body", tuple(range(0, 30)) + tuple(range(120, 133))),
        PartSpec("lhand", tuple(range(30, 75))),
        PartSpec("rhand", tuple(range(75, 120))),
    ),
)
#: The coupled baseline: one stream over all 133 features (the paper's "single tokenizer").
COUPLED_LAYOUT = PoseLayout(feature_dim=FEATURE_DIM, parts=(PartSpec("all", tuple(range(FEATURE_DIM))),))

LAYOUTS: dict[str, PoseLayout] = {"soke": SOKE_LAYOUT, "coupled": COUPLED_LAYOUT}


def get_layout(name: str) -> PoseLayout:
    """Look a layout up by name ("soke" or "coupled")."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown pose layout {name!r}; valid: {sorted(LAYOUTS)}") from None


def raw_to_features(raw):
    """[..., 179] official frames -> [..., 133] features (numpy or torch)."""
    if raw.shape[-1] != RAW_DIM:
        raise ValueError(f"expected official frames with last dim {RAW_DIM}, got shape {tuple(raw.shape)}")
    if isinstance(raw, torch.Tensor):
        return raw[..., torch.as_tensor(FEATURE_FROM_RAW, device=raw.device)]
    return raw[..., FEATURE_FROM_RAW]


def features_to_raw(features, betas=FIXED_BETAS):
    """[..., 133] features -> [..., 179] official frames (docs/design.md §2.8).

    Root orientation and body joints 1-11 become zero (lower body at rest), shape is the fixed ``betas``.
    """
    if features.shape[-1] != FEATURE_DIM:
        raise ValueError(f"expected features with last dim {FEATURE_DIM}, got shape {tuple(features.shape)}")
    if isinstance(features, torch.Tensor):
        out = features.new_zeros(*features.shape[:-1], RAW_DIM)
        out[..., torch.as_tensor(FEATURE_FROM_RAW, device=features.device)] = features
        out[..., RAW_SLICES["smplx_shape"]] = torch.as_tensor(betas, dtype=features.dtype, device=features.device)
        return out
    out = np.zeros((*features.shape[:-1], RAW_DIM), dtype=features.dtype)
    out[..., FEATURE_FROM_RAW] = features
    out[..., RAW_SLICES["smplx_shape"]] = np.asarray(betas, dtype=features.dtype)
    return out


def frame_from_dict(frame: dict, *, source: str = "<frame>") -> np.ndarray:
    """Concatenate the 7 official keys of one per-frame pickle dict into a float64 [179] vector.

    Raises:
        KeyError / ValueError naming ``source`` and the offending key when a key is missing or has the wrong size.
    """
    parts = []
    for key, size in RAW_KEYS:
        if key not in frame:
            raise KeyError(f"{source}: missing key {key!r} (official frames hold {[k for k, _ in RAW_KEYS]})")
        value = np.asarray(frame[key], dtype=np.float64).reshape(-1)
        if value.size != size:
            raise ValueError(f"{source}: key {key!r} has {value.size} values, expected {size}")
        parts.append(value)
    return np.concatenate(parts)


def frame_to_dict(raw: np.ndarray) -> dict[str, np.ndarray]:
    """Inverse of :func:`frame_from_dict`: a [179] vector -> the 7 official keys (float32 arrays)."""
    raw = np.asarray(raw, dtype=np.float32)
    return {key: raw[RAW_SLICES[key]].copy() for key, _ in RAW_KEYS}
