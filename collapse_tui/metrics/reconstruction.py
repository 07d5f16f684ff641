"""Reconstruction quality: mean squared error, binary cross-entropy and explained variance."""

from __future__ import annotations

import numpy as np


def _same_shape(x, x_hat) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    x_hat = np.asarray(x_hat, dtype=np.float64)
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {x.shape} and {x_hat.shape}")
    if x.size == 0:
        raise ValueError("x must not be empty")
    return x, x_hat


def mse(x, x_hat) -> float:
    """Mean squared error over all elements."""
    x, x_hat = _same_shape(x, x_hat)
    return float(np.mean((x - x_hat) ** 2))


def bce_from_logits(x, logits) -> float:
    """Binary cross-entropy of targets ``x`` in [0, 1] against ``logits``: summed over each sample's
    features, averaged over samples (nats per image, the VAE's reconstruction term)."""
    x, logits = _same_shape(x, logits)
    # max(l, 0) - l*x + log(1 + exp(-|l|)) is exact and never overflows.
    per = np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))
    return float(per.reshape(per.shape[0], -1).sum(axis=1).mean())


def bce(x, probs, eps: float = 1e-7) -> float:
    """Binary cross-entropy against probabilities (clipped to [eps, 1 - eps]); same reduction as
    :func:`bce_from_logits`."""
    x, p = _same_shape(x, probs)
    p = np.clip(p, eps, 1 - eps)
    per = -(x * np.log(p) + (1 - x) * np.log1p(-p))
    return float(per.reshape(per.shape[0], -1).sum(axis=1).mean())


def explained_variance(x, x_hat) -> float:
    """1 − FVU: 1 − Σ(x − x̂)² / Σ(x − mean over samples of x)², over all features together.

    Inputs with no variance: 1.0 if reconstructed exactly, else 0.0 (there is nothing to explain).
    """
    x, x_hat = _same_shape(x, x_hat)
    if x.ndim == 1:
        x, x_hat = x[:, None], x_hat[:, None]
    residual = np.sum((x - x_hat) ** 2)
    total = np.sum((x - x.mean(axis=0)) ** 2)
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return float(1.0 - residual / total)
