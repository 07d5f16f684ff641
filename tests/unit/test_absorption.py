"""k-sparse probing (feature splitting) and absorption rates against ground truth, on planted codes whose
scores are computed by hand (numpy only, no keras)."""

import math
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from collapse_tui.metrics.absorption import (
    ABSORPTION_NEIGHBOURS,
    PROBE_KS,
    _logistic,
    absorption_rate,
    k_sparse_probe,
    k_sparse_probing,
)


@pytest.fixture
def strict():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ------------------------------------------------------------------------------------ k-sparse probing

N = 80
EVEN_ODD = (np.arange(0, N, 2), np.arange(1, N, 2))


def planted_split():
    """Value A is samples 0..19 (the rest, 20..79, is value B). Neuron 0 fires on A's first half (0..9),
    neuron 1 on its second half (10..19), neuron 2 is dead: A is split over two neurons."""
    acts = np.zeros((N, 3))
    acts[0:10, 0] = 1.0
    acts[10:20, 1] = 1.0
    return acts, np.arange(N) < 20


def test_a_split_value_scores_two_thirds_with_one_neuron_and_one_with_two(strict):
    # Even samples train, odd ones are held out. Training: neurons 0 and 1 each fire on 5 of the 10
    # positives and no negative, |mean difference| 0.5 each: a tie, so k = 1 takes neuron 0. Held out,
    # neuron 0 finds 5 of the 10 positives (1, 3, 5, 7, 9) and no negative: precision 1, recall 1/2,
    # F1 = 2 * 5 / (2 * 5 + 0 + 5) = 2/3, balanced accuracy (1/2 + 1) / 2 = 3/4. With both: exact.
    acts, y = planted_split()
    one = k_sparse_probe(acts, y, 1, split=EVEN_ODD)
    assert one.neurons.tolist() == [0] and one.mean_difference.tolist() == [0.5]
    assert one.f1 == pytest.approx(2 / 3, abs=1e-15) and one.balanced_accuracy == 0.75
    two = k_sparse_probe(acts, y, 2, split=EVEN_ODD)
    assert two.neurons.tolist() == [0, 1] and two.f1 == 1.0 and two.balanced_accuracy == 1.0
    three = k_sparse_probe(acts, y, 3, split=EVEN_ODD)  # the dead neuron comes last and weighs nothing
    assert three.neurons.tolist() == [0, 1, 2] and three.mean_difference[2] == 0.0 and three.f1 == 1.0


def test_a_neuron_that_fires_on_the_negatives_is_chosen_by_its_absolute_difference(strict):
    acts, y = planted_split()
    acts[:, 2] = (~y) * 3.0  # fires on every negative: difference -3, the largest in size
    probe = k_sparse_probe(acts, y, 1, split=EVEN_ODD)
    assert probe.neurons.tolist() == [2] and probe.mean_difference.tolist() == [-3.0]
    assert probe.f1 == 1.0  # silence of neuron 2 is the value exactly


def test_k_sparse_probing_averages_the_values_of_each_factor(strict):
    acts, y = planted_split()
    factors = np.stack([(~y).astype(int), np.full(N, 7)], axis=1)  # value 0 = A, 1 = B; a constant factor
    r = k_sparse_probing(acts, factors, ks=(1, 2), split=EVEN_ODD)
    # B against the rest at k = 1 (neuron 0, the tie's lower index): B is "neuron 0 silent". Held out, all
    # 30 B are predicted B, and so are the 5 A that only neuron 1 carries: F1 = 60 / 65 = 12/13, balanced
    # accuracy (1 + 1/2) / 2. A is as in the test above.
    np.testing.assert_allclose(r.per_value_f1[0], [[2 / 3, 1.0], [12 / 13, 1.0]], atol=1e-15)
    np.testing.assert_allclose(r.f1[0], [(2 / 3 + 12 / 13) / 2, 1.0], atol=1e-15)
    np.testing.assert_allclose(r.balanced_accuracy[0], [0.75, 1.0])
    assert r.neurons[0].tolist() == [[0, 1], [0, 1]]
    assert r.ks == (1, 2) and r.varied.tolist() == [True, False]
    assert r.scored[1].tolist() == [False] and r.f1[1].tolist() == [0.0, 0.0] and r.neurons[1].tolist() == [[-1, -1]]
    np.testing.assert_allclose(r.mean, r.f1[0])
    assert r.split_gain[0] == pytest.approx(1.0 - (2 / 3 + 12 / 13) / 2)


def test_clean_detectors_score_one_at_every_k_and_dead_codes_zero(strict):
    rng = np.random.default_rng(0)
    factors = np.stack([rng.permutation(np.arange(300) % 3), rng.permutation(np.arange(300) % 4)], axis=1)
    acts = np.concatenate([(factors[:, :1] == np.arange(3)), (factors[:, 1:] == np.arange(4)),
                           np.zeros((300, 3))], axis=1) * rng.uniform(0.5, 2.0, size=(300, 1))
    r = k_sparse_probing(acts, factors)
    assert r.ks == PROBE_KS == (1, 2, 5)
    np.testing.assert_allclose(r.f1, 1.0)
    assert r.neurons[1][:, 0].tolist() == [3, 4, 5, 6]  # each value's own neuron first
    dead = k_sparse_probing(np.zeros((300, 5)), factors)
    assert dead.f1.tolist() == [[0.0] * 3] * 2  # nothing to go on: always "the rest", no true positive
    np.testing.assert_allclose(dead.balanced_accuracy, 0.5)


def test_values_missing_from_a_part_of_the_split_are_left_out(strict):
    acts, y = planted_split()
    factors = (~y).astype(int)
    factors[0] = 2  # value 2 has one sample, in the training part only
    r = k_sparse_probing(acts, factors[:, None], ks=(1,), split=EVEN_ODD)
    assert r.scored[0].tolist() == [True, True, False] and r.per_value_f1[0][2].tolist() == [0.0]
    assert r.f1[0, 0] == pytest.approx(r.per_value_f1[0][:2, 0].mean())


def test_the_batched_logistic_regression_is_sklearns_balanced_fit():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 300, 3))
    y = (2 * x[..., 0] + rng.standard_normal((4, 300)) > 1.5).astype(float)
    y[2] = x[2, :, 1] > 0  # separable: the L2 penalty alone keeps the weights finite
    theta = _logistic(x, y, 1.0)
    for b in range(4):
        ref = LogisticRegression(C=1.0, class_weight="balanced", tol=1e-12, max_iter=10_000).fit(x[b], y[b])
        np.testing.assert_allclose(theta[b], np.r_[ref.coef_[0], ref.intercept_], atol=1e-6)


@pytest.mark.parametrize("labels, k, split, message", [
    (np.arange(N) % 3, 1, EVEN_ODD, "binary"),
    (np.ones(N - 1, bool), 1, EVEN_ODD, "one entry per sample"),
    (np.arange(N) < 20, 0, EVEN_ODD, "k must be an integer >= 1 and <= 3"),
    (np.arange(N) < 20, 4, EVEN_ODD, "k must be"),
    (np.arange(N) < 20, True, EVEN_ODD, "k must be"),
    (np.arange(N) < 20, 1, (np.arange(0, 20, 2), np.arange(1, N, 2)), "training part .* both"),
    (np.arange(N) < 20, 1, (np.arange(0, N, 2), np.array([], int)), "non-empty"),
])
def test_k_sparse_probe_rejects_bad_inputs(labels, k, split, message):
    acts, _ = planted_split()
    with pytest.raises(ValueError, match=message):
        k_sparse_probe(acts, labels, k, split=split)


@pytest.mark.parametrize("ks, message", [((), "at least one"), ((2, 1), "strictly increasing"),
                                         ((1, 4), "<= 3"), (5, "sequence")])
def test_k_sparse_probing_rejects_bad_ks(ks, message):
    acts, y = planted_split()
    with pytest.raises(ValueError, match=message):
        k_sparse_probing(acts, y.astype(int), ks=ks)


def test_k_sparse_probing_rejects_bad_codes():
    acts, y = planted_split()
    acts[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        k_sparse_probing(acts, y.astype(int))
    with pytest.raises(ValueError, match="same number of samples"):
        k_sparse_probing(acts[:-1], y.astype(int))


# ------------------------------------------------------------------------------------------ absorption

def planted_absorption(row1_deg=10.0):
    """One factor with values 0, 1, 2 on samples 0..19, 20..39, 40..59. Neuron 0 detects value 0 on 16 of
    its 20 inputs (0..15); neuron 1, whose decoder row is ``row1_deg`` degrees from neuron 0's, fires on
    the other 4 (16..19) instead; neuron 5 (45 degrees away) co-fires with neuron 0 on 0..9. Neurons 2
    and 3 detect values 1 and 2; neuron 4 is dead with an all-zero decoder row."""
    factors = np.repeat(np.arange(3), 20)[:, None]
    acts = np.zeros((60, 6))
    acts[0:16, 0] = 1.0
    acts[16:20, 1] = 0.7
    acts[20:40, 2] = 2.0
    acts[40:60, 3] = 1.5
    acts[0:10, 5] = 0.3
    t = math.radians(row1_deg)
    decoder = np.array([[1, 0, 0, 0], [math.cos(t), math.sin(t), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1],
                        [0, 0, 0, 0], [1, 1, 0, 0]], dtype=float)
    return acts, factors, decoder


def test_a_planted_absorption_is_the_share_of_inputs_taken_over(strict):
    # Value 0: AUROC of neuron 0 = 16/20 + 4/20 * 1/2 = 0.9 (main), neuron 1's 0.6, neuron 5's 0.75.
    # Its neighbours with cosine > 0: neuron 1 (cos 10 deg) and neuron 5 (cos 45 deg); rows 2, 3 have
    # cosine 0 and row 4 no direction. Main silent on 16..19 where neuron 1 fires: 4 of 20 absorbed.
    acts, factors, decoder = planted_absorption()
    a = absorption_rate(acts, factors, decoder)
    assert a.n_neighbours == ABSORPTION_NEIGHBOURS == 5 and a.min_cosine == 0.0
    assert a.main_neuron[0].tolist() == [0, 2, 3]
    np.testing.assert_allclose(a.main_auroc[0], [0.9, 1.0, 1.0])
    assert a.neighbours[0][0].tolist() == [1, 5, -1, -1, -1]
    assert a.neighbours[0][1].tolist() == [-1] * 5  # nothing points partly along e2
    assert a.per_value[0].tolist() == [0.2, 0.0, 0.0]  # 4/20 exactly; co-firing neuron 5 absorbs nothing
    assert a.main_silent[0].tolist() == [0.2, 0.0, 0.0]
    assert a.per_factor.tolist() == [pytest.approx(0.2 / 3)] and a.mean == pytest.approx(0.2 / 3)


def test_absorption_needs_a_decoder_neighbour(strict):
    acts, factors, decoder = planted_absorption(row1_deg=120.0)  # neuron 1 points away from neuron 0
    a = absorption_rate(acts, factors, decoder)
    assert a.neighbours[0][0].tolist() == [5, -1, -1, -1, -1]
    assert a.per_value[0].tolist() == [0.0, 0.0, 0.0] and a.main_silent[0][0] == 0.2  # a miss, not absorbed
    acts, factors, decoder = planted_absorption()
    # the cosine floor: cos 10 deg = 0.985 passes 0.9 and fails 0.99; one neighbour is enough
    assert absorption_rate(acts, factors, decoder, min_cosine=0.9).per_value[0][0] == 0.2
    assert absorption_rate(acts, factors, decoder, neighbours=1).per_value[0][0] == 0.2
    assert absorption_rate(acts, factors, decoder, min_cosine=0.99).per_value[0][0] == 0.0
    # the firing threshold: neuron 1's 0.7 is no longer firing above 0.8
    assert absorption_rate(acts, factors, decoder, threshold=0.8).per_value[0][0] == 0.0


def test_a_main_neuron_that_never_fires_counts_only_where_a_neighbour_fires(strict):
    # Values 0 (samples 0..19) and 1 (20..39). Neuron 0 fires on 2 inputs of value 0; neuron 1 on all of
    # value 0 and the first half of value 1. For value 1: neuron 0's AUROC = 18/20 * 1/2 = 0.45, neuron
    # 1's = 1/2 * 1/2 = 0.25: the main neuron is neuron 0, silent on every input of value 1; its neighbour
    # neuron 1 fires on 10 of the 20: absorbed 1/2 (not 1). For value 0 the main is neuron 1 (0.75), never
    # silent: 0.
    factors = np.repeat(np.arange(2), 20)[:, None]
    acts = np.zeros((40, 2))
    acts[[3, 7], 0] = 1.0
    acts[0:30, 1] = 1.0
    decoder = np.array([[1.0, 0.0], [1.0, 1.0]])
    a = absorption_rate(acts, factors, decoder)
    assert a.main_neuron[0].tolist() == [1, 0]
    np.testing.assert_allclose(a.main_auroc[0], [0.75, 0.45])
    assert a.per_value[0].tolist() == [0.0, 0.5] and a.main_silent[0].tolist() == [0.0, 1.0]
    assert a.mean == 0.25


def test_dead_codes_and_single_valued_factors_give_zero_without_warnings(strict):
    factors = np.stack([np.repeat(np.arange(3), 10), np.zeros(30, int)], axis=1)
    a = absorption_rate(np.zeros((30, 4)), factors, np.zeros((4, 5)))
    assert [p.tolist() for p in a.per_value] == [[0.0] * 3, [0.0]]
    assert a.per_factor.tolist() == [0.0, 0.0] and a.varied.tolist() == [True, False] and a.mean == 0.0
    assert [n.tolist() for n in a.neighbours] == [[[-1] * 5] * 3, [[-1] * 5]]
    acts, _, decoder = planted_absorption()
    only = absorption_rate(acts, np.zeros((60, 1), int), decoder)  # nothing to tell apart
    assert only.per_value[0].tolist() == [0.0] and only.mean == 0.0 and not only.varied.any()


@pytest.mark.parametrize("kwargs, message", [
    ({"decoder": np.ones((5, 4))}, "one row per neuron"),
    ({"decoder": np.ones(6)}, "2-D"),
    ({"neighbours": 0}, "neighbours must be an integer >= 1"),
    ({"neighbours": 2.5}, "neighbours"),
    ({"min_cosine": 1.0}, "min_cosine"),
    ({"min_cosine": "x"}, "min_cosine"),
    ({"threshold": np.inf}, "threshold"),
])
def test_absorption_rate_rejects_bad_inputs(kwargs, message):
    acts, factors, decoder = planted_absorption()
    args = {"decoder": decoder} | kwargs
    with pytest.raises(ValueError, match=message):
        absorption_rate(acts, factors, **args)
    with pytest.raises(ValueError, match="finite"):
        absorption_rate(acts, factors, np.full_like(decoder, np.nan))
