"""Per-neuron statistics of SAE codes (samples x units): dead neurons, activation density, L0, specialization.

A unit is *active* on a sample when its activation is strictly above ``threshold``; a unit is *dead* when
it is active on no sample of the evaluation set, and *rare* at a frequency ``f`` when it is active on
fewer than a fraction ``f`` of the samples (dead by firing frequency, as SAE training libraries count
"dead" features by their density rather than by a single firing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from collapse_tui.metrics.disentanglement import (
    _as_2d,
    _check_mi,
    _check_n_bins,
    _pair,
    mutual_info_matrix,
    normalized_mi,
)

__all__ = [
    "DensityHistogram", "Specialization", "activation_frequency", "dead_mask", "dead_fraction", "l0",
    "rare_mask", "rare_fraction",
    "activation_density_histogram", "specialized_neurons",
]


def _acts(acts, name: str = "acts") -> np.ndarray:
    return _as_2d(name, acts, allow_1d=False)


def _threshold(threshold, name: str = "threshold") -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {threshold!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {threshold!r}")
    return value


def _active(acts, threshold) -> np.ndarray:
    return _acts(acts) > _threshold(threshold)


def activation_frequency(acts, threshold: float = 0.0) -> np.ndarray:
    """Fraction of samples on which each unit is above ``threshold``: float64, shape (units,)."""
    return _active(acts, threshold).mean(axis=0)


def dead_mask(acts, threshold: float = 0.0) -> np.ndarray:
    """Boolean (units,): True for units above ``threshold`` on no sample."""
    return ~_active(acts, threshold).any(axis=0)


def dead_fraction(acts, threshold: float = 0.0) -> float:
    """Fraction of units above ``threshold`` on no sample (0.0 to 1.0). Never decreases as ``threshold`` rises."""
    return float(dead_mask(acts, threshold).mean())


def _frequency(max_frequency) -> float:
    value = _threshold(max_frequency, "max_frequency")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"max_frequency must be a fraction of samples in [0, 1], got {max_frequency!r}")
    return value


def rare_mask(acts, max_frequency: float, threshold: float = 0.0) -> np.ndarray:
    """Boolean (units,): True for units above ``threshold`` on fewer than a fraction ``max_frequency``
    of the samples (on 5,000 samples and 1e-3: on at most 4 of them). A dead unit is rare at any
    ``max_frequency`` > 0."""
    return activation_frequency(acts, threshold) < _frequency(max_frequency)


def resolves_frequency(max_frequency: float, n_samples: int) -> bool:
    """Whether ``n_samples`` inputs can tell "fires on fewer than a fraction ``max_frequency`` of them"
    from "never fires": only when that fraction is more than one input. On 5,000 inputs 1e-4 is half an
    input, so a unit rare at 1e-4 is a dead one and its count would only repeat the dead fraction."""
    return _frequency(max_frequency) * int(n_samples) > 1 + 1e-9  # 2e-4 x 5,000 is one input, not more


def rare_fraction(acts, max_frequency: float, threshold: float = 0.0) -> float:
    """Fraction of units that are rare at ``max_frequency`` (0.0 to 1.0); never below the dead fraction
    when ``max_frequency`` > 0, and never decreases as ``max_frequency`` rises."""
    return float(rare_mask(acts, max_frequency, threshold).mean())


def l0(acts, threshold: float = 0.0) -> float:
    """Mean number of units above ``threshold`` per sample (0 to units)."""
    return float(_active(acts, threshold).sum(axis=1).mean())


@dataclass(frozen=True)
class DensityHistogram:
    """Histogram of log10(activation frequency) over the live units; dead units (frequency 0) apart.

    ``counts[i]`` live units have log10 frequency in ``[edges[i], edges[i+1])`` (the last bin includes
    its right edge, frequency 1). ``sum(counts) + dead`` is the number of units.
    """

    counts: list[int]
    edges: list[float]
    dead: int

    def to_dict(self) -> dict:
        """Plain lists and ints, ready for JSON."""
        return {"counts": list(self.counts), "edges": list(self.edges), "dead": int(self.dead)}


def activation_density_histogram(acts, threshold: float = 0.0, bins: int = 20,
                                 log10_range: tuple[float, float] = (-5.0, 0.0)) -> DensityHistogram:
    """Histogram of the live units' log10 activation frequency on a fixed range, and the dead count.

    The range is fixed (default 10^-5 to 1) so histograms from different evaluations line up bin for
    bin. Live units rarer than the range's lower end (only possible beyond 10^5 samples at the default)
    are counted in the first bin rather than dropped: they are alive. Dead units would be log10(0) =
    -inf, so they are counted in ``dead`` and never enter the histogram.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    try:
        lo, hi = (float(v) for v in log10_range)
    except (TypeError, ValueError):
        raise ValueError(f"log10_range must be two numbers (low, high), got {log10_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"log10_range must be finite (low, high) with low < high, got {log10_range!r}")
    freq = activation_frequency(acts, threshold)
    live = freq[freq > 0]
    counts, edges = np.histogram(np.clip(np.log10(live), lo, hi), bins=int(bins), range=(lo, hi))
    return DensityHistogram(counts=counts.astype(int).tolist(), edges=edges.astype(float).tolist(),
                            dead=int(freq.size - live.size))


@dataclass(frozen=True)
class Specialization:
    """Which units are specialized neurons, and the normalised MI the decision was made on.

    ``mask`` (units,) bool; ``best_factor`` (units,) int: the factor with the highest normalised MI
    (0 for a unit with no information about any factor; read it together with ``mask``); ``nmi``
    (units, factors): MI / H(factor).
    """

    count: int
    mask: np.ndarray
    best_factor: np.ndarray
    nmi: np.ndarray

    def to_dict(self) -> dict:
        """Plain lists and ints, ready for JSON."""
        return {"count": int(self.count), "mask": self.mask.astype(bool).tolist(),
                "best_factor": self.best_factor.astype(int).tolist(), "nmi": self.nmi.tolist()}


def specialized_neurons(codes, factors, tau: float = 0.1, ratio: float = 2.0, n_bins: int = 20,
                        dead_threshold: float = 0.0, mi=None) -> Specialization:
    """Live units whose normalised MI with one factor is >= ``tau`` and >= ``ratio`` x that with every other.

    This definition is ours (the study does not publish one). Normalised MI is MI / H(factor), MI from
    :func:`~collapse_tui.metrics.disentanglement.mutual_info_matrix` with ``n_bins`` bins. A unit is live
    if it exceeds ``dead_threshold`` on some sample, and it must carry some information (normalised MI
    > 0) even when ``tau`` is 0. With a single factor the ratio rule holds trivially.
    ``mi`` (units x factors, nats) can be passed to reuse a matrix already computed.
    """
    codes, factors = _pair(codes, factors)
    tau, ratio, dead_threshold = specialization_rule(tau, ratio, dead_threshold)
    if mi is None:
        mi = mutual_info_matrix(codes, factors, _check_n_bins(n_bins))
    else:
        mi = _check_mi(mi, codes.shape[1], factors.shape[1])
    return specialization(codes, normalized_mi(mi, factors), tau, ratio, dead_threshold)


def specialization_rule(tau, ratio, dead_threshold) -> tuple[float, float, float]:
    """The rule's parameters checked: ``tau`` in [0, 1], ``ratio`` >= 1, a finite ``dead_threshold``."""
    tau = _threshold(tau, "tau")
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be between 0 and 1, got {tau}")
    ratio = _threshold(ratio, "ratio")
    if ratio < 1.0:
        raise ValueError(f"ratio must be a number >= 1, got {ratio}")
    return tau, ratio, _threshold(dead_threshold, "dead_threshold")


def specialization(codes: np.ndarray, nmi: np.ndarray, tau: float, ratio: float,
                   dead_threshold: float) -> Specialization:
    """The specialized units of a normalised-MI matrix (units x factors), whatever normalised it: live
    (above ``dead_threshold`` on some sample), informative (top > 0), top >= ``tau`` and >= ``ratio`` x
    the second."""
    best = nmi.argmax(axis=1)
    ranked = np.sort(nmi, axis=1)
    top = ranked[:, -1]
    second = ranked[:, -2] if nmi.shape[1] > 1 else np.zeros_like(top)
    alive = ~dead_mask(codes, dead_threshold)
    mask = alive & (top > 0) & (top >= tau) & (top >= ratio * second)
    return Specialization(count=int(mask.sum()), mask=mask, best_factor=best.astype(np.int64), nmi=nmi)
