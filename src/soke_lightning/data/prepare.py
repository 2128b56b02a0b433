"""Convert an official corpus (How2Sign, CSL-Daily, Phoenix-2014T) into a packed store (behind `soke prepare`).

Frames are read in parallel worker processes (output order = split-file order) and kept RAW (179-d); resampling
and length rules happen at load time. Each split is written atomically and verified by re-opening the store
(sample count, names, frame total and a checksum of every byte). Resumable: complete splits are skipped unless
``overwrite``, and an interrupted split resumes from the chunk files under STORE/.prepare-<split>/. Unusable
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
from soke_lightning.data.store import MANIFEST, PackedStore, Sample, StoreError, StoreWriter, read_manifest

log = logging.getLogger(__name__)

#: Samples per resume chunk (one cache file each under STORE/.prepare-<split>/).
CHUNK_SIZE = 256
#: Frames per block when hashing / computing statistics over a split's memory map.
_BLOCK = 1 << 16


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


def _read_one(record: OfficialRecord, reader: OfficialReader | None = None):
    """-> (Sample, None) or (None, (reason, path, detail)); any other exception is a bug and propagates."""
    try:
        return (reader or _WORKER_READER).read(record), None
    except SkipSample as skip:
        return None, (skip.reason, skip.path, skip.detail)


# ---- main side -----------------------------------------------------------------------------------------------

def _plan(corpus: str, root: Path, split: str, records: list[OfficialRecord], chunk_size: int, min_frames: int):
    names = hashlib.sha1("\n".join(r.name for r in records).encode()).hexdigest()
    return {"corpus": corpus, "root": str(root.resolve()), "split": split, "chunk_size": chunk_size,
            "min_frames": min_frames, "names_sha1": names, "count": len(records)}


def _open_cache(folder: Path, plan: dict, fresh: bool) -> set[int]:
    """Chunk ids already done by an interrupted run with the same plan (otherwise, or if fresh, a new cache)."""
    plan_file = folder / "plan.json"
    if plan_file.is_file() and not fresh:
        try:
            same = json.loads(plan_file.read_text()) == plan
        except json.JSONDecodeError:
            same = False
        if same:
            return {int(p.stem.split("-")[1]) for p in folder.glob("chunk-*.pkl")}
        log.info("%s: cache from a different run (other records or options); starting the split afresh", folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    plan_file.write_text(json.dumps(plan))
    return set()


def _save_chunk(folder: Path, k: int, results: list) -> None:
    path = folder / f"chunk-{k:06d}.pkl"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(results, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


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
    sp = PackedStore(out).split(split)
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
        # Remove the split's folder so the store no longer looks complete; the next run rebuilds it.
        shutil.rmtree(out / split, ignore_errors=True)
        raise StoreError(f"{out / split}: verification failed: {'; '.join(problems)}; the split was removed, "
                         f"re-run `soke prepare`")


def _prepare_split(reader, writer: StoreWriter, split: str, workers: int, chunk_size: int,
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
    plan = _plan(reader.corpus_name, reader.root, split, records, chunk_size, reader.min_frames)
    done = _open_cache(cache, plan, fresh=writer.overwrite)
    n_chunks = (len(records) + chunk_size - 1) // chunk_size
    done &= set(range(n_chunks))
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
        sw.commit({"corpus": reader.corpus_name, "skipped": dict(report.skipped)})
    _verify(writer.root, split, names, report.frames, digest.hexdigest())
    shutil.rmtree(cache, ignore_errors=True)
    report.seconds = time.perf_counter() - start
    return report


def write_store_stats(store: str | os.PathLike, split: str = "train", out: str | os.PathLike | None = None) -> Path:
    """Compute normalisation statistics over every frame of ``split`` and write them (default STORE/normalization.pt).

    Returns:
        the path written.
    """
    packed = PackedStore(store)
    sp = packed.split(split)
    target = Path(out) if out is not None else packed.root / STATS_FILE
    mean, std, frames = compute_stats((sp.frames[i:i + _BLOCK] for i in range(0, len(sp.frames), _BLOCK)),
                                      packed.layout)
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
        existing = read_manifest(out).get("info", {}).get("corpus")
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
                entry = writer.manifest["splits"][split]
                report.splits[split] = SplitReport(split, "exists", written=entry.get("samples", 0),
                                                   frames=entry.get("frames", 0),
                                                   skipped=dict(entry.get("skipped", {})))
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
