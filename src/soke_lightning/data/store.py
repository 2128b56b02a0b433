"""The packed store: all frames of a split in one memory-mappable float32 file plus a JSON-lines index.

The official corpora are millions of one-frame pickles; reading them every epoch is hopeless. A store keeps the
RAW 179-d frames (resampling and length rules happen at load time), so one store serves every experiment.

Layout::

    STORE/store.json            {"format": "soke-store", "version": 1, "raw_dim": 179, "splits": {...}, "info": {...},
                                 "feature_layout": {...the layout declaration...}}
    STORE/<dir>/frames.bin      float32 little-endian, [total_frames, raw_dim], samples back to back
    STORE/<dir>/index.jsonl     one record per sample: name, text, lang, corpus, offset, length, fps, meta

``<dir>`` is the split's folder named by its manifest entry (``<split>``, or ``<split>.1`` after an odd number of
overwrites); the entry also records the sample and frame counts and a BLAKE2b hash of each file.

Reading refuses to read wrong: opening a split checks every index record (fields present and typed, offsets equal
to the running sum of lengths, names unique) and the counts and byte size against the manifest, in O(records);
:meth:`StoreSplit.verify` (``soke data verify``) streams the frames through the hashes and finds non-finite values;
a sample with NaN/inf frames is refused when read, naming it. A ``store.json`` without a committed split is not a
store.

Writing loses nothing: a split is written into a hidden temporary folder unique to its writer, flushed to disk,
and committed under the store's exclusive lock (``STORE/.lock``) by renaming it into a folder the manifest does not
reference yet and then replacing ``store.json`` (read again under the lock, so two writers of different splits
both land). Replacing ``store.json`` is the one switch: a crash before it leaves the old state, after it the new one,
and the next writer removes what the crash left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soke_lightning.core.errors import SokeError
from soke_lightning.core.feature_layout import (
    FeatureLayout,
    LayoutError,
    check_same_layout,
    load_feature_layout,
)
from soke_lightning.core.io import atomic_write_text, exclusive_lock, fault_point, fsync_dir
from soke_lightning.core.languages import register_declared

STORE_FORMAT = "soke-store"
STORE_VERSION = 1
MANIFEST = "store.json"
#: Lock file of the store: held while a split is committed (store.json read, modified and replaced).
LOCK_FILE = ".lock"
#: Seconds a writer waits for another one's commit before giving up (commits take milliseconds to seconds).
DEFAULT_LOCK_TIMEOUT = 120.0
#: Valid split names (they become folder and file names).
SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]+")
#: Fields of an index record and their types.
RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str, "text": str, "lang": str, "corpus": str, "offset": int, "length": int, "fps": (int, float),
}
#: Frames per block when streaming a split (hashes, statistics, non-finite search).
BLOCK_FRAMES = 1 << 16


class StoreError(SokeError, RuntimeError):
    """A store is missing, incomplete or inconsistent."""


def rebuild_hint(split: str | None = None) -> str:
    """The fix for a damaged store: write it again."""
    which = f" --split {split}" if split else ""
    return f"re-create it (`soke prepare ... --overwrite{which}`, or `soke synth` for SynthSign)"


def _rewrite_hint(root: Path) -> str:
    """The fix for a damaged manifest: it lists the splits, so the whole store is written again."""
    return f"remove {root} and write the store again (`soke prepare` or `soke synth`)"


@dataclass
class Sample:
    """One sequence: identity, text and raw official frames.

    Attributes:
        name: sample name, unique within its split (e.g. ``S000286_P0000_T00``).
        text: spoken-language sentence (or the word, for dictionary samples).
        lang: language key of the registry ("asl", "csl", "dgs").
        corpus: corpus id ("how2sign", "csl_daily", "phoenix14t", "synthsign").
        frames: float32 array [T, 179] in the official layout.
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


def read_manifest(path: str | os.PathLike, require_splits: bool = True) -> dict:
    """Read ``STORE/store.json``; errors name the file, the problem and what to do.

    Args:
        path: the store folder.
        require_splits: refuse a manifest without any committed split (a store nobody finished writing).
    """
    root = Path(path)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise StoreError(f"{root}: not a soke store ({MANIFEST} is missing); create one with `soke prepare` "
                         f"(official corpora) or `soke synth` (SynthSign)")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise StoreError(f"{manifest}: not valid JSON (line {err.lineno} column {err.colno}: {err.msg}); the store "
                         f"is damaged: {_rewrite_hint(root)}") from None
    except UnicodeDecodeError as err:
        raise StoreError(f"{manifest}: not UTF-8 text ({err.reason} at byte {err.start}); the store is damaged: "
                         f"{_rewrite_hint(root)}") from None
    if not isinstance(data, dict) or data.get("format") != STORE_FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise StoreError(f"{manifest}: format is {got!r}, expected {STORE_FORMAT!r}; point at a folder written by "
                         f"`soke prepare` or `soke synth`")
    if data.get("version") != STORE_VERSION:
        raise StoreError(f"{manifest}: version {data.get('version')!r} is not supported (expected {STORE_VERSION}); "
                         f"{rebuild_hint()}")
    splits = data.get("splits")
    if not isinstance(splits, dict) or not all(isinstance(v, dict) for v in splits.values()):
        raise StoreError(f"{manifest}: key 'splits' must map split names to objects, got {splits!r:.80}; the store "
                         f"is damaged: {_rewrite_hint(root)}")
    if require_splits and not splits:
        raise StoreError(f"{root}: no committed split ({MANIFEST} lists none: the first write failed or was "
                         f"interrupted); write a split with `soke prepare` or `soke synth`")
    return data


def _check_split_name(split: str) -> None:
    if not isinstance(split, str) or not SPLIT_NAME.fullmatch(split):
        raise StoreError(f"split name {split!r}: only letters, digits, '_' and '-' are allowed (it names a folder); "
                         f"rename the split")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        _check_split_name(split)
        self.store = store
        self.split = split
        prefix = f".tmp-{split}-"
        # A killed earlier writer leaves its hidden temp folder (a whole split of frames): remove those of dead
        # processes; a live writer's folder (another process or another writer of this one) is left alone.
        # Names are .tmp-<split>-<pid>-<random> (mkdtemp's random part has no '-'; older writers had no suffix).
        ours = re.compile(rf"{re.escape(prefix)}(\d+)(-[a-z0-9_]+)?")
        for stale in store.root.glob(f"{prefix}*"):
            match = ours.fullmatch(stale.name)
            if not match or not stale.is_dir():
                continue
            pid = int(match.group(1))
            if pid != os.getpid() and not _pid_alive(pid):
                shutil.rmtree(stale, ignore_errors=True)
        self.tmp_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=store.root))
        self._frames = open(self.tmp_dir / "frames.bin", "wb")
        self._index = open(self.tmp_dir / "index.jsonl", "wb")
        self._frames_hash = hashlib.blake2b(digest_size=16)
        self._index_hash = hashlib.blake2b(digest_size=16)
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
        data = frames.tobytes()
        self._frames.write(data)
        self._frames_hash.update(data)
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
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        self._index.write(line)
        self._index_hash.update(line)
        self._offset += int(frames.shape[0])
        self.count += 1

    def commit(self, extra: dict | None = None) -> None:
        """Flush the files to disk, move the split into place and record it in the manifest (under the lock)."""
        for handle in (self._frames, self._index):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        fsync_dir(self.tmp_dir)
        fault_point("split-files-written")
        entry = {**(extra or {}), "samples": self.count, "frames": self._offset,
                 "frames_blake2b": self._frames_hash.hexdigest(), "index_blake2b": self._index_hash.hexdigest()}
        try:
            self.store._commit_split(self.split, self.tmp_dir, entry)
        except BaseException:
            self.abort()
            raise
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

    Nothing is written until a split is committed: a store exists once it has one split.

    Args:
        root: store directory (created if needed).
        info: free-form provenance written into the manifest (e.g. corpus, generator arguments).
        overwrite: replace splits that already exist instead of raising.
        lock_timeout: seconds to wait for another writer's commit before giving up with a clear error.
        layout: feature layout of the frames (name, YAML path or :class:`FeatureLayout`; default ``smplx179``).
            An existing store keeps its layout; a different one is refused naming both.
    """

    def __init__(self, root: str | os.PathLike, info: dict | None = None, overwrite: bool = False,
                 lock_timeout: float = DEFAULT_LOCK_TIMEOUT, layout: str | FeatureLayout | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.overwrite = overwrite
        self.lock_timeout = lock_timeout
        self.info = dict(info or {})
        self.layout = load_feature_layout(layout)
        self.manifest = self._read()

    def _read(self) -> dict:
        if (self.root / MANIFEST).exists():
            manifest = read_manifest(self.root, require_splits=False)
            check_same_layout(self.layout, "this writer", manifest_layout(manifest, self.root / MANIFEST),
                              str(self.root / MANIFEST))
        else:
            manifest = {"format": STORE_FORMAT, "version": STORE_VERSION, "raw_dim": self.layout.raw_dim,
                        "feature_layout": self.layout.spec, "splits": {}}
        if self.info:
            manifest.setdefault("info", {}).update(self.info)
        return manifest

    def has_split(self, split: str) -> bool:
        """True when the manifest (as on disk now) lists ``split`` and its folder exists."""
        self.manifest = self._read()
        entry = self.manifest["splits"].get(split)
        return entry is not None and (self.root / entry.get("dir", split) / "index.jsonl").is_file()

    def split(self, split: str) -> SplitWriter:
        """Open a writer for ``split`` (see :class:`SplitWriter`)."""
        if self.has_split(split) and not self.overwrite:
            raise StoreError(f"{self.root}: split {split!r} exists already; pass overwrite=True (`--overwrite`) to "
                             f"replace it")
        return SplitWriter(self, split)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's exclusive lock (``STORE/.lock``) for the block, waiting up to ``lock_timeout`` s."""
        busy = (f"{self.root}: another process (pid {{pid}}) kept this store locked for more than {{timeout}} s; "
                f"wait for it to finish, or write to another folder")
        with exclusive_lock(self.root / LOCK_FILE, self.lock_timeout, busy):
            yield

    @contextmanager
    def split_lock(self, split: str, timeout: float = 0.0) -> Iterator[None]:
        """Hold the lock of one split being prepared (``STORE/.lock-<split>``): two runs never share its cache."""
        _check_split_name(split)
        busy = (f"{self.root}: split {split!r} is being written by another process (pid {{pid}}); wait for it to "
                f"finish or write another split")
        with exclusive_lock(self.root / f"{LOCK_FILE}-{split}", timeout, busy):
            yield

    def _commit_split(self, split: str, tmp_dir: Path, entry: dict) -> None:
        with self.lock():
            manifest = self._read()  # another writer may have committed a split since we last read it
            old = manifest["splits"].get(split)
            if old is not None and not self.overwrite:
                raise StoreError(f"{self.root}: split {split!r} was committed by another writer meanwhile; pass "
                                 f"overwrite=True (`--overwrite`) to replace it")
            old_dir = old.get("dir", split) if old is not None else None
            target = split if old_dir != split else f"{split}.1"
            self._remove_unreferenced(manifest, split)
            os.replace(tmp_dir, self.root / target)
            fsync_dir(self.root)
            fault_point("split-moved")
            manifest["splits"][split] = {**entry, "dir": target}
            atomic_write_text(self.root / MANIFEST,
                              json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
            fault_point("manifest-written")
            if old_dir is not None and old_dir != target:
                shutil.rmtree(self.root / old_dir, ignore_errors=True)
                fsync_dir(self.root)
            self.manifest = manifest

    def _remove_unreferenced(self, manifest: dict, split: str) -> None:
        """Delete folders of ``split`` that the manifest does not reference (left by a crash mid-commit)."""
        used = {e.get("dir", name) for name, e in manifest["splits"].items()}
        for name in (split, f"{split}.1"):
            if name not in used and (self.root / name).is_dir():
                shutil.rmtree(self.root / name)

    def remove_split(self, split: str) -> None:
        """Drop ``split`` from the manifest and delete its folder (a split that failed verification)."""
        with self.lock():
            manifest = self._read()
            entry = manifest["splits"].pop(split, None)
            if entry is None:
                return
            atomic_write_text(self.root / MANIFEST,
                              json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
            shutil.rmtree(self.root / entry.get("dir", split), ignore_errors=True)
            self.manifest = manifest


class StoreSplit(Sequence):
    """Read access to one split: ``split[i]`` returns a :class:`Sample` (frames copied out of the memory map).

    Opening checks the index against the frame file and the manifest entry in O(records) (see the module
    docstring); reading a sample refuses non-finite frames.
    """

    def __init__(self, root: Path, name: str, entry: dict | None = None, raw_dim: int = 179):
        self.root = root
        self.raw_dim = raw_dim
        self.name = name
        self.entry = dict(entry or {})
        self.folder = root / self.entry.get("dir", name)
        self.index_path = self.folder / "index.jsonl"
        self.frames_path = self.folder / "frames.bin"
        if not self.index_path.is_file() or not self.frames_path.is_file():
            raise StoreError(f"{self.folder}: split {name!r} is incomplete (index.jsonl or frames.bin missing); "
                             f"{rebuild_hint(name)}")
        self.records: list[dict] = self._read_index()
        total = self._offsets_end
        nbytes = self.frames_path.stat().st_size
        if nbytes != total * raw_dim * 4:
            raise StoreError(
                f"{self.frames_path}: holds {nbytes} bytes but the index describes {total} frames x {raw_dim} "
                f"float32 = {total * raw_dim * 4} bytes; the store is corrupt: {rebuild_hint(name)}"
            )
        for key, have in (("samples", len(self.records)), ("frames", total)):
            if key in self.entry and self.entry[key] != have:
                raise StoreError(f"{self.index_path}: {have} {key} but {root / MANIFEST} records {self.entry[key]}; "
                                 f"the split does not match its manifest entry: {rebuild_hint(name)}")
        self.frames = (
            np.memmap(self.frames_path, dtype="<f4", mode="r", shape=(total, raw_dim))
            if total
            else np.zeros((0, raw_dim), np.float32)
        )

    def _read_index(self) -> list[dict]:
        records: list[dict] = []
        self._by_name: dict[str, int] = {}
        offset = 0
        hint = f"the store is damaged: {rebuild_hint(self.name)}"
        with open(self.index_path, encoding="utf-8", errors="strict") as fh:
            try:
                lines = list(fh)
            except UnicodeDecodeError as err:
                raise StoreError(f"{self.index_path}: not UTF-8 text ({err.reason}); {hint}") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{self.index_path}: line {n}"
            try:
                r = json.loads(line)
            except json.JSONDecodeError as err:
                raise StoreError(f"{where}: not valid JSON ({err.msg} at column {err.colno}); {hint}") from None
            if not isinstance(r, dict):
                raise StoreError(f"{where}: a record must be a JSON object, got {type(r).__name__}; {hint}")
            for key, kind in RECORD_FIELDS.items():
                if key not in r:
                    raise StoreError(f"{where}: field {key!r} is missing; {hint}")
                if not isinstance(r[key], kind) or isinstance(r[key], bool):
                    expected = kind.__name__ if isinstance(kind, type) else "number"
                    raise StoreError(f"{where}: field {key!r} is {r[key]!r:.40}, expected {expected}; {hint}")
            if r["length"] < 0:
                raise StoreError(f"{where}: field 'length' is {r['length']}, expected >= 0; {hint}")
            if r["offset"] != offset:
                raise StoreError(f"{where} (sample {r['name']!r}): offset {r['offset']} but the samples before it end "
                                 f"at frame {offset}; the index does not match frames.bin, {hint}")
            if r["name"] in self._by_name:
                raise StoreError(f"{where}: sample name {r['name']!r} appears twice; {hint}")
            self._by_name[r["name"]] = len(records)
            offset += r["length"]
            records.append(r)
        self._offsets_end = offset
        return records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        r = self.records[i]
        frames = np.array(self.frames[r["offset"] : r["offset"] + r["length"]], dtype=np.float32)
        if not np.isfinite(frames).all():
            raise StoreError(f"{self.frames_path}: sample {r['name']!r} (#{i % len(self)}) has non-finite frames "
                             f"(NaN or inf); the store is damaged: {rebuild_hint(self.name)} (`soke data verify "
                             f"{self.root}` lists every such sample)")
        return Sample(r["name"], r["text"], r["lang"], r["corpus"], frames, r["fps"], r.get("meta") or {})

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def index_of(self, name: str) -> int:
        try:
            return self._by_name[name]
        except KeyError:
            raise StoreError(f"split {self.name!r} of {self.root}: no sample named {name!r}; `soke data info "
                             f"{self.root}` shows what it holds") from None

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

    def samples_at_frames(self, rows) -> np.ndarray:
        """Indices of the samples that hold the given rows of ``frames.bin`` (vectorised lookup of the offsets)."""
        if not hasattr(self, "_starts"):
            self._starts = np.array([r["offset"] for r in self.records], dtype=np.int64)
        return np.searchsorted(self._starts, np.asarray(rows, dtype=np.int64), side="right") - 1

    def sample_at_frame(self, row: int) -> str:
        """Name of the sample that holds frame ``row`` of ``frames.bin``."""
        return self.records[int(self.samples_at_frames([row])[0])]["name"]

    def iter_blocks(self, block: int = BLOCK_FRAMES) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, frames [<= block, 179]) over the whole split, read in order from the memory map."""
        for start in range(0, len(self.frames), block):
            yield start, np.asarray(self.frames[start:start + block])

    def verify(self, progress: bool = False) -> list[str]:
        """Stream the split once: check both files against the manifest's hashes and find non-finite frames.

        Returns:
            one line per problem (empty when the split is sound).
        """
        from tqdm.auto import tqdm

        problems = []
        bad: list[str] = []
        frames_hash = hashlib.blake2b(digest_size=16)
        with tqdm(total=len(self.frames), unit="frame", unit_scale=True, desc=f"verify {self.name}",
                  disable=not progress, leave=False) as bar:
            for start, block in self.iter_blocks():
                frames_hash.update(np.ascontiguousarray(block, dtype="<f4").tobytes())
                rows = np.flatnonzero(~np.isfinite(block).all(axis=1))
                for i in np.unique(self.samples_at_frames(start + rows)):  # sorted: samples in file order
                    name = self.records[int(i)]["name"]
                    if not bad or bad[-1] != name:  # a sample spanning two blocks is listed once
                        bad.append(name)
                bar.update(len(block))
        if bad:
            shown = ", ".join(repr(n) for n in bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
            problems.append(f"{self.frames_path}: {len(bad)} sample(s) with non-finite frames (NaN or inf): {shown}")
        index_hash = hashlib.blake2b(self.index_path.read_bytes(), digest_size=16).hexdigest()
        for key, path, digest in (("frames_blake2b", self.frames_path, frames_hash.hexdigest()),
                                  ("index_blake2b", self.index_path, index_hash)):
            recorded = self.entry.get(key)
            if recorded is None:
                problems.append(f"{path}: no content hash recorded (a store written before hashes were); "
                                f"{rebuild_hint(self.name)} to get one")
            elif recorded != digest:
                problems.append(f"{path}: content hash {digest} differs from the one recorded at commit "
                                f"({recorded}); the file changed after it was written")
        return problems


class PackedStore:
    """An opened store: ``store.split("train")[0].frames`` is a [T, 179] float32 array.

    Args:
        root: the store folder.
        verify: also run :meth:`StoreSplit.verify` (read every byte) when a split is first opened, and refuse it on
            the first problem; by default opening checks the index only (O(records)).
    """

    def __init__(self, root: str | os.PathLike, verify: bool = False):
        self.root = Path(root)
        self.verify = verify
        self.manifest = read_manifest(self.root)
        for name in self.manifest["splits"]:
            _check_split_name(name)
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
            raise StoreError(f"{self.root}: no split {name!r}; it has {', '.join(self.splits)}")
        if name not in self._splits:
            split = StoreSplit(self.root, name, self.manifest["splits"][name], self.layout.raw_dim)
            problems = split.verify() if self.verify else []
            if problems:
                raise StoreError(f"{problems[0]}; {rebuild_hint(name)}")
            self._splits[name] = split
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


def open_store(path: str | os.PathLike, verify: bool = False) -> PackedStore:
    """Open a packed store written by `soke prepare` or `soke synth` (``verify``: see :class:`PackedStore`)."""
    return PackedStore(path, verify=verify)
