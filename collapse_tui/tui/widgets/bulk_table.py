"""A DataTable whose rows are replaced all at once, for tables of thousands of rows.

Textual's ``add_row`` costs tens of microseconds a row, and the table then measures every new cell to size
its columns: together about two seconds for 10,000 rows of a dozen cells on a slow CPU, at every change of
filter. :meth:`BulkTable.replace_rows` stores the rows directly and takes the columns' widths from the
caller, who knows the cells' plain text; rendering stays Textual's own (only the visible rows are drawn).
Where this Textual has not the internals it relies on, it falls back to ``add_row``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets._data_table import Row, RowKey

class PlainCell:
    """A cell's text, never read as markup, made a :class:`~rich.text.Text` only when drawn: a table of
    10,000 rows draws a few dozen of them, and building a Text for each cell costs more than the rest of a
    row."""

    __slots__ = ("plain", "style")

    def __init__(self, plain: str, style: str = "") -> None:
        self.plain = plain
        self.style = style

    def __rich__(self) -> Text:
        return Text(self.plain, style=self.style, end="", no_wrap=True)

    def __str__(self) -> str:
        return self.plain

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlainCell) and (self.plain, self.style) == (other.plain, other.style)

    __hash__ = None  # mutable-looking value object: compared, never a key


# The DataTable internals replace_rows writes (present from Textual 0.2x to 8).
_INTERNALS = ("_row_locations", "_data", "rows", "_new_rows", "_update_count", "_require_update_dimensions")


class BulkTable(DataTable):
    """A :class:`DataTable` with :meth:`replace_rows`."""

    def replace_rows(self, rows: Sequence[tuple[str, Sequence[Text | PlainCell]]], widths: Mapping[str, int]) -> None:
        """The table's rows become ``rows`` (``(key, cells)``, one line each); ``widths``: the widest cell of
        each column (by column key), in terminal cells, as its rows hold it."""
        self.clear()
        if not all(hasattr(self, name) for name in _INTERNALS):
            for key, cells in rows:
                self.add_row(*cells, key=key)
            return
        column_keys = [column.key for column in self.ordered_columns]
        locations, data, metadata = self._row_locations, self._data, self.rows
        for index, (key, cells) in enumerate(rows):
            row_key = RowKey(key)
            locations[row_key] = index
            data[row_key] = dict(zip(column_keys, cells))
            metadata[row_key] = Row(row_key, 1)
        for column in self.ordered_columns:
            column.content_width = max(column.content_width, widths.get(str(column.key.value), 0))
        # Not among the new rows: their cells need no measuring; the table's size is still recomputed.
        self._require_update_dimensions = True
        self._update_count += 1
        self.cursor_coordinate = self.cursor_coordinate
        if rows and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()
        self.check_idle()
        self.refresh()
