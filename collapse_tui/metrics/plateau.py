"""Has a run's dead fraction stopped changing? Read from its evaluation marks, ``history``: one
``(updates, sparsity, dead_fraction)`` per evaluation, in order (numpy only).

Measured under the study's protocol, the dead fraction grows roughly linearly in the logarithm of the
updates (about 8.5 percentage points per e-fold on dSprites, Top-k at k = 50). Over the last 20% of any
run such a curve moves by its slope × ln(1.25) ≈ 0.22 × slope, whatever the run's length, so the change
between two evaluations (:func:`dead_change`) cannot tell a plateau from slow growth, and a single
difference of two noisy evaluations is mostly noise. :func:`dead_slope` fits the slope against
ln(updates) over the second half of the run instead: a plateau is a slope near 0, and whether it is
near 0 is read from the slopes of several seeds (the report's t-interval), not from one run.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

History = Sequence[Sequence[float]]  # (updates, sparsity, dead fraction) per evaluation mark

SLOPE_FROM = 0.5  # the slope's window: marks at or after this fraction of the final updates
SLOPE_MIN_MARKS = 3  # fewer marks give no slope (two points fit any line exactly)


def at_sparsity(sparsity: float, final_sparsity: float) -> bool:
    """Whether a mark was measured at the final sparsity (an L1 coefficient read back from a float32
    variable is still the final value)."""
    return math.isclose(sparsity, final_sparsity, rel_tol=1e-6)


def dead_change(history: History, final_sparsity: float, window: float = 0.2) -> float | None:
    """How much the dead fraction moved over the last ``window`` of training: the last evaluation's dead
    fraction minus that of the latest evaluation at or before ``1 - window`` of the updates, both at
    ``final_sparsity``.

    None when no evaluation at the final sparsity falls at or before the mark (the window is then still
    sparsifying, or evaluated too rarely). One difference of two evaluations: near 0 at a plateau, but
    also ≈ 0.22 × the slope per e-fold for a curve growing with ln(updates), at any length; it cannot
    say that the dead fraction stopped changing (:func:`dead_slope` can, over seeds).
    """
    if not history:
        return None
    updates, sparsity, dead = history[-1]
    if not at_sparsity(sparsity, final_sparsity):
        return None
    mark = (1.0 - window) * updates
    earlier = [h for h in history[:-1] if h[0] <= mark and at_sparsity(h[1], final_sparsity)]
    return dead - earlier[-1][2] if earlier else None


def _marks(history: History) -> list[tuple[float, float, float]]:
    """The marks in order of updates, one per number of updates (the later one: a run stopped right after
    a mark evaluates that epoch again as its final evaluation)."""
    by_updates = {u: (u, s, d) for u, s, d in history}
    return [by_updates[u] for u in sorted(by_updates)]


def slope_window(history: History, final_sparsity: float, start: float = SLOPE_FROM) -> list[tuple[float, float]]:
    """The marks :func:`dead_slope` fits, as ``(updates, dead fraction)``: those at ``final_sparsity``
    with at least ``start`` × the last mark's updates (and more than none). Empty when the last mark is
    not at the final sparsity (a run stopped while still sparsifying)."""
    if not history or not at_sparsity(history[-1][1], final_sparsity):
        return []
    first = start * history[-1][0]
    return [(float(u), float(d)) for u, s, d in _marks(history)
            if u >= first and u > 0 and at_sparsity(s, final_sparsity)]


def dead_slope(history: History, final_sparsity: float, start: float = SLOPE_FROM,
               min_marks: int = SLOPE_MIN_MARKS) -> tuple[float | None, int]:
    """The least-squares slope of the dead fraction against ln(updates) over :func:`slope_window`'s
    marks, in dead fraction per e-fold of updates (×100: percentage points), and how many marks the window
    holds (the slope is None below ``min_marks`` of them)."""
    marks = slope_window(history, final_sparsity, start)
    if len(marks) < min_marks:
        return None, len(marks)
    x = np.log([u for u, _ in marks])
    y = np.array([d for _, d in marks])
    dx = x - x.mean()  # the marks' updates differ (one mark per number of updates): dx @ dx > 0
    return float(dx @ (y - y.mean()) / (dx @ dx)), len(marks)


def dead_curve(history: History) -> list[list[int | float]]:
    """The dead fraction against training: ``[updates, dead fraction]`` at every mark, in order (marks
    before the final sparsity included; one per number of updates)."""
    return [[int(u), float(d)] for u, _, d in _marks(history)]
