"""Normalisation statistics: official mean.pt/std.pt, our stats file, computation."""

import numpy as np
import pytest
import torch

from soke_lightning.core.layout import FEATURE_FROM_RAW
from soke_lightning.data.normalization import EPS, Normalizer, compute_stats, load_stats, save_stats


def test_official_files_reduce_to_133(tmp_path):
    mean, std = torch.randn(179), torch.rand(179) + 0.1
    torch.save(mean, tmp_path / "mean.pt")
    torch.save(std, tmp_path / "std.pt")
    norm = Normalizer.from_file(tmp_path)
    idx = torch.as_tensor(FEATURE_FROM_RAW)
    assert torch.equal(norm.mean, mean[idx]) and torch.equal(norm.std, std[idx])
    x = torch.randn(2, 7, 133)
    assert torch.allclose(norm.normalize(x), (x - mean[idx]) / (std[idx] + EPS))
    assert torch.allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-5)
    assert set(norm.state_dict()) == {"mean", "std"}


def test_compute_save_load(tmp_path):
    rng = np.random.default_rng(1)
    chunks = [rng.normal(2.0, 3.0, size=(n, 179)) for n in (50, 70, 30)]
    mean, std, frames = compute_stats(chunks)
    allf = np.concatenate(chunks)
    assert frames == 150
    assert np.allclose(mean.numpy(), allf.mean(0), atol=1e-5)
    assert np.allclose(std.numpy(), allf.std(0), atol=1e-4)
    save_stats(tmp_path / "normalization.pt", mean, std, frames, "test")
    m2, s2 = load_stats(tmp_path)  # a directory holding normalization.pt works too
    assert torch.equal(m2, mean) and torch.equal(s2, std)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="mean.pt"):
        load_stats(tmp_path)
    torch.save({"mean": torch.zeros(10), "std": torch.ones(10)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="expected 179"):
        load_stats(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="zero frames"):
        compute_stats([])
