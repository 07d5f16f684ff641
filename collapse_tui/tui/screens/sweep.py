"""Sweep screen: a sweep's results table, the one it writes (one row per experiment, mean ± std over the
seeds, the paper's numbers beside), sortable by any column; a row opens its run, or compares its runs."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from collapse_tui.report import build_rows, table_cells, table_notes
from collapse_tui.store import RunRecord, load_sweep, sweep_records
from collapse_tui.tui.runs_table import sort_key
from collapse_tui.tui.sorting import chosen_sort


class SweepScreen(Screen):
    """The results table of the sweep directory ``sweep_dir``, read from its runs (kept current while
    some are still running)."""

    BINDINGS = [
        Binding("enter", "open", "Open row"),
        Binding("o", "cycle_sort", "Sort"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, sweep_dir: str | Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sweep_dir = Path(sweep_dir)
        self.records: list[RunRecord] = []
        self.columns: list[str] = []
        self.texts: list[list[str]] = []
        self.values: list[list] = []
        self.run_ids: list[list[str]] = []
        self.notes: list[str] = []
        self.sort_column: str | None = None  # None: the table's own order (dataset, method, remedy, k)
        self.sort_reverse = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="sweep-title")
        yield DataTable(id="sweep-table", cursor_type="row", zebra_stripes=True)
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
        self.columns, self.texts, self.values = table_cells(rows)
        self.run_ids = [row.run_ids for row in rows]
        self.notes = table_notes(rows) if rows else []
        statuses = [r.status for r in self.records]
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
        title.update(Text.assemble((sweep.name, "bold"), f"  {len(self.records)}/{sweep.n_runs} runs: {counts}",
                                   f"  ·  {len(rows)} rows (mean ± std over seeds)"
                                   + (f", {len(left_out)} run(s) left out" if left_out else "")))
        self.populate()

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
        table.clear(columns=True)
        for column in self.columns:
            arrow = (" ▼" if self.sort_reverse else " ▲") if column == self.sort_column else ""
            table.add_column(column + arrow, key=column)
        for i in self.order():
            table.add_row(*(Text(cell) for cell in self.texts[i]), key=str(i))
        hint = "enter: open the row's run (or compare its seeds) · click a header or o: sort"
        self.query_one("#sweep-detail", Static).update(
            "\n".join([hint, *self.notes[:3]]) if self.texts else "no run of this sweep has finished yet")

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

    @on(DataTable.RowSelected)
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

    def action_back(self) -> None:
        self.app.pop_screen()
