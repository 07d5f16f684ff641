"""Each remedy row against the plain SAE it changes, paired by seed: the per-seed differences, their mean,
a 95% t-interval and a paired t-test, and how many seeds an effect of a given size needs.

Why paired: a remedy run and the plain run of the same seed share that seed's VAE, images, data order
and (unless the remedy is an initialisation) SAE initialisation, so much of the seed-to-seed spread of the
dead fraction is common to both; the difference of the two runs of one seed carries only what the remedy
changed (and the noise the two runs do not share). Comparing means over seeds would leave that common
spread in, and need more seeds for the same certainty.

Pure functions of :class:`~collapse_tui.report.rows.Row`s; the tables are written in
:mod:`~collapse_tui.report.tables`. scipy is imported where a quantile is computed, not with the module:
the sweep's tables are rewritten while it runs, and a front end that lists runs should start fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from collapse_tui.config import K_METHODS
from collapse_tui.metrics.specs import MetricSpec
from collapse_tui.report.rows import REMEDY_KEYS, Row

PLAIN = "none"  # the remedy column of the plain SAE
CONFIDENCE = 0.95  # of the interval of the mean difference
ALPHA = 0.05  # two-sided, for the number of seeds an effect needs
POWER = 0.8
MAX_SEEDS = 1000  # seeds_needed looks no further: an effect that needs more is not one to measure by seeds


def _without(settings: dict[str, Any], prefixes: Sequence[str]) -> dict[str, Any]:
    """``settings`` less the keys under ``prefixes`` (a dotted key names its whole subtree)."""
    return {k: v for k, v in settings.items() if not any(k == p or k.startswith(p + ".") for p in prefixes)}


def _without_remedy(settings: dict[str, Any]) -> dict[str, Any]:
    return _without(settings, REMEDY_KEYS)


def baseline_of(row: Row, rows: Iterable[Row]) -> Row | None:
    """The plain row a remedy row is compared with: remedy "none", the same dataset, method and k / λ, and
    the same settings once :data:`~collapse_tui.report.rows.REMEDY_KEYS` (the remedy switches, the
    normalisation, the SAE input, and every ``sae.remedies.*`` parameter, inert without its remedy) are set
    aside. None for a plain row itself, and when the sweep ran no plain SAE at those settings: a remedy is
    never compared with a plain run that differs in anything else (batch size, epochs, the data...), or
    the difference would not be the remedy's.

    A plain row has every remedy key at its default (else its remedy would not read "none"), so at most
    one row matches; were there several, the first in ``rows`` is taken.
    """
    if row.remedy == PLAIN:
        return None
    own = _without_remedy(row.settings)
    for other in rows:
        if (other.remedy == PLAIN and other.dataset == row.dataset and other.method == row.method
                and other.sparsity == row.sparsity and _without_remedy(other.settings) == own):
            return other
    return None


SCHEDULE = "sae.schedule"  # the k / λ schedule: a plain row that changes it alone is compared with the first


def _without_schedule(settings: dict[str, Any]) -> dict[str, Any]:
    return _without(settings, (SCHEDULE,))


def schedule_baseline_of(row: Row, rows: Iterable[Row]) -> Row | None:
    """The plain row a plain row with another k / λ schedule (a slower one, a constant k) is compared
    with: the first plain row in ``rows`` of the same dataset, method and k / λ whose settings differ from
    ``row``'s under ``sae.schedule`` alone. None for a remedy row, for that first plain row itself (it is
    the baseline, never a variant of a later row) and when no earlier plain row matches.

    A schedule is the study's own knob rather than a remedy switch, so both rows read remedy "none" and
    their setting labels tell them apart; a delayed schedule is labelled as a remedy instead (its
    ``schedule delay N``) and compared by :func:`baseline_of`.
    """
    if row.remedy != PLAIN:
        return None
    own = _without_schedule(row.settings)
    for other in rows:
        if other is row:
            return None
        if (other.remedy == PLAIN and other.dataset == row.dataset and other.method == row.method
                and other.sparsity == row.sparsity and _without_schedule(other.settings) == own):
            return other
    return None


def by_seed(row: Row, spec: MetricSpec) -> dict[int, float]:
    """A row's finite values of a metric by seed, in the spec's shown scale. A seed run more than once in
    one row (a rerun at identical settings) counts once, as the mean of its runs: it is one pair, not two."""
    values: dict[int, list[float]] = {}
    for seed, final in zip(row.seeds, row.finals):
        value = final.get(spec.key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            values.setdefault(seed, []).append(float(value) * spec.scale)
    return {seed: float(np.mean(v)) for seed, v in values.items()}


@dataclass(frozen=True)
class Paired:
    """One metric of a remedy row against its plain row, over the seeds both have measured.

    ``differences``: remedy − plain per seed of ``seeds``, in the metric's shown scale (percentage points
    for a percentage); ``left_out``: the seeds only one of the rows measured, not compared. ``mean``: None
    when no seed pairs; ``ci`` (the ``CONFIDENCE`` t-interval of the mean) and ``p`` (two-sided paired
    t-test of a mean difference of 0): None for a single pair, which has no spread to test against.
    When every difference is the same (sd 0) the interval is that point and ``p`` is 0.0 for a nonzero
    difference, 1.0 for none: the t statistic is ±∞ or undefined there, and these are its limits.
    """

    remedy: Row
    plain: Row
    spec: MetricSpec
    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    left_out: tuple[int, ...]
    mean: float | None
    ci: tuple[float, float] | None
    p: float | None

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def sd(self) -> float | None:
        """The sample standard deviation of the differences; None below two pairs."""
        if self.n < 2:
            return None
        return 0.0 if _identical(self.differences) else float(np.std(self.differences, ddof=1))


def _identical(values: Sequence[float]) -> bool:
    """Whether values differ by no more than float rounding (35 − 30 and 15 − 10 from fractions scaled to
    percent are not equal in binary): such a spread is no evidence, and a t statistic over it would be a
    difference over rounding noise. (A dead fraction moves in steps of one neuron, far above 1e-9.)"""
    top = max(abs(v) for v in values)
    return max(values) - min(values) <= 1e-9 * top


def paired(remedy: Row, plain: Row, spec: MetricSpec, confidence: float = CONFIDENCE) -> Paired:
    """``spec``'s metric of ``remedy`` against ``plain``, paired by seed (see :class:`Paired`)."""
    a, b = by_seed(remedy, spec), by_seed(plain, spec)
    seeds = tuple(sorted(set(a) & set(b)))
    left_out = tuple(sorted(set(a) ^ set(b)))
    diffs = tuple(a[s] - b[s] for s in seeds)
    mean, ci, p = _t_summary(diffs, confidence)
    return Paired(remedy, plain, spec, seeds, diffs, left_out, mean, ci, p)


def _t_summary(diffs: Sequence[float], confidence: float) -> tuple[float | None, tuple[float, float] | None,
                                                                   float | None]:
    """Mean, t-interval and two-sided p of paired differences (see :class:`Paired` for the edge cases)."""
    n = len(diffs)
    if n == 0:
        return None, None, None
    mean = float(np.mean(diffs))
    if n == 1:
        return mean, None, None
    if _identical(diffs):
        return mean, (mean, mean), 0.0 if mean != 0 else 1.0
    from scipy import stats

    se = float(np.std(diffs, ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean / se), n - 1))
    return mean, (mean - half, mean + half), min(p, 1.0)


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE
                  ) -> tuple[float | None, tuple[float, float] | None]:
    """The mean of ``values`` (one per seed) and its ``confidence`` t-interval (n − 1 degrees of freedom),
    as :class:`Paired` gives them for differences: None and None for no value, no interval for one, the
    point itself when every value is the same."""
    mean, ci, _ = _t_summary(values, confidence)
    return mean, ci


REFERENCE_METHOD = "topk"  # the method every other one is compared with at equal sparsity
# The method, and what its published recipe sets beside it: its own parameters, Adam's β1, its k / λ
# schedule and L0 controller, and the remedy keys (the input scaling, the remedies it is trained with, as
# BatchTopK with AuxK 1/32). Set aside when a method is compared with Top-k at equal sparsity: they are part
# of what is compared. The remedy column still shows them, so a row's recipe is never hidden.
RECIPE_KEYS = ("sae.method", "sae.adam_beta1", SCHEDULE, "sae.target_l0", "sae.target_l0_gain", "sae.jumprelu_threshold",
               "sae.jumprelu_bandwidth", "sae.batchtopk_threshold_momentum", "sae.batchtopk_threshold_start",
               *REMEDY_KEYS)


def target_l0(row: Row) -> float | None:
    """The L0 a row is trained to: a k-sparse method's k, a penalised method's ``sae.target_l0`` (its
    controller's target); None for a penalised method with a fixed λ, whose L0 is wherever λ leaves it."""
    if row.method in K_METHODS:
        return float(row.sparsity)
    value = row.settings.get("sae.target_l0")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def sparsity_baseline_of(row: Row, rows: Iterable[Row]) -> Row | None:
    """The plain Top-k row a row of another method is compared with at equal sparsity: remedy "none",
    method Top-k, the same dataset, a final k equal to ``row``'s :func:`target_l0`, and the same settings
    once :data:`RECIPE_KEYS` are set aside (the first such row in ``rows``, so a sweep's main Top-k row
    rather than a schedule variant of it). None for a Top-k row, a penalised row without a target L0, and
    when the sweep ran no such Top-k row.

    This is how "L1 kills more than Top-k at comparable sparsity" is tested: the same inputs, seeds,
    dictionary size, batch and length; each method trained by its own recipe to the same L0. Whether it got
    there is the L0 column's to say (Δ L0 beside Δ dead %).
    """
    if row.method == REFERENCE_METHOD:
        return None
    target = target_l0(row)
    if target is None:
        return None
    own = _without(row.settings, RECIPE_KEYS)
    for other in rows:
        if (other.remedy == PLAIN and other.method == REFERENCE_METHOD and other.dataset == row.dataset
                and float(other.sparsity) == target and _without(other.settings, RECIPE_KEYS) == own):
            return other
    return None


def comparisons(rows: Sequence[Row]) -> list[tuple[Row, Row | None]]:
    """Every remedy row of ``rows`` with the plain row it is compared with (None: there is none), every
    plain row that changes only its schedule with the plain row before it (:func:`schedule_baseline_of`),
    and every row of another method trained to Top-k's L0 with the plain Top-k row
    (:func:`sparsity_baseline_of`, where the row has no plain row of its own method), in ``rows``' order."""
    found = []
    for row in rows:
        if row.remedy != PLAIN:
            found.append((row, baseline_of(row, rows) or sparsity_baseline_of(row, rows)))
        elif (plain := schedule_baseline_of(row, rows) or sparsity_baseline_of(row, rows)) is not None:
            found.append((row, plain))
    return found


def across_methods(found: Iterable[tuple[Row, Row | None]]) -> bool:
    """Whether some comparison is of two methods (at equal sparsity), so a table must say what each row is
    compared with."""
    return any(plain is not None and plain.method != row.method for row, plain in found)


def pooled_sd(results: Iterable[Paired]) -> tuple[float, int] | None:
    """The standard deviation of the paired differences pooled over comparisons (each weighted by its
    degrees of freedom, n − 1), and those degrees of freedom in all; None when no comparison has two
    pairs. One spread for the whole sweep is what a plan for the next one needs: a single comparison's
    sd over three seeds is itself too uncertain to plan by."""
    num = dof = 0.0
    for r in results:
        if r.n >= 2 and r.sd is not None:
            num += (r.n - 1) * r.sd ** 2
            dof += r.n - 1
    return (math.sqrt(num / dof), int(dof)) if dof else None


def pooled_row_sd(rows: Iterable[Row], spec: MetricSpec) -> tuple[float, int] | None:
    """The seed-to-seed standard deviation of a metric within rows, pooled the same way (None when no row
    has two seeds): the spread a comparison of unpaired means would face."""
    num = dof = 0.0
    for row in rows:
        values = list(by_seed(row, spec).values())
        if len(values) >= 2:
            num += (len(values) - 1) * float(np.var(values, ddof=1))
            dof += len(values) - 1
    return (math.sqrt(num / dof), int(dof)) if dof else None


# ----------------------------------------------------------------------------------------- power

def _check(alpha: float, power: float) -> None:
    if not 0 < alpha < 1 or not alpha < power < 1:
        raise ValueError(f"need 0 < alpha < power < 1, got alpha={alpha}, power={power}")


def paired_power(effect: float, sd: float, n: int | np.ndarray, alpha: float = ALPHA) -> float | np.ndarray:
    """The power of a two-sided paired t-test at level ``alpha`` with ``n`` pairs (n ≥ 2) when the true
    mean difference is ``effect`` and the differences' standard deviation is ``sd``: exact, from the
    noncentral t distribution (df n − 1, noncentrality effect/sd·√n). ``n`` may be an array.

    Far into the lower tail (a large noncentrality) scipy's noncentral t returns NaN for a probability
    below 1e-15; it is taken as 0.
    """
    from scipy import stats

    n = np.asarray(n)
    if sd == 0:  # every pair shows the effect exactly: the test rejects for any nonzero one (Paired's p)
        certain = 1.0 if effect else alpha
        return np.full(n.shape, certain) if n.ndim else certain
    df = n - 1
    nc = abs(effect) / sd * np.sqrt(n)
    crit = stats.t.ppf(1 - alpha / 2, df)
    power = stats.nct.sf(crit, df, nc) + np.nan_to_num(stats.nct.cdf(-crit, df, nc), nan=0.0)
    return power if np.ndim(power) else float(power)


def seeds_needed(sd_of_differences: float, effect: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """The smallest number of seeds (pairs, n ≥ 2) with which a two-sided paired t-test at level ``alpha``
    detects a true mean difference ``effect`` with probability ``power``, for differences of standard
    deviation ``sd_of_differences`` (measured, e.g. :func:`pooled_sd`): the power of every n from 2 up,
    exact (:func:`paired_power`).

    None when even :data:`MAX_SEEDS` (1000) pairs do not reach ``power``, and for an effect of 0, which no
    number of seeds detects more often than ``alpha``. An sd of 0 needs the fewest a test has, 2.
    """
    _check(alpha, power)
    if not math.isfinite(sd_of_differences) or sd_of_differences < 0 or not math.isfinite(effect):
        raise ValueError(f"need a finite sd ≥ 0 and a finite effect, got {sd_of_differences}, {effect}")
    if effect == 0:
        return None
    if sd_of_differences == 0:
        return 2
    ns = np.arange(2, MAX_SEEDS + 1)
    reached = np.flatnonzero(paired_power(effect, sd_of_differences, ns, alpha) >= power)
    return int(ns[reached[0]]) if reached.size else None


def detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference that ``n`` pairs (n ≥ 2) detect with probability ``power`` in a
    two-sided paired t-test at level ``alpha``, for differences of standard deviation ``sd``: the inverse
    of :func:`seeds_needed` at fixed n, solved for the noncentrality by bisection (Brent) over the exact
    power. 0 for an sd of 0 (any difference is detected)."""
    _check(alpha, power)
    if n < 2:
        raise ValueError(f"a paired t-test needs at least 2 pairs, got {n}")
    if not math.isfinite(sd) or sd < 0:
        raise ValueError(f"need a finite sd ≥ 0, got {sd}")
    if sd == 0:
        return 0.0
    from scipy import optimize

    short = lambda size: paired_power(size, 1.0, n, alpha) - power  # noqa: E731  (an effect in units of sd)
    high = 1.0
    while short(high) < 0:
        high *= 2
    return float(optimize.brentq(short, 0.0, high, xtol=1e-12) * sd)
