"""Load-time temporal processing (docs/design.md §2.5) on hand-checked examples."""

import numpy as np
import pytest

from soke_lightning.data.processing import TemporalProcessing, fps_cap_indices, length_indices


def test_fps_cap_hand_example():
    # count = int(24 * 10 / 30) = 8; floor(i * 10 / 8) for i = 0..7
    assert fps_cap_indices(10, 30.0, 24.0).tolist() == [0, 1, 2, 3, 5, 6, 7, 8]


def test_fps_cap_count_follows_int_rule():
    for n, fps in [(100, 29.97), (37, 60.0), (250, 24.5)]:
        idx = fps_cap_indices(n, fps, 24.0)
        assert idx.size == int(24.0 * n / fps)
        assert idx[0] == 0 and idx[-1] < n and np.all(np.diff(idx) >= 1)


def test_fps_cap_keeps_everything_at_or_below_cap():
    assert fps_cap_indices(7, 24.0, 24.0).tolist() == list(range(7))
    assert fps_cap_indices(7, 25.0, None).tolist() == list(range(7))
    assert fps_cap_indices(7, 12.0, 24.0).tolist() == list(range(7))


def test_fps_cap_never_empties_a_sequence():
    assert fps_cap_indices(1, 30.0, 24.0).tolist() == [0]


def test_stretch_short_sequence():
    # floor(linspace(0, 2, 8)) = floor([0, .29, .57, .86, 1.14, 1.43, 1.71, 2])
    assert length_indices(3, min_len=8, max_len=40, unit_len=4).tolist() == [0, 0, 0, 0, 1, 1, 1, 2]


def test_subsample_long_sequence():
    # floor(linspace(0, 9, 8)) = floor([0, 1.29, 2.57, 3.86, 5.14, 6.43, 7.71, 9])
    assert length_indices(10, min_len=4, max_len=8, unit_len=4).tolist() == [0, 1, 2, 3, 5, 6, 7, 9]


def test_centre_crop_to_multiple_of_unit():
    # T = 11 -> T' = 8, start = floor(3 / 2) = 1
    assert length_indices(11, min_len=4, max_len=40, unit_len=4).tolist() == list(range(1, 9))
    assert length_indices(43).tolist() == list(range(1, 41))
    assert length_indices(400).tolist() == list(range(400))
    assert length_indices(40).tolist() == list(range(40))


def test_default_bounds():
    assert length_indices(10).size == 40
    assert length_indices(401).size == 400
    assert length_indices(1000)[-1] == 999
    assert length_indices(39)[-1] == 38


def test_random_crop_covers_all_offsets_and_keeps_length():
    rng = np.random.default_rng(0)
    starts = {int(length_indices(11, 4, 40, 4, rng=rng)[0]) for _ in range(200)}
    assert starts == {0, 1, 2, 3}
    assert all(length_indices(11, 4, 40, 4, rng=rng).size == 8 for _ in range(20))


def test_invalid_bounds_are_rejected():
    with pytest.raises(ValueError, match="multiples of unit_len"):
        length_indices(50, min_len=42, max_len=400, unit_len=4)
    with pytest.raises(ValueError, match="larger than max_len"):
        TemporalProcessing(min_len=80, max_len=40)
    with pytest.raises(ValueError, match="at least one frame"):
        length_indices(0)


def test_pipeline_composes_cap_then_length():
    proc = TemporalProcessing()
    # 600 frames at 30 fps -> 480 at 24 fps -> subsampled to 400
    idx = proc.indices(600, 30.0, 24.0)
    cap = fps_cap_indices(600, 30.0, 24.0)
    assert cap.size == 480
    assert idx.tolist() == cap[np.floor(np.linspace(0, 479, 400)).astype(int)].tolist()
    # the cap can be switched off
    assert TemporalProcessing(apply_fps_cap=False).indices(600, 30.0, 24.0).tolist() == length_indices(600).tolist()
    assert proc.output_fps(30.0, 24.0) == 24.0 and proc.output_fps(25.0, None) == 25.0


def test_output_length_matches_indices():
    rng = np.random.default_rng(1)
    proc = TemporalProcessing(min_len=8, max_len=64, unit_len=4)
    for _ in range(300):
        n = int(rng.integers(1, 200))
        fps = float(rng.choice([24.0, 25.0, 29.97, 30.0, 60.0]))
        cap = [None, 24.0][int(rng.integers(0, 2))]
        idx = proc.indices(n, fps, cap)
        assert idx.size == proc.output_length(n, fps, cap)
        assert idx.size % 4 == 0 and 8 <= idx.size <= 64
        assert idx.min() >= 0 and idx.max() < n and np.all(np.diff(idx) >= 0)


def test_call_selects_frames():
    frames = np.arange(11 * 2, dtype=np.float32).reshape(11, 2)
    out = TemporalProcessing(min_len=4, max_len=40, unit_len=4)(frames, 25.0, None)
    np.testing.assert_array_equal(out, frames[1:9])
