"""Sweep screen: a sweep's results table, the one it writes (one row per experiment, mean ± std over the
seeds, the paper's numbers beside), sortable by any column; a row opens its run, or compares its runs.

The row's labels (dataset, method, remedy, k / λ) stay in place while the table scrolls right, the
headline metrics (the dead % at the first threshold, L0, EV, MIG) come first, and the line below the table
says what the column under the cursor holds. ``p`` plots the rows, ``P`` compares each remedy with the
plain SAE seed by seed."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from collapse_tui.metrics.specs import SPECS, MetricSpec, dead_keys, dead_spec
from collapse_tui.report import build_rows, table_cells, table_notes
from collapse_tui.store import RunRecord, load_sweep, sweep_records
from collapse_tui.tui.runs_table import sort_key
from collapse_tui.tui.sorting import chosen_sort
from collapse_tui.tui.screens.base import AppScreen

HINT = "enter: open the row · o: sort · p: plot · P: remedies against plain, by seed"
LABEL_COLUMNS = ("dataset", "method", "remedy", "k / λ")  # frozen while the table scrolls right
HEADLINE_LABELS = ("L0", "EV", "MIG")  # after the first dead % column, before the other thresholds
# What the columns that are not metrics hold (a metric's legend is its spec's description).
COLUMN_LEGENDS = {
    "dataset": "the dataset the runs were trained on",
    "method": "the SAE's sparsity method",
    "remedy": "what the runs changed against the plain method: remedies, an SAE input other than the default",
    "k / λ": "the sparsity in effect at the end: k for a k-sparse method, the penalty weight λ otherwise",
    "setting": "what else these rows' runs were set to, where rows of one dataset, method and remedy differ",
    "seeds": "how many runs (seeds) the row's mean ± std is over",
}


def tui_order(columns: list[str]) -> list[int]:
    """The results table's columns in the order this screen shows them: the labels and seeds, the first
    dead % column, L0, EV and MIG, then the rest in the table's order, so that an 80-column terminal
    shows the headline numbers without scrolling past every threshold."""
    first_dead = next((c for c in columns if c.startswith("dead %")), None)
    head = [c for c in columns if c in (*LABEL_COLUMNS, "setting", "seeds")]
    head += [c for c in (first_dead, *HEADLINE_LABELS) if c in columns]
    return [columns.index(c) for c in head] + [i for i, c in enumerate(columns) if c not in head]


class SweepScreen(AppScreen):
    """The results table of the sweep directory ``sweep_dir``, read from its runs (kept current while
    some are still running)."""

    BINDINGS = [
        Binding("enter", "open", "Open row", show=False),
        # One footer entry: the app's F1-F4 and quit must still fit in 80 columns (the line below says the rest).
        Binding("o", "cycle_sort", "Sort", show=False),
        Binding("p", "plot", "Plot"),
        Binding("P", "paired", "Paired", show=False),
        Binding("r", "reload", "Reload", show=False),
        Binding("escape", "back", "Back", show=False),
    ]
    DEFAULT_CSS = """
    #sweep-title { height: 1; padding: 0 1; }
    #sweep-table { height: 1fr; }
    #sweep-detail { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, sweep_dir: str | Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sweep_dir = Path(sweep_dir)
        self.records: list[RunRecord] = []
        self.columns: list[str] = []
        self.texts: list[list[str]] = []
        self.values: list[list] = []
        self.run_ids: list[list[str]] = []
        self.notes: list[str] = []
        self.legends: dict[str, str] = {}  # a column's description, for the line below the table
        self.sweep_name = ""
        self.sort_column: str | None = None  # None: the table's own order (dataset, method, remedy, k)
        self.sort_reverse = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="sweep-title")
        yield DataTable(id="sweep-table", cursor_type="cell", zebra_stripes=True)
        yield Static("", id="sweep-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.query_one("#sweep-table", DataTable).focus()
        self.set_interval(3.0, self._refresh_running)

    def _refresh_running(self) -> None:
        if self.is_current and any(r.status == "running" for r in self.records):
            self.reload()

    # ------------------------------------------------------------------ data
    def reload(self) -> None:
        """Read the sweep's runs again and rebuild its table (an unreadable sweep says why)."""
        title = self.query_one("#sweep-title", Static)
        try:
            sweep = load_sweep(self.sweep_dir)
            self.records = sweep_records(self.sweep_dir)
        except (ValueError, OSError) as exc:
            self.records = []
            title.update(Text(f"cannot read {self.sweep_dir}: {exc}", style="red"))
            return
        rows, left_out = build_rows(self.records)
        columns, texts, values = table_cells(rows)
        order = tui_order(columns)
        self.columns = [columns[i] for i in order]
        self.texts = [[cells[i] for i in order] for cells in texts]
        self.values = [[cells[i] for i in order] for cells in values]
        self.run_ids = [row.run_ids for row in rows]
        self.notes = table_notes(rows) if rows else []
        self.legends = self.column_legends([f for row in rows for f in row.finals])
        self.sweep_name = sweep.name
        statuses = [r.status for r in self.records]
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
        title.update(Text.assemble((sweep.name, "bold"), f"  {len(self.records)}/{sweep.n_runs} runs: {counts}",
                                   f"  ·  {len(rows)} rows (mean ± std over seeds)"
                                   + (f", {len(left_out)} run(s) left out" if left_out else "")))
        self.populate()

    def column_legends(self, finals: list[dict]) -> dict[str, str]:
        """Each column's description: a metric's from its spec, the paper's from the table's note."""
        specs: list[MetricSpec] = [dead_spec(k) for k in dead_keys(finals)] + list(SPECS)
        legends = dict(COLUMN_LEGENDS)
        for column in self.columns:
            found = next((m for m in specs if m.label == column), None)
            if found is not None:
                legends[column] = found.description + " Mean ± std over the seeds."
            elif column.startswith("paper"):
                legends[column] = next((n[len("paper: "):] for n in self.notes if n.startswith("paper:")),
                                       "the published number for this experiment")
        return legends

    def order(self) -> list[int]:
        """Row indices in display order: the current sort column (missing values last), else as built."""
        indices = list(range(len(self.texts)))
        if self.sort_column is None or self.sort_column not in self.columns:
            return indices
        c = self.columns.index(self.sort_column)
        present = sorted((i for i in indices if self.values[i][c] is not None),
                         key=lambda i: sort_key(self.values[i][c]), reverse=self.sort_reverse)
        return present + [i for i in indices if self.values[i][c] is None]

    def populate(self) -> None:
        table = self.query_one("#sweep-table", DataTable)
        cursor_row, cursor_column = table.cursor_coordinate  # kept across a sort or a reload: the reader's place
        table.clear(columns=True)
        for column in self.columns:
            arrow = (" ▼" if self.sort_reverse else " ▲") if column == self.sort_column else ""
            table.add_column(column + arrow, key=column)
        for i in self.order():
            table.add_row(*(Text(cell) for cell in self.texts[i]), key=str(i))
        table.fixed_columns = sum(1 for c in self.columns if c in LABEL_COLUMNS)
        if self.texts:
            table.move_cursor(row=min(cursor_row, len(self.texts) - 1),
                              column=min(cursor_column, len(self.columns) - 1))
        self.describe_column()

    def describe_column(self) -> None:
        """The line below the table: what the column under the cursor holds (or that nothing finished)."""
        detail = self.query_one("#sweep-detail", Static)
        if not self.texts:
            detail.update("no run of this sweep has finished yet")
            return
        column = self.columns[min(self.query_one("#sweep-table", DataTable).cursor_column, len(self.columns) - 1)]
        legend = Text.assemble((column, "bold"), ": ", self.legends.get(column, ""))
        # Two lines of legend at most (word wrap leaves some of each line empty: hence the margin).
        legend.truncate(2 * (detail.content_size.width or 78) - 12, overflow="ellipsis")
        detail.update(Text.assemble((HINT, "italic"), "\n", legend))

    @on(DataTable.CellHighlighted)
    def _highlighted(self) -> None:
        self.describe_column()

    def selected_row(self) -> int | None:
        table = self.query_one("#sweep-table", DataTable)
        if not table.row_count:
            return None
        return int(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)

    # ------------------------------------------------------------------ actions
    def sort_by(self, column: str) -> None:
        """Sort by ``column``; choosing it again reverses the order."""
        self.sort_column, self.sort_reverse = chosen_sort(self.columns, column, self.sort_column, self.sort_reverse)
        self.populate()

    @on(DataTable.HeaderSelected)
    def _header(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(str(event.column_key.value))

    @on(DataTable.CellSelected)
    def _selected(self) -> None:
        self.action_open()

    def action_cycle_sort(self) -> None:
        if not self.columns:
            return
        i = self.columns.index(self.sort_column) + 1 if self.sort_column in self.columns else 0
        self.sort_column, self.sort_reverse = self.columns[i % len(self.columns)], False
        self.populate()

    def action_reload(self) -> None:
        self.reload()

    def action_open(self) -> None:
        """The selected row's run (its live view), or its seeds' runs side by side."""
        i = self.selected_row()
        if i is None:
            return
        by_id = {r.run_id: r for r in self.records}
        records = [by_id[run_id] for run_id in self.run_ids[i] if run_id in by_id]
        if len(records) == 1:
            self.app.open_run(records[0].path)
        elif records:
            from collapse_tui.tui.screens.compare import CompareScreen

            self.app.push_screen(CompareScreen(records, export_dir=self.sweep_dir))

    def action_plot(self) -> None:
        from collapse_tui.tui.screens.sweep_plot import SweepPlotScreen

        self.app.push_screen(SweepPlotScreen(self.records, title=self.sweep_name or self.sweep_dir.name))

    def action_paired(self) -> None:
        from collapse_tui.tui.screens.paired import PairedScreen

        self.app.push_screen(PairedScreen(self.records, title=self.sweep_name or self.sweep_dir.name))

    def action_back(self) -> None:
        self.app.pop_screen()
