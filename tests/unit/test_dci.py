"""DCI's importance models against references on the same codes: gradient-boosted trees as
disentanglement_lib fits them (its evaluation/metrics/dci.py, transcribed below), and the ridge probe's
weights rescaled per factor, which must not favour factors with more classes."""

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.ensemble import GradientBoostingClassifier

from collapse_tui.metrics import dci, linear_probe, ridge_importance, tree_importance, tree_split


def planted_codes(n=300, seed=1):
    """Factors of 3 and 4 values; code 0 reads the first, code 1 the second, code 2 both, code 3 noise,
    code 4 constant (a dead unit). Continuous noise so no two splits tie."""
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(0, 3, n), rng.integers(0, 4, n)], axis=1)
    codes = np.stack([
        factors[:, 0] + 0.3 * rng.normal(size=n),
        factors[:, 1] + 0.3 * rng.normal(size=n),
        factors[:, 0] + factors[:, 1] + rng.normal(size=n),
        rng.normal(size=n),
        np.zeros(n),
    ], axis=1)
    return codes, factors


def disentanglement_lib_dci(codes, factors, train, test, seed):
    """disentanglement_lib's compute_importance_gbt and scores, written out from its source (codes as
    samples x codes here; their 1e-11 added before the entropies)."""
    importance = np.zeros((codes.shape[1], factors.shape[1]))
    accuracy = []
    for j in range(factors.shape[1]):
        model = GradientBoostingClassifier(random_state=seed)
        model.fit(codes[train], factors[train, j])
        importance[:, j] = np.abs(model.feature_importances_)
        accuracy.append(np.mean(model.predict(codes[test]) == factors[test, j]))
    per_code = 1.0 - stats.entropy(importance.T + 1e-11, base=importance.shape[1])
    code_weight = importance.sum(axis=1) / importance.sum()
    per_factor = 1.0 - stats.entropy(importance + 1e-11, base=importance.shape[0])
    factor_weight = importance.sum(axis=0) / importance.sum()
    return importance, (per_code * code_weight).sum(), (per_factor * factor_weight).sum(), np.mean(accuracy)


def test_tree_dci_is_disentanglement_libs_on_the_same_codes():
    codes, factors = planted_codes()
    train, test = tree_split(len(codes), 150, seed=0)
    ref_importance, d, c, i = disentanglement_lib_dci(codes, factors, train, test, seed=0)
    trees = tree_importance(codes, factors, n_train=150, seed=0)
    assert trees.n_train == trees.n_test == 150
    np.testing.assert_allclose(trees.importance, ref_importance, atol=1e-12)
    assert trees.importance[4].tolist() == [0.0, 0.0]  # a constant code is never split on
    scores = dci(trees.importance, trees.accuracy)
    assert scores.disentanglement == pytest.approx(d, abs=1e-6)
    assert scores.completeness == pytest.approx(c, abs=1e-6)
    assert scores.informativeness == pytest.approx(i, abs=1e-12)
    # The planted structure: codes 0 and 1 each carry one factor, so the trees rank them first for it.
    assert trees.importance[:, 0].argmax() == 0 and trees.importance[:, 1].argmax() == 1
    assert scores.disentanglement > 0.8 and scores.informativeness > 0.8  # noise 0.3 on unit-spaced labels


def test_tree_importance_of_a_single_valued_factor_and_too_few_samples():
    codes, factors = planted_codes(n=60)
    factors = np.concatenate([factors, np.zeros((60, 1), int)], axis=1)
    trees = tree_importance(codes, factors, n_train=1000, seed=0, stages=5)
    assert trees.n_train == trees.n_test == 30  # half of the set, when it is smaller than asked
    assert trees.varied.tolist() == [True, True, False]
    assert trees.importance[:, 2].tolist() == [0.0] * 5 and trees.accuracy[2] == 1.0
    for column in (0, 1):
        assert trees.importance[:, column].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="finite"):
        tree_importance(np.full((10, 2), np.nan), factors[:10])


def test_tree_split_is_seeded_disjoint_and_sorted():
    train, test = tree_split(100, 30, seed=3)
    assert len(train) == len(test) == 30 and not set(train) & set(test)
    assert (np.diff(train) > 0).all() and (np.diff(test) > 0).all()
    assert (tree_split(100, 30, seed=3)[0] == train).all() and (tree_split(100, 30, seed=4)[0] != train).any()
    with pytest.raises(ValueError):
        tree_split(1, 1)
    with pytest.raises(ValueError):
        tree_split(10, 0)


def test_ridge_importance_sums_each_factor_to_one():
    r = ridge_importance([[1.0, -3.0, 0.0], [1.0, 1.0, 0.0]])
    assert r.tolist() == [[0.5, 0.75, 0.0], [0.5, 0.25, 0.0]]


def test_ridge_dci_does_not_favour_factors_with_more_classes():
    # Codes 0-2 are the one-hot of a 3-valued factor, codes 3-10 of an 8-valued one: each block determines
    # its factor. Summed over classes the probe's weights give the 8-valued factor's block more weight;
    # rescaled per factor both blocks weigh the same.
    rng = np.random.default_rng(0)
    n = 2400
    factors = np.stack([rng.integers(0, 3, n), rng.integers(0, 8, n)], axis=1)
    onehots = [(factors[:, j:j + 1] == np.arange(v)).astype(float) for j, v in enumerate((3, 8))]
    codes = np.concatenate(onehots, axis=1)
    probe = linear_probe(codes, factors)
    raw = dci(probe.importance)
    fair = dci(ridge_importance(probe.importance))
    share = lambda scores: scores.code_weight[:3].sum()  # noqa: E731  the 3-valued factor's codes
    assert share(raw) < 0.35  # summed weights: the 8 classes take most of the importance
    # Up to the sampled factors' chance correlation (weights of a few 1e-4 on the other factor's codes).
    assert share(fair) == pytest.approx(0.5, abs=2e-3)
    assert fair.disentanglement == pytest.approx(1.0, abs=2e-2)
    assert fair.per_factor.tolist() == pytest.approx([1 - math.log(3) / math.log(11),
                                                      1 - math.log(8) / math.log(11)], abs=2e-2)
