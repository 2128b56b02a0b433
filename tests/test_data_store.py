"""The packed store: exact round trip, atomic splits, clear errors."""

import json

import numpy as np
import pytest

from soke_lightning.data.store import Sample, StoreError, StoreWriter, open_store


def _sample(name, t, lang="asl", seed=0):
    frames = np.random.default_rng(seed).normal(size=(t, 179)).astype(np.float32)
    return Sample(name, f"text {name} ü 你好", lang, "synthsign", frames, 25.0, {"concepts": [1, 2]})


def test_roundtrip_exact(tmp_path):
    samples = [_sample(f"s{i}", 5 + i, lang, i) for i, lang in enumerate(["asl", "csl", "dgs", "asl"])]
    with StoreWriter(tmp_path / "st", info={"corpus": "synthsign"}).split("train") as w:
        for s in samples:
            w.add(s)
    store = open_store(tmp_path / "st")
    assert store.splits == ("train",)
    assert store.info == {"corpus": "synthsign"}
    sp = store.split("train")
    assert len(sp) == 4
    for s, got in zip(samples, sp):
        assert got.name == s.name and got.text == s.text and got.lang == s.lang and got.meta == s.meta
        assert got.frames.dtype == np.float32 and np.array_equal(got.frames, s.frames)
    assert sp.by_name("s2").lang == "dgs"
    summary = store.summary()
    assert summary["train"]["samples"] == 4
    assert summary["train"]["languages"]["asl"]["samples"] == 2
    assert summary["train"]["frames"] == sum(s.num_frames for s in samples)


def test_failed_split_is_invisible(tmp_path):
    writer = StoreWriter(tmp_path / "st")
    with writer.split("train") as w:
        w.add(_sample("a", 4))
    with pytest.raises(RuntimeError, match="boom"):
        with writer.split("val") as w:
            w.add(_sample("b", 4))
            raise RuntimeError("boom")
    store = open_store(tmp_path / "st")
    assert store.splits == ("train",)
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "st").iterdir())


def test_bad_samples_and_existing_split(tmp_path):
    writer = StoreWriter(tmp_path / "st")
    with writer.split("train") as w:
        with pytest.raises(ValueError, match="NaN"):
            w.add(Sample("n", "", "asl", "x", np.full((3, 179), np.nan, np.float32), 25.0))
        with pytest.raises(ValueError, match=r"\[T, 179\]"):
            w.add(Sample("n", "", "asl", "x", np.zeros((3, 133), np.float32), 25.0))
        w.add(_sample("a", 3))
        with pytest.raises(ValueError, match="twice"):
            w.add(_sample("a", 3))
    with pytest.raises(StoreError, match="exists already"):
        StoreWriter(tmp_path / "st").split("train")
    with StoreWriter(tmp_path / "st", overwrite=True).split("train") as w:
        w.add(_sample("z", 2))
    assert open_store(tmp_path / "st").split("train").names == ["z"]


def test_errors_name_paths(tmp_path):
    with pytest.raises(StoreError, match="soke prepare"):
        open_store(tmp_path)
    with StoreWriter(tmp_path / "st").split("train") as w:
        w.add(_sample("a", 3))
    with pytest.raises(StoreError, match="no split 'test'"):
        open_store(tmp_path / "st").split("test")
    # truncate frames.bin -> corrupt store detected with the byte counts
    fb = tmp_path / "st" / "train" / "frames.bin"
    fb.write_bytes(fb.read_bytes()[:-4])
    with pytest.raises(StoreError, match="corrupt"):
        open_store(tmp_path / "st").split("train")
    manifest = tmp_path / "st" / "store.json"
    data = json.loads(manifest.read_text())
    data["version"] = 99
    manifest.write_text(json.dumps(data))
    with pytest.raises(StoreError, match="version 99"):
        open_store(tmp_path / "st")


def test_verify_at_open_refuses_changed_bytes_that_the_index_check_cannot_see(tmp_path):
    with StoreWriter(tmp_path / "st").split("train") as w:
        w.add(_sample("a", 4))
        w.add(_sample("b", 3, seed=1))
    frames = tmp_path / "st" / "train" / "frames.bin"
    data = bytearray(frames.read_bytes())
    data[4 * 179 * 4 + 8] ^= 0x01  # one bit of sample b: same size, still finite
    frames.write_bytes(bytes(data))
    assert open_store(tmp_path / "st").split("train").verify()[0].startswith(f"{frames}: content hash ")
    open_store(tmp_path / "st").split("train")  # the O(records) check passes: sizes and offsets are intact
    with pytest.raises(StoreError) as err:
        open_store(tmp_path / "st", verify=True).split("train")
    assert str(err.value).startswith(f"{frames}: content hash ")
    assert str(err.value).endswith("differs from the one recorded at commit (" +
                                   json.loads((tmp_path / "st" / "store.json").read_text())["splits"]["train"][
                                       "frames_blake2b"] + "); the file changed after it was written; re-create it "
                                   "(`soke prepare ... --overwrite --split train`, or `soke synth` for SynthSign)")


def test_verify_names_every_sample_with_non_finite_frames_once_in_file_order(tmp_path):
    with StoreWriter(tmp_path / "st").split("train") as w:
        for i in range(12):
            w.add(_sample(f"s{i:02d}", 3 + i % 4, seed=i))
    frames = np.memmap(tmp_path / "st" / "train" / "frames.bin", dtype="<f4", mode="r+")
    frames[:] = np.inf  # every frame of every sample
    frames.flush()
    del frames
    split = open_store(tmp_path / "st").split("train")
    problems = split.verify()
    names = ", ".join(repr(f"s{i:02d}") for i in range(10))
    assert problems[0] == (f"{split.frames_path}: 12 sample(s) with non-finite frames (NaN or inf): {names} and 2 "
                           f"more")
    with pytest.raises(StoreError, match="sample 's07' \\(#7\\) has non-finite frames"):
        split[7]
