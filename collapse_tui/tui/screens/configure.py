"""Configure screen: a form generated from the config schema, validated as you type.

The settings a study changes most come first, then the sweep block, then every other field folded into
a section per part of the config (:mod:`collapse_tui.tui.form_layout`); each field is one line
(:class:`~collapse_tui.tui.widgets.field_row.FieldRow`), the focused one's description below the form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.events import DescendantFocus
from textual.widgets import (Button, Collapsible, Footer, Header, Input, Label, OptionList, Select, Static,
                             Switch, TextArea)

from collapse_tui import config as config_mod
from collapse_tui.config import set_dotted
from collapse_tui.tui import form_navigation
from collapse_tui.tui.form_layout import lead_fields, normalised, section_title, sections, short_label
from collapse_tui.tui.schema import errors_by_field, form_fields, get_dotted, merged_with_defaults
from collapse_tui.tui.screens.save_dialog import SaveDialog
from collapse_tui.tui.user_configs import user_config_dir
from collapse_tui.tui.widgets.field_row import FieldRow
from collapse_tui.tui.screens.base import AppScreen

SWEEP_HELP = "sweep: YAML, dotted keys → lists of values (a grid); a list of blocks is a union of grids"
SECTION_HELP = "enter folds or unfolds · ctrl+↓ / ctrl+↑: next / previous section"
KEYS_HELP = "PgDn / PgUp scroll the form · ctrl+↓ / ctrl+↑: next / previous section, unfolded · F1: all keys"


def find_presets(*dirs: Path) -> dict[str, Path]:
    """``name -> path`` of the YAML configs in ``dirs`` (the first directory wins a name clash)."""
    presets: dict[str, Path] = {}
    for d in dirs:
        if d.is_dir():
            for path in sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml")):
                presets.setdefault(path.name, path)
    return presets


class ConfigureScreen(AppScreen):
    """Edit a run (and its sweep) from a preset; Start trains it, Save writes it as YAML."""

    DEFAULT_CSS = """
    ConfigureScreen #cfg-top #save { margin-left: 1; }
    ConfigureScreen .block-title { height: 1; text-style: bold; color: $accent; text-wrap: nowrap;
                                   text-overflow: ellipsis; }
    ConfigureScreen Collapsible.form-section { border-top: none; padding: 0; background: $background; }
    ConfigureScreen Collapsible.form-section.-collapsed { padding-bottom: 0; }
    ConfigureScreen Collapsible.form-section > Contents { padding: 0 0 1 2; }
    ConfigureScreen Collapsible.form-section CollapsibleTitle { padding: 0; text-style: bold; color: $accent; }
    ConfigureScreen #open-path { width: 1fr; max-width: 50; }
    ConfigureScreen #field-help { height: 2; padding: 0 1; color: $text-muted; text-overflow: ellipsis; }
    """
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+o", "open", "Open YAML", show=False),  # the Open button is beside the file field
        Binding("ctrl+g", "start", "Start", priority=True),
        Binding("f5", "start", "Start", show=False),
        # Before any widget: the preset list and the buttons above the form would swallow them.
        Binding("pagedown", "page(1)", "Page down", show=False, priority=True),
        Binding("pageup", "page(-1)", "Page up", show=False, priority=True),
        Binding("ctrl+down", "section(1)", "Next section", show=False),
        Binding("ctrl+up", "section(-1)", "Previous section", show=False),
    ]

    def __init__(self, presets: dict[str, Path], initial: str | None = None,
                 runs_dir: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.presets = presets
        self.initial = initial
        self.runs_dir_override = runs_dir
        self.fields = form_fields()
        self.by_path = {f.path: f for f in self.fields}
        self.lead = lead_fields(self.fields)
        self.sections = sections(self.fields)
        self.errors: list[str] = []
        self.sweep_errors: list[str] = []
        self.n_runs = 0
        self.swept: list[str] = []  # the dotted keys the sweep block sets
        self._pristine: tuple | None = None  # what the form held when a preset was loaded or saved
        self._pristine_values: dict[str, Any] = {}
        self._marked = False  # whether the preset list shows the preset as edited
        self._error_paths: set[str] = set()  # the fields the schema finds fault with
        self.current_preset = initial if initial in presets else None
        self.saved_path: Path | None = None
        self._loading = False
        self.rows: dict[str, FieldRow] = {}

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="cfg-top"):
            yield Label("preset ")
            yield Select(self._preset_options(), value=self.current_preset or Select.NULL,
                         allow_blank=True, prompt="(schema defaults)", compact=True, id="preset")
            yield Button("Start ▶", id="start", variant="success", compact=True)
            yield Button("Save…", id="save", compact=True)
        yield Static("", id="cfg-status")
        with VerticalScroll(id="form"):
            for f in self.lead:
                yield FieldRow(f, f.path)
            yield Static(SWEEP_HELP, classes="block-title", markup=False)
            yield TextArea("", id="sweep", language=None, compact=True, soft_wrap=False)
            yield Static("", id="sweep-error", classes="field-error")
            for section in self.sections:
                with Collapsible(title=section.name, collapsed=True, id=section.dom_id, classes="form-section"):
                    for f in section.fields:
                        yield FieldRow(f, short_label(f, section.name))
            with Horizontal(id="save-row"):
                yield Label("open ")
                yield Input("", id="open-path", placeholder="path/to/config.yaml", compact=True)
                yield Button("Open", id="open", compact=True)
        yield Static(KEYS_HELP, id="field-help", markup=False)
        yield Footer(compact=True)  # F1 to F4 and quit still fit at 80 columns beside the form's keys

    def on_mount(self) -> None:
        self.rows = {row.field.path: row for row in self.query(FieldRow)}
        self.query_one("#cfg-status", Static).update("loading…")
        self.load_preset(self.initial)

    # ------------------------------------------------------------------ values
    def load_preset(self, name: str | None) -> None:
        data: dict[str, Any] = {}
        if name and name in self.presets:
            try:
                data = config_mod.load_yaml(self.presets[name])
            except config_mod.ConfigError as exc:
                self.notify("\n".join(exc.errors), title=f"cannot load {name}", severity="error")
                data = {}
            if not isinstance(data, dict):
                data = {}
            try:
                config_mod.expand(data)
            except config_mod.ConfigError as exc:
                # Unknown keys and impossible choices cannot be shown in the form: say what was dropped.
                self.notify("\n".join(exc.errors[:6]), title=f"{name} has problems", severity="warning")
        self.set_values(data)

    def set_values(self, data: dict[str, Any]) -> None:
        """Fill the form from a config dict (missing fields take their defaults)."""
        sweep = data.get("sweep")
        values = merged_with_defaults(data)
        if self.runs_dir_override and "runs_dir" in self.by_path:
            values["runs_dir"] = self.runs_dir_override
        self._loading = True
        try:
            for f in self.fields:
                self.rows[f.path].show(get_dotted(values, f.path))
            text = "" if sweep is None else yaml.safe_dump(sweep, sort_keys=False, default_flow_style=None)
            self.query_one("#sweep", TextArea).text = text
        finally:
            self._loading = False
        self._mark_clean()
        self.validate_form()

    def form_data(self) -> dict[str, Any]:
        """The config dict the form holds (without the sweep)."""
        data: dict[str, Any] = {}
        for f in self.fields:
            set_dotted(data, f.path, self.rows[f.path].raw_value())
        return data

    def sweep_data(self) -> Any:
        """The sweep block parsed from its text (None when empty); raises ConfigError on bad YAML."""
        text = self.query_one("#sweep", TextArea).text
        if not text.strip():
            return None
        try:
            return config_mod.parse_yaml(text)
        except config_mod.ConfigError as exc:
            raise config_mod.ConfigError([f"sweep: {line}" for line in exc.errors]) from None

    def full_data(self) -> dict[str, Any]:
        data = self.form_data()
        sweep = self.sweep_data()
        if sweep is not None:
            data["sweep"] = sweep
        return data

    # ------------------------------------------------------------------ validation
    def validate_form(self) -> bool:
        """Validate with the schema; show each error line beside its field. True when valid."""
        data = self.form_data()
        self.errors, self.sweep_errors, self.n_runs, self.swept = [], [], 0, []
        try:
            config_mod.validate(data)
        except config_mod.ConfigError as exc:
            self.errors = list(exc.errors)
        if not self.errors:
            try:
                sweep = self.sweep_data()
                if sweep is not None:
                    data["sweep"] = sweep
                runs = config_mod.expand(data)
                self.n_runs = len(runs)
                self.swept = sorted({key for _, overrides in runs for key in overrides})
            except config_mod.ConfigError as exc:
                self.sweep_errors = list(exc.errors)
        by_path, rest = errors_by_field(self.errors, list(self.by_path))
        self._error_paths = set(by_path)
        for f in self.fields:
            row = self.rows[f.path]
            row.show_errors(by_path.get(f.path, []))
            # A field the sweep sets is not what runs: say so beside it (and in the status line).
            row.show_swept(f.path in self.swept)
        sweep_box = self.query_one("#sweep-error", Static)
        sweep_lines = self.sweep_errors + rest
        sweep_box.update("\n".join(f"✗ {line}" for line in sweep_lines))
        sweep_box.set_class(bool(sweep_lines), "shown")
        valid = not self.errors and not self.sweep_errors
        status = self.query_one("#cfg-status", Static)
        if valid:
            runs_dir = get_dotted(data, "runs_dir", "runs")
            swept = f" · the sweep sets {', '.join(self.swept)}" if self.swept else ""
            status.update(f"✓ valid: {self.n_runs} run{'s' if self.n_runs != 1 else ''} → {runs_dir}/{swept}")
        else:
            problems = self.errors + self.sweep_errors
            status.update(f"✗ {len(problems)} problem{'s' if len(problems) != 1 else ''}: {problems[0]}")
        status.set_class(not valid, "invalid")
        self.query_one("#start", Button).disabled = not valid
        self.query_one("#save", Button).disabled = not valid
        self._show_edits()
        return valid

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    @on(TextArea.Changed)
    def _changed(self, event) -> None:
        if self._loading or getattr(event, "input", None) is not None and event.input.id == "open-path":
            return
        if isinstance(event, Select.Changed) and event.select.id == "preset":
            self._choose_preset(None if event.value is Select.NULL else str(event.value))
            return
        self.validate_form()

    # ------------------------------------------------------------------ edits since the preset
    def _snapshot(self) -> tuple:
        return repr(self.form_data()), self.query_one("#sweep", TextArea).text

    def _values(self) -> dict[str, Any]:
        return {path: normalised(row.raw_value()) for path, row in self.rows.items()}

    def _mark_clean(self) -> None:
        """What the form holds now is the preset as loaded (or saved): nothing is edited."""
        self._pristine = self._snapshot()
        self._pristine_values = self._values()
        self._show_edits()

    @property
    def edited(self) -> bool:
        """Whether the form differs from what was loaded (or saved) last."""
        return self._pristine is not None and self._snapshot() != self._pristine

    def _show_edits(self) -> None:
        """Count, in each folded section's title, its fields that are not the schema default, those
        edited since the preset was loaded and those in error; mark the preset ``*`` while edited."""
        if self._pristine is None:
            return
        values = self._values()
        for section in self.sections:
            modified = sum(values[f.path] != normalised(f.default) for f in section.fields)
            edited = sum(values[f.path] != self._pristine_values.get(f.path) for f in section.fields)
            errors = sum(f.path in self._error_paths for f in section.fields)
            title = section_title(section.name, len(section.fields), modified, edited, errors)
            collapsible = self.query_one(f"#{section.dom_id}", Collapsible)
            if collapsible.title != title:
                collapsible.title = title
        edited = self.edited
        if edited != self._marked:
            self._marked = edited
            select = self.query_one("#preset", Select)
            with self.prevent(Select.Changed):
                select.set_options(self._preset_options())
                select.value = self.current_preset if self.current_preset in self.presets else Select.NULL
            select.prompt = "(schema defaults) *" if edited else "(schema defaults)"

    def _preset_options(self) -> list[tuple[str, str]]:
        return [(f"{name} *" if self._marked and name == self.current_preset else name, name)
                for name in self.presets]

    # ------------------------------------------------------------------ presets
    def _choose_preset(self, name: str | None, again: bool = False) -> None:
        """Load preset ``name``; with edits in the form, only once the user agrees to drop them. The
        preset shown already is loaded only ``again`` (a file opened under the same name)."""
        if name == self.current_preset and not again:
            return
        if not self.edited:
            self._load(name)
            return
        from collapse_tui.tui.screens.runs import ConfirmScreen

        def answered(drop: bool | None) -> None:
            if drop:
                self._load(name)
            else:  # keep the edits, and show the preset they came from again
                self._show_preset(self.current_preset)

        what = name or "the schema defaults"
        self.app.push_screen(ConfirmScreen(f"Drop your edits and load {what}?", yes="Yes, load it"), answered)

    def _load(self, name: str | None) -> None:
        self.current_preset = name
        self._show_preset(name)
        self.load_preset(name)

    def _offer(self, path: Path) -> None:
        """Put ``path`` in the preset list under its file name (replacing a preset of that name)."""
        self.presets = {path.name: path, **{k: v for k, v in self.presets.items() if k != path.name}}
        with self.prevent(Select.Changed):
            self.query_one("#preset", Select).set_options(self._preset_options())
        self._show_preset(self.current_preset)

    def _show_preset(self, name: str | None) -> None:
        """Show ``name`` as the selected preset without loading it."""
        with self.prevent(Select.Changed):
            self.query_one("#preset", Select).value = name if name in self.presets else Select.NULL

    # ------------------------------------------------------------------ moving around
    def action_page(self, direction: int) -> None:
        """Scroll the form a page, wherever the focus is on this screen (an open list of choices pages
        itself; the sweep's few lines scroll with the arrows)."""
        if isinstance(self.focused, OptionList):
            raise SkipAction()
        form_navigation.page(self.query_one("#form", VerticalScroll), self.focused, direction)

    def action_section(self, step: int) -> None:
        """Focus the first field of the next (``step`` 1) or previous (-1) part of the form: the lead
        block, the sweep block, each folded section (unfolded)."""
        parts = [self.rows[self.lead[0].path], self.query_one("#sweep", TextArea), *self.query(Collapsible)]
        current = form_navigation.part_index(parts, self.focused)
        if self.focused is not None and self.focused.id in ("open-path", "open"):
            current = len(parts)  # below the last section
        if current == -1 and step < 0:
            return
        target = parts[max(0, min(len(parts) - 1, current + step))]
        form_navigation.enter_part(self.query_one("#form", VerticalScroll), target, self.call_after_refresh)

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        """Below the form: the focused field's full key, bounds and description."""
        widget = event.widget
        row = next((w for w in widget.ancestors_with_self if isinstance(w, FieldRow)), None)
        if row is not None:
            f = row.field
            text = f"{f.path}" + (f" ({f.bounds})" if f.bounds else "") + (f": {f.description}" if f.description else "")
        elif isinstance(widget, TextArea):
            text = SWEEP_HELP
        elif any(isinstance(w, Collapsible) for w in widget.ancestors_with_self):
            text = SECTION_HELP
        else:
            text = KEYS_HELP
        self.query_one("#field-help", Static).update(text)

    # ------------------------------------------------------------------ actions
    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    def action_start(self) -> None:
        if not self.validate_form():
            self.notify("fix the problems shown in red first", title="cannot start", severity="error")
            return
        runs = config_mod.expand(self.full_data())
        # What --batch refuses is refused here, in its words (a large sweep is asked about instead of --yes).
        problems = self.app.preflight(runs, large_sweep_confirmed=True)
        if problems:
            self.refuse(problems)
            return
        if len(runs) <= config_mod.LARGE_SWEEP:
            self.app.start_training(runs)
            return
        from collapse_tui.tui.screens.runs import ConfirmScreen

        def answered(start: bool | None) -> None:
            if start:
                self.app.start_training(runs, large_sweep_confirmed=True)

        self.app.push_screen(ConfirmScreen(f"The sweep expands to {len(runs):,} runs: start them all?",
                                           yes="Yes, start them"), answered)

    def refuse(self, problems: list[str]) -> None:
        """Say in the status line (and a notification listing them all) why the form's runs cannot start;
        the next edit of the form validates it again."""
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        status = self.query_one("#cfg-status", Static)
        status.update(Content(f"✗ cannot start: {problems[0]}{more}"))  # plain text: paths may hold [ ]
        status.set_class(True, "invalid")
        self.notify("\n".join(problems), title="cannot start", severity="error", markup=False)

    def save_default(self) -> Path:
        """Where the save dialog starts: the file saved last, if the form is still that file; else the
        user's config directory (read as presets at start-up), never the current directory."""
        if self.saved_path is not None and self.current_preset == self.saved_path.name:
            return self.saved_path
        name = get_dotted(self.form_data(), "name") or "run"
        return user_config_dir() / f"{name}.yaml"

    def action_save(self) -> None:
        """Ask where to save the form (refused while it has errors); the file then is the form's preset."""
        if not self.validate_form():
            self.notify("fix the problems shown in red first", title="cannot save", severity="error")
            return

        def saved(path: Path | None) -> None:
            if path is None:
                return
            self.notify(f"wrote {path}", markup=False)
            self.saved_path = path
            self.current_preset = path.name  # the form is that file now
            self._offer(path)
            self._mark_clean()

        self.app.push_screen(SaveDialog(self.save_default(), self.write_config), saved)

    def write_config(self, path: Path) -> str | None:
        """Write the form (and its sweep) as YAML to ``path``; a line saying why not, or None."""
        base = config_mod.validate(self.form_data()).to_dict()
        sweep = self.sweep_data()
        if sweep is not None:
            base["sweep"] = sweep
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(base, sort_keys=False), encoding="utf-8")
        except OSError as exc:
            return f"cannot write {path}: {exc.strerror or exc}"
        return None

    @on(Button.Pressed, "#open")
    def _open_pressed(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        """Load the YAML file named in the file field into the form; it joins the preset list."""
        target = self.query_one("#open-path", Input).value.strip()
        path = Path(target).expanduser() if target else None
        if path is None or not path.is_file():
            self.notify(f"no such file: {target}" if target else "give the path of a YAML config to open",
                        severity="error")
            return
        self._offer(path)
        self._choose_preset(path.name, again=True)
