"""The input's effective rank and the split of dead neurons by cause, against hand-computed values."""

import numpy as np
import pytest

from collapse_tui.metrics import dead_causes, input_rank


def test_two_equal_orthogonal_directions_have_rank_two():
    x = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    rank = input_rank(x)
    assert rank.participation_ratio == pytest.approx(2.0) and rank.dims_for_variance == 2
    assert (rank.silent_units, rank.units) == (0, 2)


def test_unequal_directions_and_silent_units():
    # Variances 100 : 1 along the axes (columns orthogonal and centred), plus a column that never fires.
    x = np.array([[10.0, 1.0, 0.0], [10.0, -1.0, 0.0], [-10.0, 1.0, 0.0], [-10.0, -1.0, 0.0]])
    rank = input_rank(x)
    assert rank.participation_ratio == pytest.approx(101 ** 2 / (100 ** 2 + 1))
    assert rank.dims_for_variance == 1  # 100 / 101 = 0.990 of the variance
    assert input_rank(x, share=0.995).dims_for_variance == 2
    assert rank.silent_units == 1


def test_constant_input_and_bad_input():
    rank = input_rank(np.ones((5, 3)))
    assert (rank.participation_ratio, rank.dims_for_variance, rank.silent_units) == (0.0, 0, 3)
    with pytest.raises(ValueError, match="finite"):
        input_rank(np.array([[np.nan, 1.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="2 samples"):
        input_rank(np.ones((1, 3)))
    with pytest.raises(ValueError, match="share"):
        input_rank(np.eye(3), share=0.0)


def test_dead_neurons_split_into_relu_dead_and_gated_dead():
    acts = np.array([[0.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 1.0]])
    pre = np.array([[-1.0, 0.5, 0.0, 2.0], [-2.0, -1.0, 0.0, 1.0]])
    causes = dead_causes(acts, pre)
    # Neuron 0 never positive, 2 at most exactly 0: ReLU-dead; 1 positive once but never kept: gated.
    assert causes.relu_dead.tolist() == [True, False, True, False]
    assert causes.gated_dead.tolist() == [False, True, False, False]
    assert (causes.relu_fraction, causes.gated_fraction) == (0.5, 0.25)
    # A threshold above 1 makes neuron 3 dead too, and it was positive: gated.
    assert dead_causes(acts, pre, threshold=2.0).gated_dead.tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match="same shape"):
        dead_causes(acts, pre[:, :3])
