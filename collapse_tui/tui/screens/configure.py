"""Configure screen: a form generated from the config schema, validated as you type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static, Switch, TextArea

from collapse_tui import config as config_mod
from collapse_tui.config import set_dotted
from collapse_tui.tui.schema import FormField, errors_by_field, form_fields, get_dotted, merged_with_defaults


def find_presets(*dirs: Path) -> dict[str, Path]:
    """``name -> path`` of the YAML configs in ``dirs`` (the first directory wins a name clash)."""
    presets: dict[str, Path] = {}
    for d in dirs:
        if d.is_dir():
            for path in sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml")):
                presets.setdefault(path.name, path)
    return presets


class ConfigureScreen(Screen):
    """Edit a run (and its sweep) from a preset; Start trains it, Save writes it as YAML."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save YAML"),
        Binding("ctrl+o", "open", "Open YAML", show=False),  # the Open button is beside the file field
        Binding("ctrl+g", "start", "Start", priority=True),
        Binding("f5", "start", "Start", show=False),
    ]

    def __init__(self, presets: dict[str, Path], initial: str | None = None,
                 runs_dir: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.presets = presets
        self.initial = initial
        self.runs_dir_override = runs_dir
        self.fields = form_fields()
        self.by_path = {f.path: f for f in self.fields}
        self.errors: list[str] = []
        self.sweep_errors: list[str] = []
        self.n_runs = 0
        self.swept: list[str] = []  # the dotted keys the sweep block sets
        self._pristine: tuple | None = None  # what the form held when a preset was loaded or saved
        self.current_preset = initial if initial in presets else None
        self.saved_path: Path | None = None
        self._loading = False

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        options = [(name, name) for name in self.presets]
        with Horizontal(id="cfg-top"):
            yield Label("preset ")
            yield Select(options, value=self.initial if self.initial in self.presets else Select.NULL,
                         allow_blank=True, prompt="(schema defaults)", compact=True, id="preset")
            yield Button("Start ▶", id="start", variant="success", compact=True)
        yield Static("", id="cfg-status")
        with VerticalScroll(id="form"):
            section = None
            for f in self.fields:
                if f.section != section:
                    section = f.section
                    yield Static(section or "run", classes="section-title")
                yield self._field_row(f)
            yield Static("sweep (YAML: dotted keys → lists of values; a list of blocks is a union of grids)",
                         classes="section-title")
            yield TextArea("", id="sweep", language=None, compact=True, soft_wrap=False)
            yield Static("", id="sweep-error", classes="field-error")
            with Horizontal(id="save-row"):
                yield Label("file ")
                yield Input("", id="save-path", placeholder="path/to/config.yaml", compact=True)
                yield Button("Save YAML", id="save", compact=True)
                yield Button("Open", id="open", compact=True)
        yield Footer()

    def _field_row(self, f: FormField) -> Vertical:
        if f.kind == "choice":
            widget = Select([(str(c), c) for c in f.choices], value=f.default, allow_blank=False,
                            compact=True, id=f.widget_id)
        elif f.kind == "bool":
            widget = Switch(value=bool(f.default), id=f.widget_id)
        else:
            widget = Input(f.to_text(f.default), compact=True, id=f.widget_id,
                           placeholder="empty" if f.optional else "")
        widget.tooltip = f.description
        row = Vertical(
            Horizontal(Label(f.path, classes="field-name"), widget,
                       Static(f.bounds, classes="field-bounds", markup=False), classes="field-line"),
            Static(f.description, classes="field-doc", markup=False),
            Static("", classes="field-error", id=f"err-{f.widget_id}"),
            classes="field",
        )
        return row

    def on_mount(self) -> None:
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
                widget = self.query_one(f"#{f.widget_id}")
                value = get_dotted(values, f.path)
                if isinstance(widget, Select):
                    widget.value = value if value in f.choices else f.default
                elif isinstance(widget, Switch):
                    widget.value = bool(value)
                elif isinstance(widget, Input):
                    widget.value = f.to_text(value)
            text = "" if sweep is None else yaml.safe_dump(sweep, sort_keys=False, default_flow_style=None)
            self.query_one("#sweep", TextArea).text = text
            name = get_dotted(values, "name", "run")
            self.query_one("#save-path", Input).value = f"{name}.yaml"
        finally:
            self._loading = False
        self._pristine = self._snapshot()
        self.validate_form()

    def form_data(self) -> dict[str, Any]:
        """The config dict the form holds (without the sweep)."""
        data: dict[str, Any] = {}
        for f in self.fields:
            widget = self.query_one(f"#{f.widget_id}")
            if isinstance(widget, Select):
                value = None if widget.value is Select.NULL else widget.value
            elif isinstance(widget, Switch):
                value = widget.value
            else:
                value = f.from_text(widget.value)
            set_dotted(data, f.path, value)
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
        for f in self.fields:
            widget = self.query_one(f"#{f.widget_id}")
            box = self.query_one(f"#err-{f.widget_id}", Static)
            lines = by_path.get(f.path, [])
            box.update("\n".join(f"✗ {line}" for line in lines))
            box.set_class(bool(lines), "shown")
            widget.set_class(bool(lines), "invalid")
            # A field the sweep sets is not what runs: say so beside it (and in the status line).
            swept = f.path in self.swept
            if swept != widget.has_class("swept"):
                widget.set_class(swept, "swept")
                widget.parent.query_one(".field-bounds", Static).update("set by the sweep below" if swept else f.bounds)
        sweep_box = self.query_one("#sweep-error", Static)
        sweep_lines = self.sweep_errors + rest
        sweep_box.update("\n".join(f"✗ {line}" for line in sweep_lines))
        sweep_box.set_class(bool(sweep_lines), "shown")
        valid = not self.errors and not self.sweep_errors
        status = self.query_one("#cfg-status", Static)
        if valid:
            runs_dir = get_dotted(data, "runs_dir", "runs")
            swept = f" · the sweep sets {', '.join(self.swept)} (not the fields)" if self.swept else ""
            status.update(f"✓ valid: {self.n_runs} run{'s' if self.n_runs != 1 else ''} → {runs_dir}/{swept}")
        else:
            problems = self.errors + self.sweep_errors
            status.update(f"✗ {len(problems)} problem{'s' if len(problems) != 1 else ''}: {problems[0]}")
        status.set_class(not valid, "invalid")
        self.query_one("#start", Button).disabled = not valid
        self.query_one("#save", Button).disabled = not valid
        return valid

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    @on(TextArea.Changed)
    def _changed(self, event) -> None:
        if self._loading or getattr(event, "input", None) is not None and event.input.id == "save-path":
            return
        if isinstance(event, Select.Changed) and event.select.id == "preset":
            self._choose_preset(None if event.value is Select.NULL else str(event.value))
            return
        self.validate_form()

    def _snapshot(self) -> tuple:
        return repr(self.form_data()), self.query_one("#sweep", TextArea).text

    @property
    def edited(self) -> bool:
        """Whether the form differs from what was loaded (or saved) last."""
        return self._pristine is not None and self._snapshot() != self._pristine

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

    def action_save(self) -> None:
        if not self.validate_form():
            self.notify("fix the problems shown in red first", title="cannot save", severity="error")
            return
        target = self.query_one("#save-path", Input).value.strip()
        if not target:
            self.notify("give a file name to save to", severity="error")
            return
        path = Path(target).expanduser()
        base = config_mod.validate(self.form_data()).to_dict()
        sweep = self.sweep_data()
        if sweep is not None:
            base["sweep"] = sweep
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(base, sort_keys=False), encoding="utf-8")
        except OSError as exc:
            self.notify(f"{path}: {exc.strerror or exc}", title="cannot save", severity="error")
            return
        self.notify(f"saved {path}")
        self.saved_path = path
        self._offer(path)
        self.current_preset = path.name  # the form is that file now
        self._show_preset(path.name)
        self._pristine = self._snapshot()

    @on(Button.Pressed, "#open")
    def _open_pressed(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        """Load the YAML file named in the file field into the form; it joins the preset list."""
        target = self.query_one("#save-path", Input).value.strip()
        path = Path(target).expanduser() if target else None
        if path is None or not path.is_file():
            self.notify(f"no such file: {target}" if target else "give the path of a YAML config to open",
                        severity="error")
            return
        self._offer(path)
        self._choose_preset(path.name, again=True)

    def _offer(self, path: Path) -> None:
        """Put ``path`` in the preset list under its file name (replacing a preset of that name)."""
        self.presets = {path.name: path, **{k: v for k, v in self.presets.items() if k != path.name}}
        with self.prevent(Select.Changed):
            self.query_one("#preset", Select).set_options([(name, name) for name in self.presets])
        self._show_preset(self.current_preset)

    def _show_preset(self, name: str | None) -> None:
        """Show ``name`` as the selected preset without loading it."""
        with self.prevent(Select.Changed):
            self.query_one("#preset", Select).value = name if name in self.presets else Select.NULL
