"""Compare screen: configs (differing keys), final metrics and overlaid curves of two or more runs."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static, TabbedContent, TabPane

from collapse_tui.store import RunRecord
from collapse_tui.tui.screens.base import AppScreen
from collapse_tui.tui.runs_table import (config_rows, export_path, load_compared, metric_rows, row_legends, to_csv,
                                         to_markdown)
from collapse_tui.tui.widgets.chart_view import CHART_BINDINGS, ChartView
from collapse_tui.tui.widgets.charts import PALETTE, LineChart, Series, line_glyph


def common_prefix(labels: list[str]) -> str:
    """The leading words (up to and including a "-") that all labels share, leaving each some text."""
    if len(labels) < 2:
        return ""
    prefix = labels[0]
    for label in labels[1:]:
        while not label.startswith(prefix):
            prefix = prefix[:-1]
    prefix = prefix[: prefix.rfind("-") + 1]
    return prefix if all(len(label) > len(prefix) for label in labels) else ""


# A config value is cut to its share of the screen: a dataset's ~230-character description would make
# its column as wide as the screen and push every other run's off it. Exports keep whole values.
MIN_CELL_WIDTH = 12
CELL_PADDING = 2  # DataTable's padding around each cell


def cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def cell_width(screen_width: int, key_width: int, n_runs: int) -> int:
    """How wide each run's column may be for the key column and ``n_runs`` columns to fit the screen."""
    room = screen_width - key_width - CELL_PADDING * (n_runs + 1) - 2  # and a scrollbar
    return max(MIN_CELL_WIDTH, room // max(1, n_runs))


class CompareScreen(AppScreen):
    """Side by side view of the given runs; each run keeps one colour everywhere on the screen."""

    BINDINGS = [
        Binding("a", "toggle_all", "All keys"),
        Binding("m", "export('md')", "Export MD"),
        Binding("v", "export('csv')", "Export CSV"),
        Binding("g", "export('svg')", "Export SVG"),
        Binding("1", "tab('config')", "Config", show=False),
        Binding("2", "tab('metrics')", "Metrics", show=False),
        Binding("3", "tab('curves')", "Curves", show=False),
        Binding("escape", "back", "Back"),
        *CHART_BINDINGS,
    ]

    def __init__(self, records: list[RunRecord], export_dir: str | Path = ".", **kwargs) -> None:
        if len(records) < 2:
            raise ValueError(f"compare needs at least two runs, got {len(records)}")
        super().__init__(**kwargs)
        self.runs = load_compared(records)
        self.export_dir = Path(export_dir)
        self.only_differing = True
        self.prefix = common_prefix([c.label for c in self.runs])  # shown once, in the legend
        self.exported: list[Path] = []
        self.chart_view = ChartView()  # shared by the curves: they smooth, scale and zoom together
        self.legends = row_legends(self.runs)

    def color(self, i: int) -> str:
        return PALETTE[i % len(PALETTE)]

    def compose(self) -> ComposeResult:
        yield Header()
        # A sweep's runs share a long leading name: say it once, so a dozen runs fit in two lines.
        prefix = self.prefix
        legend = Text()
        if prefix:
            legend.append(f"{prefix}…  ", style="dim")
        for i, c in enumerate(self.runs):
            legend.append(f"{line_glyph(i)} ", style=self.color(i))  # as its curve is drawn
            legend.append(c.label[len(prefix):] + "  ")
        # A sweep of dozens of runs would push the panels off the screen: the legend scrolls instead.
        with VerticalScroll(id="cmp-legend", can_focus=False):
            yield Static(legend)
        with TabbedContent(id="cmp-tabs", initial="config"):
            with TabPane("Config", id="config"):
                yield DataTable(id="cmp-config", zebra_stripes=True, cursor_type="row")
            with TabPane("Metrics", id="metrics"):
                yield DataTable(id="cmp-metrics", zebra_stripes=True, cursor_type="row")
            with TabPane("Curves", id="curves"):
                with Vertical(classes="charts"):
                    with Horizontal():
                        yield LineChart("SAE loss", id="cmp-loss", legend=False)
                        yield LineChart("dead %", id="cmp-dead", y_range=(0.0, 100.0), legend=False)
                    yield LineChart("MIG (SAE codes)", id="cmp-mig", legend=False)
        yield Static("", id="cmp-detail")
        with Horizontal(id="export-row"):
            yield Label("export to ")
            yield Input(str(self.export_dir), id="export-dir", compact=True)
            yield Button("MD", id="export-md", compact=True)
            yield Button("CSV", id="export-csv", compact=True)
            yield Button("SVG", id="export-svg", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.fill_tables()
        self.fill_curves()

    def _fill(self, table: DataTable, first: str, rows: list[tuple[str, list[str]]]) -> None:
        """Header and ``rows`` (key, a text per run). Each column gets the width of its widest text:
        Textual's automatic widths, after a ``clear(columns=True)`` while the screen mounts, can keep
        the header's width and cut every cell to it."""
        table.clear(columns=True)
        table.fixed_columns = 1  # the key stays in view while a dozen runs scroll by
        table.add_column(first, key="key", width=max([len(first)] + [len(k) for k, _ in rows]))
        for i, c in enumerate(self.runs):
            label = c.label[len(self.prefix):]
            width = max([len(label)] + [len(str(values[i])) for _, values in rows])
            table.add_column(Text(label, style=self.color(i)), key=f"run{i}", width=width)
        for key, values in rows:
            table.add_row(key, *values, key=key)

    @on(DataTable.RowHighlighted)
    @on(TabbedContent.TabActivated)
    def _show_legend(self) -> None:
        """Under the tables, what the highlighted row of the table in view means (a metric, a setting)."""
        tab = self.query_one("#cmp-tabs", TabbedContent).active
        table = {"config": "#cmp-config", "metrics": "#cmp-metrics"}.get(tab)
        text, key = "", None
        if table is not None:
            rows = self.query_one(table, DataTable)
            if rows.row_count:
                key = rows.coordinate_to_cell_key((rows.cursor_row, 0)).row_key.value
                text = self.legends.get(key or "", "")
        self.query_one("#cmp-detail", Static).update(Text(f"{key}: {text}" if text else "", style="dim"))

    def fill_tables(self) -> None:
        rows = config_rows(self.runs, self.only_differing)
        key_width = max([len(key) for key, _ in rows] + [len("config key (differing)")])
        width = cell_width(self.app.size.width, key_width, len(self.runs))
        rows = [(key, [cell(v, width) for v in values]) for key, values in rows]
        self._fill(self.query_one("#cmp-config", DataTable),
                   "config key" + (" (differing)" if self.only_differing else " (all)"),
                   rows or [("(identical configs)", ["" for _ in self.runs])])
        self._fill(self.query_one("#cmp-metrics", DataTable), "final metric",
                   [(key, [str(v) for v in values]) for key, values in metric_rows(self.runs)])

    def fill_curves(self) -> None:
        loss, dead, mig = [], [], []
        for i, c in enumerate(self.runs):
            st, color = c.state, self.color(i)
            points = st.loss_curves("sae").get("loss")
            if points:
                loss.append(Series(c.label, [p[0] for p in points], [p[1] for p in points], color))
            thresholds = st.thresholds
            points = st.dead_pct_series(thresholds[0]) if thresholds else []
            if points:
                dead.append(Series(c.label, [p[0] for p in points], [p[1] for p in points], color))
            points = st.metric_series("mig")
            if points:
                mig.append(Series(c.label, [p[0] for p in points], [p[1] for p in points], color))
        self.query_one("#cmp-loss", LineChart).set_series(loss)
        first = self.runs[0].state.thresholds
        self.query_one("#cmp-dead", LineChart).title = (
            f"dead % @ {first[0]:g}" if first else "dead %")
        self.query_one("#cmp-dead", LineChart).set_series(dead)
        self.query_one("#cmp-mig", LineChart).set_series(mig)

    def on_resize(self) -> None:
        self.fill_tables()

    # ------------------------------------------------------------------ actions
    def action_chart(self, key: str) -> None:
        """Change how the curves are drawn (all of them at once)."""
        self.chart_view = self.chart_view.changed(key)
        for chart in self.query(LineChart):
            chart.set_view(self.chart_view)

    def action_toggle_all(self) -> None:
        self.only_differing = not self.only_differing
        self.fill_tables()

    def action_tab(self, tab: str) -> None:
        self.query_one("#cmp-tabs", TabbedContent).active = tab

    @on(Button.Pressed, "#export-md")
    def _md(self) -> None:
        self.action_export("md")

    @on(Button.Pressed, "#export-csv")
    def _csv(self) -> None:
        self.action_export("csv")

    @on(Button.Pressed, "#export-svg")
    def _svg(self) -> None:
        self.action_export("svg")

    def export(self, fmt: str, directory: str | Path | None = None) -> Path:
        """Write the comparison as ``md``, ``csv`` or ``svg`` (a screenshot) into ``directory`` (default:
        the export field's directory) and return the file's path."""
        if fmt not in ("md", "csv", "svg"):
            raise ValueError(f"unknown export format {fmt!r}; use md, csv or svg")
        target = Path(directory if directory is not None else self.query_one("#export-dir", Input).value
                      or self.export_dir).expanduser()
        target.mkdir(parents=True, exist_ok=True)
        path = export_path(target, "." + fmt)
        if fmt == "md":
            path.write_text(to_markdown(self.runs, self.only_differing), encoding="utf-8")
        elif fmt == "csv":
            path.write_text(to_csv(self.runs), encoding="utf-8")
        else:
            # The toasts of earlier exports would sit over the charts in the picture.
            self.app.clear_notifications()
            self.app.save_screenshot(filename=path.name, path=str(path.parent))
        self.exported.append(path)
        return path

    def action_export(self, fmt: str) -> None:
        try:
            path = self.export(fmt)
        except OSError as exc:
            self.notify(f"cannot export: {exc}", severity="error")
            return
        self.notify(f"wrote {path}")

    def action_back(self) -> None:
        self.app.pop_screen()
