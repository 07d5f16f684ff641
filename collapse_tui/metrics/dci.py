"""DCI (Eastwood & Williams 2018, "A framework for the quantitative evaluation of disentangled
representations"): how concentrated an importance matrix (codes x factors) is per code (disentanglement)
and per factor (completeness), and how well the importance model predicts the factors (informativeness).

Two importance models, under their own names:

- :func:`tree_importance`: the published one as disentanglement_lib computes it (its
  ``evaluation/metrics/dci.py``): per factor, scikit-learn's ``GradientBoostingClassifier`` with its
  defaults (100 stages of depth-3 trees, learning rate 0.1) fitted on the codes, the absolute impurity
  importances of its features, and its held-out accuracy. It costs a tree per class per stage, so it runs
  on a stated, seeded subsample of the evaluation set.
- :func:`ridge_importance`: the fast variant, from the ridge probe's absolute weights
  (:func:`~collapse_tui.metrics.interpretability.linear_probe`), each factor's column rescaled to sum to 1
  as tree importances do, so a factor with more classes (more one-hot targets, more summed weights)
  weighs no more in the code weights than one with fewer.

:func:`dci` turns either matrix into the three scores exactly as disentanglement_lib does (entropy in base
K = number of factors per code, base C = number of codes per factor, importance-weighted means).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from collapse_tui.metrics.disentanglement import _as_2d, _check_factors, _labels, _pair

__all__ = ["DCI", "TREE_STAGES", "TreeImportance", "dci", "ridge_importance", "tree_importance", "tree_split"]

# disentanglement_lib's GradientBoostingClassifier() defaults, written out so a scikit-learn release that
# changes its defaults cannot change the metric.
TREE_STAGES = 100
TREE_DEPTH = 3
TREE_LEARNING_RATE = 0.1
TREE_SEED = 0  # disentanglement_lib leaves it unset; fixed here so a run's number is reproducible


def _finite(name: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite (NaN or inf found)")
    return a


def _entropy_rows(counts: np.ndarray) -> np.ndarray:
    """Entropy in nats of each row of a non-negative count (or weight) matrix; 0 for an all-zero row."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=1, keepdims=True)
    p = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    logp = np.log(p, out=np.zeros_like(p), where=p > 0)
    return -(p * logp).sum(axis=1)


# -------------------------------------------------------------------------------------------------- DCI

@dataclass(frozen=True)
class DCI:
    """Eastwood & Williams' disentanglement, completeness and informativeness.

    ``per_code`` (codes,): 1 - H_K(p_i), p_i code i's importances over the K factors, normalised;
    ``code_weight`` (codes,): code i's share of all importance (what weighs ``per_code`` into the score);
    ``per_factor`` (factors,): 1 - H_C(q_j), q_j factor j's importances over the C codes, normalised;
    ``informativeness``: the mean of the accuracies given, or None.
    """

    disentanglement: float
    completeness: float
    informativeness: float | None
    per_code: np.ndarray
    code_weight: np.ndarray
    per_factor: np.ndarray


def dci(importance, accuracy=None) -> DCI:
    """DCI scores from an importance matrix (codes x factors, non-negative; absolute values are taken).

    As disentanglement_lib computes them: disentanglement is the importance-weighted mean over codes of
    1 - H_K(p_i) (entropy in base K = number of factors); completeness the importance-weighted mean over
    factors of 1 - H_C(q_j) (base C = number of codes). A code or factor with no importance at all scores
    0 and weighs nothing; an all-zero matrix scores 0. With one factor every code with importance is
    perfectly disentangled (1), with one code every factor is complete (1). Unlike disentanglement_lib
    (which adds 1e-11 to every entry), 0 log 0 is exactly 0.

    ``accuracy``: the importance model's held-out accuracies per factor; informativeness is their mean.
    """
    r = np.abs(_finite("importance", _as_2d("importance", importance)).astype(np.float64))
    codes, k = r.shape
    code_total = r.sum(axis=1)
    factor_total = r.sum(axis=0)
    total = r.sum()
    has_code = code_total > 0
    per_code = np.where(has_code, 1.0 - _entropy_rows(r) / np.log(k), 0.0) if k > 1 else has_code * 1.0
    has_factor = factor_total > 0
    per_factor = (np.where(has_factor, 1.0 - _entropy_rows(r.T) / np.log(codes), 0.0) if codes > 1
                  else has_factor * 1.0)
    if total > 0:
        code_weight = code_total / total
        d = float((per_code * code_weight).sum())
        c = float((per_factor * factor_total / total).sum())
    else:
        code_weight = np.zeros(codes)
        d = c = 0.0
    info = None if accuracy is None else float(np.mean(np.asarray(accuracy, dtype=np.float64)))
    return DCI(disentanglement=d, completeness=c, informativeness=info, per_code=per_code,
               code_weight=code_weight, per_factor=per_factor)


def ridge_importance(importance) -> np.ndarray:
    """A probe's importance matrix (codes x factors, absolute values taken) with each factor's column
    rescaled to sum to 1, as gradient-boosted trees' importances do; an all-zero column (a single-valued
    factor, or one no code carries) stays zero.

    Why: the ridge probe's importance of a code for a factor sums its absolute weights over the factor's
    one-hot classes, so it grows with the number of classes (on the same codes, a factor of 8 classes took
    three times the share of one of 3), and a code carrying a 40-valued factor would outweigh one carrying
    a 3-valued factor in the disentanglement's code weights."""
    r = np.abs(_finite("importance", _as_2d("importance", importance)).astype(np.float64))
    total = r.sum(axis=0, keepdims=True)
    return np.divide(r, total, out=np.zeros_like(r), where=total > 0)


@dataclass(frozen=True)
class TreeImportance:
    """Gradient-boosted trees' importances (codes x factors; zero columns for single-valued factors), and their train and held-out accuracies per factor
    (1.0 for a single-valued factor); ``varied`` marks the factors with more than one value."""

    importance: np.ndarray
    train_accuracy: np.ndarray
    accuracy: np.ndarray
    varied: np.ndarray
    n_train: int
    n_test: int


def tree_split(n: int, n_train: int, seed: int = TREE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """A seeded draw of ``n_train`` training and as many held-out samples out of ``n``, disjoint and
    sorted; when ``n`` holds fewer than twice ``n_train``, half the samples train and the rest are held
    out."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"the tree DCI needs at least 2 samples, got {n!r}")
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) or n_train < 1:
        raise ValueError(f"n_train must be a whole number >= 1, got {n_train!r}")
    n_train = min(int(n_train), n // 2)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_train]), np.sort(perm[n_train:2 * n_train])


def tree_importance(codes, factors, n_train: int = 1000, seed: int = TREE_SEED, stages: int = TREE_STAGES,
                    workers: int | None = None) -> TreeImportance:
    """disentanglement_lib's importance model: per factor, a ``GradientBoostingClassifier`` (``stages``
    stages of depth-3 trees, learning rate 0.1) fitted on ``n_train`` samples of the codes and scored on
    as many others (:func:`tree_split`); importance = |feature_importances_|.

    Deviations: single-valued factors get a zero column and accuracy 1 instead of a refused fit; the
    trees' seed is fixed (disentanglement_lib leaves it unset, so its numbers vary from run to run where
    two features split a node equally well). Dead codes stay in the fit: leaving them out would not
    change what a tree can split on, but it would change the order features are tried in, and so which
    of two equally good splits wins. Factors are fitted on ``workers`` threads (default: the CPUs, at most
    one per factor; scikit-learn builds trees without the GIL).
    """
    from sklearn.ensemble import GradientBoostingClassifier  # scikit-learn is costly to import: only here

    codes, factors = _pair(codes, factors)
    _check_factors(factors)
    x = _finite("codes", codes).astype(np.float64, copy=False)
    train, test = tree_split(x.shape[0], n_train, seed)
    xt, xe = x[train], x[test]
    labels = [_labels(factors[:, j]) for j in range(factors.shape[1])]
    n_factors = factors.shape[1]
    importance = np.zeros((x.shape[1], n_factors))
    train_acc, test_acc = np.ones(n_factors), np.ones(n_factors)
    varied = np.array([v > 1 for _, v in labels])

    def fit(j: int):
        y = labels[j][0]
        if np.unique(y[train]).size < 2:
            return j, None  # one class seen in training: predict it
        model = GradientBoostingClassifier(n_estimators=stages, max_depth=TREE_DEPTH,
                                           learning_rate=TREE_LEARNING_RATE, random_state=seed)
        model.fit(xt, y[train])
        return j, (np.abs(model.feature_importances_), float((model.predict(xt) == y[train]).mean()),
                   float((model.predict(xe) == y[test]).mean()))

    todo = [j for j in range(n_factors) if varied[j]]
    workers = max(1, min(len(todo), workers or os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        for j, fitted in pool.map(fit, todo):
            if fitted is None:
                y = labels[j][0]
                majority = np.bincount(y[train]).argmax()
                train_acc[j], test_acc[j] = 1.0, float((y[test] == majority).mean())
                continue
            importance[:, j], train_acc[j], test_acc[j] = fitted
    return TreeImportance(importance=importance, train_accuracy=train_acc, accuracy=test_acc, varied=varied,
                          n_train=int(train.size), n_test=int(test.size))
