"""A small dialog that asks for one of a list of choices (an axis' quantity, a metric): the list with the
current choice highlighted; enter takes the highlighted one, escape keeps the current one."""

from __future__ import annotations

from typing import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class ChooseScreen(ModalScreen[str | None]):
    """Dismissed with the chosen key, or None when left with escape. ``choices``: (key, text) pairs."""

    DEFAULT_CSS = """
    ChooseScreen { align: center middle; }
    #choose { width: 60; max-width: 100%; height: auto; max-height: 90%; border: round $accent;
              background: $surface; padding: 0 1; }
    #choose-title { height: auto; text-style: bold; }
    #choose-list { height: auto; max-height: 18; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, choices: Sequence[tuple[str, str]], current: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.choices = list(choices)
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="choose"):
            yield Static(self.title_text, id="choose-title", markup=False)
            yield OptionList(*(Option(text, id=key) for key, text in self.choices), id="choose-list")

    def on_mount(self) -> None:
        options = self.query_one("#choose-list", OptionList)
        keys = [key for key, _ in self.choices]
        if self.current in keys:
            options.highlighted = keys.index(self.current)
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
