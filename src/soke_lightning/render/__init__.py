"""Rendering of joint sequences: skeleton animations (GIF/MP4), PNG contact sheets and motion exports."""

from soke_lightning.render.animation import (
    SkeletonRenderer,
    find_cjk_font,
    render_animation,
    render_still,
    text_image,
)

__all__ = ["SkeletonRenderer", "find_cjk_font", "render_animation", "render_still", "text_image"]
