"""Runs screen: every run directory in the runs dir, sortable, filterable; open, compare, delete."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from collapse_tui.store import RunRecord, list_runs
from collapse_tui.store.layout import EVENTS_FILE, run_file
from collapse_tui.tui.runs_table import COLUMNS, format_cell, matches, row_values, sort_key, sweep_index
from collapse_tui.tui.sorting import chosen_sort


STATUS_STYLES = {"failed": "red", "crashed": "red", "unreadable": "red", "stopped": "yellow", "suspect": "yellow",
                 "running": "cyan", "ok": "green"}


# The row key of a sweep's header row in the grouped table: this prefix and the sweep's directory.
SWEEP_ROW = "sweep:"


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


class RunsScreen(Screen):
    """The run directories of ``runs_dir`` as a table."""

    BINDINGS = [
        Binding("enter", "open", "Open/follow"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare marked"),
        Binding("d", "delete", "Delete"),
        Binding("r", "reload", "Reload"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("o", "cycle_sort", "Sort"),
        Binding("u", "resume", "Resume", show=False),
        Binding("g", "toggle_group", "Group by sweep"),
        Binding("w", "open_sweep", "Sweep table"),
        Binding("escape", "back", "Back", show=False),
    ]

    def __init__(self, runs_dir: str | Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs_dir = Path(runs_dir)
        self.records: list[RunRecord] = []
        self.values: dict[str, dict] = {}
        self.marked: list[str] = []
        self.sort_column: str = "date"
        self.sort_reverse = True
        self.filter_text = ""
        self.sweeps: dict[str, tuple[Path, str]] = {}  # run id -> (its sweep's directory, label)
        self.grouped = False  # rows under a header row per sweep
        self.collapsed: set[str] = set()  # sweep directories whose runs are hidden

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="runs-top"):
            yield Label("filter ")
            yield Input(placeholder="text in any column, e.g. topk ok", id="filter", compact=True)
            yield Static("", id="runs-count")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.reload()
        table.focus()
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
        self.sweeps = sweep_index(self.runs_dir)
        self.values = {r.run_id: row_values(r, self.sweeps.get(r.run_id, (None, None))[1]) for r in self.records}
        self.marked = [m for m in self.marked if m in self.values]
        self.populate()

    def visible_ids(self) -> list[str]:
        ids = [r.run_id for r in self.records if matches(self.values[r.run_id], self.filter_text)]
        ids.sort(key=lambda i: sort_key(self.values[i].get(self.sort_column)), reverse=False)
        if self.sort_reverse:
            # Missing values stay last whichever way the column is sorted.
            present = [i for i in ids if self.values[i].get(self.sort_column) is not None]
            missing = [i for i in ids if self.values[i].get(self.sort_column) is None]
            ids = present[::-1] + missing
        return ids

    def populate(self) -> None:
        table = self.query_one("#runs", DataTable)
        current = None
        if table.row_count and table.cursor_row is not None and table.cursor_row < table.row_count:
            current = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        table.clear()
        ids = self.visible_ids()
        keys = self._grouped_keys(ids) if self.grouped else ids
        for key in keys:
            if key.startswith(SWEEP_ROW):
                table.add_row(*self._sweep_cells(key, ids), key=key)
                continue
            values = self.values[key]
            cells = []
            for column in COLUMNS:
                text = format_cell(column, values.get(column))
                if column == "run":
                    text = ("✓ " if key in self.marked else "  ") + text
                style = STATUS_STYLES.get(text, "") if column == "status" else ""
                cells.append(Text(text, style=style))  # never markup: directory names are arbitrary
            table.add_row(*cells, key=key)
        if current in keys:
            table.move_cursor(row=keys.index(current))
        arrow = "▼" if self.sort_reverse else "▲"
        self.query_one("#runs-count", Static).update(
            f" {len(ids)}/{len(self.records)} runs · sort {self.sort_column} {arrow} · {len(self.marked)} marked")
        self._show_detail()

    def _grouped_keys(self, ids: list[str]) -> list[str]:
        """Row keys grouped by sweep: a header row per sweep (newest first; runs in no sweep last), then
        its runs in the current order unless it is collapsed."""
        groups: dict[str, list[str]] = {}
        for run_id in ids:
            sweep = self.sweeps.get(run_id)
            groups.setdefault(str(sweep[0]) if sweep else "", []).append(run_id)
        keys = []
        order = sorted((d for d in groups if d), key=lambda d: Path(d).name, reverse=True)
        for sweep in order + ([""] if "" in groups else []):
            keys.append(SWEEP_ROW + sweep)
            if sweep not in self.collapsed:
                keys.extend(groups[sweep])
        return keys

    def _sweep_cells(self, key: str, ids: list[str]) -> list[Text]:
        sweep = key[len(SWEEP_ROW):]
        members = [i for i in ids if str(self.sweeps.get(i, ("",))[0]) == sweep] if sweep else \
            [i for i in ids if i not in self.sweeps]
        statuses = [self.values[i].get("status") for i in members]
        label = next((self.sweeps[i][1] for i in members if i in self.sweeps), "runs in no sweep")
        arrow = "▸" if sweep in self.collapsed else "▾"
        cells = {c: Text("") for c in COLUMNS}
        cells["run"] = Text(f"{arrow} {label} ({len(members)})", style="bold")
        cells["status"] = Text(" ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses)), style="dim")
        return [cells[c] for c in COLUMNS]

    def selected_id(self) -> str | None:
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def selected_record(self) -> RunRecord | None:
        run_id = self.selected_id()
        return next((r for r in self.records if r.run_id == run_id), None)

    def _show_detail(self) -> None:
        record = self.selected_record()
        detail = self.query_one("#runs-detail", Static)
        key = self.selected_id()
        if key is not None and key.startswith(SWEEP_ROW):
            sweep = key[len(SWEEP_ROW):]
            detail.update(f"{sweep}\nenter or w: its results table · space: fold / unfold" if sweep
                          else "the runs that no sweep recorded · space: fold / unfold")
        elif record is None:
            detail.update(f"no runs in {self.runs_dir}" if not self.records else "no run matches the filter")
        elif record.error:
            detail.update(f"unreadable: {record.error}")
        else:
            reason = record.summary.get("reason")
            flags = "".join(f"\nsuspect: {flag}" for flag in record.flags)
            hint = ("\nu: resume it from its last checkpoint" if record.status in ("stopped", "crashed") else "")
            detail.update(f"{record.path}" + (f"\nreason: {reason}" if reason else "") + flags + hint)

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
        self.filter_text = event.value
        self.populate()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one("#runs", DataTable).focus()

    # ------------------------------------------------------------------ actions
    def sort_by(self, column: str) -> None:
        """Sort by ``column``; choosing the sorted column again reverses the order."""
        self.sort_column, self.sort_reverse = chosen_sort(COLUMNS, column, self.sort_column, self.sort_reverse)
        self.populate()

    def action_cycle_sort(self) -> None:
        i = COLUMNS.index(self.sort_column)
        self.sort_column, self.sort_reverse = COLUMNS[(i + 1) % len(COLUMNS)], False
        self.populate()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_reload(self) -> None:
        self.reload()

    def action_toggle_group(self) -> None:
        self.grouped = not self.grouped
        self.populate()

    def action_open_sweep(self) -> None:
        """The results table of the selected sweep (its header row), or of the selected run's sweep."""
        key = self.selected_id()
        if key is None:
            return
        sweep = key[len(SWEEP_ROW):] if key.startswith(SWEEP_ROW) else str(self.sweeps.get(key, ("",))[0])
        if not sweep:
            self.notify("this run belongs to no sweep", severity="warning")
            return
        from collapse_tui.tui.screens.sweep import SweepScreen

        self.app.push_screen(SweepScreen(sweep))

    def action_mark(self) -> None:
        run_id = self.selected_id()
        if run_id is None:
            return
        if run_id.startswith(SWEEP_ROW):  # on a sweep's header row, space folds or unfolds it
            sweep = run_id[len(SWEEP_ROW):]
            self.collapsed.symmetric_difference_update({sweep})
            self.populate()
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        self.populate()

    def action_open(self) -> None:
        key = self.selected_id()
        if key is not None and key.startswith(SWEEP_ROW):
            self.action_open_sweep()
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
