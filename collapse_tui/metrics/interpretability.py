"""Interpretability of codes beyond MIG: linear probes, DCI, MIG-sup, feature-factor AUROC, and specialized
neurons normalised per code.

MIG over hundreds of sparse codes stays near 0 whatever happens: a continuous factor is spread over many
units, so the gap between its two best units is about 0. The measures here ask other questions:

- *informativeness*: can a linear probe read each factor from the code (held-out accuracy), beside the
  same probe on the SAE's input? (:func:`linear_probe`)
- *DCI* (Eastwood & Williams 2018) is in :mod:`~collapse_tui.metrics.dci`: the probe's weights are one of
  its importance models.
- *MIG-sup* (Li et al. 2020): per code, the gap between its two largest MI / H(factor); and the same gap
  over the code's own entropy, under its own name. (:func:`mig_sup`, :func:`mig_sup_hcode`)
- *feature-factor alignment*: for each factor value, the best single neuron's AUROC (that value against
  the rest), and how many values some neuron detects with AUROC above 0.9. (:func:`feature_alignment`)
- *specialized neurons per code*: MI / H(code) instead of MI / H(factor). (:func:`specialized_neurons_per_code`)

Everything is numpy, deterministic, and free of NaN or warnings on dead (constant) units. Arrays are
samples x columns; factors are discrete labels (samples x factors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collapse_tui.metrics.disentanglement import (
    _as_2d,
    _check_factors,
    _check_mi,
    _check_n_bins,
    _labels,
    _pair,
    discretize,
    entropy,
    mutual_info_matrix,
)
from collapse_tui.metrics.dci import _entropy_rows, _finite
from collapse_tui.metrics.neurons import Specialization, _threshold, specialization, specialization_rule

__all__ = [
    "AUROC_COVERAGE", "PROBE_RIDGE", "PROBE_SEED", "PROBE_TRAIN_FRACTION", "RIDGE_FORMS",
    "Alignment", "Probe",
    "auroc_matrix", "average_ranks", "code_entropy", "feature_alignment", "holdout_split",
    "linear_probe", "mig_sup", "ridge_weights", "mig_sup_hcode", "mig_sup_hcode_per_code", "mig_sup_per_code",
    "specialized_neurons_per_code",
]

# The probe's ridge strength on standardised features, as a fraction of the training samples: the Gram
# matrix's diagonal is n_train, so lambda = 0.01 n_train shrinks a lone unit-variance feature's weight by
# 1% and only tames the near-collinear directions (an encoder's hidden layer, a rare unit).
PROBE_RIDGE = 1e-2
PROBE_SEED = 0  # the seeded split of the evaluation set into probe training and held-out halves
PROBE_TRAIN_FRACTION = 0.5
AUROC_COVERAGE = 0.9  # a factor value is covered when some neuron detects it with AUROC above this


# ------------------------------------------------------------------------------------------ linear probes

def holdout_split(n: int, seed: int = PROBE_SEED, train_fraction: float = PROBE_TRAIN_FRACTION
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, seeded split of ``n`` samples: (train indices, held-out indices), each sorted.

    ``round(n * train_fraction)`` samples train (at least one, and at least one is held out).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"a held-out split needs at least 2 samples, got {n!r}")
    if not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    n_train = min(max(int(round(n * float(train_fraction))), 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_train]), np.sort(perm[n_train:])


@dataclass(frozen=True)
class Probe:
    """A linear probe of every factor from some features, scored on held-out samples.

    ``accuracy`` (factors,): held-out accuracy per factor (1.0 for a single-valued factor);
    ``varied`` (factors,): the factors with more than one value, the ones :attr:`mean` averages;
    ``importance`` (features, factors): the absolute weights of the standardised features on the factor's
    0/1 class targets, summed over its classes (an all-zero column for a single-valued factor). The sum
    grows with a factor's number of classes: :func:`~collapse_tui.metrics.dci.ridge_importance` rescales
    each column to sum to 1 before DCI reads it.
    """

    accuracy: np.ndarray
    varied: np.ndarray
    importance: np.ndarray

    @property
    def mean(self) -> float:
        """Mean held-out accuracy over the varied factors (over all factors if none varies)."""
        acc = self.accuracy[self.varied] if self.varied.any() else self.accuracy
        return float(acc.mean())


RIDGE_FORMS = ("auto", "primal", "dual")


def ridge_weights(z: np.ndarray, targets: np.ndarray, penalty: float, form: str = "auto") -> np.ndarray:
    """Ridge regression weights W (features x targets) minimising ``||z W - targets||² + penalty ||W||²``
    for samples x features ``z``, in whichever of two exactly equal forms is smaller:

    - *primal*: ``W = (z'z + penalty I)⁻¹ z' targets``, a features x features system: memory grows as
      features² and time as features³ (100,000 neurons would need a 75 GiB matrix);
    - *dual*: ``W = z' (z z' + penalty I)⁻¹ targets``, a samples x samples system, the same W by the push-through
      identity ``(z'z + λI)⁻¹ z' = z' (z z' + λI)⁻¹``.

    ``form="auto"`` takes the dual when there are fewer samples than features. With ``penalty`` 0 the
    system may be singular (dead or repeated features): least squares then gives the minimum-norm
    solution, the same in both forms. A feature that is 0 on every sample gets weight exactly 0 either way.
    """
    if form not in RIDGE_FORMS:
        raise ValueError(f"form must be one of {', '.join(RIDGE_FORMS)}, got {form!r}")
    n, p = z.shape
    if form == "auto":
        form = "dual" if n < p else "primal"
    if form == "dual":
        system, right = z @ z.T, targets
    else:
        system, right = z.T @ z, z.T @ targets
    system[np.diag_indices_from(system)] += penalty
    if penalty == 0:  # a singular system (constant or repeated features) still gets an answer
        solved = np.linalg.lstsq(system, right, rcond=None)[0]
    else:
        solved = np.linalg.solve(system, right)
    return z.T @ solved if form == "dual" else solved


def _standardise(z: np.ndarray, mu: np.ndarray, scale: np.ndarray, live: np.ndarray) -> np.ndarray:
    """``(z - mu) / scale`` in place, and 0 in the columns that are not ``live``."""
    z -= mu
    z /= scale
    z[:, ~live] = 0.0
    return z


def linear_probe(features, factors, ridge: float = PROBE_RIDGE, split=None, seed: int = PROBE_SEED,
                 form: str = "auto") -> Probe:
    """Closed-form ridge classification of each factor from ``features``, trained on one part of the samples
    and scored on the rest.

    Features are standardised with the training part's mean and standard deviation (a feature constant
    there, e.g. a dead unit, becomes 0 and gets weight 0). Each factor's classes are one-hot targets; the
    weights solve ``(Z'Z + ridge * n_train * I) W = Z'(Y - mean Y)`` for every factor at once (one Gram
    matrix, one solve), and a sample's prediction is the class with the highest ``Z W + mean Y`` (ties go
    to the lower label). So features carrying nothing predict the training part's majority class.

    Why this probe: it is exact and deterministic (no iterations, no convergence, no learning rate), costs
    one Gram matrix shared by all factors, and the same weights give the importances of DCI. A logistic
    regression would fit better calibrated probabilities, not a better-defined accuracy.

    The Gram matrix is the smaller of features x features and training samples x training samples
    (:func:`ridge_weights`: the same weights), so a dictionary far larger than the evaluation set costs
    memory and time in proportion to its neurons, not to their square or cube. ``form`` forces one.

    ``split``: (train indices, held-out indices); default :func:`holdout_split` of the samples with ``seed``.
    """
    x, factors = _pair(features, factors)
    _check_factors(factors)
    x = _finite("features", x)
    ridge = _threshold(ridge, "ridge")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    if form not in RIDGE_FORMS:
        raise ValueError(f"form must be one of {', '.join(RIDGE_FORMS)}, got {form!r}")
    n = x.shape[0]
    train, test = holdout_split(n, seed) if split is None else (np.asarray(split[0]), np.asarray(split[1]))
    if train.size == 0 or test.size == 0:
        raise ValueError("the probe needs at least one training and one held-out sample")

    # Standardised in place, part by part, in float64: a copy of each part and no temporaries, since a
    # large dictionary's codes are the biggest arrays here.
    zt = x[train].astype(np.float64)
    mu = zt.mean(axis=0)
    sd = zt.std(axis=0)
    live = sd > 0
    scale = np.where(live, sd, 1.0)
    zt = _standardise(zt, mu, scale, live)
    ze = _standardise(x[test].astype(np.float64), mu, scale, live)

    labels, sizes = zip(*(_labels(factors[:, j]) for j in range(factors.shape[1])))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    onehot = np.zeros((n, int(offsets[-1])))
    for j, lab in enumerate(labels):
        onehot[np.arange(n), offsets[j] + lab] = 1.0
    yt = onehot[train]
    ybar = yt.mean(axis=0)

    weights = ridge_weights(zt, yt - ybar, ridge * train.size, form=form)
    scores = ze @ weights + ybar

    n_factors = factors.shape[1]
    accuracy = np.ones(n_factors)
    importance = np.zeros((x.shape[1], n_factors))
    for j, lab in enumerate(labels):
        block = slice(offsets[j], offsets[j + 1])
        if sizes[j] > 1:
            accuracy[j] = float((scores[:, block].argmax(axis=1) == lab[test]).mean())
        if sizes[j] > 1:
            importance[:, j] = np.abs(weights[:, block]).sum(axis=1)
    return Probe(accuracy=accuracy, varied=np.asarray(sizes) > 1, importance=importance)


# ----------------------------------------------------------------------------------------------- MIG-sup

def code_entropy(codes, n_bins: int = 20) -> np.ndarray:
    """Entropy in nats of each code column discretised as MIG does it (:func:`discretize`): (units,).
    A constant (dead) column has entropy 0."""
    codes = _as_2d("codes", codes)
    n_bins = _check_n_bins(n_bins)
    n, units = codes.shape
    bins = discretize(codes, n_bins) - 1
    cell = bins + (np.arange(units, dtype=np.int64) * n_bins)[None, :]
    counts = np.bincount(cell.ravel(), minlength=units * n_bins).reshape(units, n_bins)
    return np.maximum(_entropy_rows(counts), 0.0)


def _mi_and_entropy(codes, factors, n_bins, mi, h_code):
    codes, factors = _pair(codes, factors)
    n_bins = _check_n_bins(n_bins)
    mi = mutual_info_matrix(codes, factors, n_bins) if mi is None else _check_mi(mi, codes.shape[1],
                                                                                  factors.shape[1])
    if h_code is None:
        h_code = code_entropy(codes, n_bins)
    else:
        h_code = np.asarray(h_code, dtype=np.float64).reshape(-1)
        if h_code.shape != (codes.shape[1],):
            raise ValueError(f"h_code must have shape (units,) = ({codes.shape[1]},), got {h_code.shape}")
    return codes, factors, mi, h_code


def _per_code_nmi(mi: np.ndarray, h_code: np.ndarray) -> np.ndarray:
    """MI / H(code), 0 for a constant code, clipped to [0, 1] (MI <= H(code) up to rounding)."""
    live = h_code > 0
    safe = np.where(live, h_code, 1.0)
    return np.clip(np.where(live[:, None], mi / safe[:, None], 0.0), 0.0, 1.0)


def mig_sup_per_code(codes, factors, n_bins: int = 20, mi=None) -> np.ndarray:
    """Per code, as Li et al. (2020, "Progressive learning and disentanglement of hierarchical
    representations"; their ``metric_MIG.py``) compute MIG-sup: MI normalised by the factor's entropy,
    MI(code; factor) / H(factor), then the largest of a code's normalised MIs minus its second largest;
    shape (units,), each in [0, 1]. MIG turned around: does each code hold one factor, rather than is each
    factor in one code. A single-valued factor (H = 0) counts 0; with one factor the second largest is 0.
    They divide by log(number of values), the entropy of their uniformly sampled factors; the entropy of
    the evaluation set's labels is used here, as :func:`~collapse_tui.metrics.disentanglement.mig` does."""
    codes, factors = _pair(codes, factors)
    n_bins = _check_n_bins(n_bins)
    mi = mutual_info_matrix(codes, factors, n_bins) if mi is None else _check_mi(mi, codes.shape[1],
                                                                                  factors.shape[1])
    h_factor = entropy(factors)
    varied = h_factor > 0
    nmi = np.clip(np.where(varied[None, :], mi / np.where(varied, h_factor, 1.0)[None, :], 0.0), 0.0, 1.0)
    return _top_two_gap(nmi)


def _top_two_gap(nmi: np.ndarray) -> np.ndarray:
    ranked = np.sort(nmi, axis=1)
    second = ranked[:, -2] if nmi.shape[1] > 1 else np.zeros(nmi.shape[0])
    return ranked[:, -1] - second


def mig_sup(codes, factors, n_bins: int = 20, mi=None, h_code=None) -> float:
    """Li et al.'s MIG-sup in [0, 1]: the mean of :func:`mig_sup_per_code` over the codes that vary
    (H(code) > 0), so dead units do not drag it down (the dead fraction is reported apart); 0.0 if none
    varies. Li et al. average over the latents whose mean varies by more than 1e-2, a scale of a VAE's
    latents that SAE codes do not share: a code that takes more than one value counts here."""
    codes, factors, mi, h_code = _mi_and_entropy(codes, factors, n_bins, mi, h_code)
    live = h_code > 0
    return float(mig_sup_per_code(codes, factors, n_bins, mi=mi)[live].mean()) if live.any() else 0.0


def mig_sup_hcode_per_code(codes, factors, n_bins: int = 20, mi=None, h_code=None) -> np.ndarray:
    """Per code: (largest MI - second largest MI over factors) / H(code); shape (units,), each in [0, 1].

    Not Li et al.'s MIG-sup (:func:`mig_sup_per_code`, which divides by H(factor)): normalised by the
    code's own discretised entropy, so a rarely firing code that carries one factor reaches 1 (H(code)
    bounds its MI) where Li et al.'s would read near 0. A constant code gives 0; with a single factor the
    second largest MI is 0. ``mi`` and ``h_code`` (:func:`code_entropy`) can be passed to reuse them.
    """
    codes, factors, mi, h_code = _mi_and_entropy(codes, factors, n_bins, mi, h_code)
    return _top_two_gap(_per_code_nmi(mi, h_code))


def mig_sup_hcode(codes, factors, n_bins: int = 20, mi=None, h_code=None) -> float:
    """The mean of :func:`mig_sup_hcode_per_code` over the codes that vary; 0.0 if none varies."""
    codes, factors, mi, h_code = _mi_and_entropy(codes, factors, n_bins, mi, h_code)
    live = h_code > 0
    gaps = mig_sup_hcode_per_code(codes, factors, n_bins, mi=mi, h_code=h_code)
    return float(gaps[live].mean()) if live.any() else 0.0


# ------------------------------------------------------------------------- specialized neurons per code

def specialized_neurons_per_code(codes, factors, tau: float = 0.1, ratio: float = 2.0, n_bins: int = 20,
                                 dead_threshold: float = 0.0, mi=None, h_code=None) -> Specialization:
    """Live units whose MI / H(code) with one factor is >= ``tau`` and >= ``ratio`` x that with every other.

    The per-code counterpart of :func:`~collapse_tui.metrics.neurons.specialized_neurons` (which divides by
    H(factor)). There, a unit firing on 2% of the inputs can never qualify: its MI is at most H(code),
    about 0.1 nats, against H(factor) of 1 to 3.7 nats here, so sparser codes lose specialized units by
    construction. Here 1 means the factor determines the code. Since a code's normalisation is the same
    for every factor, the ratio rule compares raw MI. The returned ``nmi`` holds MI / H(code).
    ``mi`` and ``h_code`` (:func:`code_entropy`) can be passed to reuse them.
    """
    tau, ratio, dead_threshold = specialization_rule(tau, ratio, dead_threshold)
    codes, factors, mi, h_code = _mi_and_entropy(codes, factors, n_bins, mi, h_code)
    return specialization(codes, _per_code_nmi(mi, h_code), tau, ratio, dead_threshold)


# ------------------------------------------------------------------------------ feature-factor alignment

def _runs(first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a 1-D mask marking the first element of each run: every element's run start and run end index."""
    n = first.size
    pos = np.arange(n)
    last = np.ones(n, dtype=bool)
    last[:-1] = first[1:]
    start = np.maximum.accumulate(np.where(first, pos, 0))
    end = np.minimum.accumulate(np.where(last, pos, n - 1)[::-1])[::-1]
    return start, end


def _ranks_dense(t: np.ndarray) -> np.ndarray:
    """Average ranks along each row of ``t`` (units, samples): one argsort per row."""
    n = t.shape[1]
    order = np.argsort(t, axis=1)
    s = np.take_along_axis(t, order, axis=1)
    first = np.ones(s.shape, dtype=bool)  # the first of a run of equal values
    first[:, 1:] = s[:, 1:] != s[:, :-1]
    # Runs never cross rows: each row's first element starts one, so flattening keeps them apart.
    start, end = _runs(first.ravel())
    offset = (np.arange(t.shape[0]) * n)[:, None]
    avg = (start.reshape(t.shape) + end.reshape(t.shape)) * 0.5 + 1.0 - offset
    ranks = np.empty(t.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, avg, axis=1)
    return ranks


def _ranks_sparse(t: np.ndarray, above: np.ndarray) -> np.ndarray:
    """Average ranks along each row of ``t`` where most entries equal the row's minimum (a sparse code's
    zeros): those share rank (n_min + 1) / 2, and only the others (``above``) are sorted."""
    n_min = t.shape[1] - above.sum(axis=1)
    ranks = np.repeat(((n_min + 1) * 0.5)[:, None], t.shape[1], axis=1).astype(np.float64)
    rows, cols = np.nonzero(above)  # row-major: grouped by row
    if rows.size == 0:
        return ranks
    vals = t[rows, cols]
    order = np.lexsort((vals, rows))  # by row, then by value
    rows, cols, vals = rows[order], cols[order], vals[order]
    first = np.ones(rows.size, dtype=bool)
    first[1:] = (vals[1:] != vals[:-1]) | (rows[1:] != rows[:-1])
    start, end = _runs(first)
    row_start = np.searchsorted(rows, np.arange(t.shape[0]))  # where each row's entries begin
    ranks[rows, cols] = n_min[rows] + (start + end) * 0.5 - row_start[rows] + 1.0
    return ranks


def average_ranks(a) -> np.ndarray:
    """1-based ranks of each column's values (ties get the average of their ranks): float64, (units, samples).

    Returned transposed (one row per unit), the layout :func:`auroc_matrix` multiplies with. Where most
    entries of the array sit at their column's minimum (sparse codes: zeros), only the others are sorted.
    """
    a = _finite("acts", _as_2d("acts", a, allow_1d=False))
    t = np.ascontiguousarray(a.T)
    above = t > t.min(axis=1, keepdims=True)
    if above.mean() < 0.5:
        return _ranks_sparse(t, above)
    return _ranks_dense(t)


def auroc_matrix(acts, factors, ranks=None) -> list[np.ndarray]:
    """AUROC of every unit for every value of every factor (that value against the rest): a list over
    factors of (units, values) arrays, values in sorted order.

    AUROC is the Mann-Whitney U over n_pos n_neg: with R the sum of the positives' ranks among all
    samples, U = R - n_pos (n_pos + 1) / 2. The rank sums of every (unit, value) pair are one product
    ranks @ one-hot; ties (a unit's many zeros) get average ranks, so a constant unit scores exactly 0.5.
    AUROC is taken as given: a unit that is *off* on a value scores below 0.5, not 1 - AUROC. A
    single-valued factor has no negatives: its AUROC is 0.5 everywhere.
    ``ranks`` (from :func:`average_ranks` of ``acts``) can be passed to reuse them.
    """
    acts, factors = _pair(acts, factors)
    _check_factors(factors)
    n = acts.shape[0]
    if ranks is None:
        ranks = average_ranks(acts)
    labels, sizes = zip(*(_labels(factors[:, j]) for j in range(factors.shape[1])))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    onehot = np.zeros((n, int(offsets[-1])))
    for j, lab in enumerate(labels):
        onehot[np.arange(n), offsets[j] + lab] = 1.0
    rank_sums = ranks @ onehot
    n_pos = onehot.sum(axis=0)
    n_neg = n - n_pos
    defined = n_neg > 0
    u = rank_sums - n_pos * (n_pos + 1) * 0.5
    auc = np.where(defined, u / np.where(defined, n_pos * n_neg, 1.0), 0.5)
    return [auc[:, offsets[j]:offsets[j + 1]] for j in range(len(sizes))]


@dataclass(frozen=True)
class Alignment:
    """How well single neurons detect factor values.

    Per factor j (lists over factors): ``best[j]`` (values,) the highest AUROC of any neuron for each
    value, ``best_neuron[j]`` (values,) which neuron; ``coverage`` (factors,) the fraction of the factor's
    values with ``best`` above ``threshold``; ``best_mean`` (factors,) the mean of ``best[j]``;
    ``varied`` (factors,) the factors with more than one value (the only ones :attr:`mean_best` and
    :attr:`mean_coverage` average).
    """

    best: list[np.ndarray]
    best_neuron: list[np.ndarray]
    coverage: np.ndarray
    best_mean: np.ndarray
    varied: np.ndarray
    threshold: float

    def _mean(self, a: np.ndarray) -> float:
        return float(a[self.varied].mean()) if self.varied.any() else 0.0

    @property
    def mean_best(self) -> float:
        """Mean over the varied factors of each factor's mean best-neuron AUROC."""
        return self._mean(self.best_mean)

    @property
    def mean_coverage(self) -> float:
        """Mean over the varied factors of the fraction of their values covered."""
        return self._mean(self.coverage)


def feature_alignment(acts, factors, threshold: float = AUROC_COVERAGE, ranks=None) -> Alignment:
    """For each factor value, the best single neuron's AUROC (:func:`auroc_matrix`, the max over neurons
    as given), and per factor the fraction of values some neuron detects with AUROC > ``threshold``.
    Factors weigh the same in the means, whatever their number of values (as in MIG)."""
    threshold = _threshold(threshold, "threshold")
    aucs = auroc_matrix(acts, factors, ranks=ranks)
    best = [a.max(axis=0) for a in aucs]
    return Alignment(
        best=best,
        best_neuron=[a.argmax(axis=0).astype(np.int64) for a in aucs],
        coverage=np.array([float((b > threshold).mean()) for b in best]),
        best_mean=np.array([float(b.mean()) for b in best]),
        varied=np.array([a.shape[1] > 1 for a in aucs]),
        threshold=threshold,
    )
