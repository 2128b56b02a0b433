"""Keypoint corpora: `.pose` files (pose-format, e.g. MediaPipe Holistic) into a packed store (`soke prepare --corpus pose`).

An index CSV names every clip: ``file`` (relative to the corpus root), ``text``, ``language`` (a registered key such
as ``asl``, or any ISO 639-3 code such as ``ase``, ``gsg``, ``bfi``: unknown sign languages are declared by the
corpus, not refused), and optionally ``split`` (default ``train``), ``start`` / ``end`` (seconds, a clip inside the
file), ``spoken`` (the mBART tag of the text's language, default ``--spoken-code``) and ``name``.

Each clip is read with ``pose_format`` (first person), its points are picked by component and point name as the
feature layout declares, and it is **normalised per sample**:

1. image axes to ours: ``(x, y, z) -> (x, -y, -z)`` (y up, z towards the viewer; a rotation by 180 degrees about x);
2. origin = the mean, over the frames where both are seen, of the midpoint of the layout's two shoulder points;
3. unit = the mean shoulder width over the same frames (so values are in shoulder widths).

A point is **missing** in a frame when its confidence is 0, it is masked, or its coordinates are all zero (MediaPipe
writes zeros for an undetected hand); missing points are stored as zeros with visibility flag 0 and become a mask.
Origin and scale are kept in each sample's ``meta`` so a user can map points back to the file's pixels.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from soke_lightning.core.errors import SokeError
from soke_lightning.core.feature_layout import FeatureLayout, LayoutError, load_feature_layout
from soke_lightning.core.languages import (
    BUILTIN_LANGUAGES,
    LANGUAGES,
    Corpus,
    data_language,
    register_corpus,
    register_language,
)
from soke_lightning.data.prepare import write_store_stats
from soke_lightning.data.store import MANIFEST, Sample, StoreError, StoreWriter, read_manifest

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("file", "text", "language")
#: Why a clip is left out (reason -> description), counted in the report.
POSE_SKIP_REASONS = {
    "missing_file": ".pose file does not exist",
    "unreadable": "pose_format could not read the file",
    "missing_component": "the file lacks a component or point the layout needs",
    "too_short": "fewer frames than --min-frames after the start/end cut",
    "no_shoulders": "no frame shows both shoulder points, so the sample cannot be normalised",
}


class PoseCorpusError(SokeError, ValueError):
    """The index CSV or a layout/file combination is unusable as a whole (not one bad clip)."""


class SkipClip(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class PoseClip:
    """One row of the index CSV."""

    row: int
    file: str
    text: str
    language: str
    split: str
    start: float | None
    end: float | None
    spoken: str
    name: str


def _float(value: str, where: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise PoseCorpusError(f"{where}: {value!r} is not a number of seconds") from None


def read_index(path: str | os.PathLike, spoken_code: str = "en_XX") -> list[PoseClip]:
    """Parse the index CSV (see the module docstring).

    Raises:
        PoseCorpusError naming the file, row and column at fault (missing columns, empty text, bad times,
        duplicate sample names within a split).
    """
    path = Path(path)
    if not path.is_file():
        raise PoseCorpusError(f"index CSV {path} does not exist")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise PoseCorpusError(f"{path}: missing columns {missing} (has {columns}); the index needs "
                                  f"{list(REQUIRED_COLUMNS)} and may add split, start, end, spoken, name")
        clips, seen = [], set()
        for i, row in enumerate(reader, start=2):
            where = f"{path}:{i}"
            if not (row.get("file") or "").strip():
                raise PoseCorpusError(f"{where}: empty 'file'")
            if not (row.get("text") or "").strip():
                raise PoseCorpusError(f"{where}: empty 'text' for {row['file']!r}")
            lang = (row.get("language") or "").strip()
            if not lang:
                raise PoseCorpusError(f"{where}: empty 'language' for {row['file']!r}")
            start, end = _float(row.get("start"), f"{where} start"), _float(row.get("end"), f"{where} end")
            if start is not None and end is not None and end <= start:
                raise PoseCorpusError(f"{where}: end {end} <= start {start}")
            stem = Path(row["file"]).with_suffix("").as_posix().replace("/", "_")
            name = (row.get("name") or "").strip() or (stem if start is None and end is None
                                                       else f"{stem}@{start or 0:g}-{'' if end is None else f'{end:g}'}")
            split = (row.get("split") or "").strip() or "train"
            if (split, name) in seen:
                raise PoseCorpusError(f"{where}: sample name {name!r} appears twice in split {split!r}; add a 'name' "
                                      f"column to tell the rows apart")
            seen.add((split, name))
            clips.append(PoseClip(i, row["file"].strip(), row["text"].strip(), lang, split, start, end,
                                  (row.get("spoken") or "").strip() or spoken_code, name))
    if not clips:
        raise PoseCorpusError(f"{path}: no rows")
    return clips


def read_pose_points(path: str | os.PathLike, layout: FeatureLayout) -> tuple[np.ndarray, np.ndarray, float]:
    """The layout's points of one ``.pose`` file, in the file's axes (first person).

    Returns:
        (points [T, K, C] float64, visible bool [T, K], fps).

    Raises:
        SkipClip("unreadable" | "missing_component") naming the component/point.
    """
    from pose_format import Pose

    try:
        pose = Pose.read(Path(path).read_bytes())
    except Exception as err:  # pose_format raises many kinds on a corrupt file
        raise SkipClip("unreadable", f"{type(err).__name__}: {err}") from None
    offsets, names = {}, {}
    start = 0
    for comp in pose.header.components:
        offsets[comp.name] = start
        names[comp.name] = {p: k for k, p in enumerate(comp.points)}
        start += len(comp.points)
    ids = []
    for cname, pname in layout.points:
        if cname not in names:
            raise SkipClip("missing_component", f"no component {cname!r} (has {list(names)})")
        if pname not in names[cname]:
            raise SkipClip("missing_component", f"component {cname!r} has no point {pname!r}")
        ids.append(offsets[cname] + names[cname][pname])
    data = pose.body.data
    c = len(layout.dims)
    if data.shape[-1] < c:
        raise SkipClip("missing_component", f"points have {data.shape[-1]} coordinates, the layout needs {c}")
    values = np.ma.getdata(data)[:, 0][:, ids, :c].astype(np.float64)
    masked = np.ma.getmaskarray(data)[:, 0][:, ids, :c].any(-1)
    conf = np.asarray(pose.body.confidence)[:, 0][:, ids]
    visible = (conf > 0) & ~masked & (np.abs(values).sum(-1) > 0) & np.isfinite(values).all(-1)
    return values, visible, float(pose.body.fps)


def normalise_points(points: np.ndarray, visible: np.ndarray, layout: FeatureLayout) -> tuple[np.ndarray, dict]:
    """Per-sample normalisation (module docstring): -> (raw frames [T, raw_dim] float32, {"origin", "scale"}).

    Raises:
        SkipClip("no_shoulders") when no frame shows both shoulder points (or they coincide).
    """
    c = len(layout.dims)
    flip = np.array([1.0, -1.0, -1.0][:c])
    pts = points * flip
    a, b = layout.scale_points
    both = visible[:, a] & visible[:, b]
    width = np.linalg.norm(pts[both, a] - pts[both, b], axis=-1) if both.any() else np.zeros(0)
    if not both.any() or width.mean() <= 1e-9:
        raise SkipClip("no_shoulders", "no frame shows both shoulder points apart")
    origin = ((pts[both, a] + pts[both, b]) / 2).mean(0)
    scale = float(width.mean())
    norm = np.where(visible[..., None], (pts - origin) / scale, 0.0)
    raw = np.concatenate([norm.reshape(len(norm), -1), visible.astype(np.float64)], axis=1).astype(np.float32)
    return raw, {"origin": [float(v) for v in origin], "scale": scale}


def read_clip(root: Path, clip: PoseClip, layout: FeatureLayout, min_frames: int) -> tuple[np.ndarray, float, dict]:
    """One clip -> (raw frames [T, raw_dim], fps, meta). Raises :class:`SkipClip`."""
    path = root / clip.file
    if not path.is_file():
        raise SkipClip("missing_file", str(path))
    points, visible, fps = read_pose_points(path, layout)
    lo = 0 if clip.start is None else int(round(clip.start * fps))
    hi = len(points) if clip.end is None else int(round(clip.end * fps))
    points, visible = points[lo:hi], visible[lo:hi]
    if len(points) < min_frames:
        raise SkipClip("too_short", f"{len(points)} frames < {min_frames}")
    raw, meta = normalise_points(points, visible, layout)
    meta.update(source=clip.file, first_frame=lo, visible=float(visible.mean()))
    return raw, fps, meta


@dataclass
class PoseSplitReport:
    """What happened to one split: rows listed, samples and frames written, skips by reason."""

    split: str
    listed: int = 0
    written: int = 0
    frames: int = 0
    skipped: dict | None = None
    seconds: float = 0.0


@dataclass
class PosePrepareReport:
    """Result of :func:`prepare_pose_corpus`."""

    corpus: str
    layout: str
    out: str
    languages: list
    splits: dict
    stats_path: str | None = None

    def format(self) -> str:
        lines = [f"{self.corpus} ({self.layout}) -> {self.out}; languages {self.languages}",
                 f"  {'split':<12}{'listed':>8}{'written':>9}{'frames':>9}{'time':>8}"]
        for r in self.splits.values():
            lines.append(f"  {r.split:<12}{r.listed:>8}{r.written:>9}{r.frames:>9}{r.seconds:>7.1f}s")
            for reason, n in sorted((r.skipped or {}).items()):
                lines.append(f"    skipped {n} x {reason} ({POSE_SKIP_REASONS[reason]})")
        if self.stats_path:
            lines.append(f"  normalisation stats: {self.stats_path}")
        return "\n".join(lines)


def prepare_pose_corpus(root: str | os.PathLike, index: str | os.PathLike, out: str | os.PathLike,
                        layout: str | FeatureLayout = "holistic", corpus: str = "pose", spoken_code: str = "en_XX",
                        fps_cap: float | None = None, min_frames: int = 4, overwrite: bool = False,
                        stats: bool = True) -> PosePrepareReport:
    """Convert a `.pose` corpus into a packed store with a keypoint feature layout.

    Args:
        root: folder the CSV's ``file`` paths are relative to.
        index: the index CSV.
        out: store directory.
        layout: a keypoint feature layout (shipped name or YAML path).
        corpus: corpus id recorded for every sample (and registered from the store).
        spoken_code: mBART tag of the texts' language where the CSV has no ``spoken`` column.
        fps_cap: resample clips above this rate at load time (None: keep every frame).
        min_frames: clips with fewer frames are skipped.
        overwrite: rewrite splits that exist already.
        stats: write STORE/normalization.pt from the train split.

    Raises:
        PoseCorpusError / LayoutError / StoreError naming the file or value at fault.
    """
    layout = load_feature_layout(layout)
    if not layout.is_keypoints:
        raise LayoutError(f"--corpus pose needs a keypoint layout (e.g. holistic), got {layout.describe()}")
    root, out = Path(root), Path(out)
    clips = read_index(index, spoken_code)
    if (out / MANIFEST).is_file():
        existing = read_manifest(out).get("info", {}).get("corpus")
        if existing and existing != corpus:
            raise StoreError(f"{out} holds corpus {existing!r}, not {corpus!r}; use another --out per corpus")
    languages = {}
    for clip in clips:
        try:
            lang = LANGUAGES[clip.language] if clip.language in LANGUAGES else data_language(clip.language,
                                                                                             clip.spoken)
        except ValueError as err:
            raise PoseCorpusError(f"{index}:{clip.row}: {err}") from None
        languages[lang.key] = lang
    declared = {k: vars(v) for k, v in languages.items() if k not in BUILTIN_LANGUAGES}
    for lang in languages.values():
        register_language(lang)
    splits = list(dict.fromkeys(c.split for c in clips))
    # Only the fps cap matters at load time (each sample carries its own fps and language).
    entry = Corpus(corpus, "multi", 25.0, fps_cap, {"train": "train", "val": "val", "test": "test"}, corpus)
    register_corpus(entry)
    writer = StoreWriter(out, info={"corpus": corpus, "layout": layout.name, "source_root": str(root.resolve()),
                                    "index": str(Path(index).resolve()), "languages": declared,
                                    "corpus_entry": vars(entry)},
                         overwrite=overwrite, layout=layout)
    report = PosePrepareReport(corpus, layout.name, str(out), sorted(languages), {})
    for split in splits:
        start = time.perf_counter()
        rows = [c for c in clips if c.split == split]
        rep = report.splits[split] = PoseSplitReport(split, listed=len(rows), skipped={})
        with writer.split(split) as sw:
            for clip in rows:
                try:
                    raw, fps, meta = read_clip(root, clip, layout, min_frames)
                except SkipClip as skip:
                    log.warning("skipping %s (%s:%d): %s (%s)", clip.file, index, clip.row,
                                POSE_SKIP_REASONS[skip.reason], skip.detail)
                    rep.skipped[skip.reason] = rep.skipped.get(skip.reason, 0) + 1
                    continue
                sw.add(Sample(clip.name, clip.text, clip.language, corpus, raw, fps, meta))
                rep.frames += len(raw)
            rep.written = sw.count
            if sw.count == 0:
                raise PoseCorpusError(f"{index}: no usable clip in split {split!r} (skipped: {rep.skipped}); "
                                      f"see the warnings above")
            sw.commit({"corpus": corpus, "skipped": dict(rep.skipped)})
        rep.seconds = time.perf_counter() - start
    if stats and "train" in writer.manifest["splits"]:
        report.stats_path = str(write_store_stats(out, "train"))
    return report
