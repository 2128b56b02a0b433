"""Feature layouts as data: what a stored frame holds, which features each tokenizer part reads, how to draw it.

A feature layout is declared once, in YAML (shipped ones live in ``core/layouts/``; a user passes the path of their
own file). Two kinds exist:

* ``smplx``: today's official SMPL-X frame (``smplx179``): raw 179-d frames, 133-d features, parts given as
  feature ranges (docs/design.md §2.2-2.3).
* ``keypoints``: points of a source skeleton such as MediaPipe Holistic (``holistic``, ``holistic_face``). The
  YAML lists the source components (names, point names and limbs, as in a ``.pose`` header), which points are kept,
  the coordinates kept (``dims``), the parts (points, alignment point, codebook size) and the two points whose
  midpoint and distance normalise each sample. A stored frame is ``[K * C]`` coordinates (point-major) followed by
  ``[K]`` visibility flags (1 present, 0 missing); the features are the coordinates, and the flags become a
  per-feature mask.

The layout is recorded, with a fingerprint of its declaration, in the store, the tokenizer checkpoint and the
stage-2 checkpoint; :func:`check_same_layout` refuses a mismatch naming both.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from soke_lightning.core.errors import SokeError
from soke_lightning.core.layout import PartSpec, PoseLayout

#: Folder of the shipped layout declarations.
LAYOUT_DIR = Path(__file__).with_name("layouts")
DEFAULT_LAYOUT = "smplx179"
KINDS = ("smplx", "keypoints")


class LayoutError(SokeError, ValueError):
    """A layout declaration is invalid, unknown, or two artefacts were made with different layouts."""


@dataclass(frozen=True)
class SourceComponent:
    """One component of the source skeleton (a ``.pose`` header component).

    Attributes:
        name: component name ("POSE_LANDMARKS").
        points: every point name of the component, in source order.
        limbs: (a, b) pairs of indices into ``points`` (drawing and ``.pose`` headers).
        keep: indices into ``points`` of the points the layout keeps, in feature order.
    """

    name: str
    points: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    keep: tuple[int, ...]


@dataclass(frozen=True)
class FeatureLayout:
    """A declared feature layout (see the module docstring).

    Attributes:
        name: layout name ("smplx179", "holistic", ...).
        kind: "smplx" or "keypoints".
        raw_dim: values per stored frame.
        feature_dim: values per feature vector.
        feature_from_raw: raw index of each feature.
        parts: the decoupled tokenizer streams (feature indices).
        codebook_sizes: default codebook size per part.
        spec: the declaration as a plain dict (what is recorded in stores and checkpoints).
        dims: keypoints: coordinate names kept per point ("x", "y"[, "z"]).
        components: keypoints: the source components.
        points: keypoints: kept points as (component, point name), in feature order.
        part_points: keypoints: part -> indices into ``points``.
        align_points: keypoints: part -> index into ``points`` of its alignment point.
        connections: keypoints: (a, b) pairs of indices into ``points`` (limbs between kept points).
        scale_points: keypoints: the two point indices whose midpoint is the origin and distance the unit.
    """

    name: str
    kind: str
    raw_dim: int
    feature_dim: int
    feature_from_raw: tuple[int, ...]
    parts: tuple[PartSpec, ...]
    codebook_sizes: dict[str, int]
    spec: dict = field(repr=False, compare=False)
    dims: tuple[str, ...] = ()
    components: tuple[SourceComponent, ...] = ()
    points: tuple[tuple[str, str], ...] = ()
    part_points: dict[str, tuple[int, ...]] = field(default_factory=dict)
    align_points: dict[str, int] = field(default_factory=dict)
    connections: tuple[tuple[int, int], ...] = ()
    scale_points: tuple[int, int] | None = None

    # ------------------------------------------------------------------------------------------- identity
    @property
    def fingerprint(self) -> str:
        """sha256 (first 12 hex digits) of the canonical JSON of the declaration."""
        return spec_fingerprint(self.spec)

    def describe(self) -> str:
        """``name (fingerprint)``, as errors name layouts."""
        return f"{self.name!r} ({self.fingerprint})"

    @property
    def is_keypoints(self) -> bool:
        return self.kind == "keypoints"

    @property
    def num_points(self) -> int:
        return len(self.points)

    # ------------------------------------------------------------------------------------------- streams
    def streams(self, split: str = "parts") -> PoseLayout:
        """The tokenizer streams: ``"parts"`` (the declared parts; for smplx179 also called ``"soke"``) or
        ``"coupled"`` (one stream ``all`` over every feature)."""
        if split in ("parts", "soke"):
            return PoseLayout(self.feature_dim, self.parts)
        if split == "coupled":
            return PoseLayout(self.feature_dim, (PartSpec("all", tuple(range(self.feature_dim))),))
        raise LayoutError(f"unknown stream split {split!r}; valid: 'parts' (alias 'soke') or 'coupled'")

    # ------------------------------------------------------------------------------------------- frames
    def features(self, raw):
        """[..., raw_dim] stored frames -> [..., feature_dim] features (numpy or torch)."""
        if raw.shape[-1] != self.raw_dim:
            raise LayoutError(f"layout {self.name!r} expects frames with {self.raw_dim} values, got shape "
                              f"{tuple(raw.shape)}")
        if isinstance(raw, torch.Tensor):
            return raw[..., torch.as_tensor(self.feature_from_raw, device=raw.device)]
        return raw[..., np.asarray(self.feature_from_raw)]

    def feature_mask(self, raw):
        """[..., raw_dim] stored frames -> bool [..., feature_dim] (True where the point was seen), or None for
        layouts without visibility flags (smplx)."""
        if not self.is_keypoints:
            return None
        if raw.shape[-1] != self.raw_dim:
            raise LayoutError(f"layout {self.name!r} expects frames with {self.raw_dim} values, got shape "
                              f"{tuple(raw.shape)}")
        flags = raw[..., self.feature_dim:] > 0.5
        if isinstance(flags, torch.Tensor):
            return flags.repeat_interleave(len(self.dims), dim=-1)
        return np.repeat(flags, len(self.dims), axis=-1)

    def points_of(self, features):
        """keypoints: [..., feature_dim] -> [..., K, 3] points (a missing z is 0), numpy or torch."""
        if not self.is_keypoints:
            raise LayoutError(f"layout {self.name!r} is not a keypoint layout; use a joint backend for its joints")
        c = len(self.dims)
        shape = tuple(features.shape[:-1]) + (self.num_points, c)
        pts = features.reshape(shape)
        if c == 3:
            return pts
        if isinstance(pts, torch.Tensor):
            return torch.cat([pts, pts.new_zeros(*shape[:-1], 3 - c)], dim=-1)
        return np.concatenate([pts, np.zeros((*shape[:-1], 3 - c), pts.dtype)], axis=-1)

    def point_mask(self, feature_mask):
        """[..., feature_dim] feature mask -> [..., K] point mask (a point counts when all its coordinates do)."""
        shape = tuple(feature_mask.shape[:-1]) + (self.num_points, len(self.dims))
        return feature_mask.reshape(shape).all(-1)

    def joint_sets(self) -> dict[str, tuple[int, ...]]:
        """keypoints: part -> point indices, plus ``body_align`` (the body part's points) when a body part exists."""
        sets = dict(self.part_points)
        if "body" in sets:
            sets["body_align"] = sets["body"]
        return sets


def spec_fingerprint(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------------- parsing


def _ranges(value, where: str) -> tuple[int, ...]:
    """[[a, b], ...] half-open ranges (or plain ints) -> indices."""
    out: list[int] = []
    for item in value:
        if isinstance(item, int):
            out.append(item)
        elif isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(v, int) for v in item):
            out.extend(range(item[0], item[1]))
        else:
            raise LayoutError(f"{where}: expected an index or a [start, stop) pair, got {item!r}")
    return tuple(out)


def _need(spec: dict, key: str, where: str):
    if key not in spec:
        raise LayoutError(f"{where}: missing key {key!r}")
    return spec[key]


def _parse_smplx(spec: dict, where: str) -> dict:
    raw_dim = int(_need(spec, "raw_dim", where))
    feature_from_raw = _ranges(_need(spec, "feature_from_raw", where), f"{where}: feature_from_raw")
    if any(not 0 <= i < raw_dim for i in feature_from_raw):
        raise LayoutError(f"{where}: feature_from_raw indexes outside 0..{raw_dim - 1}")
    parts, sizes = [], {}
    for entry in _need(spec, "parts", where):
        name = _need(entry, "name", f"{where}: parts")
        parts.append(PartSpec(name, _ranges(_need(entry, "features", f"{where}: part {name!r}"),
                                            f"{where}: part {name!r}")))
        sizes[name] = int(entry.get("codebook", 512))
    return dict(raw_dim=raw_dim, feature_dim=len(feature_from_raw), feature_from_raw=feature_from_raw,
                parts=tuple(parts), codebook_sizes=sizes)


def _parse_keypoints(spec: dict, where: str) -> dict:
    dims = tuple(_need(spec, "dims", where))
    if dims not in (("x", "y"), ("x", "y", "z")):
        raise LayoutError(f"{where}: dims must be [x, y] or [x, y, z], got {list(dims)}")
    components, points, index = [], [], {}
    for entry in _need(spec, "components", where):
        cname = _need(entry, "name", f"{where}: components")
        names = tuple(str(p) for p in _need(entry, "points", f"{where}: component {cname!r}"))
        limbs = tuple((int(a), int(b)) for a, b in entry.get("limbs", ()))
        bad = [lb for lb in limbs if not (0 <= lb[0] < len(names) and 0 <= lb[1] < len(names))]
        if bad:
            raise LayoutError(f"{where}: component {cname!r} has limbs {bad[:3]} outside its {len(names)} points")
        keep_names = entry.get("keep", list(names))
        unknown = [p for p in keep_names if str(p) not in names]
        if unknown:
            raise LayoutError(f"{where}: component {cname!r} keeps unknown points {unknown[:5]}")
        keep = tuple(names.index(str(p)) for p in keep_names)
        components.append(SourceComponent(cname, names, limbs, keep))
        for k in keep:
            index[(cname, names[k])] = len(points)
            points.append((cname, names[k]))

    def ref(value: str, ctx: str) -> int:
        cname, _, pname = str(value).partition(".")
        if (cname, pname) not in index:
            raise LayoutError(f"{where}: {ctx} names {value!r}, which is not a kept point (COMPONENT.POINT)")
        return index[(cname, pname)]

    c = len(dims)
    parts, part_points, align, sizes = [], {}, {}, {}
    for entry in _need(spec, "parts", where):
        name = _need(entry, "name", f"{where}: parts")
        ids: list[int] = []
        for item in _need(entry, "points", f"{where}: part {name!r}"):
            comp = next((cp for cp in components if cp.name == item), None)
            if comp is not None:
                ids.extend(index[(comp.name, comp.points[k])] for k in comp.keep)
            else:
                ids.append(ref(item, f"part {name!r}"))
        a = ref(_need(entry, "align", f"{where}: part {name!r}"), f"part {name!r} align")
        if a not in ids:
            raise LayoutError(f"{where}: part {name!r} aligns on {entry['align']!r}, which is not one of its points")
        part_points[name], align[name] = tuple(ids), a
        parts.append(PartSpec(name, tuple(i * c + d for i in ids for d in range(c))))
        sizes[name] = int(entry.get("codebook", 256))
    covered = sorted(i for p in part_points.values() for i in p)
    if covered != list(range(len(points))):
        raise LayoutError(f"{where}: every kept point must belong to exactly one part ({len(points)} kept, parts "
                          f"cover {len(covered)} with {len(covered) - len(set(covered))} repeated)")
    connections = []
    for comp in components:
        for a, b in comp.limbs:
            ka, kb = (comp.name, comp.points[a]), (comp.name, comp.points[b])
            if ka in index and kb in index:
                connections.append((index[ka], index[kb]))
    norm = _need(spec, "normalisation", where)
    pair = tuple(ref(v, "normalisation.shoulders") for v in _need(norm, "shoulders", f"{where}: normalisation"))
    if len(pair) != 2 or pair[0] == pair[1]:
        raise LayoutError(f"{where}: normalisation.shoulders must name two different kept points")
    k = len(points)
    return dict(raw_dim=k * c + k, feature_dim=k * c, feature_from_raw=tuple(range(k * c)), parts=tuple(parts),
                codebook_sizes=sizes, dims=dims, components=tuple(components), points=tuple(points),
                part_points=part_points, align_points=align, connections=tuple(connections), scale_points=pair)


def layout_from_spec(spec: dict, where: str = "<layout>") -> FeatureLayout:
    """Build a :class:`FeatureLayout` from its declaration (a YAML mapping, or the dict recorded in a store).

    Raises:
        LayoutError naming ``where`` and the key at fault.
    """
    if not isinstance(spec, dict):
        raise LayoutError(f"{where}: a layout declaration must be a mapping, got {type(spec).__name__}")
    name = str(_need(spec, "name", where))
    kind = _need(spec, "kind", where)
    if kind not in KINDS:
        raise LayoutError(f"{where}: kind {kind!r}; valid: {list(KINDS)}")
    fields = _parse_smplx(spec, where) if kind == "smplx" else _parse_keypoints(spec, where)
    return FeatureLayout(name=name, kind=kind, spec=spec, **fields)


def shipped_layouts() -> list[str]:
    """Names of the layouts shipped in ``core/layouts/``."""
    return sorted(p.stem for p in LAYOUT_DIR.glob("*.yaml"))


def load_feature_layout(source: str | os.PathLike | dict | FeatureLayout | None = None) -> FeatureLayout:
    """A layout by shipped name ("smplx179", "holistic", ...), by YAML path, from a recorded dict, or as is.

    None gives the default (``smplx179``).
    """
    if isinstance(source, FeatureLayout):
        return source
    if source is None:
        source = DEFAULT_LAYOUT
    if isinstance(source, dict):
        return layout_from_spec(source, f"recorded layout {source.get('name')!r}")
    path = Path(source)
    if path.suffix not in (".yaml", ".yml"):
        path = LAYOUT_DIR / f"{source}.yaml"
        if not path.is_file():
            raise LayoutError(f"unknown feature layout {str(source)!r}; shipped: {shipped_layouts()}, or give the "
                              f"path of a YAML declaration")
    if not path.is_file():
        raise LayoutError(f"feature layout file {path} does not exist")
    with open(path, encoding="utf-8") as fh:
        spec = yaml.safe_load(fh)
    return layout_from_spec(spec, str(path))


def check_same_layout(a: FeatureLayout, a_where: str, b: FeatureLayout, b_where: str) -> None:
    """Refuse two different layouts (by name or declaration), naming both.

    Raises:
        LayoutError: ``"<a_where> uses layout 'x' (fp) but <b_where> uses 'y' (fp)"``.
    """
    if a.name != b.name or a.fingerprint != b.fingerprint:
        raise LayoutError(f"{a_where} uses feature layout {a.describe()} but {b_where} uses {b.describe()}; "
                          f"prepare the data, train stage 1 and stage 2 with the same layout")
