"""Official-layout readers and writer: round trips per corpus, frame ordering, filters, bad frames, errors."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from soke_lightning.data.official import (
    OfficialLayoutError,
    SkipSample,
    get_reader,
    read_frame_file,
    write_official_split,
)
from soke_lightning.data.store import Sample

LANG = {"how2sign": "asl", "csl_daily": "csl", "phoenix14t": "dgs"}
TEXTS = {"how2sign": "Hello, world.", "csl_daily": "我们今天去学校。", "phoenix14t": "über müde grüße äöü"}


def make_samples(corpus, split, n=3, seed=0, lengths=None, fps=None):
    rng = np.random.default_rng(seed)
    prefix = {"val": "dev", "train": "train", "test": "test"}[split] + "/" if corpus == "phoenix14t" else ""
    out = []
    for i in range(n):
        t = lengths[i] if lengths else int(rng.integers(5, 14))
        frames = rng.normal(size=(t, 179)).astype(np.float32)
        out.append(Sample(f"{prefix}s{i:03d}_x", f"{TEXTS[corpus]} {i}", LANG[corpus], corpus, frames,
                          fps if fps else {"how2sign": 24.0, "csl_daily": 30.0, "phoenix14t": 25.0}[corpus],
                          {"signer": f"P{i}"}))
    return out


@pytest.mark.parametrize("corpus", ["how2sign", "csl_daily", "phoenix14t"])
def test_round_trip_each_corpus(tmp_path, corpus):
    samples = make_samples(corpus, "val", lengths=[12, 5, 9])
    write_official_split(tmp_path, corpus, "val", samples)
    reader = get_reader(corpus, tmp_path)
    listing = reader.list_split("val")
    assert [r.name for r in listing.records] == [s.name for s in samples]
    assert listing.dropped == {}
    for rec, ref in zip(listing.records, samples, strict=True):
        got = reader.read(rec)
        assert got.frames.dtype == np.float32
        np.testing.assert_array_equal(got.frames, ref.frames)
        assert (got.name, got.text, got.lang, got.corpus, got.fps) == (ref.name, ref.text, ref.lang, corpus, ref.fps)
        assert got.meta == {"signer": ref.meta["signer"]}


@pytest.mark.parametrize("corpus", ["how2sign", "csl_daily", "phoenix14t"])
def test_rewriting_a_sample_shorter_drops_its_surplus_frames(tmp_path, corpus):
    write_official_split(tmp_path, corpus, "val", make_samples(corpus, "val", lengths=[12, 5, 9]))
    shorter = make_samples(corpus, "val", seed=1, lengths=[4, 5, 9])
    write_official_split(tmp_path, corpus, "val", shorter)
    reader = get_reader(corpus, tmp_path)
    got = reader.read(reader.list_split("val").records[0]).frames
    np.testing.assert_array_equal(got, shorter[0].frames)  # 4 frames, not 4 new + 8 stale


def test_official_file_names_and_formats(tmp_path):
    write_official_split(tmp_path / "h", "how2sign", "train", make_samples("how2sign", "train", 1, lengths=[3]))
    assert sorted(p.name for p in (tmp_path / "h/train/poses/s000_x").iterdir()) == [
        "s000_x_0_3D.pkl", "s000_x_1_3D.pkl", "s000_x_2_3D.pkl"]
    header = (tmp_path / "h/train/re_aligned/how2sign_realigned_train_preprocessed_fps.csv").read_text().splitlines()[0]
    assert header.startswith("SENTENCE_NAME,START_REALIGNED,END_REALIGNED,SENTENCE,fps")

    write_official_split(tmp_path / "p", "phoenix14t", "val", make_samples("phoenix14t", "val", 1, lengths=[2]))
    assert sorted(p.name for p in (tmp_path / "p/dev/s000_x").iterdir()) == ["images0001.pkl", "images0002.pkl"]
    with gzip.open(tmp_path / "p/phoenix14t.dev", "rb") as fh:
        records = pickle.load(fh)
    assert records == [{"name": "dev/s000_x", "text": f"{TEXTS['phoenix14t']} 0", "signer": "P0"}]

    write_official_split(tmp_path / "c", "csl_daily", "test", make_samples("csl_daily", "test", 1, lengths=[2]))
    frame = pickle.load(open(tmp_path / "c/poses/s000_x/000001.pkl", "rb"))
    assert set(frame) == {"smplx_root_pose", "smplx_body_pose", "smplx_lhand_pose", "smplx_rhand_pose",
                          "smplx_jaw_pose", "smplx_shape", "smplx_expr"}
    assert all(v.dtype == np.float32 for v in frame.values())
    assert (tmp_path / "c/csl_clean.test").is_file()


def test_how2sign_numeric_frame_order(tmp_path):
    # 12 frames: lexicographic order would put _10_ and _11_ before _2_.
    samples = make_samples("how2sign", "test", 1, lengths=[12])
    samples[0].frames[:, 0] = np.arange(12)
    write_official_split(tmp_path, "how2sign", "test", samples)
    reader = get_reader("how2sign", tmp_path)
    rec = reader.list_split("test").records[0]
    assert [int(p.name.split("_")[-2]) for p in reader.frame_files(rec)] == list(range(12))
    np.testing.assert_array_equal(reader.read(rec).frames[:, 0], np.arange(12, dtype=np.float32))


def test_how2sign_long_rows_dropped_and_exclude(tmp_path):
    samples = make_samples("how2sign", "train", 3, lengths=[6, 31, 7], fps=1.0)  # 31 frames at 1 fps = 31 s
    write_official_split(tmp_path, "how2sign", "train", samples)
    listing = get_reader("how2sign", tmp_path).list_split("train")
    assert [r.name for r in listing.records] == ["s000_x", "s002_x"]
    assert listing.dropped == {"too_long": ["s001_x"]}
    excl = tmp_path / "exclude.txt"
    excl.write_text("# failed fits\ns002_x\n")
    listing = get_reader("how2sign", tmp_path, exclude=excl).list_split("train")
    assert [r.name for r in listing.records] == ["s000_x"]
    assert listing.dropped == {"too_long": ["s001_x"], "excluded": ["s002_x"]}


def test_fps_other_than_default_survives_gzip_layout(tmp_path):
    write_official_split(tmp_path, "csl_daily", "train", make_samples("csl_daily", "train", 1, fps=12.5))
    reader = get_reader("csl_daily", tmp_path)
    assert reader.read(reader.list_split("train").records[0]).fps == 12.5


def _corrupt(path, how):
    frame = pickle.load(open(path, "rb"))
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:20])
        return
    if how == "missing_key":
        del frame["smplx_expr"]
    elif how == "wrong_shape":
        frame["smplx_body_pose"] = np.zeros(60, np.float32)
    elif how == "nan":
        frame["smplx_jaw_pose"][1] = np.nan
    pickle.dump(frame, open(path, "wb"))


@pytest.mark.parametrize("how,reason", [("truncated", "unreadable"), ("missing_key", "missing_key"),
                                        ("wrong_shape", "wrong_shape"), ("nan", "non_finite")])
def test_bad_frames_raise_skip_with_path(tmp_path, how, reason):
    write_official_split(tmp_path, "csl_daily", "train", make_samples("csl_daily", "train", 1, lengths=[6]))
    bad = tmp_path / "poses/s000_x/000003.pkl"
    _corrupt(bad, how)
    with pytest.raises(SkipSample) as err:
        read_frame_file(bad)
    assert err.value.reason == reason and err.value.path == str(bad)
    reader = get_reader("csl_daily", tmp_path)
    with pytest.raises(SkipSample, match="000003.pkl"):
        reader.read(reader.list_split("train").records[0])


def test_short_missing_and_gapped_samples_skip(tmp_path):
    write_official_split(tmp_path, "how2sign", "val", make_samples("how2sign", "val", 3, lengths=[3, 8, 8]))
    (tmp_path / "val/poses/s001_x/s001_x_4_3D.pkl").unlink()
    for p in (tmp_path / "val/poses/s002_x").iterdir():
        p.unlink()
    (tmp_path / "val/poses/s002_x").rmdir()
    reader = get_reader("how2sign", tmp_path)
    reasons = []
    for rec in reader.list_split("val").records:
        with pytest.raises(SkipSample) as err:
            reader.read(rec)
        reasons.append(err.value.reason)
    assert reasons == ["too_short", "missing_frames", "no_poses"]


def test_errors_name_paths_and_valid_choices(tmp_path):
    with pytest.raises(OfficialLayoutError, match="nowhere"):
        get_reader("csl_daily", tmp_path / "nowhere")
    with pytest.raises(OfficialLayoutError, match=r"csl_clean\.val"):
        get_reader("csl_daily", tmp_path).list_split("val")
    with pytest.raises(OfficialLayoutError, match=r"phoenix14t\.dev"):
        get_reader("phoenix14t", tmp_path).list_split("val")
    with pytest.raises(OfficialLayoutError, match="how2sign_realigned_test_preprocessed_fps.csv"):
        get_reader("how2sign", tmp_path).list_split("test")
    with pytest.raises(KeyError, match="csl_daily.*how2sign.*phoenix14t"):
        get_reader("dgs_corpus", tmp_path)
    with pytest.raises(KeyError, match="valid languages"):
        write_official_split(tmp_path, "csl_daily", "train",
                             [Sample("a", "t", "bsl", "csl_daily", np.zeros((4, 179), np.float32), 30.0)])
    with pytest.raises(ValueError, match="must start with 'dev/'"):
        write_official_split(tmp_path, "phoenix14t", "val", make_samples("phoenix14t", "train", 1))


def test_how2sign_tab_separated_csv_and_missing_columns(tmp_path):
    samples = make_samples("how2sign", "train", 1, lengths=[5], fps=29.97)
    write_official_split(tmp_path, "how2sign", "train", samples)
    csv_path = tmp_path / "train/re_aligned/how2sign_realigned_train_preprocessed_fps.csv"
    # The original How2Sign release is tab-separated, with VIDEO_ID etc. before the sentence columns.
    csv_path.write_text("VIDEO_ID\tSENTENCE_NAME\tSTART_REALIGNED\tEND_REALIGNED\tSENTENCE\tfps\n"
                        "vid1\ts000_x\t1.5\t3.0\tA sentence, with a comma.\t29.97\n", encoding="utf-8")
    reader = get_reader("how2sign", tmp_path)
    (rec,) = reader.list_split("train").records
    assert (rec.name, rec.text, rec.fps, rec.meta) == ("s000_x", "A sentence, with a comma.", 29.97,
                                                       {"VIDEO_ID": "vid1"})
    np.testing.assert_array_equal(reader.read(rec).frames, samples[0].frames)
    csv_path.write_text("SENTENCE_NAME,SENTENCE\ns000_x,hi\n", encoding="utf-8")
    with pytest.raises(OfficialLayoutError, match=r"missing columns \['START_REALIGNED', 'END_REALIGNED', 'fps'\]"):
        reader.list_split("train")


def test_duplicate_names_keep_first(tmp_path):
    samples = make_samples("csl_daily", "train", 2, lengths=[4, 4])
    write_official_split(tmp_path, "csl_daily", "train", [samples[0], samples[1], samples[0]])
    listing = get_reader("csl_daily", tmp_path).list_split("train")
    assert [r.name for r in listing.records] == [samples[0].name, samples[1].name]
    assert listing.dropped == {"duplicate": [samples[0].name]}
