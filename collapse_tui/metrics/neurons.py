"""Per-neuron statistics of SAE codes (samples x units): dead neurons, activation density, L0, specialization."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collapse_tui.metrics.disentanglement import _pair, mutual_info_matrix, normalized_mi


def _acts(acts) -> np.ndarray:
    a = np.asarray(acts)
    if a.ndim != 2:
        raise ValueError(f"acts must be a 2-D array (samples x units), got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError("acts must hold at least one sample")
    return a


def activation_frequency(acts, threshold: float = 0.0) -> np.ndarray:
    """Fraction of samples on which each unit is above ``threshold``: shape (units,)."""
    return (_acts(acts) > threshold).mean(axis=0)


def dead_mask(acts, threshold: float = 0.0) -> np.ndarray:
    """True for units that exceed ``threshold`` on no sample."""
    return ~(_acts(acts) > threshold).any(axis=0)


def dead_fraction(acts, threshold: float = 0.0) -> float:
    """Fraction of units that exceed ``threshold`` on no sample."""
    return float(dead_mask(acts, threshold).mean())


def l0(acts, threshold: float = 0.0) -> float:
    """Mean number of units above ``threshold`` per sample."""
    return float((_acts(acts) > threshold).sum(axis=1).mean())


@dataclass
class DensityHistogram:
    """Histogram of log10(activation frequency) of the live units; dead units (frequency 0) counted apart."""

    counts: list[int]
    edges: list[float]
    dead: int

    def to_dict(self) -> dict:
        return {"counts": self.counts, "edges": self.edges, "dead": self.dead}


def activation_density_histogram(acts, threshold: float = 0.0, bins: int = 20,
                                 log10_range: tuple[float, float] = (-5.0, 0.0)) -> DensityHistogram:
    """log10 activation-density histogram on a fixed range, so histograms of different evaluations line up.

    Frequencies below the range's lower end are counted in the first bin (a unit active once in
    10^6 samples is still alive).
    """
    lo, hi = log10_range
    if not lo < hi:
        raise ValueError(f"log10_range must be (low, high) with low < high, got {log10_range}")
    freq = activation_frequency(acts, threshold)
    alive = freq[freq > 0]
    counts, edges = np.histogram(np.clip(np.log10(alive), lo, hi), bins=bins, range=(lo, hi))
    return DensityHistogram(counts=counts.astype(int).tolist(), edges=edges.tolist(),
                            dead=int((freq == 0).sum()))


@dataclass
class Specialization:
    count: int
    mask: np.ndarray  # (units,) bool
    best_factor: np.ndarray  # (units,) int: the factor each unit shares the most normalised MI with
    nmi: np.ndarray  # (units, factors): MI / H(factor)


def specialized_neurons(codes, factors, tau: float = 0.1, ratio: float = 2.0, n_bins: int = 20,
                        dead_threshold: float = 0.0, mi=None) -> Specialization:
    """Live units whose normalised MI with one factor is >= ``tau`` and >= ``ratio`` x that with every other.

    A unit is live if it exceeds ``dead_threshold`` on some sample. ``mi`` (units x factors, nats) can be
    passed to reuse a matrix already computed.
    """
    codes, factors = _pair(codes, factors)
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be between 0 and 1, got {tau}")
    if ratio < 1.0:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    mi = mutual_info_matrix(codes, factors, n_bins) if mi is None else np.asarray(mi, dtype=np.float64)
    if mi.shape != (codes.shape[1], factors.shape[1]):
        raise ValueError(f"mi must have shape {(codes.shape[1], factors.shape[1])}, got {mi.shape}")
    nmi = normalized_mi(mi, factors)
    best = nmi.argmax(axis=1)
    top = nmi.max(axis=1)
    if nmi.shape[1] > 1:
        second = np.sort(nmi, axis=1)[:, -2]
    else:
        second = np.zeros_like(top)
    alive = ~dead_mask(codes, dead_threshold)
    mask = alive & (top >= tau) & (top >= ratio * second)
    return Specialization(count=int(mask.sum()), mask=mask, best_factor=best, nmi=nmi)
