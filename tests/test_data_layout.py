"""The pose layout: 179 -> 133 selection, streams, inverse, official pickle keys."""

import numpy as np
import pytest
import torch

from soke_lightning.core import layout


def test_feature_selection_matches_spec():
    raw = np.arange(layout.RAW_DIM, dtype=np.float32)
    feats = layout.raw_to_features(raw)
    assert feats.shape == (133,)
    # features 0-29 = body joints 12-21 = raw 36:66; 30-74 lhand = raw 66:111; 75-119 rhand = raw 111:156
    assert np.array_equal(feats[:30], np.arange(36, 66))
    assert np.array_equal(feats[30:75], np.arange(66, 111))
    assert np.array_equal(feats[75:120], np.arange(111, 156))
    assert np.array_equal(feats[120:123], np.arange(156, 159))  # jaw
    assert np.array_equal(feats[123:], np.arange(169, 179))  # expression


def test_streams_partition_the_features():
    parts = layout.SOKE_LAYOUT.part_dims()
    assert parts == {"body": 43, "lhand": 45, "rhand": 45}
    covered = sorted(i for p in layout.SOKE_LAYOUT.parts for i in p.indices)
    assert covered == list(range(133))
    body = layout.SOKE_LAYOUT.part("body").indices
    assert body[:30] == tuple(range(30)) and body[30:] == tuple(range(120, 133))


def test_split_merge_roundtrip_torch():
    x = torch.randn(2, 8, 133)
    for lay in (layout.SOKE_LAYOUT, layout.COUPLED_LAYOUT):
        parts = lay.split(x)
        assert torch.equal(lay.merge(parts), x)
    with pytest.raises(KeyError, match="missing parts"):
        layout.SOKE_LAYOUT.merge({"body": torch.zeros(1, 43)})
    with pytest.raises(KeyError, match="valid"):
        layout.get_layout("four_part")


def test_features_to_raw_zeroes_lower_body_and_sets_betas():
    feats = torch.randn(3, 133, dtype=torch.float64)
    raw = layout.features_to_raw(feats)
    assert raw.shape == (3, 179)
    assert torch.all(raw[:, :36] == 0)
    assert torch.allclose(raw[:, 159:169], torch.tensor(layout.FIXED_BETAS, dtype=torch.float64).expand(3, 10))
    assert torch.equal(layout.raw_to_features(raw), feats)
    raw_np = layout.features_to_raw(feats.numpy())
    assert np.array_equal(raw_np, raw.numpy())


def test_frame_dict_roundtrip_and_errors():
    raw = np.random.default_rng(0).normal(size=179).astype(np.float32)
    d = layout.frame_to_dict(raw)
    assert [k for k in d] == [k for k, _ in layout.RAW_KEYS]
    assert np.array_equal(layout.frame_from_dict(d).astype(np.float32), raw)
    bad = dict(d)
    del bad["smplx_expr"]
    with pytest.raises(KeyError, match="smplx_expr"):
        layout.frame_from_dict(bad, source="x.pkl")
    bad = dict(d, smplx_jaw_pose=np.zeros(4))
    with pytest.raises(ValueError, match="smplx_jaw_pose.*expected 3"):
        layout.frame_from_dict(bad, source="x.pkl")
