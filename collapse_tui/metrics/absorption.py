"""Feature splitting and feature absorption, measured against ground-truth factors.

Chanin et al. (2024, "A is for Absorption: studying feature splitting and absorption in sparse
autoencoders") find both with k-sparse probing. *Splitting*: a feature that one latent should carry is
spread over several, so a probe on the best k latents scores clearly better than one on the single best
latent (they flag a split when the F1 score rises by more than a small margin as k grows). *Absorption*:
the main latent of a feature stays silent on some of the feature's inputs while another latent, aligned
with the feature, fires there instead and has taken the feature over on those inputs.

Their oracle for "this input has the feature" is a logistic-regression probe on the model's residual
stream; here the ground-truth factors are the oracle: every input whose factor takes value v has feature
"value v" (one factor value against the rest is one binary feature; dSprites has 113 of them).

- :func:`k_sparse_probe` / :func:`k_sparse_probing`: the k neurons whose mean activation differs most
  between positives and negatives (Gurnee et al. 2023, "Finding neurons in a haystack", as SAEBench's
  k-sparse probing does it), then a logistic regression on them, scored by held-out F1.
- :func:`absorption_rate`: per factor value, the share of its inputs on which its main neuron is silent
  while one of that neuron's decoder neighbours fires.

numpy and scipy only; deterministic, and free of NaN or warnings on dead (all-zero) neurons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy.special import expit

from collapse_tui.metrics.disentanglement import _as_2d, _check_factors, _labels, _pair
from collapse_tui.metrics.interpretability import (
    PROBE_SEED,
    auroc_matrix,
    holdout_split,
)

__all__ = [
    "ABSORPTION_MIN_COSINE", "ABSORPTION_NEIGHBOURS", "PROBE_C", "PROBE_KS",
    "Absorption", "KSparseProbing", "SparseProbe",
    "absorption_rate", "k_sparse_probe", "k_sparse_probing",
]

PROBE_KS = (1, 2, 5)  # SAEBench's default k of its k-sparse probing
PROBE_C = 1.0  # inverse L2 strength of the logistic regression on standardised features (sklearn's default)
ABSORPTION_NEIGHBOURS = 5  # a main neuron's decoder neighbours: its this many nearest rows by cosine ...
ABSORPTION_MIN_COSINE = 0.0  # ... among those with cosine above this (pointing at least partly its way)
_BLOCK = 128  # binary targets fitted together in one batched solve


def _finite(name: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite (NaN or inf found)")
    return a


def _acts(acts) -> np.ndarray:
    return _finite("acts", _as_2d("acts", acts, allow_1d=False))


def _count(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (
            high is not None and value > high):
        bound = f">= {low}" + (f" and <= {high}" if high is not None else "")
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return int(value)


def _split(n: int, split, seed) -> tuple[np.ndarray, np.ndarray]:
    if split is None:
        return holdout_split(n, seed)
    train, test = (np.asarray(s).reshape(-1) for s in split)
    for name, part in (("train", train), ("held-out", test)):
        if part.size == 0 or part.dtype.kind not in "iu" or part.min() < 0 or part.max() >= n:
            raise ValueError(f"split's {name} part must be non-empty sample indices in [0, {n}), "
                             f"got {part.size} entries of dtype {part.dtype}")
    return train, test


# --------------------------------------------------------------------------------- batched logistic fits

def _logistic(x: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    """L2-regularised logistic regressions fitted at once: ``x`` (B, n, k) features, ``y`` (B, n) 0/1.

    Each problem minimises sum_i s_i log(1 + exp(-t_i z_i)) + ||w||^2 / (2c) with z = x w + b, t = +-1
    and the intercept b unpenalised: sklearn's ``LogisticRegression(C=c, class_weight="balanced")``
    objective, with s_i = n / (2 n_class) of the sample's class. Solved by Newton steps with a
    backtracking line search (the objective is strictly convex in w), until the Newton decrement falls
    below 1e-15 of the loss (a full step would gain less than the loss's rounding).
    Returns (B, k + 1): the weights, then the intercept.
    """
    b, n, k = x.shape
    xa = np.concatenate([x, np.ones((b, n, 1))], axis=2)
    n_pos = y.sum(axis=1, keepdims=True)
    s = np.where(y > 0, n / (2.0 * n_pos), n / (2.0 * (n - n_pos)))
    pen = np.full(k + 1, 1.0 / c)
    pen[-1] = 0.0
    theta = np.zeros((b, k + 1))
    # the intercept starts at the balanced log-odds, 0: the weighted classes already sum to n / 2 each

    def loss(th):
        z = np.einsum("bnk,bk->bn", xa, th)
        return (s * np.logaddexp(0.0, np.where(y > 0, -z, z))).sum(axis=1) + 0.5 * (pen * th * th).sum(axis=1)

    current = loss(theta)
    active = np.ones(b, dtype=bool)
    for _ in range(100):
        z = np.einsum("bnk,bk->bn", xa, theta)
        p = expit(z)
        grad = np.einsum("bnk,bn->bk", xa, s * (p - y)) + pen * theta
        hess = np.matmul(np.swapaxes(xa * (s * p * (1.0 - p))[..., None], 1, 2), xa) + np.diag(pen + 1e-12 * n)
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        # The Newton decrement: twice what a full step would still gain. Below the loss's rounding, stop.
        decrease = (grad * step).sum(axis=1)
        active &= decrease > 1e-15 * (1.0 + np.abs(current))
        if not active.any():
            break
        t = np.ones(b)
        todo = active.copy()
        for _ in range(40):
            trial = theta - t[:, None] * step
            new = loss(trial)
            accept = todo & (new < current) & (new <= current - 1e-4 * t * decrease)
            theta[accept] = trial[accept]
            current[accept] = new[accept]
            todo &= ~accept
            if not todo.any():
                break
            t[todo] *= 0.5
        active &= ~todo  # no step lowers the loss any more: at the optimum up to rounding
    return theta


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both parts scaled by the training part's mean and standard deviation along axis 1; a feature
    constant on the training part (a dead neuron) becomes 0 and gets weight 0."""
    mu = train.mean(axis=1, keepdims=True)
    sd = train.std(axis=1, keepdims=True)
    live = sd > 0
    scale = np.where(live, sd, 1.0)
    return np.where(live, (train - mu) / scale, 0.0), np.where(live, (test - mu) / scale, 0.0)


def _scores(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, F1 of the positive class and balanced accuracy; each part holds both classes."""
    tp = (pred & truth).sum(axis=1)
    fp = (pred & ~truth).sum(axis=1)
    fn = (~pred & truth).sum(axis=1)
    tn = (~pred & ~truth).sum(axis=1)
    f1 = 2.0 * tp / (2.0 * tp + fp + fn)  # truth holds a positive, so the denominator is > 0
    return f1, 0.5 * (tp / (tp + fn) + tn / (tn + fp))


def _probe_targets(x_tr, x_te, y_tr, y_te, ks, c):
    """k-sparse probes of B binary targets on the same features: ``y_tr`` (B, n_train), ``y_te`` (B, n_test)
    bool, each with both classes. Returns (order (B, max k), signed mean differences (B, max k), F1 (B, K),
    balanced accuracy (B, K))."""
    n_pos = y_tr.sum(axis=1).astype(np.float64)
    pos_sum = y_tr.astype(np.float64) @ x_tr  # (B, m)
    neg_mean = (x_tr.sum(axis=0)[None, :] - pos_sum) / (y_tr.shape[1] - n_pos)[:, None]
    diff = pos_sum / n_pos[:, None] - neg_mean
    # the largest |difference| first; ties go to the lower neuron index
    order = np.argsort(-np.abs(diff), axis=1, kind="stable")[:, :max(ks)]
    f1 = np.empty((y_tr.shape[0], len(ks)))
    bacc = np.empty_like(f1)
    for i, k in enumerate(ks):
        cols = order[:, :k]
        zt, ze = _standardise(np.moveaxis(x_tr[:, cols], 0, 1), np.moveaxis(x_te[:, cols], 0, 1))
        theta = _logistic(zt, y_tr.astype(np.float64), c)
        pred = np.einsum("bnk,bk->bn", ze, theta[:, :-1]) + theta[:, -1:] > 0
        f1[:, i], bacc[:, i] = _scores(pred, y_te)
    return order, np.take_along_axis(diff, order, axis=1), f1, bacc


@dataclass(frozen=True)
class SparseProbe:
    """A k-sparse probe of one binary target: ``neurons`` (k,) the chosen neurons, largest |mean difference|
    first, ``mean_difference`` (k,) their signed mean activation on positives minus negatives (training
    part), and the held-out ``f1`` (positive class) and ``balanced_accuracy``."""

    neurons: np.ndarray
    mean_difference: np.ndarray
    f1: float
    balanced_accuracy: float
    k: int


def _check_c(c) -> float:
    try:
        value = float(c)
    except (TypeError, ValueError):
        raise ValueError(f"c must be a positive finite number, got {c!r}") from None
    if isinstance(c, bool) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"c must be a positive finite number, got {c!r}")
    return value


def k_sparse_probe(acts, labels, k: int, split=None, seed: int = PROBE_SEED, c: float = PROBE_C) -> SparseProbe:
    """A k-sparse probe of a binary target (e.g. one factor value against the rest) from the code ``acts``.

    Selection (on the training part only): the k neurons with the largest absolute difference between
    their mean activation on positives and on negatives (Gurnee et al. 2023; SAEBench's k-sparse probing
    uses the same rule), ties to the lower index. Classifier: logistic regression on those k neurons,
    standardised by the training part (so the L2 strength ``1 / c`` means the same whatever the SAE's
    activation scale, which shrinks as its sparsity penalty grows), with balanced class weights, the
    weighted counterpart of SAEBench's class-balanced subsampling: one factor value is 1/3 to 1/40 of
    the inputs. Score: F1 of the positive class on the held-out part, Chanin et al.'s splitting score
    (balanced accuracy is reported beside it). ``split``: (train, held-out) indices; default the seeded
    half split :func:`~collapse_tui.metrics.interpretability.holdout_split` of the linear probes.

    ``labels``: one entry per sample, bool or 0/1. Raises ValueError unless both parts hold positives
    and negatives.
    """
    x = _acts(acts)
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"labels must be 1-D with one entry per sample ({x.shape[0]}), got shape {y.shape}")
    if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be binary: bool, or numbers that are all 0 or 1")
    k = _count("k", k, 1, x.shape[1])
    c = _check_c(c)
    y = y.astype(bool)
    train, test = _split(x.shape[0], split, seed)
    for name, part in (("training", train), ("held-out", test)):
        if not (y[part].any() and not y[part].all()):
            raise ValueError(f"the {name} part of the split must hold both positives and negatives")
    x = x.astype(np.float64, copy=False)
    order, diff, f1, bacc = _probe_targets(x[train], x[test], y[train][None], y[test][None], (k,), c)
    return SparseProbe(neurons=order[0].astype(np.int64), mean_difference=diff[0], f1=float(f1[0, 0]),
                       balanced_accuracy=float(bacc[0, 0]), k=k)


@dataclass(frozen=True)
class KSparseProbing:
    """k-sparse probes of every factor value (that value against the rest) at each k of ``ks``.

    ``f1`` and ``balanced_accuracy`` (factors, len(ks)): per factor, the mean over its scored values of
    the held-out score at each k. Per factor j (lists over factors): ``per_value_f1[j]`` (values,
    len(ks)), ``scored[j]`` (values,) whether both parts of the split held the value and the rest (the
    others are left out of the means and read 0), ``neurons[j]`` (values, max k) the chosen neurons in
    order (-1 where unscored). ``varied`` (factors,): factors with at least one scored value, the ones
    :attr:`mean` averages (a single-valued factor has none). A rise from k = 1 to larger k says a factor's
    values are split over several neurons.
    """

    ks: tuple[int, ...]
    f1: np.ndarray
    balanced_accuracy: np.ndarray
    per_value_f1: list[np.ndarray]
    scored: list[np.ndarray]
    neurons: list[np.ndarray]
    varied: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """(len(ks),): the mean F1 over the varied factors (zeros if none)."""
        return self.f1[self.varied].mean(axis=0) if self.varied.any() else np.zeros(len(self.ks))

    @property
    def split_gain(self) -> np.ndarray:
        """(factors,): F1 at the largest k minus F1 at the smallest, the splitting signal."""
        return self.f1[:, -1] - self.f1[:, 0]


def _check_ks(ks, m: int) -> tuple[int, ...]:
    try:
        ks = tuple(ks)
    except TypeError:
        raise ValueError(f"ks must be a sequence of integers, got {ks!r}") from None
    if not ks:
        raise ValueError("ks must hold at least one k")
    ks = tuple(_count("each k of ks", k, 1, m) for k in ks)
    if any(b <= a for a, b in pairwise(ks)):
        raise ValueError(f"ks must be strictly increasing, got {ks}")
    return ks


def k_sparse_probing(acts, factors, ks: Sequence[int] = PROBE_KS, split=None, seed: int = PROBE_SEED,
                     c: float = PROBE_C) -> KSparseProbing:
    """:func:`k_sparse_probe` of every value of every factor against the rest of the factor's values, at
    each k of ``ks`` (strictly increasing, at most the number of neurons), all on one split.

    The neurons for each k are the first k of one ranking, so the probe at a larger k sees every neuron
    of the smaller ones. Per factor, the scores are averaged over its values, so every value weighs the
    same however many inputs it has; the values a part of the split lacks (or that fill a part) are left
    out. All targets with the same k are fitted together, by batched Newton steps on sklearn's objective,
    at the cost of a few matrix products over the training part per step (0.7 to 1.5 s for 5,000 samples x
    500 neurons x 113 values x ks (1, 2, 5) on 2 shared cores, against some 2 to 4 s for sklearn's solvers fitting
    the 339 probes one by one).
    """
    x, factors = _pair(acts, factors)
    x = _finite("acts", x).astype(np.float64, copy=False)
    _check_factors(factors)
    ks = _check_ks(ks, x.shape[1])
    c = _check_c(c)
    n, n_factors = factors.shape
    train, test = _split(n, split, seed)
    x_tr, x_te = x[train], x[test]
    per_f1, per_bacc, scored, neurons = [], [], [], []
    for j in range(n_factors):
        labels, v = _labels(factors[:, j])
        onehot = labels[:, None] == np.arange(v)[None, :]  # (n, v)
        ok = onehot[train].any(axis=0) & ~onehot[train].all(axis=0) & onehot[test].any(axis=0) & \
            ~onehot[test].all(axis=0)
        f1 = np.zeros((v, len(ks)))
        bacc = np.zeros((v, len(ks)))
        chosen = np.full((v, max(ks)), -1, dtype=np.int64)
        values = np.flatnonzero(ok)
        for start in range(0, values.size, _BLOCK):
            block = values[start:start + _BLOCK]
            order, _, f1[block], bacc[block] = _probe_targets(
                x_tr, x_te, onehot[train][:, block].T, onehot[test][:, block].T, ks, c)
            chosen[block] = order
        per_f1.append(f1)
        per_bacc.append(bacc)
        scored.append(ok)
        neurons.append(chosen)
    varied = np.array([s.any() for s in scored], dtype=bool)

    def means(per):
        return np.stack([p[s].mean(axis=0) if s.any() else np.zeros(len(ks)) for p, s in zip(per, scored)]) \
            if n_factors else np.zeros((0, len(ks)))

    return KSparseProbing(ks=ks, f1=means(per_f1), balanced_accuracy=means(per_bacc), per_value_f1=per_f1,
                          scored=scored, neurons=neurons, varied=varied)


# ----------------------------------------------------------------------------------------------- absorption

@dataclass(frozen=True)
class Absorption:
    """Feature absorption per factor value, against the ground truth.

    Per factor j (lists over factors): ``per_value[j]`` (values,) the absorption rate of each value (0 for
    the value of a single-valued factor, which no neuron can detect against a rest that is empty);
    ``main_silent[j]`` (values,) the share of the value's inputs on which its main neuron is silent
    (absorbed or simply missed; absorption <= it); ``main_neuron[j]`` and ``main_auroc[j]`` (values,) the
    main neuron and its AUROC for the value; ``neighbours[j]`` (values, ``n_neighbours``) the main neuron's
    decoder neighbours, nearest first, -1 padded. ``per_factor`` (factors,): the mean over the factor's
    values; ``varied`` (factors,): factors with more than one value, the ones :attr:`mean` averages.
    """

    per_value: list[np.ndarray]
    main_silent: list[np.ndarray]
    main_neuron: list[np.ndarray]
    main_auroc: list[np.ndarray]
    neighbours: list[np.ndarray]
    per_factor: np.ndarray
    varied: np.ndarray
    n_neighbours: int
    min_cosine: float

    @property
    def mean(self) -> float:
        """The mean of :attr:`per_factor` over the varied factors (0.0 if none varies)."""
        return float(self.per_factor[self.varied].mean()) if self.varied.any() else 0.0


def _decoder_neighbours(decoder: np.ndarray, rows: np.ndarray, count: int, min_cosine: float) -> np.ndarray:
    """For each neuron of ``rows``, its ``count`` nearest other decoder rows by cosine among those with
    cosine > ``min_cosine``, nearest first (ties to the lower index), -1 padded. A row without a direction
    (all zero) has no neighbours and is nobody's."""
    norms = np.linalg.norm(decoder, axis=1)
    has = norms > 0
    unit = np.divide(decoder, norms[:, None], out=np.zeros_like(decoder), where=has[:, None])
    cos = unit[rows] @ unit.T
    eligible = has[None, :] & has[rows][:, None] & (cos > min_cosine)
    eligible[np.arange(rows.size), rows] = False  # never its own neighbour
    cos = np.where(eligible, cos, -np.inf)
    order = np.argsort(-cos, axis=1, kind="stable")[:, :count]
    out = np.full((rows.size, count), -1, dtype=np.int64)
    out[:, :order.shape[1]] = np.where(np.take_along_axis(eligible, order, axis=1), order, -1)
    return out


def absorption_rate(acts, factors, decoder, neighbours: int = ABSORPTION_NEIGHBOURS,
                    min_cosine: float = ABSORPTION_MIN_COSINE, threshold: float = 0.0, ranks=None) -> Absorption:
    """Per factor value, the share of its inputs that a decoder neighbour of its main neuron has absorbed.

    - *main neuron* of a value: the best single-neuron detector of it, the highest AUROC for that value
      against the rest (:func:`~collapse_tui.metrics.interpretability.auroc_matrix`, as
      :func:`~collapse_tui.metrics.interpretability.feature_alignment` picks it; ties to the lower index).
    - its *neighbours*: the ``neighbours`` (default 5) other rows of ``decoder`` (neurons x input_dim)
      nearest to its row by cosine, among those with cosine > ``min_cosine`` (default 0); an all-zero row
      has none and is no one's.
    - an input with the value is *absorbed* when the main neuron is silent on it (activation <=
      ``threshold``, default 0: exactly 0 for a ReLU code) while at least one neighbour fires (above it).
      The value's rate is the share of its inputs absorbed. An input where neither fires is a miss, not
      absorption (:attr:`Absorption.main_silent` counts both). The rule holds as is where the main neuron
      never fires on the value (possible only when no neuron detects it, best AUROC <= 0.5): its inputs
      count as absorbed only where some neighbour fires, 1.0 if one fires on every input, 0 if none does.

    Adapted from Chanin et al. (2024): the ground-truth label replaces their logistic-regression probe as
    the oracle (every input with the value counts, not only those a probe classifies right), there is one
    main neuron per value (their k-sparse probe may pick several), and the absorbing neuron must be near
    the main neuron's decoder direction rather than aligned with the probe's direction. Per factor, the
    rates are averaged over its values; :attr:`Absorption.mean` averages the factors. ``ranks`` (from
    :func:`~collapse_tui.metrics.interpretability.average_ranks` of ``acts``) can be passed to reuse them.
    """
    x, factors = _pair(acts, factors)
    x = _finite("acts", x)
    _check_factors(factors)
    w = _finite("decoder", _as_2d("decoder", decoder, allow_1d=False)).astype(np.float64, copy=False)
    if w.shape[0] != x.shape[1]:
        raise ValueError(f"decoder must have one row per neuron of acts ({x.shape[1]}), got shape {w.shape}")
    count = _count("neighbours", neighbours, 1)
    try:
        min_cos = float(min_cosine)
        thr = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"min_cosine and threshold must be numbers, got {min_cosine!r} and {threshold!r}") from None
    if not -1.0 <= min_cos < 1.0:
        raise ValueError(f"min_cosine must be in [-1, 1), got {min_cosine!r}")
    if not np.isfinite(thr):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")

    aucs = auroc_matrix(x, factors, ranks=ranks)
    mains = [a.argmax(axis=0).astype(np.int64) for a in aucs]
    distinct, inverse = np.unique(np.concatenate(mains), return_inverse=True) if mains else (
        np.zeros(0, np.int64), np.zeros(0, np.int64))
    near = _decoder_neighbours(w, distinct, count, min_cos)
    nbrs_all = near[inverse]

    per_value, silent, nbrs, start = [], [], [], 0
    for j, main in enumerate(mains):
        labels, v = _labels(factors[:, j])
        nb = nbrs_all[start:start + v]
        start += v
        rate = np.zeros(v)
        miss = np.zeros(v)
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(v + 1))
        for value in range(v):
            idx = order[bounds[value]:bounds[value + 1]]
            cols = nb[value][nb[value] >= 0]
            main_off = x[idx, main[value]] <= thr
            other_on = (x[np.ix_(idx, cols)] > thr).any(axis=1) if cols.size else np.zeros(idx.size, bool)
            rate[value] = (main_off & other_on).mean() if v > 1 else 0.0
            miss[value] = main_off.mean()
        per_value.append(rate)
        silent.append(miss)
        nbrs.append(nb)
    varied = np.array([a.shape[1] > 1 for a in aucs], dtype=bool)
    per_factor = np.array([r.mean() if ok else 0.0 for r, ok in zip(per_value, varied)])
    return Absorption(per_value=per_value, main_silent=silent, main_neuron=mains,
                      main_auroc=[a.max(axis=0) for a in aucs], neighbours=nbrs, per_factor=per_factor,
                      varied=varied, n_neighbours=count, min_cosine=min_cos)
