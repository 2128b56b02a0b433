"""Skeleton animations and contact sheets of 3-D joint sequences (GIF / MP4 / PNG).

Frames are drawn with PIL onto a background prepared once (panel frames, titles and the caption; text is set
with matplotlib so any script with an installed font renders), which keeps a 200-frame GIF to a few seconds.

Each sequence gets a panel: a front view (the camera faces the person: x, the model's left, to the viewer's
right; y up), two zoomed insets that follow the hands (the model's right hand on the viewer's left, as in the
front view) and optionally a small side view (seen from the model's right: forward, +z, to the viewer's right).
Axis limits are fixed over all frames and shared by all panels, so motion and differences between panels show.
"""

from __future__ import annotations

import functools
import logging
import math
import subprocess
import textwrap
import unicodedata
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

BACKGROUND = (255, 255, 255)
VIEW_BACKGROUND = (246, 246, 246)
VIEW_BORDER = (200, 200, 200)
BODY_COLOUR = (70, 70, 80)
#: Model's left hand orange, right hand blue; fingers thumb -> pinky from dark to light in the insets.
HAND_COLOURS = {"lhand": (230, 85, 13), "rhand": (33, 113, 181)}
_FINGER_SHADE = (0.55, 0.75, 0.9, 1.05, 1.2)

#: Font families tried (in order) for Chinese text before asking fontconfig.
CJK_FAMILIES: tuple[str, ...] = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Noto Serif CJK SC", "Source Han Sans SC",
    "Source Han Sans CN", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback", "AR PL UMing CN",
    "AR PL UKai CN", "SimHei", "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "Arial Unicode MS",
)


@functools.lru_cache(maxsize=1)
def find_cjk_font() -> str | None:
    """Name of a matplotlib font family that covers Chinese, or None when none is installed.

    Looks at matplotlib's font list first, then asks fontconfig (``fc-list :lang=zh``) and registers the file it
    names (matplotlib's font cache may predate the font's installation).
    """
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in installed:
            return family
    try:
        listing = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        listing = ""
    for line in listing.splitlines():
        path = line.split(":")[0].strip()
        if not path:
            continue
        try:
            font_manager.fontManager.addfont(path)
            return font_manager.FontProperties(fname=path).get_name()
        except (OSError, RuntimeError, ValueError):
            continue
    return None


def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _wrap(text: str, width_px: int, fontsize: float) -> list[str]:
    """Wrap ``text`` to lines of about ``width_px``: by words for spaced scripts, by characters for CJK."""
    if not any(_is_wide(ch) for ch in text):
        return textwrap.wrap(text, width=max(8, int(width_px / (0.55 * fontsize)))) or [""]
    lines, line, used = [], "", 0.0
    for ch in text:
        w = fontsize * (1.0 if _is_wide(ch) else 0.55)
        if used + w > width_px and line:
            lines.append(line)
            line, used = "", 0.0
        line += ch
        used += w
    return lines + [line] if line else lines


@functools.lru_cache(maxsize=1)
def _warn_no_cjk_font() -> None:
    log.warning("no CJK font found: Chinese text renders as empty boxes. Install one, e.g. "
                "`apt-get install fonts-wqy-microhei` (1.6 MB) or `fonts-noto-cjk` (57 MB).")


def text_image(text: str, width: int, fontsize: float = 15, colour: str = "#222222") -> np.ndarray:
    """Render (wrapped, centred) text to an RGB uint8 image [h, width, 3] with matplotlib's font machinery."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lines = _wrap(text, width - 16, fontsize)
    height = int(math.ceil(len(lines) * fontsize * 1.35 + 10))
    families = ["DejaVu Sans"]
    if any(_is_wide(ch) for ch in text):
        cjk = find_cjk_font()
        if cjk is None:
            _warn_no_cjk_font()
        else:
            families.insert(0, cjk)
    fig = Figure(figsize=(width / 72, height / 72), dpi=72, facecolor="white")
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, "\n".join(lines), ha="center", va="center", fontsize=fontsize, color=colour,
             family=families, linespacing=1.2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Gg]lyph.*missing")
        fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


@functools.lru_cache(maxsize=4)
def _label_font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans from matplotlib's bundled fonts (always present), for ASCII labels drawn with PIL."""
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)


@dataclass
class _View:
    """A 2-D projection of joints into a box of the frame: u = sign_u * p[axis_u], v = p[1] (up)."""

    box: tuple[int, int, int, int]  # left, top, width, height in pixels
    axis_u: int
    sign_u: float
    centre: tuple[float, float]  # (u, v) at the box centre, or None for views that follow a joint set
    scale: float  # pixels per metre
    segments: list[tuple[int, int, tuple[int, int, int], int]]
    follow: tuple[int, ...] | None = None  # joints whose mean is kept at the centre (hand insets)
    dots: tuple[int, ...] = ()
    dot_colour: tuple[int, int, int] = BODY_COLOUR
    head: tuple[int, ...] = ()  # face points (ears, eyes, nose): drawn as a head outline with dots

    def project(self, joints: np.ndarray) -> np.ndarray:
        """joints [J, 3] -> pixel coordinates [J, 2] inside the box."""
        u = self.sign_u * joints[:, self.axis_u]
        v = joints[:, 1]
        if self.follow is None:
            cu, cv = self.centre
        else:
            cu, cv = u[list(self.follow)].mean(), v[list(self.follow)].mean()
        w, h = self.box[2], self.box[3]
        return np.stack([w / 2 + (u - cu) * self.scale, h / 2 - (v - cv) * self.scale], axis=-1)


def _as_numpy(seq) -> np.ndarray:
    if hasattr(seq, "detach"):
        seq = seq.detach().cpu().numpy()
    arr = np.asarray(seq, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise ValueError(f"each sequence must be joints [T>0, J, 3], got shape {arr.shape}")
    return arr


class SkeletonRenderer:
    """Draws frames of one or more joint sequences side by side; shorter sequences hold their last frame.

    Args:
        sequences: list of [T_i, J, 3] joint arrays (numpy or torch), metres, SMPL-X frame (y up, x = left).
        bones: (parent, child) pairs to draw.
        titles: one title per sequence (e.g. "ground truth", "reconstruction", "generated").
        caption: text under the panels (the sentence); any script with an installed font.
        joint_sets: a backend's ``joint_sets``; "lhand"/"rhand" colour the hands and enable the hand insets,
            "body" (with joint 0) sets the framing of the front view. Without it all joints frame the view.
        side_view: add a small side view to each panel.
        height: pixel height of the front view.
        antialias: draw at twice the size and downsample (smoother lines, ~2x slower).
    """

    def __init__(self, sequences: Sequence, bones: Sequence[tuple[int, int]], *, titles: Sequence[str] | None = None,
                 caption: str | None = None, joint_sets: Mapping[str, Sequence[int]] | None = None,
                 side_view: bool = False, height: int = 360, antialias: bool = True):
        if not sequences:
            raise ValueError("render: no sequences given")
        self.sequences = [_as_numpy(s) for s in sequences]
        num_joints = {s.shape[1] for s in self.sequences}
        if len(num_joints) != 1:
            raise ValueError(f"render: all sequences must have the same joints, got J = {sorted(num_joints)}")
        self.num_joints = num_joints.pop()
        bad = [b for b in bones if not (0 <= b[0] < self.num_joints and 0 <= b[1] < self.num_joints)]
        if bad:
            raise ValueError(f"render: bones {bad[:5]} index joints outside 0..{self.num_joints - 1}")
        if titles is not None and len(titles) != len(self.sequences):
            raise ValueError(f"render: {len(titles)} titles for {len(self.sequences)} sequences")
        self.bones = [tuple(map(int, b)) for b in bones]
        self.titles = list(titles) if titles is not None else None
        self.caption = caption
        self.joint_sets = {k: tuple(v) for k, v in (joint_sets or {}).items()}
        self.num_frames = max(len(s) for s in self.sequences)
        self.ss = 2 if antialias else 1
        self._layout(height, side_view)

    # ----------------------------------------------------------------------------------------------- layout
    def _face_ids(self) -> tuple[int, ...]:
        """Ears, eyes and nose from the SOKE-ordered body set (its last five entries), if known."""
        body = self.joint_sets.get("body", ())
        return tuple(body[7:12]) if len(body) == 12 else ()

    def _segments(self, ids: set[int] | None, hand_only: str | None, width: float):
        """Coloured bone segments (widths in supersampled pixels), body first so the hands are drawn on top."""
        ss = self.ss
        hands = {k: set(self.joint_sets.get(k, ())) for k in HAND_COLOURS}
        face = set(self._face_ids())
        body, hand = [], []
        for a, b in self.bones:
            if ids is not None and not (a in ids and b in ids):
                continue
            if b in face:  # the face points are drawn as a head outline, not as spikes
                continue
            side = next((k for k, s in hands.items() if a in s and b in s), None)
            if hand_only is not None and side != hand_only:
                continue
            if side is None:
                body.append((a, b, BODY_COLOUR, max(1, round(width * 1.4 * ss))))
                continue
            colour = HAND_COLOURS[side]
            if hand_only is not None:  # inset: shade each finger, thumb darkest
                order = self.joint_sets[side]
                finger = max(0, (order.index(b) - 1) // 4) if b in order else 0
                colour = tuple(int(min(255, c * _FINGER_SHADE[finger])) for c in colour)
            hand.append((a, b, colour, max(1, round(width * ss))))
        return body + hand

    def _layout(self, height: int, side_view: bool) -> None:
        points = np.concatenate([s.reshape(-1, 3) for s in self.sequences])
        focus = set()
        for key in ("body", "lhand", "rhand"):
            focus |= set(self.joint_sets.get(key, ()))
        if focus:
            focus.add(0)  # frame the upper body down to the pelvis, as a signing video does
            frame_pts = np.concatenate([s[:, sorted(focus)].reshape(-1, 3) for s in self.sequences])
        else:
            frame_pts = points
        lo, hi = frame_pts.min(0), frame_pts.max(0)
        span = np.maximum(hi - lo, 0.2)
        margin = 0.08 * span.max()
        lo, hi = lo - margin, lo + span + margin
        mid = (lo + hi) / 2
        h_main = height
        scale = h_main / (hi[1] - lo[1])
        w_main = int(np.clip((hi[0] - lo[0]) * scale, 0.6 * h_main, 1.6 * h_main))
        scale = min(scale, w_main / (hi[0] - lo[0]))
        w_side = int(np.clip((hi[2] - lo[2]) * scale, 0.3 * h_main, 0.6 * h_main)) if side_view else 0
        gap, label_h = 6, 16
        has_hands = all(self.joint_sets.get(k) for k in HAND_COLOURS)
        inset = min(200, (w_main + w_side + (gap if side_view else 0) - gap) // 2) if has_hands else 0
        panel_w = w_main + (w_side + gap if side_view else 0)
        panel_h = label_h + h_main + (gap + label_h + inset if has_hands else 0)
        title_imgs = [text_image(t, panel_w, 14) for t in self.titles] if self.titles else None
        title_h = max(im.shape[0] for im in title_imgs) if title_imgs else 0
        total_w = len(self.sequences) * panel_w + (len(self.sequences) + 1) * 12
        caption_img = text_image(self.caption, total_w, 16) if self.caption else None
        total_h = 8 + title_h + panel_h + 6 + (caption_img.shape[0] if caption_img is not None else 0) + 8
        # Multiples of 16 keep MP4 encoders from rescaling.
        total_w, total_h = -(-total_w // 16) * 16, -(-total_h // 16) * 16

        background = Image.new("RGB", (total_w, total_h), BACKGROUND)
        draw = ImageDraw.Draw(background)
        font = _label_font(11)
        self.views: list[list[_View]] = []
        hand_half = self._hand_half_extent() if has_hands else 0.1
        face = self._face_ids()
        for i in range(len(self.sequences)):
            x0, y0 = 12 + i * (panel_w + 12), 8
            if title_imgs:
                background.paste(Image.fromarray(title_imgs[i]), (x0, y0))
                y0 += title_h
            views: list[_View] = []

            def add(box, label, views=views, **kw):
                left, top, w, h = box
                draw.rectangle([left - 1, top - 1, left + w, top + h], fill=VIEW_BACKGROUND, outline=VIEW_BORDER)
                draw.text((left + 3, top - label_h + 3), label, fill=(110, 110, 110), font=font)
                views.append(_View(box=box, **kw))

            add((x0, y0 + label_h, w_main, h_main), "front", axis_u=0, sign_u=1.0, centre=(mid[0], mid[1]),
                scale=scale, segments=self._segments(None, None, 2.0), head=face)
            if side_view:
                add((x0 + w_main + gap, y0 + label_h, w_side, h_main), "side", axis_u=2, sign_u=1.0,
                    centre=(mid[2], mid[1]), scale=scale, segments=self._segments(None, None, 1.5), head=face)
            if has_hands:
                top = y0 + label_h + h_main + gap + label_h
                for k, (key, label) in enumerate((("rhand", "right hand"), ("lhand", "left hand"))):
                    ids = self.joint_sets[key]
                    add((x0 + k * (inset + gap), top, inset, inset), label, axis_u=0, sign_u=1.0, centre=(0.0, 0.0),
                        scale=inset / (2 * hand_half), segments=self._segments(set(ids), key, 2.5),
                        follow=ids, dots=ids, dot_colour=HAND_COLOURS[key])
            self.views.append(views)
        if caption_img is not None:
            background.paste(Image.fromarray(caption_img), (0, 8 + title_h + panel_h + 6))
        self.background = background
        self.size = (total_w, total_h)
        self._blank = {}

    def _hand_half_extent(self) -> float:
        half = 0.06
        for key in HAND_COLOURS:
            ids = list(self.joint_sets[key])
            for s in self.sequences:
                xy = s[:, ids][..., :2]
                half = max(half, float(np.abs(xy - xy.mean(1, keepdims=True)).max()))
        return half * 1.2

    # ----------------------------------------------------------------------------------------------- drawing
    def _draw_view(self, view: _View, joints: np.ndarray) -> Image.Image:
        """One view drawn at ``ss`` times its size and reduced (antialiasing only where lines are)."""
        ss = self.ss
        _, _, w, h = view.box
        if (w, h) not in self._blank:
            self._blank[(w, h)] = Image.new("RGB", (w * ss, h * ss), VIEW_BACKGROUND)
        tile = self._blank[(w, h)].copy()
        draw = ImageDraw.Draw(tile)
        view_scale = view.scale * ss
        pts = view.project(joints) * ss
        for a, b, colour, width in view.segments:
            draw.line([tuple(pts[a]), tuple(pts[b])], fill=colour, width=width)
        if view.head:
            ears, eyes, nose = view.head[0:2], view.head[2:4], view.head[4]
            centre = pts[[*ears, nose]].mean(0)
            radius = 0.6 * float(np.linalg.norm(joints[ears[0]] - joints[ears[1]])) * view_scale
            draw.ellipse([*(centre - radius), *(centre + radius)], outline=BODY_COLOUR, width=max(1, round(2.4 * ss)))
            r = 1.8 * ss
            for j in (*eyes, nose):
                draw.ellipse([pts[j, 0] - r, pts[j, 1] - r, pts[j, 0] + r, pts[j, 1] + r], fill=BODY_COLOUR)
        r = 1.6 * ss
        for j in view.dots:
            x, y = pts[j]
            draw.ellipse([x - r, y - r, x + r, y + r], fill=view.dot_colour)
        return tile.reduce(ss) if ss > 1 else tile

    def frame_image(self, t: int) -> Image.Image:
        """The PIL image of frame ``t`` (0 <= t < num_frames)."""
        img = self.background.copy()
        for seq, views in zip(self.sequences, self.views):
            joints = seq[min(t, len(seq) - 1)]
            for view in views:
                img.paste(self._draw_view(view, joints), view.box[:2])
        return img

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as an RGB uint8 array [H, W, 3]."""
        return np.asarray(self.frame_image(t))

    def frames(self, progress: bool = False) -> Iterator[Image.Image]:
        """Every frame as a PIL image (with a tqdm bar when ``progress``)."""
        indices = range(self.num_frames)
        if progress:
            from tqdm.auto import tqdm

            indices = tqdm(indices, desc="render", unit="frame", leave=False)
        for t in indices:
            yield self.frame_image(t)


def _key_colours() -> list[tuple[int, int, int]]:
    colours = [BODY_COLOUR, VIEW_BORDER]
    for base in HAND_COLOURS.values():
        colours += [tuple(int(min(255, c * f)) for c in base) for f in _FINGER_SHADE]
    return colours


@functools.lru_cache(maxsize=1)
def gif_palette() -> Image.Image:
    """A fixed GIF palette: exact background colours, a grey ramp (text), and each drawing colour blended into the
    view background (antialiased edges). Fixed, so every frame maps the same way and backgrounds stay exact."""
    entries = [BACKGROUND, VIEW_BACKGROUND] + [(g, g, g) for g in range(0, 256, 8)]
    bg = np.array(VIEW_BACKGROUND, dtype=float)
    for colour in _key_colours():
        for alpha in np.linspace(1.0, 0.1, 12):
            entries.append(tuple(int(round(v)) for v in alpha * np.array(colour) + (1 - alpha) * bg))
    entries = list(dict.fromkeys(entries))[:256]
    flat = [v for rgb in entries for v in rgb]
    palette = Image.new("P", (1, 1))
    palette.putpalette(flat + flat[:3] * (256 - len(entries)))
    return palette


def write_gif(images: list[Image.Image], path: Path, fps: float) -> None:
    # One fixed palette for all frames: no flicker, exact backgrounds, and Pillow stores only changed regions.
    palette = gif_palette()
    frames = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=max(20, round(1000 / fps)), loop=0)


def _write_mp4(images: list[Image.Image], path: Path, fps: float) -> None:
    import imageio.v2 as imageio

    with imageio.get_writer(str(path), format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                            macro_block_size=16, ffmpeg_log_level="error") as writer:
        for im in images:
            writer.append_data(np.asarray(im))


def render_animation(sequences: Sequence, bones: Sequence[tuple[int, int]], out_path, titles: Sequence[str] | None = None,
                     caption: str | None = None, fps: float = 25, *,
                     joint_sets: Mapping[str, Sequence[int]] | None = None, side_view: bool = False,
                     height: int = 360, antialias: bool = True, progress: bool = False) -> Path:
    """Write an animation of joint sequences side by side: GIF, or MP4 when ``out_path`` ends in ``.mp4``.

    Args:
        sequences: list of [T_i, J, 3] joints (e.g. ground truth, reconstruction, generated); shorter ones hold
            their last frame.
        bones: (parent, child) pairs (``backend.bones``).
        out_path: destination (.gif or .mp4); parent folders are created.
        titles: one title per sequence.
        caption: the sentence, shown under the panels.
        fps: frames per second.
        joint_sets: ``backend.joint_sets`` (hand colours, hand insets, framing); see :class:`SkeletonRenderer`.
        side_view, height, antialias: see :class:`SkeletonRenderer`.
        progress: show a tqdm bar.

    Returns:
        The path written. When MP4 was asked for but imageio-ffmpeg does not work, a GIF is written next to it
        (same stem) and a warning is logged.
    """
    path = Path(out_path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"render_animation: {path} must end in .gif or .mp4")
    renderer = SkeletonRenderer(sequences, bones, titles=titles, caption=caption, joint_sets=joint_sets,
                                side_view=side_view, height=height, antialias=antialias)
    images = list(renderer.frames(progress=progress))
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".mp4":
        try:
            _write_mp4(images, path, fps)
            return path
        except (ImportError, OSError, RuntimeError) as err:
            path = path.with_suffix(".gif")
            log.warning("cannot write MP4 (%s: %s); install imageio-ffmpeg. Writing %s instead.",
                        type(err).__name__, err, path)
    write_gif(images, path, fps)
    return path


def render_still(sequences: Sequence, bones: Sequence[tuple[int, int]], out_png, frames: int = 8,
                 titles: Sequence[str] | None = None, caption: str | None = None, *,
                 joint_sets: Mapping[str, Sequence[int]] | None = None, side_view: bool = False,
                 height: int = 300, columns: int | None = None) -> Path:
    """Write a PNG contact sheet of ``frames`` evenly spaced frames (each tile shows all sequences).

    Args:
        sequences, bones, titles, caption, joint_sets, side_view, height: as in :func:`render_animation`
            (the caption is drawn once, above the sheet).
        out_png: destination .png.
        frames: number of tiles.
        columns: tiles per row (default: a roughly 16:10 sheet).

    Returns:
        The path written.
    """
    path = Path(out_png)
    renderer = SkeletonRenderer(sequences, bones, titles=titles, caption=None, joint_sets=joint_sets,
                                side_view=side_view, height=height)
    count = max(1, min(frames, renderer.num_frames))
    indices = np.unique(np.linspace(0, renderer.num_frames - 1, count).round().astype(int))
    tiles = [renderer.frame_image(int(t)) for t in indices]
    tw, th = renderer.size
    if columns is None:
        columns = max(1, min(len(tiles), round(math.sqrt(len(tiles) * th * 1.6 / tw))))
    rows = -(-len(tiles) // columns)
    header = text_image(caption, columns * tw, 16) if caption else np.zeros((0, columns * tw, 3), np.uint8)
    sheet = Image.new("RGB", (columns * tw, header.shape[0] + rows * th), BACKGROUND)
    if caption:
        sheet.paste(Image.fromarray(header), (0, 0))
    draw = ImageDraw.Draw(sheet)
    font = _label_font(12)
    for k, (t, tile) in enumerate(zip(indices, tiles)):
        x, y = (k % columns) * tw, header.shape[0] + (k // columns) * th
        sheet.paste(tile, (x, y))
        draw.text((x + tw - 70, y + th - 16), f"frame {t}", fill=(120, 120, 120), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
