"""Forward kinematics: official 179-d SMPL-X frames -> 3-D joint positions, behind one interface.

Two backends share :class:`JointBackend` (:mod:`.base`): ``"builtin"`` (:mod:`.builtin`), a pure-torch skeleton
with the SMPL-X kinematic tree and hand-authored rest offsets that needs no licensed file (the default for tests,
SynthSign and rendering), and ``"smplx"`` (:mod:`.smplx_backend`), the real SMPL-X body model for users who have
its model files (``pip install soke-lightning[smplx]``). :func:`get_joint_backend` builds either by name.
Joint sets (``body``, ``lhand``, ``rhand``, ``body_align``) are described in ``docs/design.md``.
"""

from soke_lightning.kinematics.backends import BACKENDS, get_joint_backend
from soke_lightning.kinematics.base import (
    BODY_SET_NAMES,
    HAND_SET_FINGERS,
    JOINT_SET_NAMES,
    JointBackend,
    body_set,
    hand_set,
)

__all__ = [
    "BACKENDS", "BODY_SET_NAMES", "HAND_SET_FINGERS", "JOINT_SET_NAMES", "JointBackend", "body_set",
    "get_joint_backend", "hand_set",
]
