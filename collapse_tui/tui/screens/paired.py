"""Paired screen: each remedy row of a sweep against the plain SAE of the same settings, seed by seed (the
two runs of one seed share its VAE, images and data order): the per-seed differences of one metric, their
mean, 95% t-interval and paired t-test p, as :mod:`collapse_tui.report.paired` computes them for results.md.
The row's labels stay in place while the table scrolls right; ``m`` chooses the metric."""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from collapse_tui.config import sparsity_label
from collapse_tui.metrics.specs import DEAD, MISSING, MetricSpec
from collapse_tui.report import Paired, against_text, across_methods, build_rows, comparisons, paired
from collapse_tui.report.paired import CONFIDENCE, PLAIN
from collapse_tui.report.sweep_points import metric_quantities
from collapse_tui.store import RunRecord
from collapse_tui.tui.screens.choose import ChooseScreen
from collapse_tui.tui.screens.base import AppScreen


def signed(spec: MetricSpec, value: float) -> str:
    """A difference as the metric's spec writes a value, with its sign (+3.2, -1.0)."""
    text = spec.text(value)
    return "+" + text if value > 0 and not text.startswith("+") else text


def p_text(p: float | None) -> str:
    return MISSING if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def difference_unit(spec: MetricSpec) -> str:
    """What a difference of the metric is counted in: percentage points for a percentage."""
    return "percentage points" if spec.unit == "%" else spec.unit or "the metric's own units"


class PairedScreen(AppScreen):
    """Remedy − plain by seed for the runs ``records`` (a sweep's, or runs marked together)."""

    DEFAULT_CSS = """
    #paired-title { height: 1; padding: 0 1; }
    #paired-legend { height: auto; max-height: 2; padding: 0 1; color: $text-muted; }
    #paired-table { height: 1fr; }
    #paired-detail { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("m", "choose_metric", "Metric"),
        Binding("escape", "back", "Back", show=False),
    ]

    def __init__(self, records: Sequence[RunRecord], title: str = "", metric: str = DEAD.key, **kwargs) -> None:
        super().__init__(**kwargs)
        self.records = list(records)
        self.title_text = title or f"{len(self.records)} runs"
        self.rows, self.left_out = build_rows(self.records)
        self.metrics = {q.key: q.spec for q in metric_quantities(self.rows) if q.spec is not None}
        self.metric = metric if metric in self.metrics else next(iter(self.metrics), DEAD.key)
        self.results: list[Paired] = []
        self.unpaired: list = []  # remedy rows with no plain row at their settings

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="paired-title")
        yield Static("", id="paired-legend")
        yield DataTable(id="paired-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="paired-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.populate()
        self.query_one("#paired-table", DataTable).focus()

    @property
    def spec(self) -> MetricSpec:
        return self.metrics.get(self.metric, DEAD)

    def populate(self) -> None:
        """Compare every remedy row with its plain row in the chosen metric and fill the table."""
        spec = self.spec
        found = comparisons(self.rows)
        self.results = [paired(row, plain, spec) for row, plain in found if plain is not None]
        self.unpaired = [row for row, plain in found if plain is None]
        title = self.query_one("#paired-title", Static)
        title.update(Text.assemble((self.title_text, "bold"), f"  ·  Δ {spec.label}, remedy − plain, paired by seed"))
        self.query_one("#paired-legend", Static).update(
            f"Δ = remedy run − plain run of the same seed (same VAE and data), in {difference_unit(spec)}; "
            f"their mean, its {CONFIDENCE:.0%} t-interval, p of a two-sided paired t-test")
        table = self.query_one("#paired-table", DataTable)
        table.clear(columns=True)
        detail = self.query_one("#paired-detail", Static)
        if not any(row.remedy == PLAIN for row in self.rows):
            detail.update("no plain SAE (remedy none) among these runs: no remedy can be compared with it")
            return
        if not self.results:
            detail.update("no remedy row has a plain row at the same settings: nothing to compare")
            return
        self._fill(table, spec)
        lines = []
        if self.unpaired:
            lines.append(f"{len(self.unpaired)} remedy row(s) have no plain row at their settings: "
                         + ", ".join(f"{r.method} {r.remedy} {sparsity_label(r.method, r.sparsity)}"
                                     for r in self.unpaired[:3]))
        left = sum(len(r.left_out) for r in self.results)
        if left:
            lines.append(f"{left} seed(s) ran in only one row of a pair and are left out")
        lines.append("m: another metric · results.md has this for the headline metrics")
        detail.update("\n".join(lines))

    def _fill(self, table: DataTable, spec: MetricSpec) -> None:
        results = self.results
        datasets = len({r.remedy.dataset for r in results}) > 1
        labelled = any(r.remedy.setting for r in results)
        crossed = across_methods((r.remedy, r.plain) for r in results)
        labels = [*(["dataset"] if datasets else []), "method", "remedy", "k / λ", *(["setting"] if labelled else []),
                  *(["against"] if crossed else [])]
        seeds = sorted({s for r in results for s in r.seeds})
        for column in [*labels, "pairs", "mean Δ", f"{CONFIDENCE:.0%} interval", "p",
                       *(f"Δ seed {s}" for s in seeds)]:
            table.add_column(column, key=column)
        table.fixed_columns = len(labels)
        for i, r in enumerate(results):
            row = r.remedy
            cells = [*([row.dataset] if datasets else []), row.method, row.remedy,
                     sparsity_label(row.method, row.sparsity), *([row.setting] if labelled else []),
                     *([against_text(row, r.plain)] if crossed else [])]
            by_seed = dict(zip(r.seeds, r.differences))
            interval = MISSING if r.ci is None else f"[{spec.text(r.ci[0])}, {spec.text(r.ci[1])}]"
            cells += [str(r.n), MISSING if r.mean is None else signed(spec, r.mean), interval, p_text(r.p)]
            cells += [signed(spec, by_seed[s]) if s in by_seed else MISSING for s in seeds]
            table.add_row(*(Text(c) for c in cells), key=str(i))

    def action_choose_metric(self) -> None:
        choices = [(key, f"{spec.label}  ({key})") for key, spec in self.metrics.items()]

        def chosen(key: str | None) -> None:
            if key:
                self.metric = key
                self.populate()

        self.app.push_screen(ChooseScreen("Compare which metric?", choices, self.metric), chosen)

    def action_back(self) -> None:
        self.app.pop_screen()
