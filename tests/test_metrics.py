"""Metrics against hand-computed values and disentanglement_lib's known answers (numpy only)."""

import math
import warnings

import numpy as np
import pytest

from collapse_tui.metrics import (
    activation_density_histogram,
    activation_frequency,
    bce,
    bce_from_logits,
    dead_fraction,
    dead_mask,
    discretize,
    entropy,
    explained_variance,
    l0,
    mig,
    mig_per_factor,
    mse,
    mutual_info_matrix,
    normalized_mi,
    specialized_neurons,
)

ACTS = np.array([
    [0.0, 0.5, 0.0, 2e-3],
    [0.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 5e-7],
    [0.0, 0.2, 0.0, 0.0],
])


@pytest.fixture(autouse=True)
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ------------------------------------------------------------------ neurons
def test_activation_frequency_and_dead_by_hand():
    np.testing.assert_allclose(activation_frequency(ACTS), [0.0, 0.75, 0.0, 0.5])
    np.testing.assert_allclose(activation_frequency(ACTS, threshold=1e-3), [0.0, 0.75, 0.0, 0.25])
    assert dead_mask(ACTS).tolist() == [True, False, True, False]
    assert dead_fraction(ACTS) == 0.5
    assert dead_fraction(ACTS, 1e-6) == 0.5
    assert dead_fraction(ACTS, 1e-2) == 0.75  # the 2e-3 unit never exceeds 1e-2
    assert dead_fraction(ACTS, 2.0) == 1.0


def test_negative_activations_are_not_activity():
    assert dead_fraction(np.array([[-1.0, 0.0], [-2.0, 3.0]])) == 0.5


def test_dead_fraction_is_monotone_in_threshold():
    acts = np.random.RandomState(0).exponential(size=(200, 30)) * (np.random.RandomState(1).rand(200, 30) < 0.05)
    values = [dead_fraction(acts, t) for t in (0, 1e-6, 1e-3, 1e-2, 0.1, 1.0)]
    assert values == sorted(values)


def test_l0_by_hand():
    assert l0(ACTS) == pytest.approx((2 + 0 + 2 + 1) / 4)
    assert l0(ACTS, threshold=1e-3) == pytest.approx((2 + 0 + 1 + 1) / 4)
    assert l0(np.ones((3, 7))) == 7


def test_density_histogram_counts_dead_apart_and_uses_fixed_edges():
    hist = activation_density_histogram(ACTS, bins=5, log10_range=(-5, 0))
    assert hist.dead == 2
    assert hist.edges == [-5.0, -4.0, -3.0, -2.0, -1.0, 0.0]
    # Live frequencies 0.75 and 0.5: log10 = -0.125 and -0.301, both in the last bin [-1, 0].
    assert hist.counts == [0, 0, 0, 0, 2]
    rare = np.zeros((10**6 // 1000, 2))
    rare[0, 0] = 1.0  # frequency 1e-3 -> log10 -3
    h = activation_density_histogram(rare, bins=5)
    assert h.counts == [0, 0, 1, 0, 0] and h.dead == 1
    assert h.to_dict() == {"counts": h.counts, "edges": h.edges, "dead": 1}


# ------------------------------------------------------------------ discretisation and information
def test_discretize_matches_histogram_digitize_bit_for_bit():
    rs = np.random.RandomState(0)
    for z in (rs.normal(size=(500, 9)), rs.randint(0, 4, size=(300, 3)).astype(float),
              rs.exponential(size=(400, 6)) * (rs.rand(400, 6) < 0.1)):
        ref = np.stack([np.digitize(z[:, j], np.histogram(z[:, j], 20)[1][:-1]) for j in range(z.shape[1])], 1)
        np.testing.assert_array_equal(discretize(z, 20), ref)
        assert discretize(z).max() == 20  # the maximum lands in the last bin


def test_discretize_constant_column_is_one_bin():
    bins = discretize(np.full((6, 2), 3.0))
    assert len(np.unique(bins)) == 1


def test_entropy_by_hand():
    f = np.array([[0, 5], [1, 5], [0, 5], [1, 5]])
    np.testing.assert_allclose(entropy(f), [math.log(2), 0.0])
    np.testing.assert_allclose(entropy(np.array([0, 1, 2, 3])), [math.log(4)])


def test_mutual_information_by_hand():
    codes = np.array([0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(mutual_info_matrix(codes, np.array([0, 0, 1, 1]), n_bins=2), [[math.log(2)]])
    # Independent: each code value meets each factor value equally often.
    np.testing.assert_allclose(mutual_info_matrix(codes, np.array([0, 1, 0, 1]), n_bins=2), [[0.0]], atol=1e-12)
    # p(c,f) = [[1/2, 0], [1/4, 1/4]]: MI = 1/2 ln(1/2 / (1/2*3/4)) + 1/4 ln(1/4/(1/2*3/4)) + 1/4 ln(1/4/(1/2*1/4))
    codes = np.array([0.0, 0.0, 1.0, 1.0])
    f = np.array([0, 0, 0, 1])
    expected = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    np.testing.assert_allclose(mutual_info_matrix(codes, f, n_bins=2), [[expected]])


def test_mutual_info_matrix_matches_a_loop_over_pairs():
    rs = np.random.RandomState(3)
    codes = rs.normal(size=(400, 6))
    factors = rs.randint(0, 3, size=(400, 2))
    codes[:, 0] += factors[:, 0]
    mi = mutual_info_matrix(codes, factors, n_bins=8)
    bins = discretize(codes, 8)
    for u in range(6):
        for j in range(2):
            joint = np.zeros((9, 3))
            np.add.at(joint, (bins[:, u], factors[:, j]), 1)
            p = joint / joint.sum()
            pc, pf = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
            nz = p > 0
            assert mi[u, j] == pytest.approx((p[nz] * np.log(p[nz] / (pc @ pf)[nz])).sum(), abs=1e-12)
    assert mi[0, 0] == mi.max() and (mi >= 0).all()


def test_normalized_mi_and_single_valued_factor():
    f = np.array([[0, 7], [1, 7], [0, 7], [1, 7]])
    mi = np.array([[math.log(2), 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(normalized_mi(mi, f), [[1.0, 0.0], [0.0, 0.0]])


# ------------------------------------------------------------------ MIG (disentanglement_lib's test cases)
Y = np.random.RandomState(0).randint(1, 11, size=(10, 3000)).T


def test_mig_known_value_codes_equal_factors():
    assert mig(Y, Y) == pytest.approx(0.99296, abs=1e-5)


def test_mig_copies_of_one_factor_is_zero():
    assert mig(np.tile(Y[:, :1], (1, 10)), Y) == 0.0


def test_mig_all_zero_codes_is_zero():
    assert mig(np.zeros((3000, 10)), Y) == 0.0


def test_mig_single_code_and_constant_factor_are_defined():
    f = np.array([[0, 1], [1, 1], [0, 1], [1, 1]])
    codes = np.array([0.0, 1.0, 0.0, 1.0])
    gaps = mig_per_factor(codes, f, n_bins=2)
    assert gaps[0] == pytest.approx(1.0) and np.isnan(gaps[1])
    assert mig(codes, f, n_bins=2) == pytest.approx(1.0)  # the constant factor is left out
    assert mig(codes, np.ones((4, 2)), n_bins=2) == 0.0


def test_mig_is_in_unit_interval_on_random_data():
    rs = np.random.RandomState(5)
    value = mig(rs.normal(size=(1000, 8)), rs.randint(0, 5, size=(1000, 3)))
    assert 0.0 <= value <= 1.0


def test_mutual_info_matrix_is_fast_enough_for_500_units():
    # Correctness of the vectorised path at the real size (speed is measured in benchmarks, not here).
    rs = np.random.RandomState(0)
    codes = rs.exponential(size=(10_000, 500)) * (rs.rand(10_000, 500) < 0.1)
    factors = rs.randint(0, 6, size=(10_000, 5))
    codes[:, 7] = factors[:, 2] + 0.1 * rs.rand(10_000)
    mi = mutual_info_matrix(codes, factors)
    assert mi.shape == (500, 5)
    assert mi[7, 2] == pytest.approx(math.log(6), rel=1e-3)


# ------------------------------------------------------------------ specialized neurons
def test_specialized_neurons_by_hand():
    rs = np.random.RandomState(0)
    f = np.stack([rs.randint(0, 4, 2000), rs.randint(0, 4, 2000)], axis=1)
    codes = np.stack([
        f[:, 0].astype(float),                 # all about factor 0: specialized
        f[:, 0] + 4.0 * f[:, 1],                # about both equally: not specialized
        np.zeros(2000),                         # dead
        rs.rand(2000),                          # noise: below tau
    ], axis=1)
    spec = specialized_neurons(codes, f, tau=0.1)
    assert spec.mask.tolist() == [True, False, False, False] and spec.count == 1
    assert spec.best_factor[0] == 0
    assert spec.nmi.shape == (4, 2) and spec.nmi[0, 0] == pytest.approx(1.0)
    # The same answer from a precomputed MI matrix.
    again = specialized_neurons(codes, f, tau=0.1, mi=mutual_info_matrix(codes, f))
    assert again.mask.tolist() == spec.mask.tolist()
    # Unit 1 knows both factors fully: it passes only when the 'twice any other' rule is relaxed.
    assert spec.nmi[1] == pytest.approx([1.0, 1.0])
    assert specialized_neurons(codes, f, tau=0.1, ratio=1.0).mask.tolist() == [True, True, False, False]


# ------------------------------------------------------------------ reconstruction
def test_mse_and_explained_variance_by_hand():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    x_hat = np.array([[1.0, 2.5], [3.0, 3.5]])
    assert mse(x, x_hat) == pytest.approx((0 + 0.25 + 0 + 0.25) / 4)
    # Σ residual² = 0.5; Σ (x - column mean)² = 1+1+1+1 = 4 -> 1 - 0.5/4
    assert explained_variance(x, x_hat) == pytest.approx(0.875)
    assert explained_variance(x, x) == 1.0
    assert explained_variance(x, np.tile(x.mean(0), (2, 1))) == pytest.approx(0.0)
    assert explained_variance(np.ones((3, 2)), np.ones((3, 2))) == 1.0
    assert explained_variance(np.ones((3, 2)), np.zeros((3, 2))) == 0.0


def test_bce_by_hand_and_logits_agree_with_probabilities():
    x = np.array([[1.0, 0.0], [1.0, 1.0]])
    logits = np.array([[0.0, 0.0], [2.0, -1.0]])
    # per image sums: ln2 + ln2 ; -ln σ(2) - ln σ(-1)
    sig = lambda v: 1 / (1 + math.exp(-v))
    expected = ((2 * math.log(2)) + (-math.log(sig(2)) - math.log(sig(-1)))) / 2
    assert bce_from_logits(x, logits) == pytest.approx(expected)
    assert bce(x, 1 / (1 + np.exp(-logits))) == pytest.approx(expected, rel=1e-6)
    assert np.isfinite(bce_from_logits(np.zeros((1, 3)), np.array([[1e4, -1e4, 0.0]])))


# ------------------------------------------------------------------ errors
def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="acts must be a 2-D"):
        dead_fraction(np.zeros(5))
    with pytest.raises(ValueError, match="same number of samples"):
        mutual_info_matrix(np.zeros((5, 2)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="x and x_hat must have the same shape"):
        mse(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="n_bins"):
        discretize(np.zeros((3, 2)), 0)
    with pytest.raises(ValueError, match="tau"):
        specialized_neurons(np.zeros((3, 2)), np.zeros((3, 1)), tau=2.0)
