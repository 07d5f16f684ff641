"""How the line charts of a screen are read: smoothing, log scale, a cursor, and an x window (zoom and
pan). One :class:`ChartView` is shared by every chart of a screen, so they all move together, and the
keys that change it are the same on every screen that has charts (:data:`CHART_BINDINGS`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

from textual.binding import Binding

# EMA weights `e` steps through, as TensorBoard's smoothing slider reads (0: the raw values).
SMOOTHING_STEPS = (0.0, 0.6, 0.9, 0.97)
ZOOM_STEP = 2.0
MAX_ZOOM = 64.0
CURSOR_STEPS = 40  # ',' and '.' move the cursor by 1/40 of the shown x range

CHART_BINDINGS = [
    Binding("e", "chart('smooth')", "Smooth"),
    Binding("l", "chart('log')", "Log y"),
    Binding("comma", "chart('left')", "Cursor ←", show=False),
    Binding("full_stop", "chart('right')", "Cursor →", show=False),
    Binding("plus,equals_sign", "chart('zoom_in')", "Zoom in", show=False),
    Binding("minus", "chart('zoom_out')", "Zoom out", show=False),
    Binding("0", "chart('reset')", "Reset view", show=False),
]


@dataclass(frozen=True)
class ChartView:
    """``smoothing``: the EMA weight of the past (0 = raw). ``cursor``: where the cursor stands, as a
    fraction of the whole x range (None = no cursor). ``zoom``: how many times the x range is magnified;
    the window it shows is centred on the cursor, or holds the newest values when there is none."""

    smoothing: float = 0.0
    log_y: bool = False
    cursor: float | None = None
    zoom: float = 1.0

    def window(self) -> tuple[float, float]:
        """The shown part of the x range, as fractions of it."""
        width = 1.0 / self.zoom
        centre = self.cursor if self.cursor is not None else 1.0
        lo = min(max(centre - width / 2, 0.0), 1.0 - width)
        return lo, lo + width

    def changed(self, key: str) -> "ChartView":
        """The view after one of the chart keys (``smooth``, ``log``, ``left``, ``right``, ``zoom_in``,
        ``zoom_out``, ``reset``)."""
        if key == "smooth":
            steps = SMOOTHING_STEPS
            index = steps.index(self.smoothing) if self.smoothing in steps else 0
            return dataclasses.replace(self, smoothing=steps[(index + 1) % len(steps)])
        if key == "log":
            return dataclasses.replace(self, log_y=not self.log_y)
        if key in ("left", "right"):
            lo, hi = self.window()
            if self.cursor is None:  # the first press shows the cursor, at the newest values
                return dataclasses.replace(self, cursor=hi)
            step = (hi - lo) / CURSOR_STEPS * (1 if key == "right" else -1)
            return dataclasses.replace(self, cursor=min(1.0, max(0.0, self.cursor + step)))
        if key == "zoom_in":
            return dataclasses.replace(self, zoom=min(MAX_ZOOM, self.zoom * ZOOM_STEP))
        if key == "zoom_out":
            return dataclasses.replace(self, zoom=max(1.0, self.zoom / ZOOM_STEP))
        if key == "reset":
            return ChartView()
        raise ValueError(f"unknown chart key {key!r}")

    def describe(self) -> str:
        """The view's departures from the plain chart, in a few characters (empty when plain)."""
        parts = []
        if self.smoothing:
            parts.append(f"EMA {self.smoothing:g}")
        if self.log_y:
            parts.append("log y")
        if self.zoom > 1:
            parts.append(f"zoom {self.zoom:g}×")
        return " · ".join(parts)


def smoothed(ys: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average of ``ys`` with ``weight`` on the past, debiased as TensorBoard does
    (the first values are not pulled towards 0): ``s_t = m_t / (1 - weight**t)``, where
    ``m_t = weight * m_(t-1) + (1 - weight) * y_t``."""
    if not weight:
        return [float(y) for y in ys]
    out, m = [], 0.0
    for t, y in enumerate(ys, start=1):
        m = weight * m + (1 - weight) * float(y)
        out.append(m / (1 - weight ** t))
    return out


def log_points(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """``(x, log10 y)`` for the points with a positive y (a log axis has no place for the rest)."""
    return [(x, math.log10(y)) for x, y in points if y > 0]
