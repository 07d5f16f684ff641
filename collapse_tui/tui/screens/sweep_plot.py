"""Plot screen: a sweep's science at a glance. Any final metric against any other, or against a setting
that varies in the sweep (k, λ, a batch size...), one series per method and remedy, each point a row of
the results table at its mean over the seeds with ± std error bars (:mod:`collapse_tui.report.sweep_points`).
By default the dead % against L0. ``a`` / ``b`` choose the x / y quantity, ``x`` / ``y`` put that axis on
a log scale (refused, with a line saying why, where a value is not positive), ``P`` opens the paired
comparison with the plain SAE.

Opened on a sweep (:meth:`SweepPlotScreen.for_sweep`) or on any runs, marked together in the runs list
(:meth:`SweepPlotScreen.for_runs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Static

from collapse_tui.report import build_rows
from collapse_tui.report.sweep_points import (
    DEFAULT_X,
    DEFAULT_Y,
    PointSeries,
    Quantity,
    first_non_positive,
    quantities,
    plot_points,
)
from collapse_tui.store import RunRecord, load_run, load_sweep, sweep_records
from collapse_tui.tui.screens.choose import ChooseScreen
from collapse_tui.tui.widgets.scatter import ScatterChart, ScatterPoint, ScatterSeries, colour, marker
from collapse_tui.tui.screens.base import AppScreen

AXES = ("x", "y")
HINT = "a / b: choose x / y · x / y: log axis · P: remedies against plain, by seed"


class SweepPlotScreen(AppScreen):
    """The runs ``records`` as points; ``title`` names them (a sweep's name)."""

    DEFAULT_CSS = """
    #plot-title { height: 1; padding: 0 1; }
    #plot-chart { height: 1fr; padding: 0 1; }
    #plot-detail { height: 3; padding: 0 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    """
    BINDINGS = [
        # One footer entry: the app's F1-F4 and quit must still fit in 80 columns (the line above says the rest).
        Binding("a", "choose('x')", "Axes", key_display="a/b"),
        Binding("b", "choose('y')", "Y axis", show=False),
        Binding("x", "log('x')", "Log x", show=False),
        Binding("y", "log('y')", "Log y", show=False),
        Binding("P", "paired", "Paired", show=False),
        Binding("escape", "back", "Back", show=False),
    ]

    def __init__(self, records: Iterable[RunRecord], title: str = "", unreadable: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.records = list(records)
        self.title_text = title or f"{len(self.records)} runs"
        self.unreadable = unreadable
        self.rows, self.left_out = build_rows(self.records)
        self.quantities: dict[str, Quantity] = {q.key: q for q in quantities(self.rows)}
        keys = list(self.quantities)
        self.axis = {"y": DEFAULT_Y if DEFAULT_Y in keys else next(iter(keys), DEFAULT_Y)}
        self.axis["x"] = DEFAULT_X if DEFAULT_X in keys else next((k for k in keys if k != self.axis["y"]), DEFAULT_X)
        self.log_scale = {"x": False, "y": False}
        self.series: list[PointSeries] = []
        self.notice = ""

    @classmethod
    def for_sweep(cls, sweep_dir: str | Path) -> "SweepPlotScreen":
        """The runs of the sweep directory ``sweep_dir`` (ValueError, naming sweep.json, if unreadable)."""
        return cls(sweep_records(sweep_dir), title=load_sweep(sweep_dir).name)

    @classmethod
    def for_runs(cls, runs: Iterable[RunRecord | str | Path], title: str = "") -> "SweepPlotScreen":
        """Any runs, as records or run directories (marked in the runs list): a directory that cannot be
        read is left out and counted in the title."""
        records, unreadable = [], 0
        for run in runs:
            if isinstance(run, RunRecord):
                records.append(run)
                continue
            try:
                records.append(load_run(run))
            except ValueError:
                unreadable += 1
        return cls(records, title=title or f"{len(records)} marked runs", unreadable=unreadable)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="plot-title")
        yield ScatterChart(id="plot-chart")
        yield Static("", id="plot-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.redraw()

    # ------------------------------------------------------------------ drawing
    def quantity(self, axis: str) -> Quantity | None:
        return self.quantities.get(self.axis[axis])

    def redraw(self) -> None:
        x, y = self.quantity("x"), self.quantity("y")
        chart = self.query_one("#plot-chart", ScatterChart)
        title = self.query_one("#plot-title", Static)
        if x is None or y is None:
            self.series = []
            chart.set_points([], x_label="", y_label="", empty="no finished run has final metrics to plot")
            title.update(Text(self.title_text, style="bold"))
            self._detail()
            return
        self.series = plot_points(self.rows, x, y)
        for axis in AXES:  # a new quantity may have a value a log axis has no place for
            if self.log_scale[axis] and first_non_positive(self.series, axis) is not None:
                self.log_scale[axis] = False
                self.notice = f"log {axis} off: {self.quantity(axis).label} has values ≤ 0"
        shown = [ScatterSeries(s.label, [ScatterPoint(p.x, p.y, p.x_err, p.y_err) for p in s.points],
                               marker(i), colour(i)) for i, s in enumerate(self.series)]
        chart.set_points(shown, x_label=x.label, y_label=y.label, log_x=self.log_scale["x"], log_y=self.log_scale["y"],
                         empty=f"no row has both {y.label} and {x.label}")
        n = sum(len(s.points) for s in self.series)
        spread = "mean ± std over seeds" if x.is_metric else "mean ± std over seeds on y"
        extra = [f"{len(self.left_out)} run(s) not finished ok"] if self.left_out else []
        extra += [f"{self.unreadable} unreadable"] if self.unreadable else []
        title.update(Text.assemble((self.title_text, "bold"), f"  {y.label} against {x.label}: {n} points ({spread})",
                                   *(f", {e}" for e in extra)))
        self._detail()

    def _detail(self) -> None:
        """A notice (a refused log axis) or the keys, then what each axis holds."""
        lines = [self.notice or HINT]
        for axis in AXES:
            q = self.quantity(axis)
            if q is not None:
                lines.append(f"{axis}: {q.label}: {q.description}")
        self.query_one("#plot-detail", Static).update(Text("\n".join(lines)))

    # ------------------------------------------------------------------ actions
    def choose(self, axis: str, key: str) -> None:
        """Put the quantity ``key`` on ``axis``."""
        if key in self.quantities:
            self.axis[axis] = key
            self.notice = ""
            self.redraw()

    def action_choose(self, axis: str) -> None:
        choices = [(q.key, f"{q.label}  ({q.kind}{'' if q.key == q.label else ': ' + q.key})")
                   for q in self.quantities.values()]
        if not choices:
            return
        self.app.push_screen(ChooseScreen(f"Plot what on {axis}?", choices, self.axis[axis]),
                             lambda key: self.choose(axis, key) if key else None)

    def action_log(self, axis: str) -> None:
        """Toggle ``axis``' log scale; refused, with a line naming the value, where one is not positive."""
        q = self.quantity(axis)
        if q is None:
            return
        bad = first_non_positive(self.series, axis)
        if not self.log_scale[axis] and bad is not None:
            self.notice = f"no log {axis}: {q.label} has the value {q.text(bad)}, and a log axis shows only values > 0"
        else:
            self.log_scale[axis] = not self.log_scale[axis]
            self.notice = ""
        self.redraw()

    def action_paired(self) -> None:
        from collapse_tui.tui.screens.paired import PairedScreen

        self.app.push_screen(PairedScreen(self.records, title=self.title_text))

    def action_back(self) -> None:
        self.app.pop_screen()
