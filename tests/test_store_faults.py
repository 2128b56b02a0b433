"""Crash recovery and concurrent writers of the packed store and `soke prepare`.

Fault injection: a forked child runs `prepare` with ``SOKE_FAULT_POINT`` naming one step of the write; the child
dies there without any clean-up (``os._exit``, like a kill). For every kill point x scenario the store must then
hold exactly the old state or exactly the new one, a re-run must finish the job and leave nothing behind, and
`prepare` must tell the two states apart (an interrupted split is "written" again; a committed one "exists").
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest

from soke_lightning.cli import main as soke_main
from soke_lightning.core.io import FAULT_ENV, FAULT_EXIT_CODE, LockedError
from soke_lightning.data.official import write_official_split
from soke_lightning.data.prepare import prepare_corpus
from soke_lightning.data.store import LOCK_FILE, MANIFEST, Sample, StoreError, StoreWriter, open_store

#: Every fault point of a `prepare` run, in the order it reaches them, and whether the split is committed there.
KILL_POINTS = {
    "chunk-saved": False,          # a resume chunk is on disk
    "split-files-written": False,  # frames.bin / index.jsonl complete and flushed in the temporary folder
    "split-moved": False,          # the folder renamed into the store, store.json not yet replaced
    "manifest-written": True,      # store.json replaced (the switch), the old folder not yet removed
    "prepare-committed": True,     # committed, not yet verified, resume cache not yet removed
}
#: scenario -> (splits already in the store before the run, overwrite)
SCENARIOS = {"first-split": ((), False), "second-split": (("val",), False), "overwrite": (("val", "train"), True)}
FORK = multiprocessing.get_context("fork")


def _samples(split: str, n: int, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    return [Sample(f"{split}_{i:03d}", f"你好 {split} {i}", "csl", "csl_daily",
                   rng.normal(size=(int(rng.integers(4, 9)), 179)).astype(np.float32), 30.0) for i in range(n)]


def _prepare(raw: Path, out: Path, split: str, overwrite: bool):
    return prepare_corpus("csl_daily", raw, out, splits=[split], workers=0, overwrite=overwrite, stats=False,
                          chunk_size=2, progress=False)


def _killed_prepare(raw: Path, out: Path, split: str, overwrite: bool, point: str) -> int:
    def child():
        os.environ[FAULT_ENV] = point
        _prepare(raw, out, split, overwrite)
        os._exit(0)

    proc = FORK.Process(target=child)
    proc.start()
    proc.join(60)
    return proc.exitcode


def _state(out: Path, split: str):
    """The frames of ``split`` as the store shows them (None: absent or no store at all)."""
    try:
        store = open_store(out)
    except StoreError as err:
        assert "not a soke store" in str(err)
        return None
    if split not in store:
        return None
    return [(s.name, s.frames) for s in store.split(split)]


def _same(state, samples) -> bool:
    return state is not None and [n for n, _ in state] == [s.name for s in samples] and all(
        np.array_equal(f, s.frames) for (_, f), s in zip(state, samples))


def _leftovers(out: Path) -> list[str]:
    """Entries of the store folder that are neither referenced by store.json nor its lock files."""
    import json

    manifest = json.loads((out / MANIFEST).read_text())
    used = {e.get("dir", name) for name, e in manifest["splits"].items()}
    keep = used | {MANIFEST, "normalization.pt"}
    return sorted(p.name for p in out.iterdir() if p.name not in keep and not p.name.startswith(LOCK_FILE))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_at_every_point_leaves_old_or_new_state(tmp_path, point, scenario):
    before, overwrite = SCENARIOS[scenario]
    raw, out = tmp_path / "raw", tmp_path / "store"
    old = {split: _samples(split, 3, seed) for seed, split in enumerate(before)}
    for split, samples in old.items():
        write_official_split(raw, "csl_daily", split, samples)
        _prepare(raw, out, split, False)
    new = _samples("train", 5, seed=7)  # new sources (for "overwrite": other frames under the same names)
    write_official_split(raw, "csl_daily", "train", new)

    assert _killed_prepare(raw, out, "train", overwrite, point) == FAULT_EXIT_CODE
    state = _state(out, "train")
    if KILL_POINTS[point]:
        assert _same(state, new), "committed: the store must show the new split"
    elif "train" in old:
        assert _same(state, old["train"]), "not committed: the store must show the old split"
    else:
        assert state is None, "not committed: the split must not exist"
    if "val" in old:
        assert _same(_state(out, "val"), old["val"]), "another split must never be touched"

    report = _prepare(raw, out, "train", overwrite)
    expected = "exists" if KILL_POINTS[point] and not overwrite else "written"
    assert report.splits["train"].status == expected
    assert _same(_state(out, "train"), new)
    assert _leftovers(out) == []


def test_two_writers_of_different_splits_in_one_process_both_land(tmp_path):
    a, b = StoreWriter(tmp_path / "s", {"corpus": "synthsign"}), StoreWriter(tmp_path / "s", {"corpus": "synthsign"})
    train, val = _samples("train", 3, 0), _samples("val", 2, 1)
    with a.split("train") as wa, b.split("val") as wb:  # both open before either commits
        for s in train:
            wa.add(s)
        for s in val:
            wb.add(s)
    assert open_store(tmp_path / "s").splits == ("train", "val")
    assert _same(_state(tmp_path / "s", "train"), train) and _same(_state(tmp_path / "s", "val"), val)


def test_two_processes_prepare_different_splits_at_once(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "store"
    samples = {split: _samples(split, 6, seed) for seed, split in enumerate(("train", "val", "test"))}
    for split, s in samples.items():
        write_official_split(raw, "csl_daily", split, s)
    barrier = FORK.Barrier(3)

    def child(split):
        barrier.wait()
        _prepare(raw, out, split, False)
        os._exit(0)

    procs = [FORK.Process(target=child, args=(split,)) for split in samples]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert sorted(open_store(out).splits) == ["test", "train", "val"]
    for split, s in samples.items():
        assert _same(_state(out, split), s)
    assert _leftovers(out) == []


def test_a_second_run_on_the_same_split_is_refused(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "store"
    write_official_split(raw, "csl_daily", "train", _samples("train", 2, 0))
    with StoreWriter(out).split_lock("train"):  # what a running `soke prepare --split train` holds
        assert soke_main(["prepare", "--corpus", "csl_daily", "--root", str(raw), "--out", str(out), "--split",
                          "train", "--workers", "0", "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"soke prepare: {out}: split 'train' is being written by another process (pid {os.getpid()}); wait for it to "
        f"finish or write another split")
    assert not (out / MANIFEST).exists()


def test_a_commit_waits_for_the_store_lock_then_gives_up_clearly(tmp_path):
    writer = StoreWriter(tmp_path / "s", lock_timeout=0.3)
    with writer.lock():
        other = StoreWriter(tmp_path / "s", lock_timeout=0.2)
        split = other.split("train")
        split.add(_samples("train", 1, 0)[0])
        with pytest.raises(LockedError) as err:
            split.commit()
    assert str(err.value) == (f"{tmp_path / 's'}: another process (pid {os.getpid()}) kept this store locked for more "
                              f"than 0.2 s; wait for it to finish, or write to another folder")
    assert not list((tmp_path / "s").glob(".tmp-*")), "the refused writer removes its temporary folder"
    released = threading.Event()

    def hold_briefly():
        with writer.lock():
            released.wait(0.1)

    thread = threading.Thread(target=hold_briefly)
    thread.start()
    with StoreWriter(tmp_path / "s", lock_timeout=5).split("train") as w:  # waits for the holder, then commits
        w.add(_samples("train", 1, 0)[0])
    thread.join()
    assert open_store(tmp_path / "s").splits == ("train",)


def test_the_same_split_committed_meanwhile_is_refused_not_lost(tmp_path):
    a, b = StoreWriter(tmp_path / "s"), StoreWriter(tmp_path / "s")
    first, second = _samples("train", 2, 0), _samples("train", 3, 1)
    wa, wb = a.split("train"), b.split("train")
    for s in first:
        wa.add(s)
    for s in second:
        wb.add(s)
    wa.commit()
    with pytest.raises(StoreError) as err:
        wb.commit()
    assert str(err.value) == (f"{tmp_path / 's'}: split 'train' was committed by another writer meanwhile; pass "
                              f"overwrite=True (`--overwrite`) to replace it")
    assert _same(_state(tmp_path / "s", "train"), first)


def test_resume_rereads_chunks_whose_sources_changed(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "store"
    samples = _samples("train", 5, 0)
    write_official_split(raw, "csl_daily", "train", samples)
    assert _killed_prepare(raw, out, "train", False, "chunk-saved") == FAULT_EXIT_CODE  # chunk 0 cached
    frame_file = sorted((raw / "poses" / samples[0].name).glob("*.pkl"))[0]
    with open(frame_file, "rb") as fh:
        frame = pickle.load(fh)
    for value in frame.values():
        value += 1.0  # new content in place: same names, same sizes, so only the modification time tells
    with open(frame_file, "wb") as fh:
        pickle.dump(frame, fh)
    st = frame_file.stat()
    os.utime(frame_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    report = _prepare(raw, out, "train", False)
    assert report.splits["train"].resumed_chunks == 0
    got = open_store(out).split("train")[0].frames
    np.testing.assert_allclose(got[0], samples[0].frames[0] + 1.0, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got[1:], samples[0].frames[1:])


def test_only_temporary_folders_of_dead_writers_are_removed(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    dead = FORK.Process(target=os._exit, args=(0,))
    dead.start()
    dead.join()
    left = {name: root / name for name in (f".tmp-train-{dead.pid}-abc", f".tmp-train-{os.getppid()}-abc",
                                           f".tmp-train-5-{dead.pid}-abc")}  # the last: split 'train-5'
    for path in left.values():
        path.mkdir()
    first = StoreWriter(root).split("train")
    second = StoreWriter(root).split("train")  # same process: must not remove the first one's folder
    assert first.tmp_dir.is_dir() and second.tmp_dir.is_dir()
    assert sorted(p.name for p in left.values() if p.exists()) == sorted(
        [f".tmp-train-{os.getppid()}-abc", f".tmp-train-5-{dead.pid}-abc"])
    first.abort()
    second.abort()
