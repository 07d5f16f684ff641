"""Neuron inspector: a run's SAE neurons one by one, from the profiles its final evaluation wrote
(``neurons.npz``): a table of all neurons, sortable by any column, and for the selected one its
top-activating evaluation images (rendered again from the dataset, drawn with half blocks), its tuning
curve over each factor's values, and the neurons whose decoder directions lie nearest to its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from collapse_tui.store import load_neurons, load_run
from collapse_tui.tui.screens.base import AppScreen
from collapse_tui.tui.sorting import chosen_sort
from collapse_tui.tui.widgets.charts import BLOCKS, column_groups
from collapse_tui.tui.widgets.pixels import render_images

COLUMNS = ("neuron", "fires %", "max", "best factor", "NMI", "AUROC")
IMAGES_SHOWN = 8
IMAGE_PIXELS = 16  # each image drawn 16 x 16 pixels: 16 columns, 8 lines


def neuron_rows(profiles: dict[str, np.ndarray]) -> list[tuple]:
    """One row of :data:`COLUMNS` per neuron: values to sort by (the table shows them formatted); a
    dead neuron's best factor reads "dead"."""
    factors = [str(f) for f in profiles["factors"]]
    nmi, best = profiles["nmi"], profiles["best_factor"]
    rows = []
    for i in range(len(profiles["frequency"])):
        dead = bool(profiles["dead"][i])
        auroc = float(profiles["auroc"][i]) if "auroc" in profiles else float("nan")
        rows.append((i, 100.0 * float(profiles["frequency"][i]), float(profiles["max_activation"][i]),
                     "dead" if dead else factors[int(best[i])], 0.0 if dead else float(nmi[i, int(best[i])]),
                     auroc if auroc == auroc else -1.0))  # -1: the best detector of no value
    return rows


def tuning_lines(profiles: dict[str, np.ndarray], neuron: int, width: int = 40) -> Text:
    """The neuron's mean activation at each value of each factor, as one bar line per factor, all on
    one scale (the neuron's largest mean at any value), so the factors compare."""
    factors = [str(f) for f in profiles["factors"]]
    # Non-finite means (an SAE whose activations diverged) are drawn as empty columns, not scaled by.
    curves = [np.nan_to_num(np.asarray(profiles[f"tuning/{f}"][neuron], dtype=np.float64), nan=0.0, posinf=0.0,
                            neginf=0.0) for f in factors]
    top = max((float(c.max()) for c in curves if c.size), default=0.0)
    name_w = max(len(f) for f in factors) + 1
    text = Text(no_wrap=True, overflow="crop")
    for name, curve in zip(factors, curves):
        text.append(name.ljust(name_w), style="dim")
        # A factor with more values than columns: neighbouring values share a column (their largest).
        n = len(curve)
        cols = max(1, min(n, width))
        groups = [curve[part] for part in column_groups(n, cols)]
        for g in groups:
            level = 0 if top <= 0 or not g.size else min(8, max(0, round(float(g.max()) / top * 8)))
            text.append(BLOCKS[level] if level else "·", style="#4e9ae0" if level else "grey42")
        text.append(f"  {float(curve.max()) if curve.size else 0:.3g} max\n", style="dim")
    return text


def neuron_detail(profiles: dict[str, np.ndarray], rows: list[tuple], neuron: int) -> tuple[Text, Text, list[int]]:
    """The detail panel of ``neuron`` (``rows``: :func:`neuron_rows`): its head line, its nearest decoder
    directions, and the evaluation rows of its top-activating images (none for a neuron that never fired)."""
    p, r = profiles, rows[neuron]
    head = Text(f"neuron {neuron}", style="bold")
    if p["dead"][neuron]:
        head.append("  dead: fires on no evaluation sample", style="grey50")
    else:
        head.append(f"  fires on {r[1]:.2f}% · max {r[2]:.3g}, mean {float(p['mean_activation'][neuron]):.3g}"
                    f" · best factor {r[3]} (NMI {r[4]:.3f})")
        if r[5] >= 0 and int(p["auroc_factor"][neuron]) >= 0:  # (-1: the best detector of no factor's value)
            factor = str(p["factors"][int(p["auroc_factor"][neuron])])
            head.append(f" · best detector of {factor} = {int(p['auroc_value'][neuron])} (AUROC {r[5]:.3f})")
    neighbours = Text("nearest decoder directions (cosine)\n", style="bold")
    for j, cos in zip(p["neighbours"][neuron], p["neighbour_cosines"][neuron]):
        if j < 0:
            break
        other = rows[int(j)]
        neighbours.append(f"  #{int(j):<4} {float(cos):+.3f}  ")
        neighbours.append("dead" if p["dead"][j] else f"{other[3]} {other[4]:.2f}", style="dim")
        neighbours.append("\n")
    return head, neighbours, [int(k) for k in p["top_examples"][neuron] if k >= 0][:IMAGES_SHOWN]


class NeuronScreen(AppScreen):
    """The neurons of the run in ``run_dir``."""

    BINDINGS = [
        Binding("o", "cycle_sort", "Sort"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, run_dir: str | Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run_dir = Path(run_dir)
        self.profiles: dict[str, np.ndarray] | None = None
        self.problem = ""
        self.rows: list[tuple] = []
        self.sort_column, self.sort_reverse = "fires %", True
        self.selected: int | None = None
        self._dataset: Any = None  # opened in a worker the first time images are wanted
        self.source_file: str | None = None  # the activations file the run read, when it read no images

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="neuron-title")
        with Horizontal(id="neuron-body"):
            yield DataTable(id="neuron-table", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="neuron-detail"):
                yield Static("", id="neuron-head")
                yield Static("", id="neuron-images")
                yield Static("", id="neuron-tuning")
                yield Static("", id="neuron-neighbours")
        yield Footer()

    def on_mount(self) -> None:
        name = self.run_dir.name
        self.source_file = activations_file(self.run_dir)
        # Read from the directory shown, checked: a damaged file is one line here, never a crash below.
        self.profiles, problem = load_neurons(self.run_dir)
        if problem is not None:
            self.problem = problem
            self.query_one("#neuron-title", Static).update(Text(problem, style="yellow"))
            return
        if self.profiles is None:
            self.problem = ("no neuron profiles yet: the run's final evaluation writes them (neurons.npz); "
                            "a run still training, or recorded by an older version, has none")
            self.query_one("#neuron-title", Static).update(Text(f"{name}: {self.problem}", style="yellow"))
            return
        self.rows = neuron_rows(self.profiles)
        n_dead = int(np.sum(self.profiles["dead"]))
        self.query_one("#neuron-title", Static).update(
            f"{name}: {len(self.rows)} neurons, {n_dead} dead · top images from its "
            f"{len(self.profiles['eval_indices'])} evaluation samples")
        table = self.query_one("#neuron-table", DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.populate()
        table.focus()

    # ------------------------------------------------------------------ table
    def populate(self) -> None:
        table = self.query_one("#neuron-table", DataTable)
        index = COLUMNS.index(self.sort_column)
        rows = sorted(self.rows, key=lambda r: (r[index], -r[0] if self.sort_reverse else r[0]),
                      reverse=self.sort_reverse)
        table.clear()
        dead = self.profiles["dead"]
        for r in rows:
            table.add_row(str(r[0]), f"{r[1]:.2f}", f"{r[2]:.3g}",
                          Text(r[3], style="grey50") if dead[r[0]] else r[3],
                          "" if dead[r[0]] else f"{r[4]:.3f}", f"{r[5]:.3f}" if r[5] >= 0 else "", key=str(r[0]))

    def sort_by(self, column: str) -> None:
        """Sort by ``column`` (largest first); choosing it again reverses the order."""
        self.sort_column, self.sort_reverse = chosen_sort(COLUMNS, column, self.sort_column, self.sort_reverse,
                                                          first_reverse=column not in ("neuron", "best factor"))
        self.populate()

    @on(DataTable.HeaderSelected)
    def _header(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(str(event.column_key.value))

    def action_cycle_sort(self) -> None:
        self.sort_by(COLUMNS[(COLUMNS.index(self.sort_column) + 1) % len(COLUMNS)])

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self.show(int(event.row_key.value))

    # ------------------------------------------------------------------ detail
    def show(self, neuron: int) -> None:
        """Fill the detail panel with ``neuron``'s profile."""
        p = self.profiles
        if p is None:
            return
        self.selected = neuron
        head, neighbours, rows = neuron_detail(p, self.rows, neuron)
        self.query_one("#neuron-head", Static).update(head)
        self.query_one("#neuron-tuning", Static).update(
            Text("mean activation at each factor value\n", style="bold") + tuning_lines(p, neuron))
        self.query_one("#neuron-neighbours", Static).update(neighbours)
        images = self.query_one("#neuron-images", Static)
        if not rows:
            images.update(Text("no top-activating images: it never fired", style="grey50"))
            return
        indices = [int(p["eval_indices"][k]) for k in rows]
        source = self.source_file
        if source is not None:  # no images to draw: which rows of the file it answers to most
            images.update(Text(f"top {len(indices)} activating rows of {source}: "
                               + ", ".join(f"{i:,}" for i in indices), style="dim"))
            return
        images.update(Text("rendering its top images…", style="dim"))
        self._load_images(neuron, indices)

    @work(thread=True, exclusive=True, exit_on_error=False, group="neuron-images")
    def _load_images(self, neuron: int, indices: list[int]) -> None:
        """Render the images at dataset ``indices`` again (off the UI thread: a dataset read from a file
        takes a moment), then draw them if ``neuron`` is still the one shown."""
        try:
            if self._dataset is None:
                self._dataset = open_run_dataset(self.run_dir)
            images: list | str = list(self._dataset.images(np.asarray(indices)))
        except Exception as exc:  # a moved file, an unknown source: say so where the images would be
            images = f"images unavailable: {type(exc).__name__}: {exc}"
        self.app.call_from_thread(self._draw_images, neuron, images)

    def _draw_images(self, neuron: int, images: list | str) -> None:
        if neuron != self.selected or not self.is_mounted:
            return
        widget = self.query_one("#neuron-images", Static)
        if isinstance(images, str):
            widget.update(Text(images, style="yellow"))
            return
        # As many side by side as the panel is wide, the rest on further rows.
        room = self.query_one("#neuron-detail").scrollable_content_region.width
        per_row = max(1, (room + 1) // (IMAGE_PIXELS + 1))
        drawn = Text(f"top {len(images)} activating evaluation images, largest first\n", style="bold")
        for start in range(0, len(images), per_row):
            drawn.append_text(render_images(images[start:start + per_row], size=IMAGE_PIXELS))
        widget.update(drawn)

    def action_back(self) -> None:
        self.app.pop_screen()


def activations_file(run_dir: str | Path) -> str | None:
    """The name of the activations file a run read (``data.dataset: activations``); None for a run on images
    (or one whose config cannot be read: its images are then tried, and say why they are unavailable)."""
    from collapse_tui.config import ACTIVATIONS

    try:
        data = load_run(run_dir).config.get("data", {})
    except Exception:
        return None
    if not isinstance(data, dict) or data.get("dataset") != ACTIVATIONS:
        return None
    return Path(str(data.get("path") or "the activations file")).name


def open_run_dataset(run_dir: str | Path):
    """The dataset a run read its images from, opened as it was: the source its data record names (a
    run that does not record one, and asked for ``auto``, cannot say which source it found)."""
    from collapse_tui.config import IMAGES
    from collapse_tui.data import open_dataset

    record = load_run(run_dir)
    config = record.config
    data = config.get("data", {})
    provenance = config.get("data_source") or {}
    if data.get("dataset") == IMAGES:  # a labelled image set of the user's: its file, as the run read it
        from collapse_tui.data.image_file import open_images

        return open_images(provenance.get("path") or data.get("path"))
    source = provenance.get("source") or data.get("source")
    if not source or source == "auto":
        raise ValueError("the run does not record which data source it read")
    return open_dataset(data.get("dataset", provenance.get("dataset")), source=source,
                        path=provenance.get("path") or data.get("path"), cache=data.get("cache", True))
