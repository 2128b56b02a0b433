"""The packed store: all frames of a split in one memory-mappable float32 file plus a JSON-lines index.

The official corpora are millions of one-frame pickles; reading them every epoch is hopeless. A store keeps the
RAW frames of its feature layout (179-d SMPL-X by default, see :mod:`soke_lightning.core.feature_layout`;
resampling and length rules happen at load time), so one store serves every experiment.

Layout::

    STORE/store.json            {"format": "soke-store", "version": 1, "raw_dim": 179, "splits": {...},
                                 "feature_layout": {...the layout declaration...}}
    STORE/<split>/frames.bin    float32 little-endian, [total_frames, raw_dim], samples back to back
    STORE/<split>/index.jsonl   one record per sample: name, text, lang, corpus, offset, length, fps, meta

A split is written into a hidden temporary folder and renamed into place only when complete, and store.json is
replaced atomically afterwards, so a crash never leaves a split that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soke_lightning.core.feature_layout import (
    FeatureLayout,
    LayoutError,
    check_same_layout,
    load_feature_layout,
)
from soke_lightning.core.io import atomic_write_text
from soke_lightning.core.languages import register_declared

STORE_FORMAT = "soke-store"
STORE_VERSION = 1
MANIFEST = "store.json"


class StoreError(RuntimeError):
    """A store is missing, incomplete or inconsistent."""


@dataclass
class Sample:
    """One sequence: identity, text and raw official frames.

    Attributes:
        name: sample name, unique within its split (e.g. ``S000286_P0000_T00``).
        text: spoken-language sentence (or the word, for dictionary samples).
        lang: language key of the registry ("asl", "csl", "dgs").
        corpus: corpus id ("how2sign", "csl_daily", "phoenix14t", "synthsign").
        frames: float32 array [T, raw_dim] in the store's feature layout (official SMPL-X: 179).
        fps: frame rate of ``frames``.
        meta: extra JSON-serialisable information (e.g. SynthSign ground truth).
    """

    name: str
    text: str
    lang: str
    corpus: str
    frames: np.ndarray
    fps: float
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def read_manifest(path: str | os.PathLike) -> dict:
    """Read ``STORE/store.json``; errors name the path and what to do."""
    root = Path(path)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise StoreError(
            f"{root} is not a soke store: {manifest} is missing. Create one with `soke prepare` "
            f"(official corpora) or `soke synth` (SynthSign)."
        )
    data = json.loads(manifest.read_text(encoding="utf-8"))
    if data.get("format") != STORE_FORMAT:
        raise StoreError(f"{manifest}: format is {data.get('format')!r}, expected {STORE_FORMAT!r}")
    if data.get("version") != STORE_VERSION:
        raise StoreError(f"{manifest}: version {data.get('version')!r} is not supported (expected {STORE_VERSION})")
    return data


def manifest_layout(manifest: dict, where: str | os.PathLike = "store.json") -> FeatureLayout:
    """The feature layout a manifest records (stores written before layouts existed are ``smplx179``)."""
    try:
        layout = load_feature_layout(manifest.get("feature_layout"))
    except LayoutError as err:
        raise StoreError(f"{where}: its recorded feature layout is invalid: {err}") from None
    if int(manifest.get("raw_dim", layout.raw_dim)) != layout.raw_dim:
        raise StoreError(f"{where}: raw_dim {manifest.get('raw_dim')} disagrees with its layout "
                         f"{layout.describe()} ({layout.raw_dim} values per frame); re-create the store")
    return layout


class SplitWriter:
    """Streams samples of one split to disk; :meth:`commit` makes the split visible atomically.

    Use as a context manager: the split is committed when the block ends without an exception and discarded
    otherwise.
    """

    def __init__(self, store: StoreWriter, split: str):
        self.store = store
        self.split = split
        self.tmp_dir = store.root / f".tmp-{split}-{os.getpid()}"
        # A killed earlier writer leaves its hidden temp folder (a whole split of frames): remove it.
        for stale in store.root.glob(f".tmp-{split}-*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        self.tmp_dir.mkdir(parents=True)
        self._frames = open(self.tmp_dir / "frames.bin", "wb")
        self._index = open(self.tmp_dir / "index.jsonl", "w", encoding="utf-8")
        self._offset = 0
        self._names: set[str] = set()
        self.count = 0
        self._done = False

    def add(self, sample: Sample) -> None:
        """Append one sample. Its frames must be finite float [T, raw_dim]; names must be unique in the split."""
        frames = np.ascontiguousarray(sample.frames, dtype="<f4")
        raw_dim = self.store.layout.raw_dim
        if frames.ndim != 2 or frames.shape[1] != raw_dim:
            raise ValueError(f"sample {sample.name!r}: frames must be [T, {raw_dim}] (layout "
                             f"{self.store.layout.name!r}), got {frames.shape}")
        if not np.isfinite(frames).all():
            raise ValueError(f"sample {sample.name!r}: frames contain NaN or inf")
        if sample.name in self._names:
            raise ValueError(f"sample name {sample.name!r} appears twice in split {self.split!r}")
        self._names.add(sample.name)
        self._frames.write(frames.tobytes())
        record = {
            "name": sample.name,
            "text": sample.text,
            "lang": sample.lang,
            "corpus": sample.corpus,
            "offset": self._offset,
            "length": int(frames.shape[0]),
            "fps": float(sample.fps),
            "meta": sample.meta or {},
        }
        self._index.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self._offset += int(frames.shape[0])
        self.count += 1

    def commit(self, extra: dict | None = None) -> None:
        """Close the files, move the split into place and record it in the manifest."""
        self._frames.close()
        self._index.close()
        final = self.store.root / self.split
        if final.exists():
            shutil.rmtree(final)
        os.replace(self.tmp_dir, final)
        self.store._record_split(self.split, {"samples": self.count, "frames": self._offset, **(extra or {})})
        self._done = True

    def abort(self) -> None:
        self._frames.close()
        self._index.close()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self._done = True

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class StoreWriter:
    """Creates or extends a packed store at ``root``.

    Args:
        root: store directory (created if needed).
        info: free-form provenance written into the manifest (e.g. corpus, generator arguments).
        overwrite: replace splits that already exist instead of raising.
        layout: feature layout of the frames (name, YAML path or :class:`FeatureLayout`; default ``smplx179``).
            An existing store keeps its layout; a different one is refused naming both.
    """

    def __init__(self, root: str | os.PathLike, info: dict | None = None, overwrite: bool = False,
                 layout: str | FeatureLayout | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.overwrite = overwrite
        self.layout = load_feature_layout(layout)
        manifest = self.root / MANIFEST
        if manifest.exists():
            self.manifest = read_manifest(self.root)
            check_same_layout(self.layout, "this writer", manifest_layout(self.manifest), str(manifest))
        else:
            self.manifest = {"format": STORE_FORMAT, "version": STORE_VERSION, "raw_dim": self.layout.raw_dim,
                             "feature_layout": self.layout.spec, "splits": {}}
        if info:
            self.manifest.setdefault("info", {}).update(info)
        atomic_write_text(manifest, json.dumps(self.manifest, indent=2, ensure_ascii=False, sort_keys=True))

    def has_split(self, split: str) -> bool:
        return split in self.manifest["splits"] and (self.root / split / "index.jsonl").is_file()

    def split(self, split: str) -> SplitWriter:
        """Open a writer for ``split`` (see :class:`SplitWriter`)."""
        if self.has_split(split) and not self.overwrite:
            raise StoreError(f"{self.root}: split {split!r} exists already; pass overwrite=True to replace it")
        return SplitWriter(self, split)

    def _record_split(self, split: str, entry: dict) -> None:
        self.manifest["splits"][split] = entry
        atomic_write_text(
            self.root / MANIFEST, json.dumps(self.manifest, indent=2, ensure_ascii=False, sort_keys=True)
        )


class StoreSplit(Sequence):
    """Read access to one split: ``split[i]`` returns a :class:`Sample` (frames copied out of the memory map)."""

    def __init__(self, root: Path, name: str, raw_dim: int = 179):
        self.root = root
        self.name = name
        folder = root / name
        index_path = folder / "index.jsonl"
        frames_path = folder / "frames.bin"
        if not index_path.is_file() or not frames_path.is_file():
            raise StoreError(f"{folder}: split {name!r} is incomplete (index.jsonl or frames.bin missing)")
        with open(index_path, encoding="utf-8") as fh:
            self.records: list[dict] = [json.loads(line) for line in fh if line.strip()]
        total = sum(r["length"] for r in self.records)
        nbytes = frames_path.stat().st_size
        if nbytes != total * raw_dim * 4:
            raise StoreError(
                f"{frames_path}: holds {nbytes} bytes but the index describes {total} frames x {raw_dim} float32 "
                f"= {total * raw_dim * 4} bytes; the store is corrupt, re-create it"
            )
        self.frames = (
            np.memmap(frames_path, dtype="<f4", mode="r", shape=(total, raw_dim))
            if total
            else np.zeros((0, raw_dim), np.float32)
        )
        self._by_name = {r["name"]: i for i, r in enumerate(self.records)}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        r = self.records[i]
        frames = np.array(self.frames[r["offset"] : r["offset"] + r["length"]], dtype=np.float32)
        return Sample(r["name"], r["text"], r["lang"], r["corpus"], frames, r["fps"], r.get("meta") or {})

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def index_of(self, name: str) -> int:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no sample named {name!r} in split {self.name!r} of {self.root}") from None

    def by_name(self, name: str) -> Sample:
        return self[self.index_of(name)]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([r["length"] for r in self.records], dtype=np.int64)

    @property
    def names(self) -> list[str]:
        return [r["name"] for r in self.records]

    @property
    def langs(self) -> list[str]:
        return [r["lang"] for r in self.records]


class PackedStore:
    """An opened store: ``store.split("train")[0].frames`` is a [T, raw_dim] float32 array (SMPL-X: 179)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        self.layout = manifest_layout(self.manifest, self.root / MANIFEST)
        # A keypoint corpus may declare sign languages and a corpus entry the built-in registry lacks.
        register_declared(self.manifest.get("info", {}))
        self._splits: dict[str, StoreSplit] = {}

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.manifest["splits"])

    @property
    def info(self) -> dict:
        return dict(self.manifest.get("info", {}))

    def split(self, name: str) -> StoreSplit:
        if name not in self.manifest["splits"]:
            raise StoreError(f"{self.root} has no split {name!r}; it has {list(self.splits)}")
        if name not in self._splits:
            self._splits[name] = StoreSplit(self.root, name, self.layout.raw_dim)
        return self._splits[name]

    def __contains__(self, split: str) -> bool:
        return split in self.manifest["splits"]

    def summary(self) -> dict:
        """Counts per split and language: samples, frames, length min/median/max, fps values."""
        out: dict = {}
        for name in self.splits:
            sp = self.split(name)
            langs: dict = {}
            for lang in sorted(set(sp.langs)):
                lens = np.array([r["length"] for r in sp.records if r["lang"] == lang])
                fps = Counter(r["fps"] for r in sp.records if r["lang"] == lang)
                langs[lang] = {
                    "samples": int(lens.size),
                    "frames": int(lens.sum()),
                    "length_min": int(lens.min()),
                    "length_median": float(np.median(lens)),
                    "length_max": int(lens.max()),
                    "fps": {str(k): v for k, v in sorted(fps.items())},
                }
            out[name] = {"samples": len(sp), "frames": int(sp.lengths.sum()), "languages": langs}
        return out


def open_store(path: str | os.PathLike) -> PackedStore:
    """Open a packed store written by `soke prepare` or `soke synth`."""
    return PackedStore(path)
