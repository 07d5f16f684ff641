"""Reconstruction quality: mean squared error, binary cross-entropy and explained variance.

The first axis is samples. Sums are accumulated in float64 over blocks of samples, so a full evaluation
set of images (10,000 x 64 x 64) never needs more than a few MiB of temporaries.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["mse", "bce", "bce_from_logits", "explained_variance"]

# Elements per block: big enough that numpy's per-call overhead vanishes, small enough to stay in cache.
_BLOCK_ELEMENTS = 1 << 18


def _same_shape(x, x_hat, name: str = "x_hat") -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    x_hat = np.asarray(x_hat)
    for label, a in (("x", x), (name, x_hat)):
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{label} must be numeric, got dtype {a.dtype}")
    if x.shape != x_hat.shape:
        raise ValueError(f"x and {name} must have the same shape, got {x.shape} and {x_hat.shape}")
    if x.ndim == 0 or x.shape[0] == 0 or x.size == 0:
        raise ValueError(f"x must be an array of at least one sample (samples first), got shape {x.shape}")
    return x, x_hat


def _blocks(x: np.ndarray, *others: np.ndarray) -> Iterator[tuple[np.ndarray, ...]]:
    """Row blocks of ``x`` and ``others`` as float64 arrays shaped (rows, features)."""
    n = x.shape[0]
    flat = [a.reshape(n, -1) for a in (x, *others)]
    rows = max(1, _BLOCK_ELEMENTS // max(1, flat[0].shape[1]))
    for start in range(0, n, rows):
        yield tuple(a[start:start + rows].astype(np.float64) for a in flat)


def mse(x, x_hat) -> float:
    """Mean squared error, averaged over every element (samples and features alike)."""
    x, x_hat = _same_shape(x, x_hat)
    total = 0.0
    for a, b in _blocks(x, x_hat):
        total += float(np.square(a - b).sum())
    return total / x.size


def bce_from_logits(x, logits) -> float:
    """Binary cross-entropy of targets ``x`` in [0, 1] against ``logits``, in nats.

    Summed over each sample's features and averaged over samples (the VAE's reconstruction term, nats per
    image). Stable for any logit: the loss is written as max(l, 0) - l x + log(1 + exp(-|l|)), which
    neither overflows nor loses precision where the sigmoid saturates.
    """
    x, logits = _same_shape(x, logits, "logits")
    total = 0.0
    for t, lg in _blocks(x, logits):
        total += float((np.maximum(lg, 0.0) - lg * t + np.log1p(np.exp(-np.abs(lg)))).sum())
    return total / x.shape[0]


def bce(x, probs, eps: float = 1e-7) -> float:
    """Binary cross-entropy of targets ``x`` in [0, 1] against probabilities ``probs``, in nats.

    Same reduction as :func:`bce_from_logits` (sum over features, mean over samples). Probabilities are
    clipped to [eps, 1 - eps] so that a confident wrong 0 or 1 costs -log(eps) instead of infinity;
    prefer :func:`bce_from_logits` when logits are available.
    """
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be between 0 and 0.5 (exclusive), got {eps}")
    x, probs = _same_shape(x, probs, "probs")
    total = 0.0
    for t, p in _blocks(x, probs):
        p = np.clip(p, eps, 1.0 - eps)
        total += float(-(t * np.log(p) + (1.0 - t) * np.log1p(-p)).sum())
    return total / x.shape[0]


def explained_variance(x, x_hat) -> float:
    """1 - FVU = 1 - sum (x - x_hat)^2 / sum (x - mean over samples of x)^2, all features pooled.

    1.0 is a perfect reconstruction, 0.0 no better than predicting each feature's mean; it can be
    negative for a reconstruction worse than that. When ``x`` has no variance (every sample identical)
    there is nothing to explain: 1.0 if the reconstruction is exact, else 0.0 (never NaN or inf).
    """
    x, x_hat = _same_shape(x, x_hat)
    n = x.shape[0]
    first = x.reshape(n, -1)[0].astype(np.float64)
    mean = np.zeros(first.size)
    # Decided exactly rather than from the sum below: the mean of identical values can be off by an ulp,
    # which would turn "no variance" into a tiny denominator and a huge negative score.
    constant = True
    for (a,) in _blocks(x):
        mean += a.sum(axis=0)
        constant = constant and bool((a == first).all())
    mean /= n
    residual = 0.0
    total = 0.0
    for a, b in _blocks(x, x_hat):
        residual += float(np.square(a - b).sum())
        total += float(np.square(a - mean).sum())
    if constant or total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total
