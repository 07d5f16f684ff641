"""Metrics against hand-computed values and disentanglement_lib's known answers (numpy only, no keras)."""

import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

from collapse_tui.metrics import (
    activation_density_histogram,
    activation_frequency,
    bce,
    bce_from_logits,
    dead_fraction,
    rare_fraction,
    resolves_frequency,
    rare_mask,
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
    # Any numpy warning (divide by zero, invalid value...) fails the test: metrics must be NaN-free.
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        yield


def reference_bins(z: np.ndarray, n_bins: int) -> np.ndarray:
    """disentanglement_lib's discretisation, one column at a time."""
    return np.stack([np.digitize(z[:, j], np.histogram(z[:, j], n_bins)[1][:-1]) for j in range(z.shape[1])], 1)


# ------------------------------------------------------------------ neurons
def test_activation_frequency_and_dead_by_hand():
    np.testing.assert_allclose(activation_frequency(ACTS), [0.0, 0.75, 0.0, 0.5])
    np.testing.assert_allclose(activation_frequency(ACTS, threshold=1e-3), [0.0, 0.75, 0.0, 0.25])
    assert dead_mask(ACTS).tolist() == [True, False, True, False]
    assert dead_fraction(ACTS) == 0.5
    assert dead_fraction(ACTS, 1e-6) == 0.5  # 5e-7 is not above 1e-6, but 2e-3 on sample 0 is
    assert dead_fraction(ACTS, 1e-2) == 0.75  # the 2e-3 unit never exceeds 1e-2
    assert dead_fraction(ACTS, 2.0) == 1.0


@pytest.mark.parametrize("frequency, n, resolved", [(1e-4, 5000, False), (2e-4, 5000, False), (1e-3, 5000, True),
                                                    (1e-4, 20_000, True), (1e-3, 64, False), (0.05, 64, True)])
def test_a_firing_frequency_is_measured_only_where_it_is_more_than_one_input(frequency, n, resolved):
    assert resolves_frequency(frequency, n) is resolved


def test_rare_neurons_by_firing_frequency_by_hand():
    # 1,000 samples, 4 units firing on 0, 1, 5 and 400 of them.
    acts = np.zeros((1000, 4))
    acts[:1, 1] = 0.3
    acts[:5, 2] = 2.0
    acts[:400, 3] = 1.0
    assert rare_mask(acts, 1e-3).tolist() == [True, False, False, False]  # 1/1000 is not below 1e-3
    assert rare_mask(acts, 2e-3).tolist() == [True, True, False, False]
    assert rare_fraction(acts, 1e-2) == 0.75  # 5/1000 < 1e-2
    assert rare_fraction(acts, 0.0) == 0.0  # nothing fires on fewer than no sample
    assert rare_fraction(acts, 1.0) == 1.0
    # Above 1.0, unit 2 still fires on 5 of 1,000 (5e-3, not below 5e-3); unit 3 never (it equals 1.0).
    assert rare_mask(acts, 5e-3, threshold=1.0).tolist() == [True, True, False, True]
    assert rare_fraction(acts, 1e-4) == dead_fraction(acts) == 0.25  # below one sample in 1,000: dead
    for bad in (-0.1, 1.5, float("nan"), "x"):
        with pytest.raises(ValueError, match="max_frequency"):
            rare_fraction(acts, bad)


def test_activity_is_strictly_above_the_threshold():
    acts = np.array([[-1.0, 0.0, 0.5], [-2.0, 0.0, 0.5]])
    assert dead_mask(acts).tolist() == [True, True, False]
    assert dead_mask(acts, threshold=0.5).tolist() == [True, True, True]
    assert dead_mask(acts, threshold=-1.5).tolist() == [False, False, False]


def test_dead_fraction_is_monotone_in_threshold_and_l0_bounded():
    rs = np.random.RandomState(0)
    acts = rs.exponential(size=(200, 30)) * (rs.rand(200, 30) < 0.05)
    values = [dead_fraction(acts, t) for t in (0, 1e-6, 1e-3, 1e-2, 0.1, 1.0, 10.0)]
    assert values == sorted(values) and values[0] < values[-1] == 1.0
    l0s = [l0(acts, t) for t in (0, 1e-3, 0.1, 1.0)]
    assert l0s == sorted(l0s, reverse=True) and 0 <= l0s[-1] <= l0s[0] <= acts.shape[1]
    # L0 is the mean of the per-unit frequencies times the number of units.
    assert l0(acts) == pytest.approx(activation_frequency(acts).sum())


def test_l0_by_hand():
    assert l0(ACTS) == pytest.approx((2 + 0 + 2 + 1) / 4)
    assert l0(ACTS, threshold=1e-3) == pytest.approx((2 + 0 + 1 + 1) / 4)
    assert l0(np.ones((3, 7))) == 7
    assert l0(np.zeros((3, 7))) == 0


def test_density_histogram_counts_dead_apart_and_uses_fixed_edges():
    hist = activation_density_histogram(ACTS, bins=5, log10_range=(-5, 0))
    assert hist.dead == 2
    assert hist.edges == [-5.0, -4.0, -3.0, -2.0, -1.0, 0.0]
    # Live frequencies 0.75 and 0.5: log10 = -0.125 and -0.301, both in the last bin [-1, 0].
    assert hist.counts == [0, 0, 0, 0, 2]
    rare = np.zeros((1000, 3))
    rare[0, 0] = 1.0  # frequency 1e-3 -> log10 -3, the left edge of the third bin
    rare[:, 1] = 1.0  # frequency 1 -> log10 0, the right edge: still counted, in the last bin
    h = activation_density_histogram(rare, bins=5)
    assert h.counts == [0, 0, 1, 0, 1] and h.dead == 1
    assert sum(h.counts) + h.dead == rare.shape[1]


def test_density_histogram_is_json_ready_and_comparable_across_sizes():
    all_dead = activation_density_histogram(np.zeros((10, 4)))
    assert all_dead.counts == [0] * 20 and all_dead.dead == 4
    d = all_dead.to_dict()
    assert json.loads(json.dumps(d)) == d == {"counts": [0] * 20, "edges": all_dead.edges, "dead": 4}
    assert all(math.isfinite(e) for e in d["edges"])
    # Rarer than the range's floor (1e-2 here): counted in the first bin, not lost.
    acts = np.zeros((1000, 1))
    acts[0] = 1.0
    h = activation_density_histogram(acts, bins=2, log10_range=(-2, 0))
    assert h.counts == [1, 0] and h.dead == 0
    assert activation_density_histogram(np.ones((7, 3))).edges == activation_density_histogram(np.ones((99, 3))).edges


# ------------------------------------------------------------------ discretisation
def test_discretize_matches_histogram_digitize_bit_for_bit_on_random_data():
    rs = np.random.RandomState(0)
    for z in (rs.normal(size=(500, 9)), rs.randint(0, 4, size=(300, 3)), rs.randint(-7, 9, size=(200, 4)),
              rs.exponential(size=(400, 6)) * (rs.rand(400, 6) < 0.1),
              (rs.normal(size=(400, 5)) * 1e3 + 1e4).astype(np.float32)):
        for n_bins in (1, 2, 20, 33):
            bins = discretize(z, n_bins)
            np.testing.assert_array_equal(bins, reference_bins(z, n_bins))
            # The maximum lands in the last bin, the minimum in the first.
            assert (bins[z.argmax(0), range(z.shape[1])] == n_bins).all()
            assert (bins[z.argmin(0), range(z.shape[1])] == 1).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_discretize_matches_reference_where_values_sit_on_edges(dtype):
    # Evenly spaced values put many samples exactly on (or one rounding away from) a bin edge: the
    # binning must then follow np.histogram's own edge arithmetic in the data's own precision.
    for top in (10, 15, 19, 37, 101):
        z = (np.arange(top + 1)[:, None] * np.array([0.1, 1.0, 0.3])).astype(dtype)
        for n_bins in (7, 10, 20, 30):
            np.testing.assert_array_equal(discretize(z, n_bins), reference_bins(z, n_bins))


def test_discretize_constant_column_is_one_bin_without_warnings():
    z = np.array([[3.0, 0.0], [3.0, 1.0], [3.0, 2.0]])
    bins = discretize(z)
    assert len(np.unique(bins[:, 0])) == 1 and bins[:, 1].tolist() == [1, 11, 20]  # 1.0 sits on the 11th left edge
    assert bins.dtype == np.int64 and bins.shape == (3, 2)
    assert len(np.unique(discretize(np.zeros((5, 1), dtype=np.float32)))) == 1


def test_discretize_rejects_non_finite_codes_and_bad_bins():
    with pytest.raises(ValueError, match="codes must be finite; column 1"):
        discretize(np.array([[0.0, 1.0], [1.0, np.nan]]))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n_bins must be an integer >= 1"):
            discretize(np.zeros((3, 2)), bad)


# ------------------------------------------------------------------ entropy and mutual information
def test_entropy_by_hand():
    f = np.array([[0, 5], [1, 5], [0, 5], [1, 5]])
    np.testing.assert_allclose(entropy(f), [math.log(2), 0.0])
    np.testing.assert_allclose(entropy(np.array([0, 1, 2, 3])), [math.log(4)])
    # p = (1/2, 1/4, 1/4) with arbitrary labels.
    np.testing.assert_allclose(entropy(np.array([9, 9, -4, 100])), [1.5 * math.log(2)])


def test_mutual_information_by_hand():
    codes = np.array([0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(mutual_info_matrix(codes, np.array([0, 0, 1, 1]), n_bins=2), [[math.log(2)]])
    # Independent: each code value meets each factor value equally often.
    np.testing.assert_allclose(mutual_info_matrix(codes, np.array([0, 1, 0, 1]), n_bins=2), [[0.0]], atol=1e-15)
    # p(c,f) = [[1/2, 0], [1/4, 1/4]], p(c) = (1/2, 1/2), p(f) = (3/4, 1/4).
    f = np.array([0, 0, 0, 1])
    expected = 0.5 * math.log(0.5 / (0.5 * 0.75)) + 0.25 * math.log(0.25 / (0.5 * 0.75)) + 0.25 * math.log(2)
    np.testing.assert_allclose(mutual_info_matrix(codes, f, n_bins=2), [[expected]])
    # A code that determines the factor has MI = H(factor), whatever the factor's labels are.
    labels = np.array([-5, 100, 7, 7, -5, 100])
    mi = mutual_info_matrix(labels.astype(float) * 2.0, labels, n_bins=20)
    np.testing.assert_allclose(mi, entropy(labels)[None, :])


def test_mutual_info_matrix_matches_a_loop_over_pairs():
    rs = np.random.RandomState(3)
    codes = rs.normal(size=(400, 6))
    factors = rs.randint(0, 3, size=(400, 2)) * 10 - 7  # labels -7, 3, 13
    codes[:, 0] += factors[:, 0] / 10
    mi = mutual_info_matrix(codes, factors, n_bins=8)
    bins = discretize(codes, 8)
    for u in range(6):
        for j in range(2):
            joint = np.zeros((9, 3))
            np.add.at(joint, (bins[:, u], (factors[:, j] + 7) // 10), 1)
            p = joint / joint.sum()
            outer = p.sum(1, keepdims=True) @ p.sum(0, keepdims=True)
            nz = p > 0
            assert mi[u, j] == pytest.approx((p[nz] * np.log(p[nz] / outer[nz])).sum(), abs=1e-12)
    assert mi[0, 0] == mi.max() and (mi >= 0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mutual_info_matrix_matches_pair_counting_on_sparse_and_degenerate_columns(dtype):
    # mutual_info_matrix histograms only the non-zero entries and infers each zero bin by subtraction;
    # here every pair is counted directly from the bins of disentanglement_lib's own discretisation.
    rs = np.random.RandomState(7)
    n = 300
    codes = rs.exponential(size=(n, 40)) * (rs.rand(n, 40) < 0.15)  # sparse, zero in the first bin
    codes[:, 5] = 0.0                                                 # dead: all zeros
    codes[:, 6] = 2.5                                                 # constant, not zero
    codes[:, 7] = rs.normal(size=n)                                   # dense: no zeros at all
    codes[:, 8] *= np.where(rs.rand(n) < 0.5, -1.0, 1.0)              # both signs: zero in a middle bin
    codes[::3, 9] = -0.0                                              # negative zeros count as zeros
    factors = np.stack([rs.randint(0, 4, n), np.full(n, 3), rs.randint(0, 12, n) * 2 - 5], axis=1)
    codes[:, 10] = np.where(rs.rand(n) < 0.6, 0.0, factors[:, 2] + 6.0)  # informative and sparse
    codes = codes.astype(dtype)
    bins = reference_bins(codes, 20)
    expected = np.zeros((40, 3))
    for u in range(40):
        for j in range(3):
            pairs, n_cf = np.unique(np.stack([bins[:, u], factors[:, j]]), axis=1, return_counts=True)
            code_values, n_c = np.unique(bins[:, u], return_counts=True)
            factor_values, n_f = np.unique(factors[:, j], return_counts=True)
            p_c = n_c[np.searchsorted(code_values, pairs[0])] / n
            p_f = n_f[np.searchsorted(factor_values, pairs[1])] / n
            p = n_cf / n
            expected[u, j] = max((p * np.log(p / (p_c * p_f))).sum(), 0.0)
    mi = mutual_info_matrix(codes, factors, n_bins=20)
    np.testing.assert_allclose(mi, expected, rtol=0, atol=1e-12)
    assert (mi[[5, 6], :] == 0).all() and (mi[:, 1] == 0).all() and mi[10, 2] > 0.3


def test_single_valued_factor_and_constant_codes_give_zero_information():
    rs = np.random.RandomState(1)
    codes = np.concatenate([rs.normal(size=(50, 3)), np.full((50, 1), 2.5)], axis=1)
    factors = np.stack([rs.randint(0, 3, 50), np.full(50, 4)], axis=1)
    mi = mutual_info_matrix(codes, factors)
    assert mi.shape == (4, 2) and np.isfinite(mi).all() and (mi >= 0).all()
    assert (mi[:, 1] == 0).all() and mi[3, 0] == 0
    nmi = normalized_mi(mi, factors)
    assert (nmi[:, 1] == 0).all() and np.isfinite(nmi).all()


def test_normalized_mi_by_hand():
    f = np.array([[0, 7], [1, 7], [0, 7], [1, 7]])
    mi = np.array([[math.log(2), 0.0], [0.5 * math.log(2), 0.0]])
    np.testing.assert_allclose(normalized_mi(mi, f), [[1.0, 0.0], [0.5, 0.0]])
    with pytest.raises(ValueError, match=r"mi must have shape \(units, factors\)"):
        normalized_mi(np.zeros((2, 3)), f)


def test_mutual_info_at_full_evaluation_size():
    # The real shape (10,000 samples x 500 units, 5 factors): checks the combined-index arithmetic.
    rs = np.random.RandomState(0)
    codes = (rs.exponential(size=(10_000, 500)) * (rs.rand(10_000, 500) < 0.1)).astype(np.float32)
    factors = rs.randint(0, 6, size=(10_000, 5))
    codes[:, 7] = factors[:, 2] + 0.1 * rs.rand(10_000)
    codes[:, 499] = factors[:, 4]
    mi = mutual_info_matrix(codes, factors)
    h = entropy(factors)
    assert mi.shape == (500, 5) and (mi >= 0).all()
    assert mi[7, 2] == pytest.approx(h[2], rel=1e-12) and mi[499, 4] == pytest.approx(h[4], rel=1e-12)
    others = np.delete(mi, [7, 499], axis=0)
    assert others.max() < 0.01  # independent noise: only the small-sample bias remains


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
    assert gaps.tolist() == [pytest.approx(1.0), 0.0]  # one code: the second best counts as 0
    assert mig(codes, f, n_bins=2) == pytest.approx(1.0)  # the constant factor is left out of the mean
    assert mig(codes, np.ones((4, 2)), n_bins=2) == 0.0


def test_mig_per_factor_by_hand_and_precomputed_mi():
    f = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    # Code 0 is factor 0; code 1 is factor 1 but half-resolved (bins [0, 0, 1, 1] vs f1 [0, 1, 0, 1]).
    codes = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    mi = mutual_info_matrix(codes, f, n_bins=2)
    np.testing.assert_allclose(mi, [[math.log(2), 0.0], [math.log(2), 0.0]], atol=1e-15)
    np.testing.assert_allclose(mig_per_factor(codes, f, n_bins=2), [0.0, 0.0], atol=1e-15)
    codes[:, 1] = [0.0, 1.0, 0.0, 1.0]
    np.testing.assert_allclose(mig_per_factor(codes, f, n_bins=2), [1.0, 1.0])
    given = np.array([[0.6, 0.1], [0.2, 0.5]])
    np.testing.assert_allclose(mig_per_factor(codes, f, mi=given), [0.4 / math.log(2), 0.4 / math.log(2)])
    assert mig(codes, f, mi=given) == pytest.approx(0.4 / math.log(2))
    with pytest.raises(ValueError, match="mi must have shape"):
        mig(codes, f, mi=np.zeros((3, 2)))


def test_mig_is_in_unit_interval():
    rs = np.random.RandomState(5)
    for _ in range(5):
        factors = rs.randint(0, 5, size=(600, 3))
        codes = rs.normal(size=(600, 8))
        codes[:, :3] += factors * rs.rand(3)
        value = mig(codes, factors)
        assert 0.0 <= value <= 1.0
        gaps = mig_per_factor(codes, factors)
        assert ((gaps >= 0) & (gaps <= 1)).all() and value == pytest.approx(gaps.mean())


# ------------------------------------------------------------------ specialized neurons
def test_specialized_neurons_by_hand():
    rs = np.random.RandomState(0)
    f = np.stack([rs.randint(0, 4, 2000), rs.randint(0, 4, 2000)], axis=1)
    codes = np.stack([
        f[:, 0].astype(float),                 # all about factor 0: specialized
        f[:, 0] + 4.0 * f[:, 1],                # about both equally: not specialized
        np.zeros(2000),                         # dead
        rs.rand(2000),                          # noise: below tau
        f[:, 1] * 3.0,                          # all about factor 1: specialized
    ], axis=1)
    spec = specialized_neurons(codes, f, tau=0.1)
    assert spec.mask.tolist() == [True, False, False, False, True] and spec.count == 2
    assert spec.best_factor[0] == 0 and spec.best_factor[4] == 1
    assert spec.nmi.shape == (5, 2) and spec.nmi[0, 0] == pytest.approx(1.0)
    again = specialized_neurons(codes, f, tau=0.1, mi=mutual_info_matrix(codes, f))
    assert again.mask.tolist() == spec.mask.tolist()
    # Unit 1 knows both factors fully: it passes only when the 'twice any other' rule is relaxed.
    assert spec.nmi[1] == pytest.approx([1.0, 1.0])
    assert specialized_neurons(codes, f, ratio=1.0).mask.tolist() == [True, True, False, False, True]
    # A stricter tau than the noise unit's nMI but looser than the others changes nothing; tau 1 keeps
    # only units with (numerically) complete information.
    assert specialized_neurons(codes, f, tau=0.999).count == 2
    d = spec.to_dict()
    assert json.loads(json.dumps(d))["mask"] == spec.mask.tolist() and d["count"] == 2


def test_specialized_needs_a_live_unit_with_information():
    f = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    # Unit 0 carries factor 0 but only above 0.5; with dead_threshold 1 it counts as dead.
    codes = np.array([[0.1, 1.0], [0.1, 1.0], [0.9, 1.0], [0.9, 1.0]])
    assert specialized_neurons(codes, f, n_bins=2).mask.tolist() == [True, False]
    assert specialized_neurons(codes, f, n_bins=2, dead_threshold=1.0).mask.tolist() == [False, False]
    # tau = 0 does not make the live constant unit (no information) specialized.
    assert specialized_neurons(codes, f, n_bins=2, tau=0.0).mask.tolist() == [True, False]
    # With one factor, the ratio rule has no other factor to compare with.
    single = specialized_neurons(codes, f[:, :1], n_bins=2)
    assert single.mask.tolist() == [True, False] and single.best_factor.tolist() == [0, 0]


# ------------------------------------------------------------------ reconstruction
def test_mse_and_explained_variance_by_hand():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    x_hat = np.array([[1.0, 2.5], [3.0, 3.5]])
    assert mse(x, x_hat) == pytest.approx((0 + 0.25 + 0 + 0.25) / 4)
    # sum residual^2 = 0.5; sum (x - column mean)^2 = 1+1+1+1 = 4 -> 1 - 0.5/4
    assert explained_variance(x, x_hat) == pytest.approx(0.875)
    assert explained_variance(x, x) == 1.0
    assert explained_variance(x, np.tile(x.mean(0), (2, 1))) == pytest.approx(0.0)
    # Worse than predicting the mean: negative.
    assert explained_variance(x, x[::-1]) == pytest.approx(1 - 16 / 4)


def test_explained_variance_of_constant_input_is_defined():
    x = np.full((3, 2), 0.1)  # the float mean of identical 0.1s is not exactly 0.1
    assert explained_variance(x, x.copy()) == 1.0
    assert explained_variance(x, x + 1e-9) == 0.0
    assert explained_variance(np.ones(5), np.ones(5)) == 1.0


def test_blockwise_sums_agree_with_direct_formulas():
    # Larger than one block (2^18 elements), with a ragged last block and image-shaped samples.
    rs = np.random.RandomState(2)
    x = (rs.rand(70, 61, 67) > 0.7).astype(np.uint8)
    logits = rs.normal(scale=3.0, size=x.shape).astype(np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    xf = x.astype(np.float64)
    per = -(xf * np.log(p) + (1 - xf) * np.log(1 - p))
    assert bce_from_logits(x, logits) == pytest.approx(per.sum() / 70, rel=1e-6)
    assert bce(x, p) == pytest.approx(per.sum() / 70, rel=1e-6)
    assert mse(xf, p) == pytest.approx(np.mean((xf - p) ** 2), rel=1e-12)
    flat, flat_hat = xf.reshape(70, -1), p.reshape(70, -1)
    expected = 1 - ((flat - flat_hat) ** 2).sum() / ((flat - flat.mean(0)) ** 2).sum()
    assert explained_variance(xf, p) == pytest.approx(expected, rel=1e-12)


def test_bce_by_hand_and_logits_agree_with_probabilities():
    x = np.array([[1.0, 0.0], [1.0, 1.0]])
    logits = np.array([[0.0, 0.0], [2.0, -1.0]])
    # per-image sums: ln2 + ln2 ; -ln sigmoid(2) - ln sigmoid(-1)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expected = ((2 * math.log(2)) + (-math.log(sig(2)) - math.log(sig(-1)))) / 2
    assert bce_from_logits(x, logits) == pytest.approx(expected)
    assert bce(x, 1 / (1 + np.exp(-logits))) == pytest.approx(expected, rel=1e-6)
    # Saturated logits: exact, finite, no overflow. A wrong logit of -1000 costs 1000 nats.
    assert bce_from_logits(np.array([[1.0, 0.0, 1.0]]), np.array([[-1000.0, -1e4, 1e4]])) == pytest.approx(1000.0)
    assert bce(np.array([[1.0]]), np.array([[0.0]])) == pytest.approx(-math.log(1e-7))


# ------------------------------------------------------------------ errors and import hygiene
@pytest.mark.parametrize("call, message", [
    (lambda: dead_fraction(np.zeros(5)), "acts must be a 2-D array"),
    (lambda: l0(np.zeros((2, 3, 4))), "acts must be a 2-D array"),
    (lambda: activation_frequency(np.zeros((0, 3))), "acts must hold at least one sample"),
    (lambda: dead_mask(np.zeros((2, 2)), threshold=float("nan")), "threshold must be a finite number"),
    (lambda: activation_density_histogram(ACTS, bins=0), "bins must be an integer >= 1"),
    (lambda: activation_density_histogram(ACTS, log10_range=(0, -5)), "log10_range"),
    (lambda: mutual_info_matrix(np.zeros((5, 2)), np.zeros((4, 1))), "same number of samples"),
    (lambda: mutual_info_matrix(np.zeros((5, 2, 1)), np.zeros((5, 1))), "codes must be a 1-D or 2-D"),
    (lambda: mig(np.zeros((5, 2)), np.zeros((5, 1, 1))), "factors must be a 1-D or 2-D"),
    (lambda: entropy(np.array([0.0, np.nan])), "factors must be finite"),
    (lambda: mig(np.zeros((5, 2)), np.zeros((5, 1)), n_bins=0), "n_bins"),
    (lambda: specialized_neurons(np.zeros((3, 2)), np.zeros((3, 1)), tau=2.0), "tau must be between 0 and 1"),
    (lambda: specialized_neurons(np.zeros((3, 2)), np.zeros((3, 1)), ratio=0.5), "ratio must be a number >= 1"),
    (lambda: specialized_neurons(np.zeros((3, 2)), np.zeros((3, 1)), mi=np.zeros((3, 1))), "mi must have shape"),
    (lambda: mse(np.zeros((2, 2)), np.zeros((2, 3))), "x and x_hat must have the same shape"),
    (lambda: bce_from_logits(np.zeros((2, 2)), np.zeros((3, 2))), "x and logits must have the same shape"),
    (lambda: bce(np.zeros((2, 2)), np.zeros((2, 2)), eps=0.0), "eps must be between"),
    (lambda: explained_variance(np.float64(1.0), np.float64(1.0)), "x must be an array of at least one sample"),
])
def test_errors_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_metrics_import_only_numpy_and_quickly():
    code = ("import sys, time; t = time.perf_counter(); import collapse_tui.metrics; "
            "print(time.perf_counter() - t); "
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch', 'scipy', 'sklearn', 'textual') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[1] == "[]"
    assert float(out[0]) < 1.0
