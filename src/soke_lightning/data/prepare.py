"""Convert an official corpus (How2Sign, CSL-Daily, Phoenix-2014T) into a packed store (behind `soke prepare`).

Frames are read in parallel worker processes (output order = split-file order) and kept RAW (179-d); resampling
and length rules happen at load time. Each split is written atomically and verified by re-opening the store
(sample count, names, frame total and a checksum of every byte). Resumable: complete splits are skipped unless
``overwrite``, and an interrupted split resumes from the chunk files under STORE/.prepare-<split>/ (a chunk
whose source files changed since, by name, size or modification time, is read again). One run at a time per
split (``STORE/.lock-<split>``); commits are serialised by the store's lock (see :mod:`soke_lightning.data.store`).
Unusable
samples are skipped with a warning naming the file and counted in the report; STORE/normalization.pt is
computed from the train split unless ``stats=False``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from soke_lightning.core.io import atomic_write, atomic_write_json, fault_point
from soke_lightning.core.languages import CORPORA
from soke_lightning.data.normalization import STATS_FILE, compute_stats, save_stats
from soke_lightning.data.official import (
    SKIP_REASONS,
    OfficialLayoutError,
    OfficialReader,
    OfficialRecord,
    SkipSample,
    get_reader,
)
from soke_lightning.data.store import (
    BLOCK_FRAMES,
    MANIFEST,
    PackedStore,
    Sample,
    StoreError,
    StoreWriter,
    read_manifest,
)

log = logging.getLogger(__name__)

#: Samples per resume chunk (one cache file each under STORE/.prepare-<split>/).
CHUNK_SIZE = 256
#: Frames per block when hashing / computing statistics over a split's memory map.
_BLOCK = BLOCK_FRAMES


@dataclass
class SplitReport:
    """What happened to one split.

    Attributes:
        split: our split name.
        status: "written", or "exists" when a complete split was kept (no --overwrite).
        listed: records in the split file (before any filter).
        written: samples in the store.
        frames: frames in the store.
        skipped: reason (see ``official.SKIP_REASONS``) -> number of samples.
        skipped_files: the offending path of every skipped sample (split file + name for listing filters).
        resumed_chunks: chunks taken from an interrupted earlier run.
        seconds: wall time.
    """

    split: str
    status: str = "written"
    listed: int = 0
    written: int = 0
    frames: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_files: list[str] = field(default_factory=list)
    resumed_chunks: int = 0
    seconds: float = 0.0

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def _skip(self, reason: str, path: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.skipped_files.append(path)


@dataclass
class PrepareReport:
    """Result of :func:`prepare_corpus`: one :class:`SplitReport` per requested split and the stats file."""

    corpus: str
    root: str
    out: str
    splits: dict[str, SplitReport] = field(default_factory=dict)
    stats_path: str | None = None

    @property
    def num_skipped(self) -> int:
        return sum(r.num_skipped for r in self.splits.values())

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        """A readable summary: one row per split, then skips by reason."""
        lines = [f"{self.corpus}: {self.root} -> {self.out}",
                 f"  {'split':<8}{'status':<9}{'listed':>8}{'written':>9}{'frames':>11}{'skipped':>9}{'time':>8}"]
        for r in self.splits.values():
            listed = str(r.listed) if r.status == "written" else "-"
            lines.append(f"  {r.split:<8}{r.status:<9}{listed:>8}{r.written:>9}{r.frames:>11}{r.num_skipped:>9}"
                         f"{r.seconds:>7.1f}s")
        for r in self.splits.values():
            for reason, n in sorted(r.skipped.items()):
                lines.append(f"  skipped in {r.split}: {n} x {reason} ({SKIP_REASONS.get(reason, reason)})")
        lines.append(f"  total skipped: {self.num_skipped}")
        if self.stats_path:
            lines.append(f"  normalisation stats: {self.stats_path}")
        return "\n".join(lines)


# ---- worker side ---------------------------------------------------------------------------------------------

_WORKER_READER: OfficialReader | None = None


def _init_worker(reader: OfficialReader) -> None:
    global _WORKER_READER
    _WORKER_READER = reader


def source_fingerprint(reader: OfficialReader, record: OfficialRecord) -> str:
    """A digest of the files a record is read from (name, size, modification time), or of why it is skipped.

    The resume cache keeps a chunk only while the fingerprints of its records are unchanged.
    """
    h = hashlib.blake2b(digest_size=12)
    try:
        files = reader.frame_files(record)
    except SkipSample as skip:
        h.update(f"skip {skip.reason} {skip.detail}".encode())
        return h.hexdigest()
    for path in files:
        try:
            st = path.stat()
        except FileNotFoundError:
            h.update(f"{path.name} missing\n".encode())
            continue
        h.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _read_one(record: OfficialRecord, reader: OfficialReader | None = None):
    """-> (Sample, None, fingerprint) or (None, (reason, path, detail), fingerprint); other exceptions propagate."""
    reader = reader or _WORKER_READER
    fingerprint = source_fingerprint(reader, record)  # before reading: a change during the read shows next time
    try:
        return reader.read(record), None, fingerprint
    except SkipSample as skip:
        return None, (skip.reason, skip.path, skip.detail), fingerprint


# ---- main side -----------------------------------------------------------------------------------------------

def _plan(corpus: str, root: Path, split: str, records: list[OfficialRecord], chunk_size: int, min_frames: int,
          split_file: Path | None = None):
    names = hashlib.sha1("\n".join(r.name for r in records).encode()).hexdigest()
    plan = {"corpus": corpus, "root": str(root.resolve()), "split": split, "chunk_size": chunk_size,
            "min_frames": min_frames, "names_sha1": names, "count": len(records)}
    if split_file is not None and split_file.is_file():  # texts and options live in the split file
        st = split_file.stat()
        plan["split_file"] = [str(split_file), st.st_size, st.st_mtime_ns]
    return plan


def _open_cache(folder: Path, plan: dict, fresh: bool) -> set[int]:
    """Chunk ids already done by an interrupted run with the same plan (otherwise, or if fresh, a new cache)."""
    plan_file = folder / "plan.json"
    if plan_file.is_file() and not fresh:
        try:
            same = json.loads(plan_file.read_text()) == plan
        except json.JSONDecodeError:
            same = False
        if same:
            return {int(p.stem.split("-")[1]) for p in folder.glob("chunk-*.pkl")
                    if p.with_suffix(".json").is_file()}
        log.info("%s: cache from a different run (other records or options); starting the split afresh", folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    atomic_write_json(plan_file, plan)
    return set()


def _unchanged_chunks(reader, folder: Path, records, done: set[int], chunk_size: int) -> set[int]:
    """The cached chunks whose records' source files still have the fingerprints recorded with them."""
    kept = set()
    for k in sorted(done):
        try:
            recorded = json.loads((folder / f"chunk-{k:06d}.json").read_text())
        except (OSError, json.JSONDecodeError):
            recorded = None
        current = [source_fingerprint(reader, r) for r in records[k * chunk_size:(k + 1) * chunk_size]]
        if recorded == current:
            kept.add(k)
        else:
            log.info("%s: the sources of chunk %d changed since the interrupted run; reading them again", folder, k)
    return kept


def _save_chunk(folder: Path, k: int, results: list) -> None:
    """Write chunk ``k``: its fingerprints first, then the samples (the pickle marks the chunk done)."""
    atomic_write_json(folder / f"chunk-{k:06d}.json", [r[2] for r in results], compact=True)
    data = pickle.dumps([r[:2] for r in results], protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write(folder / f"chunk-{k:06d}.pkl", lambda fh: fh.write(data))
    fault_point("chunk-saved")


def _load_chunk(folder: Path, k: int) -> list:
    with open(folder / f"chunk-{k:06d}.pkl", "rb") as fh:
        return pickle.load(fh)


def _iter_results(reader, records, todo_chunks, chunk_size, workers):
    """Yield (chunk id, results of that chunk) for the chunks to compute, in order."""
    todo = [r for k in todo_chunks for r in records[k * chunk_size:(k + 1) * chunk_size]]
    if workers > 1 and len(todo) > 1:
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(reader,))
        stream = pool.map(_read_one, todo, chunksize=max(1, min(16, len(todo) // (4 * workers))))
    else:
        pool, stream = None, (_read_one(r, reader) for r in todo)
    try:
        for k in todo_chunks:
            size = len(records[k * chunk_size:(k + 1) * chunk_size])
            yield k, [next(stream) for _ in range(size)]
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _hash_split(split) -> str:
    h = hashlib.blake2b(digest_size=16)
    for i in range(0, len(split.frames), _BLOCK):
        h.update(np.ascontiguousarray(split.frames[i:i + _BLOCK], dtype="<f4").tobytes())
    return h.hexdigest()


def _verify(out: Path, split: str, names: list[str], frames: int, digest: str) -> None:
    try:
        sp = PackedStore(out).split(split)
    except StoreError as err:
        StoreWriter(out).remove_split(split)
        raise StoreError(f"{out / split}: verification failed ({err}); the split was removed, re-run "
                         f"`soke prepare`") from None
    problems = []
    if len(sp) != len(names):
        problems.append(f"{len(sp)} samples instead of {len(names)}")
    elif sp.names != names:
        problems.append("sample names differ from the split file order")
    if int(sp.lengths.sum()) != frames:
        problems.append(f"{int(sp.lengths.sum())} frames instead of {frames}")
    elif _hash_split(sp) != digest:
        problems.append("frame bytes differ from what was written")
    if problems:
        # Drop the split so the store no longer lists it; the next run rebuilds it.
        StoreWriter(out).remove_split(split)
        raise StoreError(f"{out / split}: verification failed: {'; '.join(problems)}; the split was removed, "
                         f"re-run `soke prepare`")


def _prepare_split(reader, writer: StoreWriter, split: str, workers: int, chunk_size: int,
                   progress: bool) -> SplitReport:
    with writer.split_lock(split):
        return _prepare_split_locked(reader, writer, split, workers, chunk_size, progress)


def _prepare_split_locked(reader, writer: StoreWriter, split: str, workers: int, chunk_size: int,
                          progress: bool) -> SplitReport:
    from tqdm.auto import tqdm

    start = time.perf_counter()
    report = SplitReport(split)
    listing = reader.list_split(split)
    report.listed = len(listing.records) + sum(len(v) for v in listing.dropped.values())
    split_file = reader.split_file(split)
    for reason, names in listing.dropped.items():
        for name in names:
            report._skip(reason, f"{split_file}:{name}")
    records = listing.records
    cache = writer.root / f".prepare-{split}"
    plan = _plan(reader.corpus_name, reader.root, split, records, chunk_size, reader.min_frames, split_file)
    done = _open_cache(cache, plan, fresh=writer.overwrite)
    n_chunks = (len(records) + chunk_size - 1) // chunk_size
    done = _unchanged_chunks(reader, cache, records, done & set(range(n_chunks)), chunk_size)
    report.resumed_chunks = len(done)
    todo = [k for k in range(n_chunks) if k not in done]
    bar = tqdm(total=len(records), desc=f"{reader.corpus_name}/{split}", unit="sample", disable=not progress,
               initial=sum(len(records[k * chunk_size:(k + 1) * chunk_size]) for k in done), dynamic_ncols=True)
    with bar:
        for k, results in _iter_results(reader, records, todo, chunk_size, workers):
            _save_chunk(cache, k, results)
            bar.update(len(results))

    digest = hashlib.blake2b(digest_size=16)
    names: list[str] = []
    with writer.split(split) as sw:
        for k in range(n_chunks):
            for sample, skip in _load_chunk(cache, k):
                if skip is not None:
                    reason, path, detail = skip
                    log.warning("skipping %s: %s (%s)", path, SKIP_REASONS.get(reason, reason), detail)
                    report._skip(reason, path)
                    continue
                sample: Sample
                sw.add(sample)
                digest.update(np.ascontiguousarray(sample.frames, dtype="<f4").tobytes())
                names.append(sample.name)
                report.frames += sample.num_frames
        report.written = sw.count
        if not sw.count:  # an empty split would only fail later (statistics, training) far from its cause
            reasons = ", ".join(f"{n} x {r}" for r, n in sorted(report.skipped.items())) or "it lists none"
            raise StoreError(f"{split_file}: split {split!r} has no usable sample ({report.listed} listed; skipped: "
                             f"{reasons}); check the split file, --exclude and --min-frames (warnings above name "
                             f"the skipped files)")
        sw.commit({"corpus": reader.corpus_name, "skipped": dict(report.skipped)})
    fault_point("prepare-committed")
    _verify(writer.root, split, names, report.frames, digest.hexdigest())
    shutil.rmtree(cache, ignore_errors=True)
    report.seconds = time.perf_counter() - start
    return report


def _finite_blocks(split):
    """The split's frames block by block; a non-finite value stops with the name of its sample."""
    for start, block in split.iter_blocks(_BLOCK):
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if bad.size:
            raise StoreError(f"{split.frames_path}: sample {split.sample_at_frame(start + int(bad[0]))!r} has "
                             f"non-finite frames (NaN or inf), so no statistics can be computed; re-create the split "
                             f"(`soke data verify {split.root}` lists every such sample)")
        yield block


def write_store_stats(store: str | os.PathLike, split: str = "train", out: str | os.PathLike | None = None) -> Path:
    """Compute normalisation statistics over every frame of ``split`` and write them (default STORE/normalization.pt).

    Returns:
        the path written.
    """
    packed = PackedStore(store)
    sp = packed.split(split)
    target = Path(out) if out is not None else packed.root / STATS_FILE
    if not len(sp.frames):
        raise StoreError(f"{sp.folder}: split {split!r} has no frames, so no statistics can be computed; pick a split "
                         f"with samples (--split)")
    mean, std, frames = compute_stats(_finite_blocks(sp), packed.layout)
    save_stats(target, mean, std, frames, source=f"{packed.root}:{split}")
    log.info("wrote normalisation statistics over %d frames of %s/%s to %s", frames, packed.root, split, target)
    return target


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def prepare_corpus(corpus: str, root: str | os.PathLike, out: str | os.PathLike, splits=None,
                   workers: int | None = None, overwrite: bool = False, exclude=None, stats: bool = True,
                   min_frames: int = 4, chunk_size: int = CHUNK_SIZE, progress: bool = True) -> PrepareReport:
    """Convert an official corpus into a packed store (see the module docstring).

    Args:
        corpus: "how2sign", "csl_daily" or "phoenix14t".
        root: the corpus folder in the official release layout.
        out: store directory (created or extended).
        splits: our split names (default: all of the corpus: train, val, test).
        workers: reader processes (default: min(8, CPUs)); 0 or 1 reads in this process.
        overwrite: rewrite splits that are already complete in the store.
        exclude: names to leave out (a file with one name per line, or an iterable).
        stats: write STORE/normalization.pt from the train split when it was (re)written or is missing.
        min_frames: samples with fewer frames are skipped (SOKE's loader fails on them).
        chunk_size: samples per resume chunk.
        progress: show a tqdm progress bar.

    Returns:
        a :class:`PrepareReport`.

    Raises:
        KeyError: unknown corpus or split (listing the valid ones).
        OfficialLayoutError: root or a split file missing (naming the expected path).
        StoreError: ``out`` holds another corpus, or verification failed.
    """
    reader = get_reader(corpus, root, exclude=exclude, min_frames=min_frames)
    wanted = list(reader.splits) if not splits else list(dict.fromkeys(splits))
    for split in wanted:
        reader.official_split(split)
        if not reader.split_file(split).is_file():
            raise OfficialLayoutError(f"{corpus} split {split!r}: split file {reader.split_file(split)} does not "
                                      f"exist; pass --split for the splits you have")
    out = Path(out)
    if (out / MANIFEST).is_file():
        existing = read_manifest(out, require_splits=False).get("info", {}).get("corpus")
        if existing and existing != corpus:
            raise StoreError(f"{out} holds corpus {existing!r}, not {corpus!r}; use another --out per corpus")
    workers = default_workers() if workers is None else int(workers)
    writer = StoreWriter(out, info={"corpus": corpus, "language": CORPORA[corpus].language, "layout": "official",
                                    "source_root": str(Path(root).resolve())}, overwrite=overwrite)
    report = PrepareReport(corpus, str(root), str(out))
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        for split in wanted:
            if writer.has_split(split) and not overwrite:
                try:
                    PackedStore(out).split(split)  # O(records): the index agrees with the frames and the manifest
                except StoreError as err:
                    log.warning("%s: split %r is damaged (%s); writing it again", out, split, err)
                    writer.remove_split(split)
                else:
                    entry = writer.manifest["splits"][split]
                    report.splits[split] = SplitReport(split, "exists", written=entry.get("samples", 0),
                                                       frames=entry.get("frames", 0),
                                                       skipped=dict(entry.get("skipped", {})))
                    # A run killed after its commit leaves its resume cache; the split is complete, so drop it.
                    shutil.rmtree(out / f".prepare-{split}", ignore_errors=True)
                    log.info("%s: split %r is complete; skipping it (pass --overwrite to rebuild)", out, split)
                    continue
            report.splits[split] = _prepare_split(reader, writer, split, workers, chunk_size, progress)
    if stats and "train" in writer.manifest["splits"]:
        stats_file = out / STATS_FILE
        rewritten = report.splits.get("train") is not None and report.splits["train"].status == "written"
        if rewritten or not stats_file.is_file():
            report.stats_path = str(write_store_stats(out, "train"))
    elif stats:
        log.warning("%s has no train split yet: normalisation statistics not written", out)
    return report
