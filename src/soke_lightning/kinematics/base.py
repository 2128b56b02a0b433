"""The joint-backend interface: :class:`JointBackend`, the joint-set names and the helpers that build the sets.

Backends (:mod:`.builtin`, :mod:`.smplx_backend`) subclass :class:`JointBackend`; :mod:`.backends` builds them by
name. Joints are in metres in SMPL-X's frame (y up, x towards the model's left, z forward); every backend exposes
the joint sets ``"body"`` (12 ids), ``"lhand"`` / ``"rhand"`` (21 ids each) and ``"body_align"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from soke_lightning.core.layout import FEATURE_DIM, RAW_DIM, features_to_raw

#: The order of the body joint set (docs/evaluation.md §6.1); backends map each name to one of their joint ids.
BODY_SET_NAMES: tuple[str, ...] = (
    "neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_ear", "right_ear", "left_eye", "right_eye", "nose",
)
#: Finger order of a hand joint set, after the wrist (docs/evaluation.md §6.1).
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

    def from_features(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Joints of denormalised 133-d features (root and lower body at rest, fixed betas; docs/design.md §2.8).

        Args:
            features: [..., 133] denormalised feature vectors.
            lengths: with ``features`` [B, T, 133]: [B] valid frames; only those are posed (a padded batch of
                generated or ground-truth motion is often half padding) and padded frames get zero joints.

        Returns:
            joints [..., J, 3].
        """
        if features.shape[-1] != FEATURE_DIM:
            raise ValueError(
                f"{type(self).__name__}.from_features expects [..., {FEATURE_DIM}] denormalised features, got "
                f"shape {tuple(features.shape)}; raw official frames ([..., {RAW_DIM}]) go through forward()"
            )
        if lengths is None:
            return self(features_to_raw(features))
        if features.dim() != 3 or lengths.shape != features.shape[:1]:
            raise ValueError(f"{type(self).__name__}.from_features: lengths [B] needs features [B, T, "
                             f"{FEATURE_DIM}], got features {tuple(features.shape)} and lengths "
                             f"{tuple(lengths.shape)}")
        valid = torch.arange(features.shape[1], device=features.device)[None] < lengths.to(features.device)[:, None]
        posed = self(features_to_raw(features[valid]))
        joints = posed.new_zeros(*features.shape[:2], *posed.shape[1:])
        joints[valid] = posed
        return joints

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

    @torch.no_grad()
    def padded_joints(self, sequences: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        """Joints of official-frame sequences of any lengths, zero-padded: (joints [B, T_max, J, 3], lengths [B]).

        Args:
            sequences: B arrays [T_i, 179] (numpy or torch).
        """
        lengths = torch.tensor([len(s) for s in sequences])
        padded = torch.zeros(len(sequences), int(lengths.max()), RAW_DIM)
        for k, s in enumerate(sequences):
            padded[k, : len(s)] = torch.as_tensor(s, dtype=torch.float32)
        return self(padded), lengths

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_joints={self.num_joints}"


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
