"""What an SAE takes from its training data before training: the input normalisation
(:func:`normalisation`), where the pre-encoder bias ``b_dec`` starts (:func:`decoder_bias_start`: the
mean, or the geometric median as OpenAI's ``init_from_data_`` does) and, with the data initialisation,
where the decoder's rows start (:func:`decoder_rows_from_data`). numpy only, float64."""

from __future__ import annotations

import numpy as np

from collapse_tui.nn import checks

# A feature whose spread is below this is only centred when standardising (dividing by ~0 would blow
# it up; a constant feature carries nothing to reconstruct anyway).
MIN_STD = 1e-6
# Standardising divides no unit by less than this fraction of the units' root-mean-square spread: a
# near-constant unit (the dSprites encoder has units with spread 1e-6 .. 1e-3 against a typical 1) would
# otherwise be amplified a thousandfold and its noise would dominate the reconstruction loss.
STD_FLOOR_FRACTION = 1e-2

# The geometric median of adapt(): on at most this many rows (OpenAI's init_from_data_ takes 32,768),
# Weiszfeld iterations stop once a step moves the estimate by at most GEOMETRIC_MEDIAN_TOL times the
# median distance of the rows from it, or after GEOMETRIC_MEDIAN_MAX_ITER iterations.
GEOMETRIC_MEDIAN_ROWS = 32_768
GEOMETRIC_MEDIAN_TOL = 1e-7
GEOMETRIC_MEDIAN_MAX_ITER = 500


def geometric_median(points: np.ndarray, tol: float = GEOMETRIC_MEDIAN_TOL,
                     max_iter: int = GEOMETRIC_MEDIAN_MAX_ITER) -> np.ndarray:
    """The geometric median of ``points`` (n x d): the point that minimises the sum of Euclidean
    distances to them, by Weiszfeld's algorithm, in float64.

    Starts at the mean; each iteration moves to the mean of the points weighted by 1 / distance to the
    current estimate, a distance below ``floor`` = 1e-12 x the points' root-mean-square distance from
    their mean counting as ``floor`` (so an estimate that lands on a point stays finite, as in the
    smoothed Weiszfeld of the ``geom_median`` package). Stops when an iteration moves the estimate by
    at most ``tol`` x the median distance of the points from the new estimate (a scale that a far
    outlier does not loosen) or by at most ``floor``, or after ``max_iter`` iterations. Unlike the
    mean, it is robust: one far outlier moves it by a bounded amount however far it lies.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"points must have shape (n_samples, n_features) with n_samples >= 1, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("points must be finite (they hold NaN or infinite values)")
    tol = checks.number("tol", tol, 0)
    max_iter = checks.whole_number("max_iter", max_iter, 0)
    median = x.mean(axis=0)
    spread = float(np.sqrt(np.mean(np.sum((x - median) ** 2, axis=1))))
    if spread == 0.0:  # every point is the same one
        return median
    floor = 1e-12 * spread
    distances = np.linalg.norm(x - median, axis=1)
    for _ in range(max_iter):
        weights = 1.0 / np.maximum(distances, floor)
        step = weights @ x / weights.sum() - median
        median = median + step
        distances = np.linalg.norm(x - median, axis=1)
        if np.linalg.norm(step) <= max(tol * float(np.median(distances)), floor):
            break
    return median


def normalisation(x: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` per input feature for the normalisation ``kind`` of data ``x`` (n x d), so that the
    SAE reads ``(x - mean) / std``: ``none`` 0 and 1; ``unit_norm`` 0 and one scalar, sqrt(mean ||x||²);
    ``standardise`` the mean and the guarded standard deviation (module constants); ``centre`` (withdrawn
    from the schema, still read from saved models) the mean and 1. Raises ValueError for no samples or
    non-finite data."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError("x must hold at least one sample")
    if not np.isfinite(x).all():
        raise ValueError("x must be finite (it holds NaN or infinite values)")
    d = x.shape[1]
    mean, std = np.zeros(d), np.ones(d)
    if kind == "centre":
        mean = x.mean(axis=0)
    elif kind == "standardise":
        mean = x.mean(axis=0)
        std = _guarded_std(x.std(axis=0))
    elif kind == "unit_norm":
        std = _scalar_std(float(np.mean(np.sum(x ** 2, axis=1))), d)
    return mean, std


def _guarded_std(spread: np.ndarray) -> np.ndarray:
    """Per-unit standard deviations as ``standardise`` divides by them: a near-constant unit by 1, the others
    by at least a fraction of the typical spread."""
    floor = STD_FLOOR_FRACTION * float(np.sqrt(np.mean(spread ** 2)))
    return np.where(spread < MIN_STD, 1.0, np.maximum(spread, floor))


def _scalar_std(mean_squared_norm: float, d: int) -> np.ndarray:
    scale = float(np.sqrt(mean_squared_norm))
    return np.full(d, scale if scale > 0 else 1.0)


def streamed_normalisation(blocks, d: int, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, std, data mean)`` as :func:`normalisation` gives the first two, from the data's rows given
    a block at a time (one pass over data never held whole: sums and sums of squares in float64), and the
    data's mean, from which ``b_dec``'s start follows."""
    n, total, squares = 0, np.zeros(d), np.zeros(d)
    for block in blocks:
        block = np.asarray(block, dtype=np.float64)
        if not np.isfinite(block).all():
            raise ValueError("x must be finite (it holds NaN or infinite values)")
        n += len(block)
        total += block.sum(axis=0)
        squares += np.square(block).sum(axis=0)
    if n < 1:
        raise ValueError("x must hold at least one sample")
    data_mean = total / n
    mean, std = np.zeros(d), np.ones(d)
    if kind == "centre":
        mean = data_mean
    elif kind == "standardise":
        mean = data_mean
        std = _guarded_std(np.sqrt(np.maximum(squares / n - np.square(data_mean), 0.0)))
    elif kind == "unit_norm":
        std = _scalar_std(float(squares.sum() / n), d)
    return mean, std, data_mean


def decoder_bias_start(normalised: np.ndarray, geometric: bool) -> np.ndarray:
    """Where ``b_dec`` starts: the mean of the normalised data, or their geometric median on at most
    ``GEOMETRIC_MEDIAN_ROWS`` rows drawn without replacement by a fixed seed."""
    if not geometric:
        return normalised.mean(axis=0)
    return geometric_median(normalised[geometric_median_rows(len(normalised))])


def geometric_median_rows(n: int) -> np.ndarray:
    """The rows (sorted) of n whose geometric median ``b_dec`` starts at: all of them, or at most
    ``GEOMETRIC_MEDIAN_ROWS`` drawn without replacement by a fixed seed."""
    if n <= GEOMETRIC_MEDIAN_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, GEOMETRIC_MEDIAN_ROWS, replace=False))


def decoder_rows_from_data(centred: np.ndarray, n_rows: int, seed: int | None) -> np.ndarray | None:
    """``n_rows`` decoder rows drawn from the data: randomly chosen rows of ``centred`` (the normalised
    training inputs minus ``b_dec``'s start), each scaled to unit norm. Rows are drawn without replacement
    when there are enough of them (with replacement otherwise), among the rows of non-zero norm, by a
    generator seeded with ``seed``; None when no row has a non-zero norm.

    The dictionary as data samples is the cheap baseline Coates & Ng (2011, "The importance of encoding
    versus training with sparse coding and vector quantization") found nearly as good as a learned one,
    and it is what resampling (Bricken et al. 2023) does for a dead neuron: every neuron starts pointing
    at something the data holds, so each has a positive pre-activation on at least the input it was drawn
    from (no neuron starts ReLU-dead).
    """
    centred = np.asarray(centred, dtype=np.float64)
    norms = np.linalg.norm(centred, axis=1)
    usable = np.flatnonzero(norms > 0)
    if len(usable) == 0:
        return None
    rng = np.random.default_rng(seed)
    picked = rng.choice(usable, n_rows, replace=len(usable) < n_rows)
    return centred[picked] / norms[picked, None]


def streamed_start(rows, d: int, kind: str, geometric: bool, data_init: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, std, b_dec's start)`` of training rows never held whole (``rows.blocks()``: every row once,
    a block at a time; ``rows.take(positions)``): the statistics :func:`normalisation` and
    :func:`decoder_bias_start` give, from one pass, the geometric median from the same rows they take. A
    decoder drawn from the data (``data_init``) needs every row at once: refused."""
    if data_init:
        raise ValueError("sae.remedies.data_init draws the decoder from all training rows at once, which "
                         "data.streaming leaves on disk; set data.streaming: never")
    if rows.shape[1] != d:
        raise ValueError(f"x must have shape (n_samples, {d}), got {rows.shape}")
    mean, std, data_mean = streamed_normalisation(rows.blocks(), d, kind)
    if not geometric:
        return mean, std, (data_mean - mean) / std  # the normalised rows' mean
    sample = rows.take(geometric_median_rows(len(rows))).astype(np.float64)
    return mean, std, geometric_median((sample - mean) / std)


def checked_rows(x, d: int) -> np.ndarray:
    """``x`` as an array of n rows of ``d`` features; ValueError otherwise."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"x must have shape (n_samples, {d}), got {x.shape}")
    return x
