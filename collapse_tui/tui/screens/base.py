"""The screen every view of the app derives from: its footer lists the app's keys (F1-F4, quit) first,
so a narrow terminal cuts the screen's own keys, never the way to the other screens."""

from __future__ import annotations

from textual.binding import ActiveBinding
from textual.screen import Screen


class AppScreen(Screen):
    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """The screen's bindings as Textual collects them (focused widget first, the app's last),
        reordered with the app's in front; which key does what is unchanged (dispatch does not read
        this order)."""
        bindings = super().active_bindings
        # Quit (a priority binding, collected first) after the screens it sits beside.
        app = dict(sorted(((key, active) for key, active in bindings.items() if active.node is self.app),
                          key=lambda item: item[1].binding.priority))
        return app | {key: active for key, active in bindings.items() if key not in app}
