"""Interpretability metrics beyond MIG against hand-computed values: probes, DCI, MIG-sup, AUROC and
coverage, specialized neurons per code (numpy only, no keras)."""

import math
import warnings

import numpy as np
import pytest

from collapse_tui.metrics import (
    auroc_matrix,
    average_ranks,
    code_entropy,
    dci,
    feature_alignment,
    holdout_split,
    linear_probe,
    mig_sup,
    mig_sup_hcode,
    mig_sup_hcode_per_code,
    mig_sup_per_code,
    specialized_neurons,
    specialized_neurons_per_code,
)
from collapse_tui.metrics.interpretability import _ranks_dense, _ranks_sparse

LOG2 = math.log(2.0)


def grid(*sizes, repeats=1):
    """Every combination of factor values once, the whole grid ``repeats`` times: (samples, factors)."""
    mesh = np.stack(np.meshgrid(*(np.arange(v) for v in sizes), indexing="ij"), axis=-1).reshape(-1, len(sizes))
    return np.tile(mesh, (repeats, 1))


def onehot(labels, size):
    return (np.asarray(labels)[:, None] == np.arange(size)[None, :]).astype(np.float64)


def h_bernoulli(p):
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


@pytest.fixture
def strict():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ---------------------------------------------------------------------------------------------- probes

def test_holdout_split_is_fixed_disjoint_and_covers_the_samples():
    train, test = holdout_split(11)
    again = holdout_split(11)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert train.size == 6 and test.size == 5  # round(5.5) = 6 (banker's rounding), the rest held out
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(11))
    assert not np.array_equal(holdout_split(11, seed=1)[0], train)
    assert [a.size for a in holdout_split(2)] == [1, 1]
    with pytest.raises(ValueError):
        holdout_split(1)


def test_probe_of_perfectly_separable_codes_is_exact(strict):
    factors = grid(3, 4, repeats=10)
    features = np.concatenate([onehot(factors[:, 0], 3), onehot(factors[:, 1], 4),
                               np.zeros((len(factors), 2))], axis=1)  # two dead units
    probe = linear_probe(features, factors)
    assert probe.accuracy.tolist() == [1.0, 1.0] and probe.mean == 1.0
    assert np.isfinite(probe.importance).all() and (probe.importance[:7] > 0).all()
    assert (probe.importance[-2:] == 0).all()  # dead units weigh nothing


def test_probe_of_constant_codes_predicts_the_training_majority(strict):
    # Hand-computed: the training half is 0, 0, 0, 1 (majority 0); held out 0, 1, 1, 1: accuracy 1/4.
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    split = (np.arange(4), np.arange(4, 8))
    probe = linear_probe(np.full((8, 3), 0.7), labels, split=split)
    assert probe.accuracy.tolist() == [0.25]
    assert (probe.importance == 0).all()
    # A tie in the training half goes to the lower label.
    assert linear_probe(np.zeros((4, 1)), [1, 0, 0, 1], split=([0, 1], [2, 3])).accuracy.tolist() == [0.5]
    # The default seeded half: the held-out rate of the training half's majority class.
    labels = np.r_[np.zeros(70, int), np.ones(30, int)]
    train, test = holdout_split(100)
    majority = np.bincount(labels[train]).argmax()
    assert linear_probe(np.ones((100, 2)), labels).mean == pytest.approx(float((labels[test] == majority).mean()))


def test_probe_ignores_single_valued_factors_in_its_mean(strict):
    factors = np.stack([np.arange(20) % 2, np.zeros(20, int)], axis=1)
    probe = linear_probe(onehot(factors[:, 0], 2), factors)
    assert probe.varied.tolist() == [True, False] and probe.accuracy.tolist() == [1.0, 1.0]
    assert probe.mean == 1.0 and (probe.importance[:, 1] == 0).all()
    with pytest.raises(ValueError):
        linear_probe(np.array([[np.nan]] * 4), [0, 1, 0, 1])


# ------------------------------------------------------------------------------------------------- DCI

def test_dci_of_hand_computed_importance_matrices(strict):
    one = dci(np.eye(2), accuracy=[0.5, 1.0])
    assert (one.disentanglement, one.completeness, one.informativeness) == (1.0, 1.0, 0.75)
    # One code holds both factors evenly, the other nothing: disentanglement 0, completeness 1.
    both = dci([[1.0, 1.0], [0.0, 0.0]])
    assert both.disentanglement == pytest.approx(0.0, abs=1e-12) and both.completeness == pytest.approx(1.0)
    assert both.per_code.tolist() == pytest.approx([0.0, 0.0]) and both.code_weight.tolist() == [1.0, 0.0]
    # Code 0 = (3/4, 1/4) -> 1 - H2 = 1 - 0.811278; code 1 = (0, 1) -> 1; weights 4/6 and 2/6.
    # Factor 0 = (1, 0) -> 1; factor 1 = (1/3, 2/3) -> 1 - H2 = 1 - 0.918296; weights 1/2 each.
    mixed = dci([[3.0, 1.0], [0.0, 2.0]])
    h34 = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    h13 = -(1 / 3 * math.log2(1 / 3) + 2 / 3 * math.log2(2 / 3))
    assert mixed.per_code.tolist() == pytest.approx([1 - h34, 1.0])
    assert mixed.disentanglement == pytest.approx((1 - h34) * 4 / 6 + 2 / 6)  # 0.459148
    assert mixed.per_factor.tolist() == pytest.approx([1.0, 1 - h13])
    assert mixed.completeness == pytest.approx((1.0 + 1 - h13) / 2)  # 0.540852
    # Three codes: entropy in base 3 for completeness.
    spread = dci([[0.5, 0.0], [0.5, 0.0], [0.0, 1.0]])
    assert spread.disentanglement == pytest.approx(1.0)
    assert spread.completeness == pytest.approx((1 - math.log(2) / math.log(3) + 1) / 2)


def test_dci_edge_cases_give_numbers_not_nan(strict):
    zero = dci(np.zeros((3, 2)))
    assert (zero.disentanglement, zero.completeness, zero.informativeness) == (0.0, 0.0, None)
    single_factor = dci([[2.0], [0.0]])
    assert single_factor.disentanglement == 1.0 and single_factor.completeness == pytest.approx(1.0)
    single_code = dci([[1.0, 3.0]])
    assert single_code.completeness == 1.0
    assert single_code.disentanglement == pytest.approx(1 + (0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))
    assert dci([[-1.0, 0.0], [0.0, 2.0]]).disentanglement == 1.0  # absolute values


def test_dci_of_indicator_codes_from_the_probe(strict):
    # Codes: the 3 indicators of factor A, then the 4 of factor B. Trained on one copy of the grid and
    # scored on another, the centred indicators of A and B are exactly uncorrelated, so each factor's
    # importance sits on its own indicators, evenly by symmetry: D = 1, C_j = 1 - log(V_j) / log(7).
    factors = grid(3, 4, repeats=2)
    codes = np.concatenate([onehot(factors[:, 0], 3), onehot(factors[:, 1], 4)], axis=1)
    probe = linear_probe(codes, factors, split=(np.arange(12), np.arange(12, 24)))
    assert probe.accuracy.tolist() == [1.0, 1.0]
    scores = dci(probe.importance, probe.accuracy)
    assert scores.disentanglement == pytest.approx(1.0, abs=1e-9)
    assert scores.per_factor.tolist() == pytest.approx([1 - math.log(3) / math.log(7),
                                                        1 - math.log(4) / math.log(7)], abs=1e-9)
    assert scores.informativeness == 1.0


# --------------------------------------------------------------------------------------------- MIG-sup

def _two_bit_codes():
    factors = grid(2, 2, repeats=3)  # A, B in {0, 1}, balanced and independent
    a, b = factors[:, 0].astype(float), factors[:, 1].astype(float)
    codes = np.stack([a, a + b, np.zeros_like(a)], axis=1)  # A exactly; A + B; a dead unit
    return codes, factors


def test_code_entropy_and_mig_sup_by_hand(strict):
    codes, factors = _two_bit_codes()
    # H(A) = log 2; H(A + B) = H(1/4, 1/2, 1/4) = 1.5 log 2; the dead unit 0.
    assert code_entropy(codes).tolist() == pytest.approx([LOG2, 1.5 * LOG2, 0.0])
    # Code 0: MI(A) = log 2, MI(B) = 0 -> gap 1. Code 1: MI(A) = MI(B) = 0.5 log 2 -> gap 0. Dead: 0.
    # H(A) = H(B) = H(code 0) = log 2, so both normalisations agree here.
    for per_code, mean in ((mig_sup_per_code, mig_sup), (mig_sup_hcode_per_code, mig_sup_hcode)):
        assert per_code(codes, factors).tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-12)
        assert mean(codes, factors) == pytest.approx(0.5)  # mean over the two live codes
        assert mean(np.zeros((4, 2)), [0, 1, 0, 1]) == 0.0
        assert per_code(codes[:, :1], factors[:, :1]).tolist() == pytest.approx([1.0])  # one factor


def test_a_rare_code_reads_near_zero_by_li_et_al_and_one_over_its_own_entropy(strict):
    factors = grid(32, 4)
    rare = (factors[:, 0] == 0).astype(float)[:, None]  # fires on 1/32 of the inputs, exactly on A = 0
    # MI(rare; A) = H(rare) = h(1/32) = (1/32) log 32 + (31/32) log(32/31); MI(rare; B) = 0.
    h = math.log(32) / 32 + 31 / 32 * math.log(32 / 31)
    assert mig_sup(rare, factors) == pytest.approx(h / math.log(32))  # / H(A) = log 32: 0.040
    assert mig_sup_hcode(rare, factors) == pytest.approx(1.0)  # / H(code) = h


def test_li_et_al_mig_sup_matches_their_formula_on_random_codes(strict):
    # Their metric_MIG.py: MI / log(values) per factor (uniform factors), sorted per code, top two apart,
    # clamped at 0, mean over active codes; here on a balanced grid, where H(factor) = log(values).
    from collapse_tui.metrics import mutual_info_matrix

    factors = grid(3, 5, 4, repeats=6)
    rng = np.random.default_rng(0)
    codes = np.maximum(rng.normal(size=(len(factors), 7)) + factors[:, [0, 1, 2, 0, 1, 2, 0]] * 0.7, 0.0)
    mi = mutual_info_matrix(codes, factors)
    normed = np.maximum(mi / np.log([3, 5, 4])[None, :], 0.0)
    ranked = -np.sort(-normed, axis=1)
    assert mig_sup(codes, factors) == pytest.approx(float(np.mean(ranked[:, 0] - ranked[:, 1])), abs=1e-12)


# ----------------------------------------------------------------------------- specialized neurons

def test_per_code_specialization_counts_a_rare_neuron_the_old_one_cannot(strict):
    factors = grid(32, 4, repeats=2)
    rare = (factors[:, 0] == 0).astype(float)  # carries "A = 0" perfectly, fires on 1/32 of the inputs
    dense = factors[:, 1].astype(float)  # B itself
    acts = np.stack([rare, dense, np.zeros(len(factors))], axis=1)
    old = specialized_neurons(acts, factors)
    new = specialized_neurons_per_code(acts, factors)
    # Old: MI / H(A) = H_b(1/32) / log 32 = 0.1392 / 3.4657 = 0.040 < tau = 0.1; new: MI / H(code) = 1.
    assert old.nmi[0, 0] == pytest.approx(h_bernoulli(1 / 32) / math.log(32))
    assert old.nmi[0, 0] < 0.1 <= new.nmi[0, 0] == pytest.approx(1.0)
    assert old.mask.tolist() == [False, True, False] and old.count == 1
    assert new.mask.tolist() == [True, True, False] and new.count == 2
    assert new.best_factor[:2].tolist() == [0, 1] and new.nmi[1].tolist() == pytest.approx([0.0, 1.0])
    # The ratio rule still applies: A + B informs both factors equally and specializes in neither.
    mixed = specialized_neurons_per_code(np.stack([dense + (factors[:, 0] % 4)], axis=1), factors)
    assert mixed.count == 0
    with pytest.raises(ValueError):
        specialized_neurons_per_code(acts, factors, tau=2.0)


# -------------------------------------------------------------------------------- AUROC and coverage

def _brute_ranks(a):
    a = np.asarray(a, dtype=np.float64)
    return np.array([[(col < v).sum() + ((col == v).sum() + 1) / 2 for v in col] for col in a.T])


def _brute_auroc(x, positive):
    pos, neg = x[positive], x[~positive]
    return float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())


def test_average_ranks_match_counting_on_both_paths(strict):
    rng = np.random.default_rng(0)
    for trial in range(20):
        n, m = int(rng.integers(1, 40)), int(rng.integers(1, 5))
        a = rng.integers(0, 4, (n, m)) * (rng.random((n, m)) < rng.random())
        if trial % 4 == 0:
            a = rng.normal(size=(n, m))
        t = np.ascontiguousarray(a.T)
        expected = _brute_ranks(a)
        assert _ranks_dense(t) == pytest.approx(expected)
        assert _ranks_sparse(t, t > t.min(axis=1, keepdims=True)) == pytest.approx(expected)
        assert average_ranks(a) == pytest.approx(expected)


def test_auroc_by_hand_with_ties(strict):
    # Positives (value 1) are 0 and 2, negatives 0 and 1: pairs 0v0 tie (1/2), 0v1 (0), 2v0 (1), 2v1 (1).
    acts = np.array([[0.0], [0.0], [1.0], [2.0]])
    labels = np.array([0, 1, 0, 1])
    auc = auroc_matrix(acts, labels)[0]
    assert auc.tolist() == [[0.375, 0.625]]
    rng = np.random.default_rng(1)
    acts = rng.integers(0, 3, (30, 4)) * (rng.random((30, 4)) < 0.3)
    labels = rng.integers(0, 3, 30)
    auc = auroc_matrix(acts, labels)[0]
    for unit in range(4):
        for v in range(3):
            assert auc[unit, v] == pytest.approx(_brute_auroc(acts[:, unit], labels == v))


def test_indicator_reversed_and_dead_neurons(strict):
    labels = np.repeat(np.arange(4), 25)
    ind0 = (labels == 0).astype(float)
    acts = np.stack([ind0, (labels == 1).astype(float), 1.0 - ind0, np.zeros(100)], axis=1)
    auc = auroc_matrix(acts, labels)[0]
    assert auc[0, 0] == 1.0 and auc[1, 1] == 1.0
    assert auc[2, 0] == 0.0  # reversed: taken as given, not as 1 - AUROC
    assert auc[3].tolist() == [0.5] * 4  # dead: all ties
    # Value 2 against the indicator of 0: positives all 0; negatives 25 ones, 50 zeros -> 0.5 * 50/75.
    assert auc[0, 2] == pytest.approx(1 / 3)
    align = feature_alignment(acts, labels)
    # Values 2 and 3 are best told by "not 0": positives all 1, negatives 25 zeros and 50 ones -> 50/75.
    assert align.best[0].tolist() == pytest.approx([1.0, 1.0, 2 / 3, 2 / 3])
    assert align.best_neuron[0].tolist() == [0, 1, 2, 2]
    assert align.coverage.tolist() == [0.5] and align.mean_coverage == 0.5
    assert align.mean_best == pytest.approx(5 / 6)
    # Coverage needs AUROC strictly above the threshold.
    assert feature_alignment(acts, labels, threshold=1.0).mean_coverage == 0.0


def test_alignment_weighs_factors_equally_and_skips_single_valued_ones(strict):
    factors = np.stack([np.arange(8) % 2, np.arange(8) % 4, np.zeros(8, int)], axis=1)
    acts = (factors[:, :1] == 1).astype(float)
    align = feature_alignment(acts, factors)
    assert align.varied.tolist() == [True, True, False]
    # Factor 0: value 1 at 1, value 0 at 0 (the neuron is off there: as given, not flipped).
    # Factor 1: the neuron fires on values 1 and 3; value 1 against the rest: positives 2 ones, negatives
    # 2 ones and 4 zeros -> (4 + 0.5 * 2) / 6 = 5/6; value 0: positives 2 zeros -> 0.5 * 2 / 6 = 1/6.
    assert align.best[0].tolist() == [0.0, 1.0]
    assert align.best[1].tolist() == pytest.approx([1 / 6, 5 / 6, 1 / 6, 5 / 6])
    assert align.coverage.tolist()[:2] == [0.5, 0.0] and align.best_mean.tolist()[:2] == pytest.approx([0.5, 0.5])
    assert align.mean_coverage == 0.25 and align.mean_best == pytest.approx(0.5)
    assert align.best[2].tolist() == [0.5]


# ------------------------------------------------------------------------------------------ evaluate_sae

class _PlantedSAE:
    """Codes handed over as given: dead apart from one neuron carrying 'A = 0'."""

    sparsity = 1.0

    def __init__(self, acts):
        self.acts = acts

    def codes(self, x):
        return self.acts

    def reconstruct(self, x):
        return x

    def decoder_directions(self):
        return np.eye(self.acts.shape[1], 7)  # one input unit each (the planted inputs below are 7 wide)

    def pre_activations(self, x):
        # Neuron 0 fires; 1 and 2 are positive somewhere but below the gate; 3-5 never positive.
        pre = np.full((len(x), self.acts.shape[1]), -1.0)
        pre[:, 0] = self.acts[:, 0]
        pre[0, 1:3] = 0.5
        return pre


def test_evaluate_sae_reports_every_new_metric_without_warnings(strict):
    from collapse_tui.config import EvalConfig
    from collapse_tui.engine.evaluation import evaluate_sae
    from collapse_tui.metrics.specs import spec

    factors = grid(32, 4, repeats=4)
    sae_input = np.concatenate([onehot(factors[:, 0], 32), onehot(factors[:, 1], 4)], axis=1)
    acts = np.zeros((len(factors), 6))
    acts[:, 0] = factors[:, 0] == 0
    m = evaluate_sae(_PlantedSAE(acts), sae_input, factors, EvalConfig())
    assert m["probe_acc_input"] == 1.0 and m["probe_acc_input_per_factor"] == [1.0, 1.0]
    assert 0.0 < m["probe_acc"] < 1.0 and len(m["probe_acc_per_factor"]) == 2
    assert m["specialized_code"] == 1 and m["specialized"] == 0 and m["specialized_code_mask"][0]
    assert m["mig_sup_hcode"] == pytest.approx(1.0)
    assert m["mig_sup"] == pytest.approx(mig_sup(acts, factors))  # Li et al.'s: near 0 for the rare unit
    # One live unit: each factor's importances sum to 1 (as trees' do), so it holds all of A's and all of
    # B's (B's from chance co-firing): complete for both, and disentangled not at all.
    assert m["dci_ridge_completeness"] == pytest.approx(1.0)
    assert m["dci_ridge_disentanglement"] == pytest.approx(0.0, abs=1e-12)
    assert m["auroc_best_per_value"][0][0] == 1.0 and m["auroc_best_neuron"][0][0] == 0
    assert m["auroc_coverage_per_factor"] == pytest.approx([1 / 32, 0.0], abs=1e-4)
    assert m["auroc_coverage"] == pytest.approx(1 / 64)
    # The input: 32 + 4 one-hot columns over a balanced grid; each block's centred indicators sum to 0, so
    # it spans 31 + 3 directions. None is constant.
    assert m["input_dims_99"] == 34 and m["input_silent_units"] == 0
    assert "dead_relu" not in m and "dci_trees_disentanglement" not in m  # final evaluation only
    for key in ("mig_sup", "mig_sup_hcode", "dci_ridge_disentanglement", "dci_ridge_completeness", "probe_acc",
                "probe_acc_input", "auroc_best", "auroc_coverage", "specialized_code", "input_participation_ratio",
                "input_dims_99", "input_silent_units"):
        assert isinstance(m[key], (int, float)) and math.isfinite(m[key]), key
        spec(key)  # every scalar has a spec
    assert spec("probe_acc").format(m["probe_acc_input"]) == "100.0"


def test_evaluate_sae_on_all_dead_codes_is_finite(strict):
    from collapse_tui.config import EvalConfig
    from collapse_tui.engine.evaluation import evaluate_sae

    factors = grid(4, 3, repeats=3)
    m = evaluate_sae(_PlantedSAE(np.zeros((len(factors), 5))), np.ones((len(factors), 2)), factors, EvalConfig())
    assert m["dci_ridge_disentanglement"] == m["dci_ridge_completeness"] == 0.0
    assert m["mig_sup"] == m["mig_sup_hcode"] == 0.0
    assert m["auroc_best"] == 0.5 and m["auroc_coverage"] == 0.0 and m["specialized_code"] == 0
    assert m["probe_acc"] == m["probe_acc_input"]  # nothing to read: both predict the majority


@pytest.mark.parametrize("key, value, text", [
    ("probe_acc", 0.539, "53.9"),
    ("probe_acc_input", 1.0, "100.0"),
    ("auroc_coverage", 0.1667, "16.7"),
    ("auroc_best", 0.7684, "0.768"),
    ("mig_sup", 0.0414, "0.041"),
    ("dci_ridge_disentanglement", 0.0807, "0.081"),
    ("dci_trees_completeness", 0.104, "0.104"),
    ("specialized_code", 47, "47"),
])
def test_new_metrics_format_as_the_tables_show_them(key, value, text):
    from collapse_tui.metrics.specs import spec

    assert spec(key).format(value) == text


def test_final_evaluation_splits_the_dead_by_cause_and_fits_the_trees(strict):
    from collapse_tui.config import EvalConfig
    from collapse_tui.engine.evaluation import evaluate_sae
    from collapse_tui.metrics.specs import spec

    factors = grid(4, 3, repeats=20)
    sae_input = np.concatenate([onehot(factors[:, 0], 4), onehot(factors[:, 1], 3)], axis=1)
    acts = np.zeros((len(factors), 6))
    acts[:, 0] = factors[:, 0] == 0
    m = evaluate_sae(_PlantedSAE(acts), sae_input, factors, EvalConfig(dci_tree_samples=100), final=True)
    assert m["dead_relu"] == pytest.approx(3 / 6) and m["dead_gated"] == pytest.approx(2 / 6)
    assert m["dci_tree_inputs"] == 100
    # The one live code carries "A = 0" only: all of A's tree importance and, after the trees fit B's
    # chance structure on it, some of B's too. It predicts A = 0 against the rest.
    assert m["dci_trees_completeness"] == pytest.approx(1.0)
    assert 0.0 <= m["dci_trees_disentanglement"] <= 1.0
    assert 0.25 < m["dci_trees_informativeness"] < 1.0
    # Neuron 0 fires on exactly "A = 0": a 1-neuron probe finds that value, and k = 5 cannot do better
    # there; the other values of A and all of B have no neuron (F1 0 at k = 1, where the probe's one
    # neuron is silent). Nothing fires but neuron 0, so nothing is absorbed.
    assert 0.0 < m["ksparse_f1_1"] <= m["ksparse_f1_5"] <= 1.0 and m["absorption"] == 0.0
    for key in ("dead_relu", "dead_gated", "dci_trees_disentanglement", "dci_trees_completeness",
                "dci_trees_informativeness", "ksparse_f1_1", "ksparse_f1_2", "ksparse_f1_5", "absorption"):
        spec(key)
