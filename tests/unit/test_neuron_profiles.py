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
