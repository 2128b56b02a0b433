"""Rendering of joint sequences: skeleton animations (GIF/MP4) and PNG contact sheets; `soke render` for stores.

Imports are lazy so that discovering the `soke render` tool stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SkeletonRenderer": "soke_lightning.render.animation",
    "find_cjk_font": "soke_lightning.render.animation",
    "render_animation": "soke_lightning.render.animation",
    "render_still": "soke_lightning.render.animation",
    "text_image": "soke_lightning.render.animation",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
