"""Runs screen: every run directory in the runs dir, sortable, filterable; open, compare, delete."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from collapse_tui.report import remedy_label
from collapse_tui.store import RunRecord, list_runs
from collapse_tui.store.layout import EVENTS_FILE, run_file
from collapse_tui.tui.run_groups import differing_keys, group_by, mean_std, value_text
from collapse_tui.tui.run_query import Query, QueryIndex, QueryRow
from collapse_tui.tui.runs_table import (COLUMNS, METRIC_COLUMNS, format_cell, legend, row_values, sort_key,
                                         sweep_index)
from collapse_tui.tui.screens.base import AppScreen
from collapse_tui.tui.screens.choose import ChooseScreen
from collapse_tui.tui.sorting import chosen_sort
from collapse_tui.tui.widgets.bulk_table import BulkTable, PlainCell

STATUS_STYLES = {"failed": "red", "crashed": "red", "unreadable": "red", "stopped": "yellow", "suspect": "yellow",
                 "running": "cyan", "ok": "green"}


# The choice that puts the rows back in one list.
NO_GROUPS = "none"
# The row key of a sweep's header row in the grouped table: this prefix and the sweep's directory.
SWEEP_ROW = "sweep:"
# The row key of a group's header row when grouped by a setting: this prefix and ``<setting>=<value>``.
GROUP_ROW = "group:"
# Run, status, method and k/λ stay in view while the table scrolls right.
FIXED_COLUMNS = 4


def is_header(key: str | None) -> bool:
    return key is not None and key.startswith((SWEEP_ROW, GROUP_ROW))


class ConfirmScreen(ModalScreen[bool]):
    """Yes / no question; dismissed with True only on an explicit yes. "No" has the focus, so that Enter
    (or a key pressed by habit) never deletes."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]
    AUTO_FOCUS = "#no"

    def __init__(self, question: str, yes: str = "Yes, delete", **kwargs) -> None:
        super().__init__(**kwargs)
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(self.question, markup=False)
            with Horizontal():
                yield Button(self.yes, id="yes", variant="error", compact=True)
                yield Button("No", id="no", compact=True)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class RunsScreen(AppScreen):
    """The run directories of ``runs_dir`` as a table."""

    BINDINGS = [
        # One key in the footer, so that the app's F1-F4 and quit still show at 80 columns; the help
        # screen (F1) lists the others.
        Binding("slash", "focus_filter", "Filter"),
        Binding("g", "choose_group", "Group", show=False),
        Binding("enter", "open", "Open", show=False),
        Binding("space", "mark", "Mark", show=False),
        Binding("c", "compare", "Compare", show=False),
        Binding("p", "plot", "Plot", show=False),
        Binding("d", "delete", "Delete", show=False),
        Binding("r", "reload", "Reload", show=False),
        Binding("o", "cycle_sort", "Sort", show=False),
        Binding("u", "resume", "Resume", show=False),
        Binding("w", "open_sweep", "Sweep table", show=False),
        Binding("escape", "back", "Back", show=False),
    ]
    DEFAULT_CSS = """
    RunsScreen #runs-count, RunsScreen #runs-detail { text-wrap: nowrap; text-overflow: ellipsis; }
    """
    # A listing at least this long applies the filter once typing pauses, not at every key.
    DEBOUNCE_ROWS = 2000
    DEBOUNCE_S = 0.15

    def __init__(self, runs_dir: str | Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs_dir = Path(runs_dir)
        self.records: list[RunRecord] = []
        self.by_id: dict[str, RunRecord] = {}
        self.values: dict[str, dict] = {}
        self.cells: dict[str, list[PlainCell]] = {}  # each run's cells, unmarked
        self.query_rows: dict[str, QueryRow] = {}
        self.query_index = QueryIndex([])
        self.filter_query = Query()
        self.marked: list[str] = []
        self.sort_column: str = "date"
        self.sort_reverse = True
        self.filter_text = ""
        self.sweeps: dict[str, tuple[Path, str]] = {}  # run id -> (its sweep's directory, label)
        self.group = NO_GROUPS  # "sweep", a flattened config key, or none
        self.collapsed: set[str] = set()  # header row keys whose runs are hidden
        self.shown: list[str] = []  # the table's row keys, in order
        self._ordered: list[str] | None = None  # every run in the sort order (kept until the sort changes)
        self._debounce = None
        self.n_visible = 0
        self.widths: dict[str, int] = {}
        self._differing: list[str] | None = None  # the settings that differ among the listed runs

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="runs-top"):
            yield Label("filter ")
            yield Input(placeholder="dead>30 sae.k=50 topk", id="filter", compact=True)
            yield Static("", id="runs-count")
        yield BulkTable(id="runs", cursor_type="row", zebra_stripes=True, fixed_columns=FIXED_COLUMNS)
        yield Static("", id="runs-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.reload()
        table.focus()
        self.watch(table, "hover_coordinate", self._hovered, init=False)
        self.set_interval(3.0, self._refresh_running)

    def _refresh_running(self) -> None:
        """While some listed run is still being written, its row follows its summary."""
        if self.is_current and any(v.get("status") == "running" for v in self.values.values()):
            self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    # ------------------------------------------------------------------ data
    def reload(self) -> None:
        """Re-read the runs dir; never raises for a bad run directory (it is listed as unreadable)."""
        try:
            self.records = list_runs(self.runs_dir, include_unreadable=True)
        except OSError as exc:
            self.records = []
            self.notify(f"cannot list {self.runs_dir}: {exc}", severity="error")
        self.show_listing()

    def show_listing(self) -> None:
        """Each listed run's row values, cells and filter fields, computed once per listing; then the table."""
        self.sweeps = sweep_index(self.runs_dir)
        self.by_id = {r.run_id: r for r in self.records}
        self.values, self.cells, rows = {}, {}, {}
        widths = [cell_len(c) for c in COLUMNS]
        for r in self.records:
            values = row_values(r, self.sweeps.get(r.run_id, (None, None))[1])
            texts = [format_cell(c, values.get(c)) for c in COLUMNS]
            widths = [max(w, cell_len(t)) for w, t in zip(widths, texts)]
            self.values[r.run_id] = values
            self.cells[r.run_id] = [PlainCell("  " + t if c == "run" else t,  # room for the mark
                                              STATUS_STYLES.get(t, "") if c == "status" else "")
                                    for c, t in zip(COLUMNS, texts)]
            rows[r.run_id] = QueryRow(" ".join(texts), {**values, "remedy": remedy_label(r) if not r.error else None},
                                      r.config, r.summary)
        self.query_rows = rows
        widths[0] += 2  # the mark before the run's name
        self.widths = dict(zip(COLUMNS, widths))  # every run's cells fit, whichever the filter shows
        self.query_index = QueryIndex(rows.values())
        self.filter_query = self.query_index.parse(self.filter_text)
        # Every config flattened once per listing: after the table's first paint, before the first key.
        self.call_after_refresh(lambda index=self.query_index: index.config_keys)
        self.marked = [m for m in self.marked if m in self.values]
        self._ordered = None
        self._differing: list[str] | None = None
        self.populate(force=True)

    def ordered_ids(self) -> list[str]:
        """Every run in the current sort order (missing values last whichever way)."""
        if self._ordered is None:
            ids = sorted(self.values, key=lambda i: sort_key(self.values[i].get(self.sort_column)))
            if self.sort_reverse:
                present = [i for i in ids if self.values[i].get(self.sort_column) is not None]
                ids = present[::-1] + [i for i in ids if self.values[i].get(self.sort_column) is None]
            self._ordered = ids
        return self._ordered

    def visible_ids(self) -> list[str]:
        ids = self.ordered_ids()
        if self.filter_query.empty:
            return list(ids)
        rows, matches = self.query_rows, self.filter_query.matches
        return [i for i in ids if matches(rows[i])]

    def populate(self, force: bool = False) -> None:
        """The table's rows for the filter, sort and groups; rebuilt only when they changed (or ``force``)."""
        table = self.query_one("#runs", DataTable)
        ids = self.visible_ids()
        groups = self._groups(ids) if self.group != NO_GROUPS else []
        keys = [k for key, members in groups for k in ([key] if key in self.collapsed else [key, *members])] \
            if groups else ids
        if force or keys != self.shown:
            current = self.selected_id()
            headers = {key: self._header_cells(key, members) for key, members in groups}
            widths = dict(self.widths)
            for cells in headers.values():
                widths.update({c: max(widths[c], cell_len(t.plain)) for c, t in zip(COLUMNS, cells)})
            table.replace_rows([(key, headers[key] if key in headers else self._run_cells(key)) for key in keys],
                               widths)
            self.shown = keys
            if current in keys:
                table.move_cursor(row=keys.index(current), scroll=True)
        self.n_visible = len(ids)
        self._show_count()
        self._show_detail()

    def _run_cells(self, run_id: str) -> list[PlainCell]:
        cells = self.cells[run_id]
        if run_id not in self.marked:
            return cells
        return [PlainCell("✓ " + cells[0].plain[2:]), *cells[1:]]

    def _show_count(self) -> None:
        arrow = "▼" if self.sort_reverse else "▲"
        problems = self.filter_query.problems
        text = (f" ⚠ {problems[0]}" + (f" (+{len(problems) - 1})" if len(problems) > 1 else "") if problems else
                f" {self.n_visible}/{len(self.records)} runs · sort {self.sort_column} {arrow} · {len(self.marked)} marked")
        self.query_one("#runs-count", Static).update(Text(text, no_wrap=True, overflow="ellipsis",
                                                          style="yellow" if problems else ""))

    # ------------------------------------------------------------------ groups
    def _groups(self, ids: list[str]) -> list[tuple[str, list[str]]]:
        """``(header row key, its runs in the current order)`` of each group, in the groups' order."""
        if self.group == "sweep":
            by_sweep: dict[str, list[str]] = {}
            for run_id in ids:
                sweep = self.sweeps.get(run_id)
                by_sweep.setdefault(str(sweep[0]) if sweep else "", []).append(run_id)
            order = sorted((d for d in by_sweep if d), key=lambda d: Path(d).name, reverse=True)
            return [(SWEEP_ROW + d, by_sweep[d]) for d in order + ([""] if "" in by_sweep else [])]
        value_of = {i: self.query_rows[i].flat.get(self.group) for i in ids}
        return [(f"{GROUP_ROW}{self.group}={value_text(value)}", members)
                for value, members in group_by(ids, value_of)]

    def _header_cells(self, key: str, members: list[str]) -> list[Text]:
        """A group's row: its name and size, its runs' statuses, each metric's mean ± std over them."""
        if key.startswith(SWEEP_ROW):
            label = next((self.sweeps[i][1] for i in members if i in self.sweeps), "runs in no sweep")
        else:
            label = key[len(GROUP_ROW):]
        statuses = [self.values[i].get("status") for i in members]
        cells = {c: Text("") for c in COLUMNS}
        cells["run"] = Text(f"{'▸' if key in self.collapsed else '▾'} {label} ({len(members)})", style="bold")
        cells["status"] = Text(" ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses)), style="dim")
        for column, metric in METRIC_COLUMNS.items():
            cells[column] = Text(mean_std(metric, (self.values[i].get(column) for i in members)), style="bold")
        return [cells[c] for c in COLUMNS]

    def action_choose_group(self) -> None:
        if self._differing is None:  # once per listing; an unreadable run has no settings to differ in
            self._differing = differing_keys(row.flat for i, row in self.query_rows.items()
                                             if not self.by_id[i].error)
        settings = self._differing

        def chosen(setting: str | None) -> None:
            if setting is not None:
                self.group_by(setting)

        choices = [(NO_GROUPS, NO_GROUPS), ("sweep", "sweep"), *((s, s) for s in settings)]
        self.app.push_screen(ChooseScreen("group the runs by", choices, current=self.group), chosen)

    def group_by(self, setting: str) -> None:
        """Rows under a header row per value of ``setting`` ("sweep", a config key; "none": no groups)."""
        self.group = setting
        self.populate()

    def selected_id(self) -> str | None:
        table = self.query_one("#runs", DataTable)
        if not table.row_count or table.cursor_row >= table.row_count:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def selected_record(self) -> RunRecord | None:
        return self.by_id.get(self.selected_id())

    def _show_detail(self) -> None:
        """Two lines: the highlighted row (its path, why it failed, its flags) and the sorted column's legend."""
        record = self.selected_record()
        key = self.selected_id()
        if key is not None and key.startswith(SWEEP_ROW):
            sweep = key[len(SWEEP_ROW):]
            line = (f"{sweep} · enter or w: its results table · space: fold / unfold" if sweep
                    else "the runs that no sweep recorded · space: fold / unfold")
        elif is_header(key):
            line = f"the runs with {key[len(GROUP_ROW):]}: mean ± std over them · enter or space: fold / unfold"
        elif record is None:
            line = f"no runs in {self.runs_dir}" if not self.records else "no run matches the filter"
        elif record.error:
            line = f"unreadable: {record.error}"
        else:
            reason = record.summary.get("reason")
            line = " · ".join([str(record.path), *([f"reason: {reason}"] if reason else []),
                               *(f"suspect: {flag}" for flag in record.flags),
                               *(["u: resume it"] if record.status in ("stopped", "crashed") else [])])
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(line + "\n")
        text.append(f"{self.sort_column}: {legend(self.sort_column)}", style="italic")
        self.query_one("#runs-detail", Static).update(text)

    def _hovered(self, coordinate) -> None:
        """The hovered column's legend as the table's tooltip."""
        table = self.query_one("#runs", DataTable)
        if 0 <= coordinate.column < len(COLUMNS):
            column = COLUMNS[coordinate.column]
            table.tooltip = f"{column}: {legend(column)}"

    # ------------------------------------------------------------------ events
    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show_detail()

    @on(DataTable.RowSelected)
    def _selected(self) -> None:
        self.action_open()

    @on(DataTable.HeaderSelected)
    def _header(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column in COLUMNS:
            self.sort_by(column)

    @on(Input.Changed, "#filter")
    def _filter(self, event: Input.Changed) -> None:
        """A long listing is filtered once typing pauses; a short one at every key."""
        self.filter_text = event.value
        if self._debounce is not None:
            self._debounce.stop()
            self._debounce = None
        if len(self.records) >= self.DEBOUNCE_ROWS:
            self._debounce = self.set_timer(self.DEBOUNCE_S, self.apply_filter)
        else:
            self.apply_filter()

    def apply_filter(self) -> None:
        self._debounce = None
        self.filter_query = self.query_index.parse(self.filter_text)
        self.populate()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        if self._debounce is not None:
            self.apply_filter()
        self.query_one("#runs", DataTable).focus()

    # ------------------------------------------------------------------ actions
    def sort_by(self, column: str) -> None:
        """Sort by ``column``; choosing the sorted column again reverses the order."""
        self.sort_column, self.sort_reverse = chosen_sort(COLUMNS, column, self.sort_column, self.sort_reverse)
        self._ordered = None
        self.populate()

    def action_cycle_sort(self) -> None:
        i = COLUMNS.index(self.sort_column)
        self.sort_column, self.sort_reverse = COLUMNS[(i + 1) % len(COLUMNS)], False
        self._ordered = None
        self.populate()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_reload(self) -> None:
        self.reload()

    def action_open_sweep(self) -> None:
        """The results table of the selected sweep (its header row), or of the selected run's sweep."""
        key = self.selected_id()
        if key is None or (is_header(key) and not key.startswith(SWEEP_ROW)):
            return
        sweep = key[len(SWEEP_ROW):] if key.startswith(SWEEP_ROW) else str(self.sweeps.get(key, ("",))[0])
        if not sweep:
            self.notify("this run belongs to no sweep", severity="warning")
            return
        from collapse_tui.tui.screens.sweep import SweepScreen

        self.app.push_screen(SweepScreen(sweep))

    def action_mark(self) -> None:
        """Mark or unmark the highlighted run; on a group's header row, fold or unfold the group."""
        key = self.selected_id()
        if key is None:
            return
        if is_header(key):
            self.collapsed.symmetric_difference_update({key})
            self.populate()
            return
        if key in self.marked:
            self.marked.remove(key)
        else:
            self.marked.append(key)
        self.query_one("#runs", DataTable).update_cell(key, "run", self._run_cells(key)[0])
        self._show_count()

    def action_open(self) -> None:
        key = self.selected_id()
        if key is not None and key.startswith(SWEEP_ROW):
            self.action_open_sweep()
            return
        if is_header(key):
            self.action_mark()
            return
        record = self.selected_record()
        if record is None:
            return
        if not run_file(record.path, EVENTS_FILE).exists():
            self.notify(f"{record.run_id} has no events.jsonl to show", severity="warning")
            return
        self.app.open_run(record.path)

    def action_resume(self) -> None:
        """Go on with the selected run, stopped, crashed or failed with a checkpoint kept, from its last
        checkpoint (as --resume does)."""
        from collapse_tui.engine.runner import RESUMABLE, resume_plan

        record = self.selected_record()
        if record is None:
            return
        if record.status not in (*RESUMABLE, "failed"):  # a failed one that kept its checkpoint: resume_plan says
            self.notify(f"{record.run_id} is {record.status}: only a stopped or crashed run, or a failed one that "
                        "kept its checkpoint, can be resumed", severity="warning")
            return
        try:
            plan = resume_plan(record.path)
        except ValueError as exc:
            self.notify(str(exc), title="cannot resume", severity="error")
            return
        self.app.start_training([], resume=[plan])

    def action_compare(self) -> None:
        chosen = [r for m in self.marked for r in self.records if r.run_id == m and not r.error]
        if len(chosen) < 2:
            self.notify("mark two or more readable runs with space, then press c", severity="warning")
            return
        from collapse_tui.tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(chosen, export_dir=self.runs_dir))

    def action_plot(self) -> None:
        """Plot the marked runs' final metrics against each other or a setting (the sweep plot's screen)."""
        chosen = [r for m in self.marked for r in self.records if r.run_id == m and not r.error]
        if not chosen:
            self.notify("mark runs with space, then press p", severity="warning")
            return
        from collapse_tui.tui.screens.sweep_plot import SweepPlotScreen

        self.app.push_screen(SweepPlotScreen.for_runs(chosen))

    def action_delete(self) -> None:
        record = self.selected_record()
        if record is None:
            return
        warn = "  It is still running." if record.status == "running" else ""

        def done(answer: bool | None) -> None:
            if answer:
                self.delete_run(record)

        self.app.push_screen(ConfirmScreen(f"Delete run {record.run_id} and all its files?{warn}"), done)

    def delete_run(self, record: RunRecord) -> None:
        path = record.path.resolve()
        if path.parent != self.runs_dir.resolve():
            self.notify(f"refusing to delete {path}: not inside {self.runs_dir}", severity="error")
            return
        try:
            shutil.rmtree(path)
        except OSError as exc:
            self.notify(f"cannot delete {record.run_id}: {exc}", severity="error")
        else:
            self.notify(f"deleted {record.run_id}")
        self.reload()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
