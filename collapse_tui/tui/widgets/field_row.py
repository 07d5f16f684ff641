"""One field of the configure form on one line: its key, the editor, and its bounds cut to the line's
end; the schema's error for it, when there is one, on a line below.

A switch has "on" / "off" beside it: its slider alone reads the same either way on many terminals.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch

from collapse_tui.tui.schema import FormField


def switch_text(value: bool) -> str:
    return "on" if value else "off"


class FieldRow(Vertical):
    """The row of ``field``, labelled ``label`` (its key, or the part of it inside a folded section)."""

    DEFAULT_CSS = """
    FieldRow { height: auto; }
    FieldRow > .form-line { height: 1; }
    FieldRow .form-label { width: 26; height: 1; padding-right: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    FieldRow .form-line > Input, FieldRow .form-line > Select { width: 22; }
    FieldRow .form-line > Switch { width: 8; height: 1; border: none; padding: 0 1; }
    FieldRow .switch-state { width: 14; height: 1; padding-left: 1; }
    FieldRow .switch-state.-on { color: $success; text-style: bold; }
    FieldRow .field-bounds { width: 1fr; height: 1; padding-left: 1; color: $text-muted;
                             text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, field: FormField, label: str) -> None:
        super().__init__(classes="form-field")
        self.field = field
        self.label = label

    def compose(self) -> ComposeResult:
        f = self.field
        with Horizontal(classes="form-line"):
            name = Label(self.label, classes="form-label", markup=False)
            name.tooltip = f.path
            yield name
            yield self._editor()
            if f.kind == "bool":
                yield Static(switch_text(bool(f.default)), classes="switch-state", markup=False)
            yield Static(f.bounds, classes="field-bounds", markup=False)
        yield Static("", classes="field-error", id=f"err-{f.widget_id}", markup=False)

    def _editor(self) -> Widget:
        f = self.field
        if f.kind == "choice":
            widget: Widget = Select([(str(c), c) for c in f.choices], value=f.default, allow_blank=False,
                                    compact=True, id=f.widget_id)
        elif f.kind == "bool":
            widget = Switch(value=bool(f.default), id=f.widget_id)
        else:
            widget = Input(f.to_text(f.default), compact=True, id=f.widget_id,
                           placeholder="empty" if f.optional else "")
        widget.tooltip = f"{f.path}: {f.description}" if f.description else f.path
        return widget

    @property
    def editor(self) -> Widget:
        return self.query_one(f"#{self.field.widget_id}")

    def raw_value(self) -> Any:
        """What the editor holds, as the schema is given it (text stays text for the schema to judge)."""
        widget = self.editor
        if isinstance(widget, Select):
            return None if widget.value is Select.NULL else widget.value
        if isinstance(widget, Switch):
            return widget.value
        return self.field.from_text(widget.value)

    def show(self, value: Any) -> None:
        """Put ``value`` (a config value) in the editor."""
        f, widget = self.field, self.editor
        if isinstance(widget, Select):
            widget.value = value if value in f.choices else f.default
        elif isinstance(widget, Switch):
            widget.value = bool(value)
            self._show_switch(bool(value))
        elif isinstance(widget, Input):
            widget.value = f.to_text(value)

    def show_errors(self, lines: list[str]) -> None:
        box = self.query_one(".field-error", Static)
        box.update("\n".join(f"✗ {line}" for line in lines))
        box.set_class(bool(lines), "shown")
        self.editor.set_class(bool(lines), "invalid")

    def show_swept(self, swept: bool) -> None:
        """Mark the field as one the sweep block sets (its value here is not what runs)."""
        widget = self.editor
        if swept != widget.has_class("swept"):
            widget.set_class(swept, "swept")
            self.query_one(".field-bounds", Static).update("set by the sweep below" if swept else self.field.bounds)

    def _show_switch(self, value: bool) -> None:
        state = self.query_one(".switch-state", Static)
        state.update(switch_text(value))
        state.set_class(value, "-on")

    @on(Switch.Changed)
    def _switched(self, event: Switch.Changed) -> None:
        self._show_switch(event.value)  # the message goes on to the form, which validates
