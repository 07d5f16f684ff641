"""Has each row's dead fraction stopped changing? A verdict from the statistics over the row's seeds, not a
threshold on one run: the 95% t-interval of the runs' dead slopes per e-fold of updates
(:func:`~collapse_tui.metrics.plateau.dead_slope`, final metric ``dead_slope_per_efold``) against a band of
±:data:`PLATEAU_BAND` percentage points per e-fold; and the row's dead % against updates, the mean over its
seeds at the marks they share.

Why a slope against ln(updates): the dead fraction grows roughly linearly in the logarithm of the updates
(about 8.5 points per e-fold on dSprites, Top-k at k = 50, as measured), so its change over the last 20%
of a run is ≈ ln(1.25) × that slope ≈ 1.9 points however long the run, and a fixed threshold on it says
nothing about stopping; one difference of two noisy evaluations is mostly noise besides. A fitted slope near 0 is what "stopped changing" means; whether it is
near 0 is for the seeds to say.

Pure functions of :class:`~collapse_tui.report.rows.Row`s; the tables write them out
(:mod:`~collapse_tui.report.tables`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from collapse_tui.config import sparsity_label
from collapse_tui.metrics.plateau import SLOPE_FROM, SLOPE_MIN_MARKS
from collapse_tui.metrics.specs import DEAD, DEAD_CURVE, MISSING, csv_number, spec
from collapse_tui.report.paired import CONFIDENCE, by_seed, mean_interval
from collapse_tui.report.rows import Row

SLOPE = spec("dead_slope_per_efold")
PLATEAU_BAND = 1.0  # percentage points per e-fold of updates: a slope within ±1 is "stopped changing"
PLATEAU_TITLE = "Plateau: dead % against updates"
CURVE_POINTS = 6  # the most marks a row's curve shows, spaced evenly in ln(updates)

# The verdicts (an interval that fits none of the first three is undecided, and so is a single seed).
PLATEAU, RISING, FALLING, UNDECIDED = "plateau", "still rising", "falling", "undecided"


@dataclass(frozen=True)
class Plateau:
    """A row's dead slope over its seeds: ``n`` seeds measured one (a seed run twice counts once, as the
    mean of its runs), their ``mean`` and its ``CONFIDENCE`` t-interval ``ci`` (None below two seeds), in
    percentage points per e-fold."""

    row: Row
    n: int
    mean: float | None
    ci: tuple[float, float] | None

    @property
    def verdict(self) -> str:
        """"plateau" when the interval lies within ±:data:`PLATEAU_BAND`, "still rising" when its lower end
        is above +band, "falling" when its upper end is below −band, else "undecided (n seeds)"; "–" when no
        seed measured a slope."""
        if self.n == 0:
            return MISSING
        if self.ci is not None:
            low, high = self.ci
            if -PLATEAU_BAND <= low and high <= PLATEAU_BAND:
                return PLATEAU
            if low > PLATEAU_BAND:
                return RISING
            if high < -PLATEAU_BAND:
                return FALLING
        return f"{UNDECIDED} ({self.n} seed{'s' if self.n != 1 else ''})"

    def text(self) -> str:
        """The mean slope, signed, and its interval (``+8.2 [5.1, 11.3]``); the slope alone for one seed."""
        if self.mean is None:
            return MISSING
        text = f"{self.mean:+.{SLOPE.digits}f}"
        if self.ci is not None:
            text += f" [{SLOPE.text(self.ci[0])}, {SLOPE.text(self.ci[1])}]"
        return text


def plateau_of(row: Row, confidence: float = CONFIDENCE) -> Plateau:
    """The row's dead slope over its seeds (:class:`Plateau`)."""
    values = list(by_seed(row, SLOPE).values())
    mean, ci = mean_interval(values, confidence)
    return Plateau(row, len(values), mean, ci)


# ----------------------------------------------------------------------------------- the curve

def _curve(final: dict[str, Any]) -> dict[int, float] | None:
    """A run's dead fraction by updates from its final metrics; None where it has no readable curve (a run
    of an earlier version, a summary written by hand)."""
    points = final.get(DEAD_CURVE)
    if not isinstance(points, list):
        return None
    curve = {}
    for point in points:
        if not (isinstance(point, (list, tuple)) and len(point) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in point)):
            return None
        curve[int(point[0])] = float(point[1])
    return curve or None


def mean_curve(row: Row) -> tuple[list[tuple[int, float]], int]:
    """The row's dead % against updates: at each number of updates where every run of the row that
    recorded a curve was evaluated, the mean dead % over those runs; and how many runs that is."""
    curves = [c for c in map(_curve, row.finals) if c is not None]
    if not curves:
        return [], 0
    shared = sorted(set.intersection(*(set(c) for c in curves)))
    return [(u, float(np.mean([c[u] for c in curves])) * DEAD.scale) for u in shared], len(curves)


def curve_points(curve: list[tuple[int, float]], most: int = CURVE_POINTS) -> list[tuple[int, float]]:
    """At most ``most`` points of a curve: the first, the last, and between them those nearest to targets
    spaced evenly in ln(updates) (the dead fraction grows about linearly there)."""
    if len(curve) <= most:
        return list(curve)
    logs = np.log([max(u, 1) for u, _ in curve])
    chosen = {int(np.argmin(np.abs(logs - t))) for t in np.linspace(logs[0], logs[-1], most)}
    return [curve[i] for i in sorted(chosen)]


def count_text(updates: int) -> str:
    """A number of updates, short: 625, 5k, 12.5k, 1.25M."""
    if updates < 1000:
        return str(updates)
    if updates < 1_000_000:
        return f"{updates / 1e3:.4g}k"
    return f"{updates / 1e6:.4g}M"


def curve_text(row: Row) -> str:
    """The row's curve in one line: ``625/5k/25k/100k: 0.2 → 18.1 → 31.3 → 43.1`` (dead % at those
    updates, mean over its seeds); "–" without a curve."""
    curve, _ = mean_curve(row)
    points = curve_points(curve)
    if not points:
        return MISSING
    return ("/".join(count_text(u) for u, _ in points) + ": "
            + " → ".join(DEAD.text(d) for _, d in points))


# ----------------------------------------------------------------------------------- tables and notes

def has_plateau(rows: list[Row]) -> bool:
    """Whether some run of ``rows`` measured a dead slope or recorded a curve (the section's condition)."""
    return any(SLOPE.key in final or DEAD_CURVE in final for row in rows for final in row.finals)


def plateau_cells(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """The section's table: per row its seeds with a slope, the mean slope and its interval, the verdict,
    and its dead % against updates (:func:`curve_text`)."""
    labelled = any(row.setting for row in rows)
    headers = ["dataset", "method", "remedy", "k / λ", *(["setting"] if labelled else []), "seeds",
               f"{SLOPE.label} ({SLOPE.unit}, {CONFIDENCE:.0%} CI)", "plateau", "dead % at updates"]
    texts = []
    for row in rows:
        p = plateau_of(row)
        texts.append([row.dataset, row.method, row.remedy, sparsity_label(row.method, row.sparsity),
                      *([row.setting] if labelled else []), str(p.n), p.text(), p.verdict, curve_text(row)])
    return headers, texts


def plateau_notes(keys: set[str]) -> list[str]:
    """The notes under the main table on the plateau metrics it has (``keys``: its metric keys)."""
    notes = []
    if "dead_change_last_20pct" in keys:
        notes.append("Δdead last 20%: percentage points the dead fraction moved over the last 20% of the optimiser "
                     "updates, at the final sparsity. Not a plateau test: a dead fraction that grows with ln(updates) "
                     "moves ln(1.25) ≈ 0.22 × its slope per e-fold there whatever the run's length, and one "
                     "difference of two noisy evaluations is mostly noise.")
    if SLOPE.key in keys:
        notes.append(
            f"{SLOPE.label}: the least-squares slope of each run's dead % against ln(updates), in percentage points "
            f"per e-fold (× 2.72) of the updates, over its evaluations at the final sparsity at or after "
            f"{SLOPE_FROM:.0%} of its updates (at least {SLOPE_MIN_MARKS}, else –; slope marks: how many). The "
            f"verdict (section \"{PLATEAU_TITLE}\" of results.md) reads the slope's {CONFIDENCE:.0%} t-interval over "
            f"the row's seeds: {PLATEAU} when it lies within ±{PLATEAU_BAND:g} pp per e-fold, {RISING} when its lower "
            f"end is above +{PLATEAU_BAND:g}, {FALLING} when its upper end is below −{PLATEAU_BAND:g}, else "
            f"{UNDECIDED} (always, with one seed). Why a slope: in the runs measured so far (docs/protocol.md) the "
            "dead fraction grows about linearly in ln(updates), so its change over the last share of a run is about "
            "the same at every length and need never fall under a fixed threshold; a slope near 0 is a curve that "
            "stopped rising, and the seeds say whether it is near 0.")
    return notes


def plateau_section_notes() -> list[str]:
    """The section's own note: how the curve is read."""
    return [f"dead % at updates: the mean dead % over the row's runs at the evaluation marks all of them share, at "
            f"most {CURVE_POINTS} of them spaced evenly in ln(updates) (the first and the last always); marks "
            f"before the final sparsity included. Every mark of every run: dead_curve in its summary.json."]


def plateau_csv_header() -> list[str]:
    return [f"{SLOPE.csv_name}_ci_low", f"{SLOPE.csv_name}_ci_high", "plateau"]


def plateau_csv_cells(row: Row) -> list[str]:
    """The row's slope interval (empty below two seeds) and verdict (empty when no seed has a slope)."""
    p = plateau_of(row)
    low, high = p.ci or (None, None)
    return [csv_number(low), csv_number(high), p.verdict if p.n else ""]
