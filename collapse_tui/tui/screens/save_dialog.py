"""Where to save the form: a path prefilled with the user's config directory, asked before overwriting.

The dialog only chooses the file; writing it is the caller's ``write`` (which returns a line saying why
it could not, or None), so a refused write is said here in one line and the path can be changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

Write = Callable[[Path], "str | None"]


def target_path(text: str, file_name: str) -> Path | None:
    """The file ``text`` names, absolute (the notice then says where it went): ``~`` expanded, an
    existing directory (or one written with a trailing slash) taking ``file_name``; None for empty text."""
    text = text.strip()
    if not text:
        return None
    path = Path(text).expanduser().absolute()
    if text.endswith(("/", "\\")) or path.is_dir():
        path = path / file_name
    return path


class SaveDialog(ModalScreen["Path | None"]):
    """Asks for the file to save to (prefilled with ``default``) and calls ``write`` with it; dismissed
    with the path written, or None when cancelled."""

    DEFAULT_CSS = """
    SaveDialog { align: center middle; }
    #save-dialog { width: 76; max-width: 100%; height: auto; border: round $accent; background: $surface;
                   padding: 0 1; }
    #save-dialog > .dialog-title { text-style: bold; height: 1; }
    #save-target { width: 1fr; margin-top: 1; }
    #save-message { height: 1; margin-top: 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    #save-message.error { color: $error; }
    #save-buttons { height: 1; margin-top: 1; }
    #save-buttons Button { margin-right: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#save-target"

    def __init__(self, default: Path, write: Write, **kwargs) -> None:
        super().__init__(**kwargs)
        self.default = default
        self.write = write

    def compose(self) -> ComposeResult:
        with Vertical(id="save-dialog"):
            yield Static("Save the form as YAML", classes="dialog-title")
            yield Input(str(self.default), id="save-target", compact=True)
            yield Static("enter saves · a directory takes the file name · escape cancels", id="save-message",
                         markup=False)
            with Horizontal(id="save-buttons"):
                yield Button("Save", id="save-ok", variant="primary", compact=True)
                yield Button("Cancel", id="save-cancel", compact=True)

    def say(self, line: str, error: bool = False) -> None:
        message = self.query_one("#save-message", Static)
        message.update(Content(line))  # plain text: paths may hold [ ]
        message.set_class(error, "error")

    @on(Input.Submitted, "#save-target")
    @on(Button.Pressed, "#save-ok")
    def _submit(self) -> None:
        path = target_path(self.query_one("#save-target", Input).value, self.default.name)
        if path is None:
            self.say("give a path to save to", error=True)
            return
        if path.exists():
            from collapse_tui.tui.screens.runs import ConfirmScreen

            def answered(overwrite: bool | None) -> None:
                if overwrite:
                    self._write(path)
                else:
                    self.say(f"{path} kept as it is: give another path", error=True)
                    self.query_one("#save-target", Input).focus()

            self.app.push_screen(ConfirmScreen(f"{path} exists. Overwrite? y/n", yes="Yes, overwrite"), answered)
            return
        self._write(path)

    def _write(self, path: Path) -> None:
        problem = self.write(path)
        if problem:
            self.say(problem, error=True)
            return
        self.dismiss(path)

    @on(Button.Pressed, "#save-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
