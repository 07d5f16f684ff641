"""Per-neuron profiles for the neuron inspector, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from collapse_tui.metrics import decoder_neighbours, neuron_profiles


def test_profiles_of_a_hand_made_code():
    # 5 samples x 3 neurons; neuron 2 never fires. Factor 0 takes values 0/1, factor 1 is constant 7.
    acts = np.array([[0.0, 2.0, 0.0],
                     [3.0, 0.0, 0.0],
                     [1.0, 2.0, 0.0],
                     [0.0, 5.0, 0.0],
                     [4.0, 0.0, 0.0]], np.float32)
    factors = np.array([[0, 7], [1, 7], [0, 7], [1, 7], [1, 7]])
    p = neuron_profiles(acts, factors, top=3)
    np.testing.assert_allclose(p["frequency"], [3 / 5, 3 / 5, 0.0])
    np.testing.assert_allclose(p["max_activation"], [4.0, 5.0, 0.0])
    np.testing.assert_allclose(p["mean_activation"], [8 / 5, 9 / 5, 0.0])
    # Largest first; the tie of neuron 1 (2.0 on rows 0 and 2) keeps both; the dead neuron has none.
    assert p["top_examples"][0].tolist() == [4, 1, 2]
    assert p["top_examples"][1].tolist()[0] == 3 and sorted(p["top_examples"][1].tolist()[1:]) == [0, 2]
    assert p["top_examples"][2].tolist() == [-1, -1, -1]
    np.testing.assert_allclose(p["top_values"], [[4, 3, 1], [5, 2, 2], [0, 0, 0]])
    # Tuning: factor 0 = 0 on rows 0, 2; = 1 on rows 1, 3, 4.
    assert [v.tolist() for v in p["tuning_values"]] == [[0, 1], [7]]
    np.testing.assert_allclose(p["tuning"][0], [[0.5, 7 / 3], [2.0, 5 / 3], [0.0, 0.0]])
    np.testing.assert_allclose(p["tuning"][1], [[8 / 5], [9 / 5], [0.0]])


def test_top_pads_beyond_the_rows_that_fired_and_beyond_the_samples():
    acts = np.array([[1.0], [0.0]], np.float32)
    p = neuron_profiles(acts, np.zeros((2, 1), int), top=4)
    assert p["top_examples"].tolist() == [[0, -1, -1, -1]]
    np.testing.assert_allclose(p["top_values"], [[1, 0, 0, 0]])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="factors"):
        neuron_profiles(np.zeros((3, 2)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="top"):
        neuron_profiles(np.zeros((3, 2)), np.zeros((3, 1)), top=0)


def test_decoder_neighbours_by_cosine():
    # Rows 0 and 1 point almost the same way; row 2 is orthogonal to both; row 3 is zero.
    w = np.array([[1.0, 0.0], [2.0, 0.2], [0.0, -3.0], [0.0, 0.0]])
    idx, cos = decoder_neighbours(w, count=4)
    c01 = 2.0 / np.hypot(2.0, 0.2)
    assert idx[0, :1].tolist() == [1] and cos[0, 0] == pytest.approx(c01)
    assert idx[1, 0] == 0 and cos[1, 0] == pytest.approx(c01)
    # Row 2: cos with row 0 is 0, with the zero row 0, with row 1 negative: the two zeros first.
    assert sorted(idx[2, :2].tolist()) == [0, 3] and cos[2, 2] == pytest.approx(-0.2 / np.hypot(2.0, 0.2))
    assert (cos[3, :3] == 0).all()
    # Three others only: the fourth slot is padding.
    assert (idx[:, 3] == -1).all() and np.isnan(cos[:, 3]).all()


def _neighbours_in_one_piece(w, count):
    """The whole cosine matrix, sorted stably row by row: what the blocked version must reproduce."""
    w = np.asarray(w, dtype=np.float64)
    m = w.shape[0]
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    unit = np.divide(w, norms, out=np.zeros_like(w), where=norms > 0)
    cos = unit @ unit.T
    np.fill_diagonal(cos, -np.inf)
    keep = min(count, m - 1)
    order = np.argsort(-cos, axis=1, kind="stable")[:, :keep]
    return order, np.take_along_axis(cos, order, axis=1)


@pytest.mark.parametrize("block", [1, 7, 1 << 22])
def test_decoder_neighbours_in_blocks_match_the_whole_matrix_ties_included(monkeypatch, block):
    import importlib

    module = importlib.import_module("collapse_tui.metrics.neuron_profiles")  # the package's name is the function
    monkeypatch.setattr(module, "_NEIGHBOUR_BLOCK", block)
    rng = np.random.default_rng(0)
    # Axis-aligned rows (cosines exactly 1, 0 or -1: ties everywhere, to the lower index), zero rows, and
    # random rows (no ties).
    axis = np.zeros((40, 6))
    axis[np.arange(40), rng.integers(0, 6, 40)] = rng.choice([-2.0, 1.0, 3.0], 40)
    axis[[5, 17, 30]] = 0.0
    for w in (axis, rng.normal(size=(50, 6)), np.concatenate([axis, rng.normal(size=(30, 6))])):
        for count in (1, 3, 8, 200):
            idx, cos = decoder_neighbours(w, count=count)
            want_idx, want_cos = _neighbours_in_one_piece(w, count)
            keep = want_idx.shape[1]
            np.testing.assert_array_equal(idx[:, :keep], want_idx)
            np.testing.assert_allclose(cos[:, :keep], want_cos.astype(np.float32), rtol=0, atol=1e-6)
            assert (idx[:, keep:] == -1).all() and np.isnan(cos[:, keep:]).all()


def test_decoder_neighbours_of_a_large_dictionary_stay_in_bounded_memory():
    import tracemalloc

    # The whole cosine matrix of 12,000 neurons would be 1.15 GB, its argsort as much again.
    w = np.random.default_rng(1).normal(size=(12_000, 8)).astype(np.float32)
    tracemalloc.start()
    try:
        idx, _ = decoder_neighbours(w)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert idx.shape == (12_000, 8) and (idx >= 0).all()
    assert peak < 300e6, f"peak {peak / 1e6:.0f} MB"
