"""Small text charts drawn with braille dots and block characters.

They render from plain values handed to them (``set_series``, ``set_histogram``, ``set_matrix``) and
draw nothing between updates, so a screen decides how often they are redrawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from collapse_tui.tui.widgets.chart_view import ChartView, log_points, smoothed

# Stable, distinguishable colours: series i (or the i-th compared run) always gets PALETTE[i % len].
PALETTE = ("#4e9ae0", "#e8a33d", "#5fbf73", "#e05d5d", "#a77bd4", "#4fc1c1", "#d97bb0", "#b5b54a")

# Line styles, so that lines are told apart without colour too (a monochrome terminal, a colour-blind
# reader, eight runs at once): series i is drawn with DASHES[i % 4], its pixels along the line on or off
# by the pattern, and shown in legends by the glyphs beside it.
DASHES = ((1,), (1, 1, 1, 1, 0, 0), (1, 0), (1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0))
DASH_GLYPHS = ("━━", "╍╍", "┉┉", "━╸")


def line_glyph(index: int) -> str:
    """How series ``index`` of a chart is shown in a legend: its line style."""
    return DASH_GLYPHS[index % len(DASH_GLYPHS)]


# Braille dot bits for (column, row) inside one 2x4 cell.
_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
BLOCKS = " ▁▂▃▄▅▆▇█"


def format_number(value: float) -> str:
    """A short label for an axis: at most about six characters."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = abs(value)
    if value == int(value) and magnitude < 1e5:
        return str(int(value))
    if magnitude >= 1e5 or magnitude < 1e-3:
        return f"{value:.1e}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


@dataclass
class Series:
    """One line of a chart: ``xs`` and ``ys`` of equal length, drawn in ``color``."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: str = PALETTE[0]


def _finite_points(series: Series) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in zip(series.xs, series.ys)
            if y is not None and x is not None and math.isfinite(float(y)) and math.isfinite(float(x))]


def _nearest(points: Sequence[tuple[float, float]], x: float) -> float | None:
    """The y of the point nearest to ``x`` (None without points)."""
    return min(points, key=lambda p: abs(p[0] - x))[1] if points else None


def render_line_chart(series: Sequence[Series], width: int, height: int, *, title: str = "",
                      y_range: tuple[float, float] | None = None, x_label: str = "",
                      legend: bool = True, empty: str = "no data yet", view: ChartView | None = None) -> Text:
    """A line chart of ``series`` in a ``width`` x ``height`` cell box: title and legend (cut to the
    width) on the first line, a y axis with three labels, the x axis range on the last line.

    ``view`` smooths the series, puts y on a log scale, shows part of the x range and a cursor; with a
    cursor, the last line reads each series' value at it instead of the x range."""
    view = view or ChartView()
    text = Text(no_wrap=True, overflow="crop")
    head = Text()
    if title:
        head.append(title, style="bold")
    for i, s in enumerate(series if legend else ()):
        head.append("  ")
        head.append(line_glyph(i) + " ", style=s.color)
        head.append(s.label)
    head.truncate(width)
    text.append_text(head)
    text.append("\n")
    plot_h = max(1, height - 2)
    points = [_finite_points(s) for s in series]
    if view.smoothing:
        points = [list(zip([p[0] for p in pts], smoothed([p[1] for p in pts], view.smoothing))) for pts in points]
    drawn = [log_points(pts) for pts in points] if view.log_y else points
    all_pts = [p for pts in drawn for p in pts]
    if not all_pts:
        if view.log_y and any(points):
            empty = "no positive values for a log axis"
        text.append("\n" * (plot_h - 1))
        text.append(f"  ({empty})", style="dim")
        text.append("\n")
        return text
    full_lo, full_hi = min(p[0] for p in all_pts), max(p[0] for p in all_pts)
    f_lo, f_hi = view.window()
    x_lo, x_hi = full_lo + f_lo * (full_hi - full_lo), full_lo + f_hi * (full_hi - full_lo)
    # The y range fits what the window shows.
    ys = [p[1] for p in all_pts if x_lo <= p[0] <= x_hi] or [p[1] for p in all_pts]
    if view.log_y:
        y_range = None
    y_lo, y_hi = y_range if y_range is not None else (min(ys), max(ys))
    if y_range is None:
        pad = (y_hi - y_lo) * 0.05
        # Quantities that cannot be negative (losses, fractions, MIG) keep 0 as their floor (on a log
        # axis the floor is whatever the data reach).
        floor_at_zero = not view.log_y and 0 <= y_lo < pad
        y_lo, y_hi = (0.0 if floor_at_zero else y_lo - pad), y_hi + pad
    if y_hi - y_lo < 1e-12:
        y_lo, y_hi = y_lo - 0.5 if y_lo else -1.0, y_hi + 0.5 if y_hi else 1.0
    label = (lambda v: format_number(10 ** v)) if view.log_y else format_number
    labels = [label(y_hi), label((y_lo + y_hi) / 2), label(y_lo)]
    axis_w = max(len(s) for s in labels) + 1
    plot_w = max(2, width - axis_w - 1)
    cols, rows = plot_w * 2, plot_h * 4
    cells = [[0] * plot_w for _ in range(plot_h)]
    colors: list[list[str | None]] = [[None] * plot_w for _ in range(plot_h)]

    def to_px(x: float, y: float) -> tuple[int, int]:
        fx = 0.5 if x_hi == x_lo else (x - x_lo) / (x_hi - x_lo)
        fy = (y - y_lo) / (y_hi - y_lo)
        fy = min(1.0, max(0.0, fy))
        return round(fx * (cols - 1)), round((1 - fy) * (rows - 1))

    def plot(px: int, py: int, color: str) -> None:
        if 0 <= px < cols and 0 <= py < rows:
            cy, cx = divmod(py, 4)[0], px // 2
            cells[cy][cx] |= _DOTS[px % 2][py % 4]
            colors[cy][cx] = color

    for index, (s, pts) in enumerate(zip(series, drawn)):
        # Points outside the window still anchor the lines that cross its edges (pixels off the plot
        # are dropped); far beyond it they only cost time.
        margin = (x_hi - x_lo) or 1.0
        pixels = [to_px(x, y) for x, y in pts if x_lo - margin <= x <= x_hi + margin]
        dash = DASHES[index % len(DASHES)]
        if len(pixels) == 1:
            plot(*pixels[0], s.color)
        along = 0  # pixels drawn along the line so far: where in its dash pattern it is
        for (x0, y0), (x1, y1) in zip(pixels, pixels[1:]):
            steps = max(abs(x1 - x0), abs(y1 - y0), 1)
            for i in range(steps + 1):
                if dash[along % len(dash)]:
                    plot(round(x0 + (x1 - x0) * i / steps), round(y0 + (y1 - y0) * i / steps), s.color)
                along += 1

    cursor_x = full_lo + view.cursor * (full_hi - full_lo) if view.cursor is not None else None
    cursor_col = to_px(cursor_x, y_lo)[0] // 2 if cursor_x is not None and x_lo <= cursor_x <= x_hi else None
    label_rows = {0: labels[0], plot_h // 2: labels[1], plot_h - 1: labels[2]}
    for r in range(plot_h):
        text.append(label_rows.get(r, "").rjust(axis_w - 1) + " ", style="dim")
        text.append("│" if r < plot_h - 1 else "└", style="dim")
        for c in range(plot_w):
            bits = cells[r][c]
            if bits:
                text.append(chr(0x2800 + bits), style=colors[r][c])
            elif c == cursor_col:
                text.append("┊", style="bold")
            else:
                text.append(" ")
        text.append("\n")
    if cursor_x is not None:
        footer = Text(" " * (axis_w + 1) + (f"{x_label} " if x_label else "x ") + format_number(cursor_x), style="dim")
        for i, (s, pts) in enumerate(zip(series, points)):
            value = _nearest(pts, cursor_x)
            if value is not None:
                footer.append(f"  {line_glyph(i)} ", style=s.color)
                footer.append(format_number(value))
        footer.truncate(width)
        text.append_text(footer)
        return text
    lo, hi = format_number(x_lo), format_number(x_hi)
    footer = " " * (axis_w + 1) + lo
    right = (f"{x_label} " if x_label else "") + hi
    mode = view.describe()
    gap = axis_w + 1 + plot_w - len(footer) - len(right)
    if mode and gap >= len(mode) + 4:
        left_gap = (gap - len(mode)) // 2
        footer += " " * left_gap + mode + " " * (gap - left_gap - len(mode)) + right
    else:
        footer += " " * max(1, gap) + right
    text.append(footer, style="dim")
    return text


def render_histogram(counts: Sequence[int], width: int, height: int, *, title: str = "",
                     left: str = "", right: str = "", color: str = PALETTE[0]) -> Text:
    """Vertical bars, one per bin, stretched over ``width``; bar heights in eighths of a cell."""
    text = Text(no_wrap=True, overflow="crop")
    text.append(title[:width], style="bold")
    text.append("\n")
    plot_h = max(1, height - 2)
    n = len(counts)
    if n == 0:
        text.append("  (no data yet)\n", style="dim")
        return text
    per = max(1, width // n)
    peak = max(max(counts), 1)
    levels = [round(c / peak * plot_h * 8) for c in counts]
    for r in range(plot_h):
        floor = (plot_h - 1 - r) * 8
        line = Text()
        for lv in levels:
            part = min(8, max(0, lv - floor))
            line.append(BLOCKS[part] * per, style=color)
        text.append_text(line)
        text.append("\n")
    span = per * n
    text.append(left + " " * max(1, span - len(left) - len(right)) + right, style="dim")
    return text


def _heat_style(value: float) -> Style:
    """Dark blue (0) to yellow (1), a perceptually ordered ramp that reads in 256 colours too."""
    v = min(1.0, max(0.0, value))
    stops = ((0.0, (20, 24, 60)), (0.35, (40, 90, 160)), (0.7, (80, 180, 120)), (1.0, (250, 230, 80)))
    for (a, ca), (b, cb) in zip(stops, stops[1:]):
        if v <= b:
            t = (v - a) / (b - a)
            rgb = tuple(round(x + (y - x) * t) for x, y in zip(ca, cb))
            return Style(bgcolor=Color.from_rgb(*rgb))
    return Style(bgcolor=Color.from_rgb(*stops[-1][1]))


def column_groups(n: int, cols: int) -> list[slice]:
    """``n`` items shared out over ``cols`` columns in order, as evenly as rounding allows."""
    return [slice(round(c * n / cols), round((c + 1) * n / cols)) for c in range(cols)]


def heatmap_order(best_factor: Sequence[int], dead: Sequence[bool]) -> list[int]:
    """Neuron order for the heatmap: live neurons grouped by best factor, dead ones last."""
    n = len(best_factor)
    return sorted(range(n), key=lambda i: (bool(dead[i]) if i < len(dead) else False, best_factor[i], i))


def render_heatmap(nmi: Sequence[Sequence[float]], factors: Sequence[str], best_factor: Sequence[int],
                   dead: Sequence[bool], width: int, height: int | None = None, *, title: str = "") -> Text:
    """Factor rows x neuron columns of normalised MI, neurons sorted by best factor; dead neurons
    are grey dots. Colours run from 0 to the matrix's largest value, so that the structure shows at
    small MI too; the last line is that colour scale. With more neurons than columns, neighbours (in
    sorted order) share a column and it shows their largest value. With ``height``, each factor's row
    is repeated to fill it (title and scale take a line each)."""
    text = Text(no_wrap=True, overflow="crop")
    n = len(nmi)
    live = [v for i, row in enumerate(nmi) if not (i < len(dead) and dead[i]) for v in row]
    top = max(live, default=0.0)
    n_dead = sum(1 for i in range(n) if i < len(dead) and dead[i])
    text.append((title + (f"  {n} neurons, {n_dead} dead" if n else ""))[:width], style="bold")
    text.append("\n")
    if n == 0:
        text.append("  (no data yet)\n", style="dim")
        return text
    scale = top if top > 0 else 1.0
    n_factors = len(nmi[0])
    names = [str(factors[j]) if j < len(factors) else f"f{j}" for j in range(n_factors)]
    name_w = min(12, max(len(s) for s in names)) + 1
    cols = max(1, min(n, width - name_w))
    repeat = max(1, (height - 2) // max(1, n_factors)) if height else 1
    order = heatmap_order(best_factor, dead)
    groups = [order[part] for part in column_groups(n, cols)]
    for j in range(n_factors):
        row = Text()
        for group in groups:
            if not group or all(i < len(dead) and dead[i] for i in group):
                row.append("·", style="grey42")
                continue
            value = max(nmi[i][j] for i in group if not (i < len(dead) and dead[i]))
            row.append(" ", style=_heat_style(value / scale))
        for r in range(repeat):
            # The name on the middle line of its band.
            label = names[j][: name_w - 1] if r == (repeat - 1) // 2 else ""
            text.append(label.ljust(name_w), style="dim")
            text.append_text(row)
            text.append("\n")
    # The colour scale: 0 on the left, the largest live value on the right.
    left, right = " 0 ", f" {top:.2g}  · dead"
    ramp = max(4, min(24, width - name_w - len(left) - len(right)))
    text.append(" " * name_w)
    text.append(left, style="dim")
    for c in range(ramp):
        text.append(" ", style=_heat_style(c / (ramp - 1)))
    text.append(right, style="dim")
    return text


class ChartWidget(Widget):
    """Base for the charts: re-renders its text when its data or its size changes."""

    DEFAULT_CSS = """
    ChartWidget { height: 1fr; min-height: 5; text-wrap: nowrap; text-overflow: clip; }
    """

    def _draw(self, width: int, height: int) -> Text:  # pragma: no cover - overridden
        return Text()

    def render(self) -> Text:
        return self._draw(max(10, self.content_size.width), max(3, self.content_size.height))


class LineChart(ChartWidget):
    """Several series over a shared x axis (epochs), with a title and a legend."""

    def __init__(self, title: str = "", *, x_label: str = "epoch", y_range: tuple[float, float] | None = None,
                 legend: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.legend = legend
        self.x_label = x_label
        self.y_range = y_range
        self.series: list[Series] = []
        self.empty = "no data yet"
        self.view = ChartView()

    def set_series(self, series: Sequence[Series], empty: str = "no data yet") -> None:
        """Draw ``series``; with none, the chart says ``empty`` instead."""
        self.series = list(series)
        self.empty = empty
        self.refresh()

    def set_view(self, view: ChartView) -> None:
        """Smooth, scale, zoom or move the cursor as ``view`` says."""
        self.view = view
        self.refresh()

    def _draw(self, width: int, height: int) -> Text:
        return render_line_chart(self.series, width, height, title=self.title, y_range=self.y_range,
                                 x_label=self.x_label, legend=self.legend and len(self.series) > 1,
                                 empty=self.empty, view=self.view)


class Histogram(ChartWidget):
    """Counts per bin as vertical bars."""

    def __init__(self, title: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.counts: list[int] = []
        self.left = ""
        self.right = ""
        self.subtitle = ""

    def set_histogram(self, counts: Sequence[int], left: str = "", right: str = "", subtitle: str = "") -> None:
        self.counts, self.left, self.right, self.subtitle = list(counts), left, right, subtitle
        self.refresh()

    def _draw(self, width: int, height: int) -> Text:
        title = self.title + (f"  {self.subtitle}" if self.subtitle else "")
        return render_histogram(self.counts, width, height, title=title, left=self.left, right=self.right)


class Heatmap(ChartWidget):
    """The neuron x factor normalised-MI matrix."""

    def __init__(self, title: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.nmi: list[list[float]] = []
        self.factors: list[str] = []
        self.best_factor: list[int] = []
        self.dead: list[bool] = []

    def set_matrix(self, nmi: Sequence[Sequence[float]], factors: Sequence[str], best_factor: Sequence[int],
                   dead: Sequence[bool]) -> None:
        self.nmi = [list(row) for row in nmi]
        self.factors, self.best_factor, self.dead = list(factors), list(best_factor), list(dead)
        self.refresh()

    def _draw(self, width: int, height: int) -> Text:
        return render_heatmap(self.nmi, self.factors, self.best_factor, self.dead, width, height, title=self.title)
