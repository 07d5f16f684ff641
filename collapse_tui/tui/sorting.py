"""How every sortable table of the UI answers a click on a header (or its sort key)."""

from __future__ import annotations

from typing import Sequence


def chosen_sort(columns: Sequence[str], column: str, current: str | None, reverse: bool,
                first_reverse: bool = False) -> tuple[str, bool]:
    """The sort after ``column`` is chosen while the table is sorted by ``current`` (``reverse`` as
    given): the same column again reverses the order; another starts in its own first direction
    (``first_reverse``: largest first). ValueError for a column the table does not have."""
    if column not in columns:
        raise ValueError(f"unknown column {column!r}; columns: {', '.join(columns)}")
    if column == current:
        return column, not reverse
    return column, first_reverse
