"""`soke data info` / `soke data stats` on stores produced by `soke prepare` and by the StoreWriter."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from soke_lightning.cli import main as soke_main
from soke_lightning.data.normalization import load_stats
from soke_lightning.data.official import write_official_split
from soke_lightning.data.store import Sample, StoreWriter


def _sample(name, lang, corpus, t, fps, seed):
    frames = np.random.default_rng(seed).normal(size=(t, 179)).astype(np.float32)
    return Sample(name, f"text {name}", lang, corpus, frames, fps)


@pytest.fixture
def prepared_store(tmp_path):
    lengths = [4, 9, 10, 30]
    samples = [_sample(f"S{i:03d}", "csl", "csl_daily", t, 30.0, i) for i, t in enumerate(lengths)]
    write_official_split(tmp_path / "raw", "csl_daily", "train", samples)
    write_official_split(tmp_path / "raw", "csl_daily", "test", samples[:2])
    store = tmp_path / "store"
    rc = soke_main(["prepare", "--corpus", "csl_daily", "--root", str(tmp_path / "raw"), "--out", str(store),
                    "--split", "train", "--split", "test", "--workers", "0", "--no-progress", "--no-stats"])
    assert rc == 0
    return store, samples


def test_info_table_and_json(prepared_store, capsys):
    store, samples = prepared_store
    capsys.readouterr()
    assert soke_main(["data", "info", str(store)]) == 0
    out = capsys.readouterr().out
    assert "corpus: csl_daily" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("train", "test"))}
    # split, lang, samples, frames, min, median, max, fps
    assert rows["train"][:8] == ["train", "csl", "4", "53", "4", "9.5", "30", "30"]
    assert rows["test"][:7] == ["test", "csl", "2", "13", "4", "6.5", "9"]

    assert soke_main(["data", "info", str(store), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["info"]["corpus"] == "csl_daily"
    assert data["splits"]["train"]["languages"]["csl"]["frames"] == sum(s.num_frames for s in samples)


def test_info_mixed_languages_shows_total(tmp_path, capsys):
    writer = StoreWriter(tmp_path / "mix")
    with writer.split("val") as sw:
        sw.add(_sample("a", "asl", "how2sign", 12, 24.0, 0))
        sw.add(_sample("b", "asl", "how2sign", 20, 29.97, 1))
        sw.add(_sample("c", "dgs", "phoenix14t", 7, 25.0, 2))
    assert soke_main(["data", "info", str(tmp_path / "mix")]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if line.startswith("val")]
    assert [line[1] for line in lines] == ["asl", "dgs", "all"]
    assert lines[2][2:4] == ["3", "39"]
    assert "24 (x1), 29.97 (x1)" in out


def test_stats_command(prepared_store, tmp_path, capsys):
    store, samples = prepared_store
    out_file = tmp_path / "stats.pt"
    assert soke_main(["data", "stats", str(store), "--out", str(out_file)]) == 0
    assert str(out_file) in capsys.readouterr().out
    mean, std = load_stats(out_file)
    frames = np.concatenate([s.frames for s in samples]).astype(np.float64)
    torch.testing.assert_close(mean, torch.from_numpy(frames.mean(0)).float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(std, torch.from_numpy(frames.std(0)).float(), rtol=1e-4, atol=1e-5)
    assert torch.load(out_file, weights_only=True)["frames"] == frames.shape[0]
    # default location: next to the manifest, where load_stats(STORE) finds it
    assert soke_main(["data", "stats", str(store), "--split", "test"]) == 0
    mean_test, _ = load_stats(store)
    test_frames = np.concatenate([s.frames for s in samples[:2]]).astype(np.float64)
    torch.testing.assert_close(mean_test, torch.from_numpy(test_frames.mean(0)).float(), rtol=1e-5, atol=1e-5)


def test_errors_name_the_store(tmp_path, capsys):
    assert soke_main(["data", "info", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == (f"soke data info: {tmp_path / 'missing'}: not a soke store (store.json is "
                                       f"missing); create one with `soke prepare` (official corpora) or `soke synth` "
                                       f"(SynthSign)\n")
    with StoreWriter(tmp_path / "s").split("val") as split:
        split.add(Sample("a", "a", "asl", "synthsign", np.zeros((4, 179), np.float32), 25.0))
    assert soke_main(["data", "stats", str(tmp_path / "s"), "--split", "train"]) == 2
    assert capsys.readouterr().err == f"soke data stats: {tmp_path / 's'}: no split 'train'; it has val\n"
