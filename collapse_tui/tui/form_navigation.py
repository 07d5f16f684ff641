"""Moving through a long form by the page and by the part: the keys a form of sixty fields needs at 80x24.

A page scrolls the form from wherever the focus is on the screen; a field scrolled out of sight hands
the focus to the first field in sight, so the next keystroke lands where the user looks. A part (the lead
block, the sweep block, a folded section) is entered at its first field, a section unfolded.
"""

from __future__ import annotations

from typing import Callable

from textual.containers import ScrollableContainer
from textual.widget import Widget
from textual.widgets import Collapsible

from collapse_tui.tui.widgets.field_row import FieldRow


def page(form: ScrollableContainer, focused: Widget | None, direction: int) -> None:
    """Scroll ``form`` a page down (``direction`` 1) or up (-1); move the focus in sight if it was in
    the form."""
    before = form.scroll_y
    # At once (not after the next refresh): the focus below follows where the form now is.
    form.scroll_to(y=before + direction * form.scrollable_content_region.height, animate=False, immediate=True)
    if focused is not None and form in focused.ancestors:
        focus_in_sight(form, focused, form.scroll_y - before)


def focus_in_sight(form: ScrollableContainer, focused: Widget, moved: float) -> None:
    """Keep the focus on ``focused`` if it is still in sight once ``form`` has scrolled ``moved`` lines
    (the screen's regions are still those before the scroll), else put it on the first field in sight."""
    view = form.content_region

    def in_sight(widget: Widget) -> bool:
        region = widget.region
        return bool(region) and view.y <= region.y - moved and region.bottom - moved <= view.bottom

    if in_sight(focused):
        return
    for widget in form.query("*"):
        if widget.focusable and in_sight(widget):
            widget.focus(scroll_visible=False)
            return


def part_index(parts: list[Widget], focused: Widget | None) -> int:
    """Which of ``parts`` holds ``focused``: -1 when none (the focus is above the form)."""
    current = -1
    for index, part in enumerate(parts):
        if focused is not None and (focused is part or part in focused.ancestors):
            current = index
    return current


def enter_part(form: ScrollableContainer, part: Widget, after_refresh: Callable[[Callable[[], None]], object]) -> None:
    """Focus ``part``'s first field: a folded section is unfolded and scrolled to the top of the form
    (once its fields are laid out, hence ``after_refresh``); the lead block scrolls the form home."""
    if isinstance(part, Collapsible):
        part.collapsed = False
        first = part.query(FieldRow).first().editor

        def show() -> None:
            first.focus(scroll_visible=False)
            form.scroll_to_widget(part, top=True, animate=False)

        after_refresh(show)
    elif isinstance(part, FieldRow):
        part.editor.focus(scroll_visible=False)
        form.scroll_home(animate=False)
    else:
        part.focus()
