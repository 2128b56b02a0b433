"""`soke prepare`: official layout -> packed store, exact round trip, skips counted, atomic, resumable, verified."""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from soke_lightning.cli import main as soke_main
from soke_lightning.data import prepare as prepare_mod
from soke_lightning.data.normalization import load_stats
from soke_lightning.data.official import OfficialLayoutError, write_official_split
from soke_lightning.data.prepare import prepare_corpus
from soke_lightning.data.store import Sample, StoreError, open_store

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_loading.py"
LANG = {"how2sign": "asl", "csl_daily": "csl", "phoenix14t": "dgs"}
TEXT = {"how2sign": "the cat sat.", "csl_daily": "你好，世界", "phoenix14t": "schöne grüße aus köln"}
PREFIX = {"how2sign": "", "csl_daily": "", "phoenix14t": "{split}/"}


def corpus_samples(corpus, split, n, seed, lengths=None):
    rng = np.random.default_rng(seed)
    official = {"val": "dev"}.get(split, split) if corpus == "phoenix14t" else split
    out = []
    for i in range(n):
        t = lengths[i] if lengths else int(rng.integers(4, 15))
        name = PREFIX[corpus].format(split=official) + f"{split}_{i:03d}"
        out.append(Sample(name, f"{TEXT[corpus]} #{i}", LANG[corpus], corpus,
                          rng.normal(size=(t, 179)).astype(np.float32),
                          {"how2sign": 24.0, "csl_daily": 30.0, "phoenix14t": 25.0}[corpus]))
    return out


def write_corpus(root, corpus, sizes=(("train", 5), ("val", 3), ("test", 2)), lengths=None):
    written = {}
    for j, (split, n) in enumerate(sizes):
        written[split] = corpus_samples(corpus, split, n, seed=j, lengths=lengths)
        write_official_split(root, corpus, split, written[split])
    return written


def assert_store_equals(store, split, samples):
    sp = store.split(split)
    assert sp.names == [s.name for s in samples]
    for got, ref in zip(sp, samples, strict=True):
        assert got.frames.dtype == np.float32
        np.testing.assert_array_equal(got.frames, ref.frames)
        assert (got.text, got.lang, got.corpus, got.fps) == (ref.text, ref.lang, ref.corpus, ref.fps)


@pytest.mark.parametrize("corpus", ["how2sign", "csl_daily", "phoenix14t"])
def test_prepare_round_trip_all_splits(tmp_path, corpus, capsys):
    written = write_corpus(tmp_path / "raw", corpus)
    report = prepare_corpus(corpus, tmp_path / "raw", tmp_path / "store", workers=0, progress=False)
    store = open_store(tmp_path / "store")
    assert set(store.splits) == {"train", "val", "test"}
    for split, samples in written.items():
        assert_store_equals(store, split, samples)
        assert report.splits[split].written == len(samples)
        assert report.splits[split].frames == sum(s.num_frames for s in samples)
    assert report.num_skipped == 0
    assert store.info["corpus"] == corpus
    # normalisation stats from the train split only
    mean, std = load_stats(tmp_path / "store")
    train = np.concatenate([s.frames for s in written["train"]]).astype(np.float64)
    torch.testing.assert_close(mean, torch.from_numpy(train.mean(0)).float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(std, torch.from_numpy(train.std(0)).float(), rtol=1e-4, atol=1e-5)
    assert not list((tmp_path / "store").glob(".prepare-*")), "resume cache must be removed after a commit"
    capsys.readouterr()
    assert soke_main(["data", "info", str(tmp_path / "store")]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()
            if line.split() and line.split()[0] in written}
    for split, samples in written.items():
        assert rows[split][1:4] == [LANG[corpus], str(len(samples)), str(sum(s.num_frames for s in samples))]


def _rewrite_frame(path, how):
    frame = pickle.load(open(path, "rb"))
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:-7])
        return
    if how == "missing_key":
        del frame["smplx_lhand_pose"]
    elif how == "wrong_shape":
        frame["smplx_rhand_pose"] = np.zeros((2, 45), np.float32)
    elif how == "nan":
        frame["smplx_expr"][0] = np.inf
    pickle.dump(frame, open(path, "wb"))


def test_bad_files_skipped_and_counted_with_workers(tmp_path, caplog):
    root = tmp_path / "raw"
    samples = write_corpus(root, "csl_daily", sizes=(("train", 8),), lengths=[6, 6, 6, 6, 6, 3, 6, 6])["train"]
    bad = {1: "truncated", 2: "missing_key", 3: "wrong_shape", 4: "nan"}
    for i, how in bad.items():
        _rewrite_frame(root / "poses" / samples[i].name / "000002.pkl", how)
    caplog.set_level("WARNING")
    report = prepare_corpus("csl_daily", root, tmp_path / "store", splits=["train"], workers=2, chunk_size=3,
                            progress=False)
    keep = [s for i, s in enumerate(samples) if i not in bad and i != 5]
    assert_store_equals(open_store(tmp_path / "store"), "train", keep)
    r = report.splits["train"]
    assert r.skipped == {"unreadable": 1, "missing_key": 1, "wrong_shape": 1, "non_finite": 1, "too_short": 1}
    assert r.listed == 8 and r.written == 3
    assert str(root / "poses" / samples[2].name / "000002.pkl") in r.skipped_files
    assert str(root / "poses" / samples[5].name) in r.skipped_files
    assert "000002.pkl" in caplog.text and samples[4].name in caplog.text
    assert "total skipped: 5" in report.format()
    assert json.loads((tmp_path / "store/store.json").read_text())["splits"]["train"]["skipped"]["too_short"] == 1


def test_how2sign_filters_counted(tmp_path):
    root = tmp_path / "raw"
    samples = corpus_samples("how2sign", "train", 3, seed=1, lengths=[12, 20, 11])
    samples[1].fps = 0.5  # 20 frames at 0.5 fps = 40 s >= 30 s: dropped like the reference does
    write_official_split(root, "how2sign", "train", samples)
    excl = tmp_path / "bad_fits.txt"
    excl.write_text(samples[2].name + "\n")
    report = prepare_corpus("how2sign", root, tmp_path / "store", splits=["train"], workers=0, exclude=excl,
                            progress=False)
    assert_store_equals(open_store(tmp_path / "store"), "train", samples[:1])
    assert report.splits["train"].skipped == {"too_long": 1, "excluded": 1}


def test_cli_prepare_and_single_split(tmp_path, capsys):
    written = write_corpus(tmp_path / "raw", "phoenix14t")
    rc = soke_main(["prepare", "--corpus", "phoenix14t", "--root", str(tmp_path / "raw"), "--out",
                    str(tmp_path / "store"), "--split", "val", "--workers", "0", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "val" in out and "total skipped: 0" in out
    store = open_store(tmp_path / "store")
    assert store.splits == ("val",)
    assert_store_equals(store, "val", written["val"])
    assert not (tmp_path / "store/normalization.pt").exists()  # no train split yet


def test_missing_split_file_and_unknown_corpus(tmp_path, capsys):
    write_corpus(tmp_path / "raw", "csl_daily", sizes=(("train", 2),))
    with pytest.raises(OfficialLayoutError, match=r"csl_clean\.val"):
        prepare_corpus("csl_daily", tmp_path / "raw", tmp_path / "store", workers=0, progress=False)
    assert not (tmp_path / "store").exists() or "val" not in open_store(tmp_path / "store")
    with pytest.raises(KeyError, match="how2sign.*phoenix14t"):
        prepare_corpus("dgs_corpus", tmp_path / "raw", tmp_path / "store")
    rc = soke_main(["prepare", "--corpus", "dgs_corpus", "--root", str(tmp_path), "--out", str(tmp_path / "s")])
    assert rc == 2 and "csl_daily" in capsys.readouterr().err
    rc = soke_main(["prepare", "--corpus", "how2sign", "--root", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert rc == 2 and str(tmp_path / "nope") in capsys.readouterr().err
    with pytest.raises(KeyError, match="no split 'dev'"):
        prepare_corpus("phoenix14t", tmp_path / "raw", tmp_path / "store", splits=["dev"])


def test_resume_skips_complete_split_and_refuses_other_corpus(tmp_path):
    written = write_corpus(tmp_path / "raw", "csl_daily", sizes=(("train", 3), ("val", 2)))
    prepare_corpus("csl_daily", tmp_path / "raw", tmp_path / "store", splits=["train"], workers=0, progress=False)
    mtime = (tmp_path / "store/train/frames.bin").stat().st_mtime_ns
    report = prepare_corpus("csl_daily", tmp_path / "raw", tmp_path / "store", splits=["train", "val"], workers=0,
                            progress=False)
    assert report.splits["train"].status == "exists" and report.splits["val"].status == "written"
    assert (tmp_path / "store/train/frames.bin").stat().st_mtime_ns == mtime
    report = prepare_corpus("csl_daily", tmp_path / "raw", tmp_path / "store", splits=["train"], workers=0,
                            overwrite=True, progress=False)
    assert report.splits["train"].status == "written"
    assert_store_equals(open_store(tmp_path / "store"), "val", written["val"])
    write_corpus(tmp_path / "h2s", "how2sign", sizes=(("train", 1),))
    with pytest.raises(StoreError, match="holds corpus 'csl_daily'"):
        prepare_corpus("how2sign", tmp_path / "h2s", tmp_path / "store", splits=["train"], workers=0)


def test_crash_leaves_no_split_and_resume_reuses_chunks(tmp_path, monkeypatch):
    written = write_corpus(tmp_path / "raw", "csl_daily", sizes=(("train", 7),))["train"]
    real = prepare_mod._read_one
    calls = []

    def crash_after_four(record, reader=None):
        calls.append(record.name)
        if len(calls) > 4:
            raise RuntimeError("simulated crash")
        return real(record, reader)

    monkeypatch.setattr(prepare_mod, "_read_one", crash_after_four)
    with pytest.raises(RuntimeError, match="simulated crash"):
        prepare_corpus("csl_daily", tmp_path / "raw", tmp_path / "store", splits=["train"], workers=0, chunk_size=2, progress=False)
    with pytest.raises(StoreError, match="not a soke store"):  # nothing that looks complete: no store at all
        open_store(tmp_path / "store")
    assert len(list((tmp_path / "store/.prepare-train").glob("chunk-*.pkl"))) == 2

    stale = tmp_path / "store/.tmp-train-999999999"  # what a killed StoreWriter leaves behind
    stale.mkdir()
    (stale / "frames.bin").write_bytes(b"x" * 716)
    calls.clear()
    monkeypatch.setattr(prepare_mod, "_read_one", lambda record, reader=None: (calls.append(record.name),
                                                                              real(record, reader))[1])
    report = prepare_corpus("csl_daily", tmp_path / "raw", tmp_path / "store", splits=["train"], workers=0, chunk_size=2,
                            progress=False)
    assert report.splits["train"].resumed_chunks == 2
    assert not stale.exists()
    assert calls == [s.name for s in written[4:]]
    assert_store_equals(open_store(tmp_path / "store"), "train", written)


def test_verification_detects_corruption(tmp_path, monkeypatch):
    write_corpus(tmp_path / "raw", "csl_daily", sizes=(("train", 2),))
    original = prepare_mod._verify
    kw = dict(splits=["train"], workers=0, progress=False)

    def corrupt_then_verify(out, split, names, frames, digest):
        with open(out / split / "frames.bin", "r+b") as fh:
            fh.seek(8)
            fh.write(b"\x00\x00\x80\x7f")
        return original(out, split, names, frames, digest)

    monkeypatch.setattr(prepare_mod, "_verify", corrupt_then_verify)
    with pytest.raises(StoreError, match="frame bytes differ"):
        prepare_corpus("csl_daily", tmp_path / "raw", tmp_path / "store", **kw)
    with pytest.raises(StoreError, match="no committed split"):  # the failed split was dropped from the manifest
        open_store(tmp_path / "store")
    monkeypatch.setattr(prepare_mod, "_verify", original)
    report = prepare_corpus("csl_daily", tmp_path / "raw", tmp_path / "store", **kw)
    assert report.splits["train"].status == "written"


def test_loading_benchmark_runs_and_reports_both_paths():
    spec = importlib.util.spec_from_file_location("bench_loading", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--samples", "4", "--min-frames", "5", "--max-frames", "9", "--repeats", "1",
                         "--workers", "0"])
    assert result["samples"] == 4 and 20 <= result["frames"] <= 36
    assert result["official_samples_per_s"] > 0 and result["store_samples_per_s"] > 0
    # The ratio is the one the two rates give (each rounded to 0.1), not an independent number.
    ratio = result["store_samples_per_s"] / result["official_samples_per_s"]
    assert abs(result["store_vs_official"] - ratio) <= 0.05 + 0.05 * ratio + 0.1
    assert result["prepare_workers"] == 0
