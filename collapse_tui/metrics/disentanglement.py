"""Mutual information between codes and ground-truth factors, and the Mutual Information Gap (MIG).

Follows disentanglement_lib's discrete MIG: each code column is cut into ``n_bins`` equal-width bins
between its min and max, mutual information is in nats, and per factor the gap between the two codes
holding the most information about it is divided by the factor's entropy, then averaged over factors.

Arrays are samples x columns. A 1-D ``codes`` or ``factors`` is read as a single column.
"""

from __future__ import annotations

import numpy as np

__all__ = ["discretize", "entropy", "mutual_info_matrix", "normalized_mi", "mig_per_factor", "mig"]


def _as_2d(name: str, a, allow_1d: bool = True) -> np.ndarray:
    """``a`` as a non-empty numeric (samples x columns) array; a 1-D array is one column if allowed."""
    a = np.asarray(a)
    if a.ndim == 1 and allow_1d:
        a = a[:, None]
    if a.ndim != 2:
        shapes = "a 1-D or 2-D array (samples x columns)" if allow_1d else "a 2-D array (samples x units)"
        raise ValueError(f"{name} must be {shapes}, got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample, got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric (bool, integer or float), got dtype {a.dtype}")
    return a


def _pair(codes, factors) -> tuple[np.ndarray, np.ndarray]:
    codes = _as_2d("codes", codes)
    factors = _as_2d("factors", factors)
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(f"codes and factors must have the same number of samples (rows), got "
                         f"{codes.shape[0]} in codes and {factors.shape[0]} in factors")
    return codes, factors


def _check_n_bins(n_bins) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    return int(n_bins)


def _bin_edges(codes, n_bins: int):
    """``codes`` in the working float type, and per column the range's low end, its width, and ``bounds``.

    ``bounds`` (n_bins + 1, columns) are the edges of ``np.histogram(column, n_bins)`` (see
    :func:`discretize`) with +inf in place of the right edge.
    """
    z = _as_2d("codes", codes)
    # np.histogram computes edges in the data's float type, and in float64 for integer or bool data.
    work = z.dtype if z.dtype.kind == "f" else np.dtype(np.float64)
    z = z.astype(work, copy=False)
    lo = z.min(axis=0)
    hi = z.max(axis=0)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        bad = int(np.flatnonzero(~(np.isfinite(lo) & np.isfinite(hi)))[0])
        raise ValueError(f"codes must be finite; column {bad} holds NaN or inf")
    const = lo == hi
    lo = np.where(const, lo - work.type(0.5), lo)
    hi = np.where(const, hi + work.type(0.5), hi)

    # np.linspace's arithmetic, one column at a time as np.histogram would do it: i * step + lo (its last
    # edge, hi, is never compared); a step that underflows to 0 takes linspace's (i / n) * delta branch.
    delta = hi - lo
    step = delta / work.type(n_bins)
    ramp = np.arange(n_bins + 1, dtype=work)[:, None]
    with np.errstate(under="ignore"):
        bounds = np.where(step == 0, (ramp / work.type(n_bins)) * delta, ramp * step) + lo
    # The left edges, with +inf in place of the right edge (hi) so the last bin has no upper bound.
    bounds[-1] = np.inf
    return z, lo, delta, bounds


def _bin_of(values, cols, lo, delta, bounds, n_bins: int) -> np.ndarray:
    """Bin index in 1..n_bins of each of ``values`` (in the working float type), ``cols`` naming its column.

    ``values`` must lie within their column's range (they are entries of it); ``cols`` broadcasts
    against ``values``. Returns int64.
    """
    # First guess from the arithmetic (float64, so it is off by at most one bin near an edge), then move
    # each guess until it is the count of left edges <= value: exactly what np.digitize returns.
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        guess = (values - lo[cols]) / np.where(delta > 0, delta, 1).astype(np.float64)[cols] * n_bins
    count = np.clip(np.floor(guess), 0, n_bins - 1).astype(np.int64) + 1
    for _ in range(n_bins + 1):
        # Right when bounds[count-1] <= value < bounds[count]; each pass moves a wrong guess one bin.
        too_high = bounds[count - 1, cols] > values
        too_low = bounds[count, cols] <= values
        if not (too_high.any() or too_low.any()):
            break
        count -= too_high
        count += too_low
    return count


def discretize(codes, n_bins: int = 20) -> np.ndarray:
    """Bin index in 1..n_bins of every entry, per column, on ``n_bins`` equal-width bins from min to max.

    Bit-identical to ``np.digitize(z, np.histogram(z, n_bins)[1][:-1])`` applied column by column (the
    discretisation of disentanglement_lib), but vectorised over columns: the edges are built with the
    same arithmetic and dtype as ``np.histogram`` (float32 codes get float32 edges), and each value's bin
    is found arithmetically, then corrected against the actual edges so rounding never moves a value.
    The maximum of a column lands in bin ``n_bins``.

    A constant column is binned as ``np.histogram`` would (range widened to value ± 0.5), so all its
    samples share one bin. Where ``np.histogram`` would refuse (a range narrower than ``n_bins`` float
    steps), the repeated edges are still counted the same way and a result is returned.

    Returns an int64 array shaped like ``codes`` (2-D; a 1-D input becomes one column).
    Raises ValueError for non-finite codes, no samples, or ``n_bins`` < 1.
    """
    n_bins = _check_n_bins(n_bins)
    z, lo, delta, bounds = _bin_edges(codes, n_bins)
    return _bin_of(z, np.arange(z.shape[1]), lo, delta, bounds, n_bins)


def _labels(column: np.ndarray) -> tuple[np.ndarray, int]:
    """A factor column as labels 0..V-1 (its distinct values in sorted order) and V."""
    values, labels = np.unique(column, return_inverse=True)
    return labels.reshape(-1).astype(np.int64), int(values.size)


def _check_factors(factors: np.ndarray) -> None:
    if factors.dtype.kind == "f" and not np.isfinite(factors).all():
        raise ValueError("factors must be finite (NaN or inf found)")


def _entropy_from_counts(counts: np.ndarray, n: int) -> float:
    nz = counts[counts > 0].astype(np.float64)
    return float(-(nz / n * (np.log(nz) - np.log(n))).sum())


def entropy(factors) -> np.ndarray:
    """Entropy in nats of each discrete factor column: shape (n_factors,).

    Values are treated as labels (any integers, or floats that take few values). A single-valued
    factor has entropy 0.
    """
    factors = _as_2d("factors", factors)
    _check_factors(factors)
    n = factors.shape[0]
    out = np.empty(factors.shape[1])
    for j in range(factors.shape[1]):
        labels, v = _labels(factors[:, j])
        out[j] = _entropy_from_counts(np.bincount(labels, minlength=v), n)
    return out


def mutual_info_matrix(codes, factors, n_bins: int = 20) -> np.ndarray:
    """Mutual information in nats between each discretised code column and each factor: (units, factors).

    Codes get exactly :func:`discretize`'s bins (same edges, same rule per value); factor values are
    labels. Only the non-zero entries are binned and counted, since SAE codes are mostly exact zeros and
    all the zeros of a column share one bin. Per factor, one ``np.bincount`` over combined (unit, bin,
    label) indices of the non-zero entries gives their joint counts for every unit at once; then each
    unit's zero bin gets, per factor value, that value's count minus the unit's non-zero entries with it.
    Past one pass over ``samples x units`` for the edges and the non-zero positions, the work grows with
    the number of non-zero entries (dense codes take the same path, with every entry counted).
    Values are >= 0 (rounding residue below 0 is clipped, as sklearn's ``mutual_info_score`` does).
    """
    codes, factors = _pair(codes, factors)
    _check_factors(factors)
    n, units = codes.shape
    n_bins = _check_n_bins(n_bins)
    z, lo, delta, bounds = _bin_edges(codes, n_bins)
    flat = np.flatnonzero(z != 0)  # via a bool mask: twice as fast as np.flatnonzero(z) on floats
    rows, cols = np.divmod(flat, units)
    # Each unit's bins get their own index range (unit * n_bins + bin), so one bincount covers all units.
    cell = cols * n_bins + _bin_of(z.reshape(-1)[flat], cols, lo, delta, bounds, n_bins) - 1
    n_zeros = n - np.bincount(cols, minlength=units)
    has_zero = np.flatnonzero(n_zeros)
    zero_bin = np.zeros(units, dtype=np.int64)  # only read where the unit has zeros, whose range holds 0
    zero_bin[has_zero] = _bin_of(np.zeros(has_zero.size, z.dtype), has_zero, lo, delta, bounds, n_bins) - 1
    unit_index = np.arange(units)
    code_counts = np.bincount(cell, minlength=units * n_bins).reshape(units, n_bins)
    code_counts[unit_index, zero_bin] += n_zeros
    log_n = np.log(n)
    mi = np.zeros((units, factors.shape[1]))
    for j in range(factors.shape[1]):
        labels, v = _labels(factors[:, j])
        if v == 1:
            continue  # a single-valued factor shares no information with anything
        joint = np.bincount(cell * v + labels[rows], minlength=units * n_bins * v).reshape(units, n_bins, v)
        factor_counts = np.bincount(labels, minlength=v)
        # The samples of each factor value that are not among a unit's non-zero entries are its zeros.
        joint[unit_index, zero_bin] += factor_counts - joint.sum(axis=1)
        u, b, f = np.nonzero(joint)
        n_cf = joint[u, b, f].astype(np.float64)
        # p(c,f) log(p(c,f) / (p(c) p(f))) with counts: n_cf/n * (log n_cf + log n - log n_c - log n_f)
        terms = n_cf / n * (np.log(n_cf) + log_n - np.log(code_counts[u, b]) - np.log(factor_counts[f]))
        mi[:, j] = np.bincount(u, weights=terms, minlength=units)
    return np.maximum(mi, 0.0)


def _check_mi(mi, units: int | None, n_factors: int) -> np.ndarray:
    mi = np.asarray(mi, dtype=np.float64)
    if mi.ndim == 1:
        mi = mi[:, None]
    expected = (units if units is not None else mi.shape[0], n_factors)
    if mi.ndim != 2 or mi.shape != expected:
        raise ValueError(f"mi must have shape (units, factors) = {expected}, got {mi.shape}")
    if not np.isfinite(mi).all():
        raise ValueError("mi must be finite (NaN or inf found)")
    return mi


def normalized_mi(mi, factors) -> np.ndarray:
    """``mi`` (units x factors, nats) divided by each factor's entropy, so 1 means the unit determines it.

    A single-valued factor (entropy 0) gives 0 for every unit.
    """
    h = entropy(factors)
    mi = _check_mi(mi, None, h.shape[0])
    safe = np.where(h > 0, h, 1.0)
    return np.where(h[None, :] > 0, mi / safe[None, :], 0.0)


def mig_per_factor(codes, factors, n_bins: int = 20, mi=None) -> np.ndarray:
    """Per factor: (largest MI - second largest MI over code columns) / H(factor); shape (factors,).

    With a single code column the second largest MI is 0. A single-valued factor (entropy 0) has
    nothing to disentangle: its gap is 0.0 here and :func:`mig` leaves it out of the mean.
    ``mi`` (units x factors, nats, from :func:`mutual_info_matrix`) can be passed to skip recomputing it.
    """
    codes, factors = _pair(codes, factors)
    if mi is None:
        mi = mutual_info_matrix(codes, factors, n_bins)
    else:
        mi = _check_mi(mi, codes.shape[1], factors.shape[1])
    h = entropy(factors)
    ranked = np.sort(mi, axis=0)
    top = ranked[-1]
    second = ranked[-2] if ranked.shape[0] > 1 else np.zeros_like(top)
    safe = np.where(h > 0, h, 1.0)
    return np.where(h > 0, (top - second) / safe, 0.0)


def mig(codes, factors, n_bins: int = 20, mi=None) -> float:
    """Mutual Information Gap (disentanglement_lib's discrete MIG) in [0, 1].

    The mean over factors of :func:`mig_per_factor`, leaving out single-valued factors (entropy 0, which
    disentanglement_lib would turn into NaN); if every factor is single-valued the MIG is 0.0.
    """
    codes, factors = _pair(codes, factors)
    gaps = mig_per_factor(codes, factors, n_bins, mi=mi)
    varied = entropy(factors) > 0
    return float(gaps[varied].mean()) if varied.any() else 0.0
