"""A small list of the settings the runs table can group its rows by."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

# The choice that puts the rows back in one list.
NO_GROUPS = "none"


class ChooseGroupScreen(ModalScreen[str | None]):
    """``none``, ``sweep`` and the settings that differ among the listed runs; dismissed with the chosen
    one, or None on escape."""

    DEFAULT_CSS = """
    ChooseGroupScreen { align: center middle; }
    #choose-group { width: 50; height: auto; max-height: 20; border: round $accent; background: $surface; }
    #choose-group OptionList { height: auto; max-height: 16; }
    """
    BINDINGS = [Binding("escape,q", "cancel", "Cancel")]

    def __init__(self, settings: list[str], current: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.settings = [NO_GROUPS, "sweep", *settings]
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="choose-group"):
            yield Label("group the runs by")
            yield OptionList(*(Option(s, id=str(i)) for i, s in enumerate(self.settings)), id="group-options")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = self.settings.index(self.current) if self.current in self.settings else 0
        options.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.settings[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)
