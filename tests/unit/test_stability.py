"""Feature survival (Hungarian matching of decoder directions) and linear CKA against hand-computed values
(numpy only, no keras)."""

import math
import warnings

import numpy as np
import pytest

from collapse_tui.metrics.stability import (
    FEATURE_MATCH_COSINE,
    feature_survival,
    linear_cka,
)


@pytest.fixture
def strict():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def unit(deg):
    return np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))])


# ------------------------------------------------------------------------------------------- survival

def test_a_permuted_rescaled_copy_survives_whole(strict):
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((12, 7))
    perm = rng.permutation(12)
    later = ref[perm] * rng.uniform(0.1, 10.0, size=(12, 1))  # row norms do not matter
    s = feature_survival(ref, later)
    assert s.threshold == FEATURE_MATCH_COSINE == 0.7
    assert s.pairs.shape == (12, 2) and s.pairs[:, 0].tolist() == list(range(12))
    # later row i is reference row perm[i], so reference row r pairs with later row argsort(perm)[r]
    assert s.pairs[:, 1].tolist() == np.argsort(perm).tolist()
    np.testing.assert_allclose(s.cosine, 1.0, atol=1e-12)
    assert s.matched.all() and s.n_matched == 12
    assert s.share_matched == 1.0 and s.share_of_later == 1.0
    assert s.mean_max_cosine == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("deg, survives", [(30.0, True), (45.0, True), (46.0, False), (60.0, False)])
def test_a_row_rotated_by_a_known_angle_has_cosine_cos_theta(strict, deg, survives):
    # Reference: e0, e1, e2 in 4-D. Later: e0 turned by deg towards e3, e1 and e2 unchanged.
    ref = np.eye(3, 4)
    later = ref.copy()
    t = math.radians(deg)
    later[0] = [math.cos(t), 0.0, 0.0, math.sin(t)]
    s = feature_survival(ref, later)
    assert s.pairs.tolist() == [[0, 0], [1, 1], [2, 2]]
    assert s.cosine[0] == pytest.approx(math.cos(t), abs=1e-15)
    assert s.matched.tolist() == [survives, True, True]  # cos 45 = 0.707 >= 0.7 > cos 46 = 0.695
    assert s.share_matched == pytest.approx((2 + survives) / 3)
    assert s.mean_max_cosine == pytest.approx((math.cos(t) + 2) / 3, abs=1e-15)


def test_the_threshold_is_inclusive():
    # (3, 4) / 5 = (0.6, 0.8) exactly: its cosine with (1, 0) is the float 0.6 itself
    s = feature_survival([[1.0, 0.0]], [[3.0, 4.0]], cosine=0.6)
    assert s.cosine.tolist() == [0.6] and s.matched.tolist() == [True]
    assert not feature_survival([[1.0, 0.0]], [[3.0, 4.0]], cosine=np.nextafter(0.6, 1)).matched.any()


def test_matching_is_one_to_one_and_maximises_the_summed_cosine():
    # a, b vs c1, c2: cos(a,c1)=cos20, cos(a,c2)=cos30, cos(b,c1)=cos30, cos(b,c2)=cos80. Greedy pairs a-c1
    # and leaves b with c2 (0.17, lost); the assignment pairs a-c2, b-c1 (0.866 each, both survive).
    ref = np.stack([unit(0), unit(50)])
    later = np.stack([unit(20), unit(-30)])
    s = feature_survival(ref, later)
    assert s.pairs.tolist() == [[0, 1], [1, 0]]
    np.testing.assert_allclose(s.cosine, [math.cos(math.radians(30))] * 2, atol=1e-15)
    assert s.share_matched == 1.0
    # the best cosine is not one-to-one: a's best is c1 (cos 20), which b pairs with
    np.testing.assert_allclose(s.best_cosine, [math.cos(math.radians(20)), math.cos(math.radians(30))])
    assert s.mean_max_cosine == pytest.approx((math.cos(math.radians(20)) + math.cos(math.radians(30))) / 2)


def test_the_cosine_is_signed_an_opposite_direction_does_not_survive():
    s = feature_survival([[1.0, 0.0]], [[-2.0, 0.0]])
    assert s.cosine.tolist() == [-1.0] and s.share_matched == 0.0 and s.mean_max_cosine == -1.0


def test_dead_rows_match_nothing_even_at_the_lowest_threshold(strict):
    ref = np.array([[1.0, 0.0], [0.0, 0.0]])  # row 1: no direction
    later = np.array([[0.0, 0.0], [0.0, 0.0], [-1.0, 0.0]])  # rows 0 and 1: no direction
    s = feature_survival(ref, later, cosine=-1.0)
    # a zero row would have cosine 0 > -1 with everything, yet it pairs with nothing
    assert s.pairs.tolist() == [[0, 2]] and s.cosine.tolist() == [-1.0] and s.matched.tolist() == [True]
    # every reference row is in the denominator, the dead one included; best cosine 0 without a direction
    assert s.n_reference == 2 and s.share_matched == 0.5
    assert s.best_cosine.tolist() == [-1.0, 0.0]
    assert s.n_later == 3 and s.share_of_later == pytest.approx(1 / 3)


def test_all_dead_dictionaries_give_zeros_not_nan(strict):
    s = feature_survival(np.zeros((4, 3)), np.zeros((5, 3)))
    assert s.pairs.shape == (0, 2) and s.cosine.shape == (0,)
    assert s.share_matched == 0.0 and s.mean_max_cosine == 0.0 and s.share_of_later == 0.0
    assert s.best_cosine.tolist() == [0.0] * 4


def test_alive_masks_restrict_both_sides_and_set_the_denominators(strict):
    ref = np.eye(4)
    later = np.eye(4)[[2, 0, 3, 1]]  # later rows: e2, e0, e3, e1
    s = feature_survival(ref, later, reference_alive=np.array([True, True, False, True]),
                         later_alive=np.array([True, False, True, True]))
    # e0's twin (later row 1) is dead: e0 pairs with nothing above 0 and does not survive
    assert s.n_reference == 3 and s.n_later == 3
    assert [p for p, m in zip(s.pairs.tolist(), s.matched) if m] == [[1, 3], [3, 2]]
    assert s.share_matched == pytest.approx(2 / 3) and s.share_of_later == pytest.approx(2 / 3)
    assert s.best_cosine.tolist() == [0.0, 1.0, 1.0]  # over considered reference rows 0, 1, 3
    # indices stay those of the full arrays
    assert set(s.pairs[:, 0].tolist()) <= {0, 1, 3} and set(s.pairs[:, 1].tolist()) <= {0, 2, 3}


def test_dictionaries_of_different_sizes_and_two_random_seeds(strict):
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((3, 16))
    later = np.concatenate([ref, rng.standard_normal((5, 16))])
    s = feature_survival(ref, later)
    assert s.share_matched == 1.0 and s.share_of_later == pytest.approx(3 / 8)
    # two unrelated dictionaries in 256-D (cosines of order 1/16) share nothing at 0.7
    a, b = rng.standard_normal((50, 256)), rng.standard_normal((50, 256))
    base = feature_survival(a, b)
    assert base.share_matched == 0.0 and 0.0 < base.mean_max_cosine < 0.4


@pytest.mark.parametrize("kwargs, message", [
    ({"reference": np.ones((2, 3)), "later": np.ones((2, 4))}, "same input_dim"),
    ({"reference": np.ones(3), "later": np.ones((2, 3))}, "2-D"),
    ({"reference": np.array([[np.nan, 1.0]]), "later": np.ones((1, 2))}, "finite"),
    ({"cosine": 1.5}, "cosine"),
    ({"cosine": True}, "cosine"),
    ({"cosine": "high"}, "cosine"),
    ({"reference_alive": np.ones(3, bool)}, "reference_alive"),
    ({"later_alive": np.ones(2)}, "later_alive"),
])
def test_feature_survival_rejects_bad_inputs(kwargs, message):
    args = {"reference": np.ones((2, 3)), "later": np.ones((2, 3))} | kwargs
    with pytest.raises(ValueError, match=message):
        feature_survival(**args)


# ------------------------------------------------------------------------------------------ linear CKA

def test_cka_by_hand_is_the_squared_correlation_of_one_feature_each():
    # x centred (-1, 0, 1), y = x^2 centred (-11/3, -2/3, 13/3): y'x = 8, ||x'x|| = 2, ||y'y|| = 294/9,
    # so CKA = 64 / (2 * 294 / 9) = 48/49
    x = np.array([1.0, 2.0, 3.0])
    assert linear_cka(x, x ** 2) == pytest.approx(48 / 49, abs=1e-14)
    assert linear_cka(x, x ** 2, method="gram") == pytest.approx(48 / 49, abs=1e-14)


def test_cka_is_one_under_rotation_isotropic_scaling_and_translation(strict):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((60, 8))
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    y = 3.7 * x @ q + rng.standard_normal(8)  # an offset per column: centring removes it
    for method in ("auto", "features", "gram"):
        assert linear_cka(x, y, method=method) == pytest.approx(1.0, abs=1e-12)
    # more columns on one side, all of them dead: still the same representation
    padded = np.concatenate([y, np.zeros((60, 5))], axis=1)
    assert linear_cka(x, padded) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, padded) == linear_cka(padded, x)


def test_cka_of_independent_noise_is_near_zero():
    # E[||Y'X||^2] = n p q for independent standard normals against n^2 sqrt(p q) below: about
    # sqrt(p q) / n = 0.0025 here; 0.02 is far above the spread of one seed
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((2000, 5)), rng.standard_normal((2000, 5))
    assert 0.0 <= linear_cka(x, y) < 0.02


@pytest.mark.parametrize("n, p, q", [(30, 40, 7), (200, 12, 9), (25, 25, 25)])
def test_the_feature_and_gram_forms_agree(strict, n, p, q):
    rng = np.random.default_rng(n + p + q)
    x = np.maximum(rng.standard_normal((n, p)) - 0.5, 0.0)  # sparse codes with a few dead columns
    x[:, :3] = 0.0
    y = x[:, :q] @ rng.standard_normal((q, q)) + 0.5 * rng.standard_normal((n, q))
    assert abs(linear_cka(x, y, method="features") - linear_cka(x, y, method="gram")) < 1e-10


def test_constant_or_dead_representations_give_zero_without_warnings(strict):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 6))
    assert linear_cka(np.zeros((50, 4)), x) == 0.0
    assert linear_cka(x, np.full((50, 3), 0.1)) == 0.0  # the mean of 0.1s is not 0.1 to the last bit
    assert linear_cka(np.zeros((50, 4)), np.zeros((50, 2)), method="gram") == 0.0
    assert linear_cka(x[:1], x[:1]) == 0.0  # one sample has no variance


@pytest.mark.parametrize("x, y, method, message", [
    (np.ones((5, 2)), np.ones((6, 2)), "auto", "same samples"),
    (np.array([[np.inf, 1.0]]), np.ones((1, 2)), "auto", "finite"),
    (np.ones((5, 2)), np.ones((5, 2)), "kernel", "method"),
    (np.ones((5, 2, 2)), np.ones((5, 2)), "auto", "2-D"),
    (np.array([["a"], ["b"]]), np.ones((2, 1)), "auto", "numeric"),
])
def test_linear_cka_rejects_bad_inputs(x, y, method, message):
    with pytest.raises(ValueError, match=message):
        linear_cka(x, y, method=method)
