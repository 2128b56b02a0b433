"""Joint backends by name: ``get_joint_backend("builtin" | "smplx")``, with a cached shared default instance."""

from __future__ import annotations

import functools
from collections.abc import Callable

from soke_lightning.kinematics.base import JointBackend
from soke_lightning.kinematics.builtin import BuiltinSkeleton
from soke_lightning.kinematics.smplx_backend import SmplxBackend


def _builtin(**kwargs) -> JointBackend:
    return BuiltinSkeleton(**kwargs)


def _smplx(**kwargs) -> JointBackend:
    try:
        return SmplxBackend(**kwargs)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"the 'smplx' joint backend is unavailable ({err}); install it with `pip install "
            f"soke-lightning[smplx]` and point it at your SMPL-X model files, or use get_joint_backend('builtin')"
        ) from err


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
