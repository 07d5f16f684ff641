"""The ridge probe in its dual form: the same weights as the primal, at a cost that grows with the samples
rather than the features (a dictionary of 100,000 neurons would need a 75 GiB Gram matrix otherwise)."""

import tracemalloc

import numpy as np
import pytest

from collapse_tui.metrics.interpretability import linear_probe, ridge_weights


def test_dual_and_primal_give_the_hand_computed_weights_with_fewer_samples_than_features():
    # One sample (1, 0, 1) with target 2, penalty 1: w = x' (x x' + 1)^-1 y = (1, 0, 1) * 2 / 3.
    x = np.array([[1.0, 0.0, 1.0]])
    y = np.array([[2.0]])
    expected = np.array([[2 / 3], [0.0], [2 / 3]])
    for form in ("primal", "dual", "auto"):
        np.testing.assert_allclose(ridge_weights(x, y, 1.0, form=form), expected, rtol=0, atol=1e-12)


def test_dual_and_primal_give_the_hand_computed_weights_with_more_samples_than_features():
    # Samples 1 and 2 of one feature, targets 1 and 2, penalty 1: w = (1 + 4 + 1)^-1 (1 + 4) = 5/6.
    x = np.array([[1.0], [2.0]])
    y = np.array([[1.0], [2.0]])
    for form in ("primal", "dual", "auto"):
        np.testing.assert_allclose(ridge_weights(x, y, 1.0, form=form), [[5 / 6]], rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(30, 80), (80, 30)])
@pytest.mark.parametrize("penalty", [0.3, 24.0])
def test_dual_and_primal_agree_to_1e_8(shape, penalty):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    x[:, 3] = 0.0  # a dead feature: weight 0 in both forms
    y = rng.normal(size=(shape[0], 4))
    primal = ridge_weights(x, y, penalty, form="primal")
    dual = ridge_weights(x, y, penalty, form="dual")
    np.testing.assert_allclose(dual, primal, rtol=0, atol=1e-8)
    assert not dual[3].any() and not primal[3].any()


def test_without_penalty_both_forms_give_the_least_squares_solution():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 12))
    y = rng.normal(size=(40, 2))
    expected = np.linalg.lstsq(x, y, rcond=None)[0]
    for form in ("primal", "dual"):
        np.testing.assert_allclose(ridge_weights(x, y, 0.0, form=form), expected, rtol=0, atol=1e-8)


def test_the_probe_reads_the_same_in_either_form():
    rng = np.random.default_rng(2)
    factors = np.stack([rng.integers(0, 3, 60), rng.integers(0, 5, 60)], axis=1)
    codes = np.maximum(rng.normal(size=(60, 90)) + 0.5 * np.repeat(factors, 45, axis=1), 0.0)
    codes[:, :10] = 0.0  # dead neurons
    primal = linear_probe(codes, factors, form="primal")
    dual = linear_probe(codes, factors, form="dual")
    np.testing.assert_array_equal(dual.accuracy, primal.accuracy)
    np.testing.assert_allclose(dual.importance, primal.importance, rtol=0, atol=1e-8)
    assert linear_probe(codes, factors).importance == pytest.approx(dual.importance, abs=1e-8)


def test_a_probe_of_20000_neurons_on_200_samples_stays_in_bounded_memory():
    # The primal Gram matrix alone would be 20,000² float64 = 3.2 GB.
    rng = np.random.default_rng(3)
    factors = rng.integers(0, 4, (200, 2))
    codes = np.maximum(rng.normal(size=(200, 20_000)), 0.0).astype(np.float32)
    tracemalloc.start()
    try:
        probe = linear_probe(codes, factors)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert probe.importance.shape == (20_000, 2)
    assert peak < 300e6, f"peak {peak / 1e6:.0f} MB"


def test_an_unknown_form_is_refused():
    with pytest.raises(ValueError, match="form"):
        ridge_weights(np.ones((2, 2)), np.ones((2, 1)), 1.0, form="both")
