"""How many directions the SAE's input actually uses: a dead rate means little without it (an SAE of 500
neurons on an input spanning 20 directions has little for most neurons to do).

- participation ratio (Σλ)² / Σλ² of the covariance's eigenvalues λ: n for n equal directions, 1 for one;
- the number of leading directions that hold 99% of the variance;
- silent units: input units constant over the evaluation set (for a ReLU layer, units that never fire).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collapse_tui.metrics.disentanglement import _as_2d

__all__ = ["InputRank", "VARIANCE_SHARE", "input_rank"]

VARIANCE_SHARE = 0.99  # the share of the input's variance the leading directions must hold


@dataclass(frozen=True)
class InputRank:
    participation_ratio: float
    dims_for_variance: int  # leading principal directions holding VARIANCE_SHARE of the variance
    silent_units: int
    units: int


def input_rank(x, share: float = VARIANCE_SHARE) -> InputRank:
    """The effective rank of ``x`` (samples x units) by its covariance's eigenvalues (float64).

    An input with no variance at all has participation ratio 0 and needs 0 directions. Raises ValueError
    for non-finite values, fewer than 2 samples, or ``share`` outside (0, 1].
    """
    x = _as_2d("x", x, allow_1d=False).astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise ValueError("x must be finite (NaN or inf found)")
    if x.shape[0] < 2:
        raise ValueError(f"the effective rank needs at least 2 samples, got {x.shape[0]}")
    if not 0.0 < float(share) <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    silent = int((x.min(axis=0) == x.max(axis=0)).sum())
    centred = x - x.mean(axis=0)
    # Singular values of the centred data: their squares are the covariance's eigenvalues (times n - 1),
    # without forming a units x units matrix that rounds small directions away.
    eig = np.linalg.svd(centred, compute_uv=False) ** 2
    total = eig.sum()
    if total <= 0:
        return InputRank(0.0, 0, silent, x.shape[1])
    ratio = float(total ** 2 / (eig ** 2).sum())
    cumulative = np.cumsum(eig) / total
    # The first count whose cumulative share reaches the target (a rounding hair below 1 counts as 1).
    dims = int(np.searchsorted(cumulative, float(share) - 1e-12) + 1)
    return InputRank(ratio, min(dims, eig.size), silent, x.shape[1])
