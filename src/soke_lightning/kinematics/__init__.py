"""Forward kinematics: official 179-d SMPL-X frames -> 3-D joint positions, behind one interface.

Two backends share :class:`JointBackend`:

* ``"builtin"`` (:mod:`soke_lightning.kinematics.builtin`): a pure-torch skeleton with the SMPL-X kinematic tree
  and hand-authored rest offsets; needs no licensed file. Default for tests, SynthSign and rendering.
* ``"smplx"`` (:mod:`soke_lightning.kinematics.smplx_backend`): the real SMPL-X body model, for users who have
  its model files (``pip install soke-lightning[smplx]``); it reproduces the official evaluation joints.

Both return joints in metres in SMPL-X's frame (y up, x towards the model's left, z forward) and expose the same
joint sets (SOKE_SPEC §6.1): ``"body"`` (12 ids: neck, L/R shoulder, L/R elbow, L/R wrist, L/R ear, L/R eye, nose),
``"lhand"`` / ``"rhand"`` (21 ids: wrist, then thumb, index, middle, ring, pinky with 3 joints + tip each) and
``"body_align"`` (the joints a body Procrustes fit uses).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torch import nn

from soke_lightning.data.layout import FEATURE_DIM, RAW_DIM, features_to_raw

#: The order of the body joint set (SOKE_SPEC §6.1); backends map each name to one of their joint ids.
BODY_SET_NAMES: tuple[str, ...] = (
    "neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_ear", "right_ear", "left_eye", "right_eye", "nose",
)
#: Finger order of a hand joint set, after the wrist (SOKE_SPEC §6.1).
HAND_SET_FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")
#: The joint-set names every backend provides.
JOINT_SET_NAMES: tuple[str, ...] = ("body", "lhand", "rhand", "body_align")


class JointBackend(nn.Module):
    """Base class of forward-kinematics backends: ``backend(raw[..., 179]) -> joints [..., J, 3]`` in metres.

    Subclasses set :attr:`name`, :attr:`joint_names`, :attr:`joint_sets`, :attr:`bones` and implement
    :meth:`forward`. Index 0 is the pelvis (root).

    Attributes:
        name: registry name of the backend.
        joint_names: one name per output joint (length J).
        joint_sets: set name -> tuple of joint ids (see :data:`JOINT_SET_NAMES`).
        bones: (parent, child) joint-id pairs for drawing a skeleton.
    """

    name: str = "abstract"
    joint_names: tuple[str, ...] = ()
    joint_sets: dict[str, tuple[int, ...]] = {}
    bones: tuple[tuple[int, int], ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Args: raw [..., 179] official frames. Returns: joints [..., J, 3] (dtype/device of ``raw``)."""
        raise NotImplementedError

    def from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Joints of denormalised 133-d features (root and lower body at rest, fixed betas; SOKE_SPEC §2.8).

        Args:
            features: [..., 133] denormalised feature vectors.

        Returns:
            joints [..., J, 3].
        """
        if features.shape[-1] != FEATURE_DIM:
            raise ValueError(
                f"{type(self).__name__}.from_features expects [..., {FEATURE_DIM}] denormalised features, got "
                f"shape {tuple(features.shape)}; raw official frames ([..., {RAW_DIM}]) go through forward()"
            )
        return self(features_to_raw(features))

    def select(self, joints: torch.Tensor, set_name: str) -> torch.Tensor:
        """Pick a joint set: joints [..., J, 3] -> [..., n, 3]."""
        try:
            ids = self.joint_sets[set_name]
        except KeyError:
            raise KeyError(f"unknown joint set {set_name!r}; {self.name} backend has {sorted(self.joint_sets)}") \
                from None
        if joints.shape[-2] != self.num_joints:
            raise ValueError(f"expected joints [..., {self.num_joints}, 3] from the {self.name} backend, "
                             f"got shape {tuple(joints.shape)}")
        return joints[..., list(ids), :]

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_joints={self.num_joints}"


def _builtin(**kwargs) -> JointBackend:
    from soke_lightning.kinematics.builtin import BuiltinSkeleton

    return BuiltinSkeleton(**kwargs)


def _smplx(**kwargs) -> JointBackend:
    try:
        from soke_lightning.kinematics.smplx_backend import SmplxBackend
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"the 'smplx' joint backend is unavailable ({err}); install it with `pip install "
            f"soke-lightning[smplx]` and point it at your SMPL-X model files, or use get_joint_backend('builtin')"
        ) from err
    return SmplxBackend(**kwargs)


#: name -> factory(**kwargs) -> JointBackend.
BACKENDS: dict[str, Callable[..., JointBackend]] = {"builtin": _builtin, "smplx": _smplx}


@functools.lru_cache(maxsize=4)
def _default_backend(name: str) -> JointBackend:
    return BACKENDS[name]()


def get_joint_backend(name: str = "builtin", **kwargs) -> JointBackend:
    """Build a joint backend by name ("builtin" or "smplx").

    Without keyword arguments a shared, cached default instance is returned (do not mutate it; ``.to(device)``
    a copy via ``copy.deepcopy`` if you need one elsewhere); with arguments a new instance is built.

    Args:
        name: registry key.
        **kwargs: backend options (builtin: ``hand_mean="relaxed"|"flat"``; smplx: model path etc.).
    """
    if name not in BACKENDS:
        raise KeyError(f"unknown joint backend {name!r}; valid: {sorted(BACKENDS)}")
    if not kwargs:
        return _default_backend(name)
    return BACKENDS[name](**kwargs)


def hand_set(joint_ids: dict[str, int], side: str) -> tuple[int, ...]:
    """The 21-id hand set of ``side`` ("left"/"right") from a name -> id map.

    Expects names ``{side}_wrist``, ``{side}_{finger}{1,2,3}`` and ``{side}_{finger}_tip``.
    """
    names = [f"{side}_wrist"]
    for finger in HAND_SET_FINGERS:
        names += [f"{side}_{finger}1", f"{side}_{finger}2", f"{side}_{finger}3", f"{side}_{finger}_tip"]
    return tuple(joint_ids[n] for n in names)


def body_set(joint_ids: dict[str, int], names: Sequence[str] = BODY_SET_NAMES) -> tuple[int, ...]:
    """The 12-id body set (SOKE order) from a name -> id map."""
    return tuple(joint_ids[n] for n in names)


__all__ = [
    "BACKENDS", "BODY_SET_NAMES", "HAND_SET_FINGERS", "JOINT_SET_NAMES", "JointBackend", "body_set",
    "get_joint_backend", "hand_set",
]
