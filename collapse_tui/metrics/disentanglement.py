"""Mutual information between codes and ground-truth factors, and the Mutual Information Gap (MIG).

Matches disentanglement_lib's discrete MIG: each code column is discretised into ``n_bins`` equal-width
bins between its min and max, mutual information is in nats, and per factor the gap between the two
codes with the most information about it is divided by the factor's entropy, then averaged.
"""

from __future__ import annotations

import numpy as np


def _as_2d(name: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (samples x columns), got shape {a.shape}")
    return a


def _pair(codes, factors) -> tuple[np.ndarray, np.ndarray]:
    codes = _as_2d("codes", codes)
    factors = _as_2d("factors", factors)
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(f"codes and factors must have the same number of samples, got {codes.shape[0]} "
                         f"and {factors.shape[0]}")
    if codes.shape[0] == 0:
        raise ValueError("codes and factors must hold at least one sample")
    return codes, factors


def discretize(codes, n_bins: int = 20) -> np.ndarray:
    """Bin index (1..n_bins) of every entry, per column, on ``n_bins`` equal-width bins from min to max.

    Identical to ``np.digitize(z, np.histogram(z, n_bins)[1][:-1])`` column by column, vectorised.
    A constant column gets one bin for all its samples (np.histogram widens its range by ±0.5, so the
    value sits mid-range), hence zero mutual information with anything, and no warning.
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a whole number >= 1, got {n_bins!r}")
    n_bins = int(n_bins)
    z = _as_2d("codes", codes).astype(np.float64)
    lo = z.min(axis=0)
    hi = z.max(axis=0)
    const = lo == hi
    # np.histogram's range for a constant column is [v - 0.5, v + 0.5].
    lo = np.where(const, lo - 0.5, lo)
    hi = np.where(const, hi + 0.5, hi)
    # Build the edges as np.histogram does (linspace), so bins agree to the last bit.
    steps = np.linspace(0.0, 1.0, n_bins + 1)
    edges = lo[None, :] + (hi - lo)[None, :] * steps[:, None]  # (n_bins + 1, units)
    edges[-1] = hi
    left = edges[:-1]  # the left edges digitize compares against
    # count of left edges <= value (edges increase monotonically), i.e. np.digitize with right=False
    out = np.empty(z.shape, dtype=np.int64)
    for start in range(0, z.shape[1], 256):
        sl = slice(start, start + 256)
        out[:, sl] = (z[:, None, sl] >= left[None, :, sl]).sum(axis=1)
    return out


def _factor_labels(factors: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Each factor column as labels 0..V-1 (any integer or float values are accepted) and V."""
    out = []
    for j in range(factors.shape[1]):
        _, labels = np.unique(factors[:, j], return_inverse=True)
        out.append((labels.reshape(-1).astype(np.int64), int(labels.max()) + 1))
    return out


def _entropy_of_counts(counts: np.ndarray, total: int) -> np.ndarray:
    p = counts / total
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=-1)


def entropy(factors) -> np.ndarray:
    """Entropy in nats of each (discrete) factor column: shape (n_factors,)."""
    factors = _as_2d("factors", factors)
    if factors.shape[0] == 0:
        raise ValueError("factors must hold at least one sample")
    n = factors.shape[0]
    return np.array([_entropy_of_counts(np.bincount(labels, minlength=v), n) for labels, v in _factor_labels(factors)])


def mutual_info_matrix(codes, factors, n_bins: int = 20) -> np.ndarray:
    """Mutual information in nats between every discretised code column and every factor: (units, factors).

    Joint histograms of all units with one factor come from a single ``np.bincount`` over combined indices,
    so the cost is a few passes over ``samples x units`` per factor.
    """
    codes, factors = _pair(codes, factors)
    n, units = codes.shape
    bins = discretize(codes, n_bins)  # 1..n_bins
    n_cells = n_bins + 1
    unit_offset = (np.arange(units, dtype=np.int64) * n_cells)[None, :]
    cell = bins + unit_offset  # (n, units): each unit's bin in its own range
    p_code = np.bincount(cell.ravel(), minlength=units * n_cells).reshape(units, n_cells) / n
    mi = np.zeros((units, factors.shape[1]))
    for j, (labels, v) in enumerate(_factor_labels(factors)):
        joint = np.bincount((cell * v + labels[:, None]).ravel(), minlength=units * n_cells * v)
        p_joint = joint.reshape(units, n_cells, v) / n
        p_factor = np.bincount(labels, minlength=v) / n
        nz = p_joint > 0
        denom = p_code[:, :, None] * p_factor[None, None, :]
        ratio = np.ones_like(p_joint)
        ratio[nz] = p_joint[nz] / denom[nz]
        mi[:, j] = (p_joint * np.log(ratio)).sum(axis=(1, 2))
    # Rounding can leave tiny negatives where the true value is 0.
    return np.maximum(mi, 0.0)


def normalized_mi(mi, factors) -> np.ndarray:
    """MI divided by each factor's entropy; a single-valued factor (entropy 0) gives 0."""
    mi = _as_2d("mi", mi)
    h = entropy(factors)
    if mi.shape[1] != h.shape[0]:
        raise ValueError(f"mi has {mi.shape[1]} factor columns but factors has {h.shape[0]}")
    safe = np.where(h > 0, h, 1.0)
    return np.where(h[None, :] > 0, mi / safe[None, :], 0.0)


def mig_per_factor(codes, factors, n_bins: int = 20, mi=None) -> np.ndarray:
    """Per factor: (largest MI − second largest MI over codes) / H(factor). NaN for a single-valued factor.

    With one code column the second largest MI is taken as 0.
    """
    codes, factors = _pair(codes, factors)
    mi = mutual_info_matrix(codes, factors, n_bins) if mi is None else np.asarray(mi, dtype=np.float64)
    h = entropy(factors)
    top = np.sort(mi, axis=0)[::-1]
    second = top[1] if top.shape[0] > 1 else np.zeros_like(top[0])
    gaps = np.full(h.shape, np.nan)
    ok = h > 0
    gaps[ok] = (top[0][ok] - second[ok]) / h[ok]
    return gaps


def mig(codes, factors, n_bins: int = 20, mi=None) -> float:
    """Mutual Information Gap (disentanglement_lib's discrete MIG), mean over factors with entropy > 0.

    Single-valued factors carry no information to disentangle and are left out of the mean; if every
    factor is single-valued the MIG is 0.0.
    """
    gaps = mig_per_factor(codes, factors, n_bins, mi=mi)
    gaps = gaps[~np.isnan(gaps)]
    return float(gaps.mean()) if gaps.size else 0.0
