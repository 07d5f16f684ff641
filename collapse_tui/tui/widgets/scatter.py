"""A scatter chart with error bars: each series' points drawn as its marker glyph in its colour, the bars
in braille dots (a cell holds 2 × 4 of them, so a bar is finer than a marker), a legend of label, marker
and colour on top, and either axis on a log scale.

Series are told apart by marker as well as colour, so the chart reads in a terminal without colours and
to a reader who cannot tell two of them apart. Like the line charts it draws only from the values handed
to it (:meth:`ScatterChart.set_points`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from rich.text import Text

from collapse_tui.tui.widgets.charts import _DOTS, PALETTE, ChartWidget, format_number

MARKERS = ("●", "■", "▲", "◆", "✚", "✖", "★", "▼", "○", "□", "△", "✱")


def marker(i: int) -> str:
    """The marker of the i-th series (markers and colours cycle at different lengths, so the pair of
    them tells up to 24 series apart)."""
    return MARKERS[i % len(MARKERS)]


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass(frozen=True)
class ScatterPoint:
    """A point and its error bars: ``x ± x_err``, ``y ± y_err`` (None: no bar on that axis)."""

    x: float
    y: float
    x_err: float | None = None
    y_err: float | None = None


@dataclass
class ScatterSeries:
    label: str
    points: list[ScatterPoint] = field(default_factory=list)
    marker: str = MARKERS[0]
    color: str = PALETTE[0]


class _Axis:
    """One axis' mapping from values to pixels, linear or log10, over the points and their bars."""

    def __init__(self, values: list[float], ends: list[float], log: bool, pixels: int) -> None:
        self.log, self.pixels = log, pixels
        shown = [self.to(v) for v in values + ends]
        shown = [v for v in shown if v is not None]
        lo, hi = min(shown), max(shown)
        pad = (hi - lo) * 0.05
        lo = 0.0 if not log and 0 <= lo < pad else lo - pad  # a count or a fraction keeps 0 as its floor
        hi += pad
        if hi - lo < 1e-12:
            half = 0.5 if log else max(abs(lo) * 0.1, 0.5)
            lo, hi = lo - half, hi + half
        self.lo, self.hi = lo, hi

    def to(self, value: float) -> float | None:
        if not math.isfinite(value):
            return None
        if self.log:
            return math.log10(value) if value > 0 else None
        return value

    def pixel(self, value: float | None, clip_low: bool = False) -> int | None:
        """The pixel of a value (0 at the low end); a value a log axis cannot show is None, or the low end
        with ``clip_low`` (the lower end of an error bar that reaches 0)."""
        shown = self.to(value) if value is not None else None
        if shown is None:
            if not clip_low:
                return None
            shown = self.lo
        f = min(1.0, max(0.0, (shown - self.lo) / (self.hi - self.lo)))
        return round(f * (self.pixels - 1))

    def label(self, fraction: float) -> str:
        value = self.lo + fraction * (self.hi - self.lo)
        return format_number(10 ** value if self.log else value)


def _legend(series: Sequence[ScatterSeries], width: int) -> list[Text]:
    """The legend, wrapped over as many lines as the width needs."""
    lines, line = [], Text()
    for s in series:
        entry = Text.assemble((s.marker, f"bold {s.color}"), " ", (s.label, s.color))
        if line.cell_len and line.cell_len + 2 + entry.cell_len > width:
            lines.append(line)
            line = Text()
        if line.cell_len:
            line.append("  ")
        line.append_text(entry)
    if line.cell_len:
        lines.append(line)
    for text in lines:
        text.truncate(width)
    return lines


def _place(marks: dict[tuple[int, int], ScatterSeries], row: int, col: int, s: ScatterSeries, upper: bool,
           height: int, width: int) -> None:
    """Put a marker in its cell or, where another series' marker already stands there, in the neighbouring
    cell nearest the point's place inside its own (above for the cell's upper half), else beside it: two
    points closer than a cell both stay visible. A marker covers its cell's error-bar dots."""
    step = -1 if upper else 1
    for r, c in ((row, col), (row + step, col), (row - step, col), (row, col + 1), (row, col - 1)):
        if 0 <= r < height and 0 <= c < width and marks.get((r, c), s) is s:
            marks[(r, c)] = s
            return
    marks[(row, col)] = s  # crowded all round: the later series shows


def render_scatter(series: Sequence[ScatterSeries], width: int, height: int, *, x_label: str = "",
                   y_label: str = "", log_x: bool = False, log_y: bool = False, empty: str = "no points") -> Text:
    """The chart in a ``width`` × ``height`` box: the legend, the y axis' title, the plot with three y
    labels, the x labels (low, middle, high) and the x axis' title."""
    text = Text(no_wrap=True, overflow="crop")
    legend = _legend(series, width)[: max(1, height // 4)]
    for line in legend:
        text.append_text(line)
        text.append("\n")
    text.append((y_label + ("  (log)" if log_y else ""))[:width], style="bold")
    text.append("\n")
    plot_h = max(2, height - len(legend) - 3)
    points = [(s, p) for s in series for p in s.points]
    if not points:
        text.append("\n" * (plot_h // 2))
        text.append(f"  ({empty})", style="dim")
        return text

    def ends(values: list[tuple[float, float | None]]) -> list[float]:
        return [v + sign * e for v, e in values if e for sign in (-1, 1)]

    xs = [(p.x, p.x_err) for _, p in points]
    ys = [(p.y, p.y_err) for _, p in points]
    y_axis = _Axis([y for y, _ in ys], ends(ys), log_y, plot_h * 4)
    labels = [y_axis.label(1.0), y_axis.label(0.5), y_axis.label(0.0)]
    axis_w = max(len(v) for v in labels) + 1
    plot_w = max(4, width - axis_w - 2)
    x_axis = _Axis([x for x, _ in xs], ends(xs), log_x, plot_w * 2)
    cells = [[0] * plot_w for _ in range(plot_h)]
    colors: list[list[str | None]] = [[None] * plot_w for _ in range(plot_h)]
    marks: dict[tuple[int, int], ScatterSeries] = {}
    rows = plot_h * 4

    def dot(px: int, py: int, color: str) -> None:  # py counts from the top
        if 0 <= px < plot_w * 2 and 0 <= py < rows:
            cells[py // 4][px // 2] |= _DOTS[px % 2][py % 4]
            colors[py // 4][px // 2] = color

    for s, p in points:
        px, py = x_axis.pixel(p.x), y_axis.pixel(p.y)
        if px is None or py is None:
            continue  # a value a log axis has no place for (the screen refuses such an axis first)
        py = rows - 1 - py
        if p.x_err:
            lo, hi = x_axis.pixel(p.x - p.x_err, clip_low=True), x_axis.pixel(p.x + p.x_err)
            for c in range(lo, (hi if hi is not None else lo) + 1):
                dot(c, py, s.color)
        if p.y_err:
            lo, hi = y_axis.pixel(p.y - p.y_err, clip_low=True), y_axis.pixel(p.y + p.y_err)
            for r in range(lo, (hi if hi is not None else lo) + 1):
                dot(px, rows - 1 - r, s.color)
        _place(marks, py // 4, px // 2, s, (py % 4) < 2, plot_h, plot_w)
    label_rows = {0: labels[0], plot_h // 2: labels[1], plot_h - 1: labels[2]}
    for r in range(plot_h):
        text.append(label_rows.get(r, "").rjust(axis_w - 1) + " ", style="dim")
        text.append("│" if r < plot_h - 1 else "└", style="dim")
        for c in range(plot_w):
            if (r, c) in marks:
                s = marks[(r, c)]
                text.append(s.marker, style=f"bold {s.color}")
            elif cells[r][c]:
                text.append(chr(0x2800 + cells[r][c]), style=colors[r][c])
            else:
                text.append(" ")
        text.append("\n")
    lo, mid, hi = x_axis.label(0.0), x_axis.label(0.5), x_axis.label(1.0)
    ticks = [" "] * (axis_w + 1 + plot_w)
    for pos, label in ((axis_w + 1, lo), (axis_w + 1 + (plot_w - len(mid)) // 2, mid), (len(ticks) - len(hi), hi)):
        ticks[pos:pos + len(label)] = label
    text.append("".join(ticks)[:width], style="dim")
    text.append("\n")
    title = x_label + ("  (log)" if log_x else "")
    text.append((" " * (axis_w + 1 + max(0, (plot_w - len(title)) // 2)) + title)[:width], style="bold")
    return text


class ScatterChart(ChartWidget):
    """Points with error bars, one marker and colour per series, on linear or log axes."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.series: list[ScatterSeries] = []
        self.x_label = self.y_label = ""
        self.log_x = self.log_y = False
        self.empty = "no points"

    def set_points(self, series: Sequence[ScatterSeries], *, x_label: str, y_label: str, log_x: bool = False,
                   log_y: bool = False, empty: str = "no points") -> None:
        self.series, self.x_label, self.y_label = list(series), x_label, y_label
        self.log_x, self.log_y, self.empty = log_x, log_y, empty
        self.refresh()

    def _draw(self, width: int, height: int) -> Text:
        return render_scatter(self.series, width, height, x_label=self.x_label, y_label=self.y_label,
                              log_x=self.log_x, log_y=self.log_y, empty=self.empty)
