"""Readers and writers for How2Sign, CSL-Daily and Phoenix-2014T in their official release layout (docs/design.md §2).

Every corpus is one pickle per frame (a dict with the 7 ``smplx_*`` keys, see :mod:`soke_lightning.core.layout`)
plus a split file naming the samples and their texts::

    How2Sign/<split>/poses/<NAME>/<NAME>_<k>_3D.pkl              k = 0 .. n-1, NUMERIC order
    How2Sign/<split>/re_aligned/how2sign_realigned_<split>_preprocessed_fps.csv
        columns SENTENCE_NAME, START_REALIGNED, END_REALIGNED, SENTENCE, fps (+ any others -> meta)
        rows with END_REALIGNED - START_REALIGNED >= 30 s are dropped (as the reference does)
    CSL-Daily/poses/<name>/<frame>.pkl                           lexicographic order (zero-padded names)
    CSL-Daily/csl_clean.{train,val,test}                         gzip-pickled list of dicts (name, text, ...)
    Phoenix_2014T/<name>/images<NNNN>.pkl                        <name> starts with train/, dev/ or test/
    Phoenix_2014T/phoenix14t.{train,dev,test}                    gzip-pickled list of dicts (name, text, ...)

A reader lists a split (:meth:`OfficialReader.list_split`) and turns one record into a
:class:`~soke_lightning.data.store.Sample` with float32 [T, 179] frames (:meth:`OfficialReader.read`). A sample
whose frames cannot be used raises :class:`SkipSample` with a short reason (see :data:`SKIP_REASONS`) and the
offending path, so a caller can skip it and count it. :func:`write_official_split` writes the same layout.
"""

from __future__ import annotations

import csv
import gzip
import logging
import os
import pickle
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soke_lightning.core.errors import RegistryKeyError, SokeError
from soke_lightning.core.languages import Corpus, get_corpus, get_language
from soke_lightning.core.layout import RAW_DIM, frame_from_dict, frame_to_dict
from soke_lightning.data.store import Sample

log = logging.getLogger(__name__)

#: How2Sign rows at least this long (END_REALIGNED - START_REALIGNED, seconds) are dropped (docs/design.md §2.5.3).
MAX_HOW2SIGN_SECONDS = 30.0
#: Columns of the How2Sign CSV that the reader needs.
HOW2SIGN_COLUMNS = ("SENTENCE_NAME", "START_REALIGNED", "END_REALIGNED", "SENTENCE", "fps")

#: Why a sample can be skipped, with a human description (keys are used in reports and JSON).
SKIP_REASONS: dict[str, str] = {
    "no_poses": "pose folder missing or holds no frame files",
    "missing_frames": "frame numbering has gaps",
    "unreadable": "a frame pickle cannot be loaded (truncated, not a dict)",
    "missing_key": "a frame lacks one of the 7 smplx_* keys",
    "wrong_shape": "a frame key has the wrong number of values",
    "non_finite": "a frame holds NaN or inf",
    "too_short": "fewer than the minimum number of frames",
    "too_long": "How2Sign row of 30 s or more (dropped by the reference)",
    "excluded": "name is on the exclude list",
    "duplicate": "name appears again in the split file (the first one is kept)",
}


class OfficialLayoutError(SokeError, FileNotFoundError):
    """A corpus root or split file is missing or malformed (the message names the expected path)."""


class SkipSample(Exception):
    """One sample cannot be used; ``reason`` is a key of :data:`SKIP_REASONS`, ``path`` the offending file."""

    def __init__(self, reason: str, path: str | os.PathLike, detail: str = ""):
        self.reason = reason
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{self.path}: {SKIP_REASONS.get(reason, reason)}" + (f" ({detail})" if detail else ""))


@dataclass
class OfficialRecord:
    """One entry of a split file, before its frames are read.

    Attributes:
        name: sample name as in the split file (Phoenix names include the ``train/`` prefix).
        text: the spoken-language sentence.
        pose_dir: folder holding the sample's frame pickles.
        fps: frame rate (How2Sign: the CSV's ``fps`` column; others: the corpus default).
        meta: every other field of the split record (gloss, signer, VIDEO_ID, ...).
    """

    name: str
    text: str
    pose_dir: Path
    fps: float
    meta: dict = field(default_factory=dict)


@dataclass
class SplitListing:
    """The usable records of a split plus the names dropped while listing, by reason."""

    records: list[OfficialRecord]
    dropped: dict[str, list[str]] = field(default_factory=dict)


def _json_safe(value):
    """Meta values go into the store's JSON index: keep scalars/lists/dicts, convert numpy scalars, drop the rest."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        items = [_json_safe(v) for v in value]
        return items if all(v is not _DROP for v in items) else _DROP
    if isinstance(value, dict):
        items = {str(k): _json_safe(v) for k, v in value.items()}
        return {k: v for k, v in items.items() if v is not _DROP}
    return _DROP


_DROP = object()


def _clean_meta(meta: dict) -> dict:
    return {k: v for k, v in ((str(k), _json_safe(v)) for k, v in meta.items()) if v is not _DROP}


def read_frame_file(path: str | os.PathLike) -> np.ndarray:
    """Read one official frame pickle into a float64 [179] vector.

    Raises:
        SkipSample: with reason unreadable / missing_key / wrong_shape / non_finite, naming ``path``.
    """
    try:
        with open(path, "rb") as fh:
            frame = pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError,
            IndexError) as exc:
        raise SkipSample("unreadable", path, f"{type(exc).__name__}: {exc}") from None
    if not isinstance(frame, dict):
        raise SkipSample("unreadable", path, f"expected a dict, got {type(frame).__name__}")
    try:
        raw = frame_from_dict(frame, source=str(path))
    except KeyError as exc:
        raise SkipSample("missing_key", path, str(exc.args[0])) from None
    except (ValueError, TypeError) as exc:
        raise SkipSample("wrong_shape", path, str(exc)) from None
    if not np.isfinite(raw).all():
        raise SkipSample("non_finite", path, "NaN or inf in the frame")
    return raw


def read_frames(files: Sequence[str | os.PathLike]) -> np.ndarray:
    """Read ordered frame pickles into float32 [T, 179] (float64 first, then cast, as the reference does)."""
    out = np.empty((len(files), RAW_DIM), dtype=np.float64)
    for i, path in enumerate(files):
        out[i] = read_frame_file(path)
    return out.astype(np.float32)


def load_exclude(exclude: str | os.PathLike | Iterable[str] | None) -> set[str]:
    """Names to leave out: a file (one name per line, ``#`` comments) or an iterable of names."""
    if exclude is None:
        return set()
    if isinstance(exclude, (str, os.PathLike)):
        path = Path(exclude)
        if not path.is_file():
            raise OfficialLayoutError(f"exclude list {path} does not exist (expected one sample name per line)")
        lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
        return {line for line in lines if line}
    return {str(n) for n in exclude}


def _load_gzip_pickle(path: Path) -> list[dict]:
    if not path.is_file():
        raise OfficialLayoutError(f"split file {path} does not exist (expected a gzip-pickled list of dicts "
                                  f"with 'name' and 'text')")
    try:
        with gzip.open(path, "rb") as fh:
            data = pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError) as exc:
        raise OfficialLayoutError(f"split file {path} cannot be read as a gzip pickle: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise OfficialLayoutError(f"split file {path}: expected a list of dicts, got {type(data).__name__}")
    for i, d in enumerate(data):
        missing = [k for k in ("name", "text") if k not in d]
        if missing:
            raise OfficialLayoutError(f"split file {path}: record {i} lacks {missing} (has {sorted(d)})")
    return data


class OfficialReader:
    """Base reader: root checks, exclude list, the split-file-to-records step and reading frames.

    Args:
        root: the corpus folder (``How2Sign``, ``CSL-Daily`` or ``Phoenix_2014T``).
        exclude: names to drop (a file with one name per line, or an iterable).
        min_frames: samples with fewer frames raise ``SkipSample("too_short")`` (the reference crashes on them).
    """

    corpus_name: str = ""

    def __init__(self, root: str | os.PathLike, exclude=None, min_frames: int = 4):
        self.root = Path(root)
        if not self.root.is_dir():
            raise OfficialLayoutError(f"corpus root {self.root} does not exist (expected the {self.corpus_name} "
                                      f"folder of the official release; see docs/design.md §2.1)")
        self.corpus: Corpus = get_corpus(self.corpus_name)
        self.exclude = load_exclude(exclude)
        self.min_frames = int(min_frames)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.corpus.split_names)

    def official_split(self, split: str) -> str:
        try:
            return self.corpus.split_names[split]
        except KeyError:
            raise RegistryKeyError(f"corpus {self.corpus_name!r} has no split {split!r}; valid splits: "
                                   f"{', '.join(self.splits)}") from None

    def split_file(self, split: str) -> Path:
        """Path of the split's annotation file."""
        raise NotImplementedError

    def _records(self, split: str) -> tuple[list[OfficialRecord], dict[str, list[str]]]:
        raise NotImplementedError

    def list_split(self, split: str) -> SplitListing:
        """All usable records of ``split`` in split-file order; dropped names (exclude list, How2Sign >= 30 s)."""
        records, dropped = self._records(split)
        kept, seen = [], set()
        for r in records:
            if r.name in self.exclude:
                dropped.setdefault("excluded", []).append(r.name)
            elif r.name in seen:
                dropped.setdefault("duplicate", []).append(r.name)
            else:
                seen.add(r.name)
                kept.append(r)
        return SplitListing(kept, dropped)

    def frame_files(self, record: OfficialRecord) -> list[Path]:
        """The record's frame pickles in reading order."""
        raise NotImplementedError

    def read(self, record: OfficialRecord) -> Sample:
        """Read a record's frames into a :class:`Sample` (raw float32 [T, 179]).

        Raises:
            SkipSample: the sample is unusable (reason and offending path inside).
        """
        files = self.frame_files(record)
        if len(files) < self.min_frames:
            raise SkipSample("too_short", record.pose_dir, f"{len(files)} frames < {self.min_frames}")
        frames = read_frames(files)
        return Sample(record.name, record.text, self.corpus.language, self.corpus_name, frames, record.fps,
                      dict(record.meta))

    def _sorted_pickles(self, record: OfficialRecord, pattern: str = "*.pkl") -> list[Path]:
        if not record.pose_dir.is_dir():
            raise SkipSample("no_poses", record.pose_dir, "folder missing")
        files = sorted(record.pose_dir.glob(pattern), key=lambda p: p.name)
        if not files:
            raise SkipSample("no_poses", record.pose_dir, f"no {pattern} files")
        return files


class How2SignReader(OfficialReader):
    """How2Sign: per-split CSV, frames ``<NAME>_<k>_3D.pkl`` in numeric order of k."""

    corpus_name = "how2sign"

    def split_file(self, split: str) -> Path:
        s = self.official_split(split)
        return self.root / s / "re_aligned" / f"how2sign_realigned_{s}_preprocessed_fps.csv"

    def _records(self, split):
        path = self.split_file(split)
        if not path.is_file():
            raise OfficialLayoutError(f"How2Sign split file {path} does not exist (expected a CSV with columns "
                                      f"{list(HOW2SIGN_COLUMNS)})")
        with open(path, encoding="utf-8", newline="") as fh:
            header = fh.readline()
            fh.seek(0)
            # The original How2Sign CSVs are tab-separated; SOKE's re-export is comma-separated.
            delimiter = "\t" if header.count("\t") > header.count(",") else ","
            rows = list(csv.DictReader(fh, delimiter=delimiter))
            columns = [c for c in (rows[0].keys() if rows else header.strip().split(delimiter))]
        missing = [c for c in HOW2SIGN_COLUMNS if c not in columns]
        if missing:
            raise OfficialLayoutError(f"How2Sign split file {path}: missing columns {missing}; it has {columns}")
        poses = self.root / self.official_split(split) / "poses"
        records, dropped = [], {}
        for line, row in enumerate(rows, start=2):
            name = row["SENTENCE_NAME"]
            try:
                start, end = float(row["START_REALIGNED"]), float(row["END_REALIGNED"])
                fps = float(row["fps"]) if row["fps"] not in (None, "") else self.corpus.fps
            except (TypeError, ValueError) as exc:
                raise OfficialLayoutError(f"{path}:{line}: START_REALIGNED/END_REALIGNED/fps must be numbers "
                                          f"({exc})") from None
            if end - start >= MAX_HOW2SIGN_SECONDS:
                dropped.setdefault("too_long", []).append(name)
                continue
            meta = {k: v for k, v in row.items() if k not in HOW2SIGN_COLUMNS and k is not None}
            records.append(OfficialRecord(name, row["SENTENCE"], poses / name, fps, meta))
        return records, dropped

    def frame_files(self, record):
        pattern = re.compile(rf"^{re.escape(record.name)}_(\d+)_3D\.pkl$")
        if not record.pose_dir.is_dir():
            raise SkipSample("no_poses", record.pose_dir, "folder missing")
        numbered = {}
        for entry in os.scandir(record.pose_dir):
            m = pattern.match(entry.name)
            if m:
                numbered[int(m.group(1))] = Path(entry.path)
        if not numbered:
            raise SkipSample("no_poses", record.pose_dir, f"no {record.name}_<k>_3D.pkl files")
        ks = sorted(numbered)
        if ks != list(range(len(ks))):
            gaps = sorted(set(range(ks[-1] + 1)) - set(ks))[:5]
            raise SkipSample("missing_frames", record.pose_dir, f"frame numbers missing, e.g. {gaps}")
        return [numbered[k] for k in ks]


class _GzipSplitReader(OfficialReader):
    """CSL-Daily / Phoenix: gzip-pickled split files and frame files read in lexicographic order."""

    split_prefix = ""
    frame_glob = "*.pkl"

    def split_file(self, split):
        return self.root / f"{self.split_prefix}.{self.official_split(split)}"

    def _pose_dir(self, name: str) -> Path:
        raise NotImplementedError

    def _records(self, split):
        records = []
        for d in _load_gzip_pickle(self.split_file(split)):
            meta = _clean_meta({k: v for k, v in d.items() if k not in ("name", "text", "fps")})
            name = str(d["name"])
            # "fps" is not in the official files; our writer adds it only when a sample differs from the default.
            fps = float(d.get("fps", self.corpus.fps))
            records.append(OfficialRecord(name, str(d["text"]), self._pose_dir(name), fps, meta))
        return records, {}

    def frame_files(self, record):
        return self._sorted_pickles(record, self.frame_glob)


class CslDailyReader(_GzipSplitReader):
    """CSL-Daily: ``csl_clean.<split>`` and ``poses/<name>/<frame>.pkl``."""

    corpus_name = "csl_daily"
    split_prefix = "csl_clean"

    def _pose_dir(self, name):
        return self.root / "poses" / name


class PhoenixReader(_GzipSplitReader):
    """Phoenix-2014T: ``phoenix14t.<train|dev|test>`` and ``<name>/images<NNNN>.pkl`` (name has the split)."""

    corpus_name = "phoenix14t"
    split_prefix = "phoenix14t"
    frame_glob = "images*.pkl"

    def _pose_dir(self, name):
        return self.root / name


#: Corpus name (languages.CORPORA key) -> reader class.
READERS: dict[str, type[OfficialReader]] = {
    cls.corpus_name: cls for cls in (How2SignReader, CslDailyReader, PhoenixReader)
}


def get_reader(corpus: str, root: str | os.PathLike, **kwargs) -> OfficialReader:
    """Build the reader of an official corpus; unknown names raise a KeyError listing the readable corpora."""
    try:
        cls = READERS[corpus]
    except KeyError:
        raise RegistryKeyError(f"no official-layout reader for corpus {corpus!r}; valid: "
                               f"{', '.join(sorted(READERS))}") from None
    return cls(root, **kwargs)


def _frame_names(corpus: str, name: str, count: int) -> list[str]:
    if corpus == "how2sign":
        return [f"{name}_{k}_3D.pkl" for k in range(count)]
    if corpus == "csl_daily":
        width = max(6, len(str(count)))
        return [f"{k:0{width}d}.pkl" for k in range(count)]
    width = max(4, len(str(count)))  # Phoenix numbers frames from 1
    return [f"images{k + 1:0{width}d}.pkl" for k in range(count)]


def write_official_split(root: str | os.PathLike, corpus: str, split: str, samples: Iterable[Sample]) -> None:
    """Write ``samples`` as split ``split`` of ``corpus`` in the official release layout, exactly as the readers
    of this module (and SOKE's loaders) expect it.

    * one pickle per frame: a dict with the 7 ``smplx_*`` keys as float32 numpy arrays;
    * How2Sign: ``<root>/<split>/poses/<NAME>/<NAME>_<k>_3D.pkl`` (k = 0..T-1) and the CSV
      ``<root>/<split>/re_aligned/how2sign_realigned_<split>_preprocessed_fps.csv`` with columns
      SENTENCE_NAME, START_REALIGNED (0), END_REALIGNED (= T / fps, so duration = frames / fps), SENTENCE, fps,
      plus one column per ``meta`` key (read back as strings);
    * CSL-Daily: ``<root>/poses/<name>/<NNNNNN>.pkl`` and ``<root>/csl_clean.<split>``;
    * Phoenix-2014T: ``<root>/<name>/images<NNNN>.pkl`` (numbered from 1) and ``<root>/phoenix14t.<train|dev|test>``;
      each name must start with the official split folder (``train/``, ``dev/`` or ``test/``);
    * CSL/Phoenix split files are gzip-pickled lists of dicts ``{"name", "text", **meta}``; the official files
      have no frame rate (the corpus default applies), so a sample whose fps differs from the default gets an
      extra ``"fps"`` key, which the reader honours.

    The split file is replaced (written last, atomically); frame folders of the given samples are overwritten, and
    frame files of an earlier, longer version of a sample are removed.
    ``sample.lang`` must be a registered language and ``sample.frames`` a finite [T, 179] array.

    Args:
        root: the corpus folder to write into (created if needed).
        corpus: "how2sign", "csl_daily" or "phoenix14t" (the layout to produce).
        split: our split name ("train", "val", "test"; Phoenix writes "val" as "dev").
        samples: the samples, in split-file order.

    Raises:
        KeyError: unknown corpus, split or language (listing the valid ones).
        ValueError: a sample's frames or name do not fit the layout.
    """
    if corpus not in READERS:
        raise RegistryKeyError(f"no official layout for corpus {corpus!r}; valid: {', '.join(sorted(READERS))}")
    info = get_corpus(corpus)
    if split not in info.split_names:
        raise RegistryKeyError(f"corpus {corpus!r} has no split {split!r}; valid splits: {', '.join(info.split_names)}")
    official = info.split_names[split]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    entries: list[dict] = []
    for sample in samples:
        get_language(sample.lang)
        frames = np.asarray(sample.frames)
        if frames.ndim != 2 or frames.shape[1] != RAW_DIM:
            raise ValueError(f"sample {sample.name!r}: frames must be [T, {RAW_DIM}], got {frames.shape}")
        if not np.isfinite(frames).all():
            raise ValueError(f"sample {sample.name!r}: frames contain NaN or inf")
        if corpus == "how2sign":
            pose_dir = root / official / "poses" / sample.name
        elif corpus == "csl_daily":
            pose_dir = root / "poses" / sample.name
        else:
            if not sample.name.startswith(f"{official}/"):
                raise ValueError(f"Phoenix sample names carry their split folder: {sample.name!r} must start with "
                                 f"{official + '/'!r} for split {split!r}")
            pose_dir = root / sample.name
        pose_dir.mkdir(parents=True, exist_ok=True)
        names = _frame_names(corpus, sample.name, len(frames))
        keep = set(names)
        for old in pose_dir.glob("*.pkl"):  # a longer earlier version's surplus frames would be read back
            if old.name not in keep:
                old.unlink()
        for fname, raw in zip(names, frames, strict=True):
            with open(pose_dir / fname, "wb") as fh:
                pickle.dump(frame_to_dict(raw), fh, protocol=pickle.HIGHEST_PROTOCOL)
        entries.append({"name": sample.name, "text": sample.text, "fps": float(sample.fps),
                        "frames": len(frames), "meta": dict(sample.meta or {})})
    if corpus == "how2sign":
        _write_how2sign_csv(root / official / "re_aligned" / f"how2sign_realigned_{official}_preprocessed_fps.csv",
                            entries)
    else:
        prefix = "csl_clean" if corpus == "csl_daily" else "phoenix14t"
        records = [{"name": e["name"], "text": e["text"], **e["meta"],
                    **({"fps": e["fps"]} if e["fps"] != info.fps else {})} for e in entries]
        path = root / f"{prefix}.{official}"
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with gzip.open(tmp, "wb") as fh:
            pickle.dump(records, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    log.info("wrote %d %s samples (split %s) to %s", len(entries), corpus, split, root)


def _write_how2sign_csv(path: Path, entries: list[dict]) -> None:
    extra = []
    for e in entries:
        extra += [k for k in e["meta"] if k not in extra and k not in HOW2SIGN_COLUMNS]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*HOW2SIGN_COLUMNS, *extra])
        for e in entries:
            end = e["frames"] / e["fps"]
            writer.writerow([e["name"], repr(0.0), repr(end), e["text"], repr(e["fps"]),
                             *(e["meta"].get(k, "") for k in extra)])
    os.replace(tmp, path)
