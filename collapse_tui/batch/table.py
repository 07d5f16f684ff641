"""The tables ``--batch`` prints: the runs' results fitted to the terminal, and the plan of a dry run.

Fitting drops whole columns, least needed first, until the table is as wide as the console at most:
a cell is never wrapped (a run name broken over two lines is hard to scan, a number broken is wrong).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from collapse_tui.batch.console import duration
from collapse_tui.config.vocabulary import sparsity_label
from collapse_tui.metrics.specs import DEAD, dead_spec, spec, threshold_key
from collapse_tui.store import SUSPECT

_STATUS_STYLE = {"ok": "green", "failed": "red", "stopped": "yellow", SUSPECT: "yellow"}


def _status(result) -> str:
    return SUSPECT if result.status == "ok" and result.summary.get("flags") else result.status


def _sae_time(summary: dict[str, Any]) -> str:
    seconds = (summary.get("durations") or {}).get("sae")
    return duration(seconds) if seconds else "–"


def _columns(results, thresholds: Sequence[float]) -> list[tuple[str, int, Callable[[Any], str]]]:
    """``(header, priority, cell)`` of every column the table may show; the lower the priority, the
    sooner the column goes when the table is too wide (the run's name is never dropped)."""
    first, *others = [dead_spec(threshold_key(t)) for t in thresholds] or [DEAD]
    columns = [
        ("run", 99, lambda r: r.summary.get("name", r.run_dir.name)),
        ("method", 8, lambda r: str(r.summary.get("method", ""))),
        ("k / λ", 9, lambda r: sparsity_label(r.summary.get("method"), r.summary.get("sparsity", 0))),
    ]
    if any(_status(r) != "ok" for r in results):
        columns.append(("status", 10, lambda r: f"[{_STATUS_STYLE.get(_status(r), '')}]{_status(r)}[/]"))
    columns.append((first.label, 10, lambda r, s=first: s.format(s.value(r.summary))))
    for key, priority in (("l0", 7), ("explained_variance", 6), ("mig", 4), ("specialized", 3)):
        m = spec(key)
        columns.append((m.label, priority, lambda r, m=m: m.format(m.value(r.summary))))
    columns += [(d.label, 2, lambda r, d=d: d.format(d.value(r.summary))) for d in others]
    columns.append((spec("mig_vae").label, 1, lambda r, m=spec("mig_vae"): m.format(m.value(r.summary))))
    columns.append(("sae time", 0, lambda r: _sae_time(r.summary)))
    return columns


def _build(results, columns, caption: str) -> Table:
    table = Table(title="Runs", caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
    for header, _, _ in columns:
        table.add_column(header, no_wrap=True, justify="left" if header in ("run", "method", "status") else "right")
    for r in results:
        table.add_row(*(cell(r) for _, _, cell in columns))
    return table


def results_table(results, thresholds: Sequence[float], console: Console) -> Table:
    """One row per run, the final metrics side by side, as many columns as fit ``console``'s width."""
    columns = _columns(results, thresholds)
    while True:
        caption = f"{DEAD.label} @t: neurons never above t on the evaluation set"
        if any(header == "sae time" for header, _, _ in columns):
            caption += "; sae time: its training and evaluation (a bank's runs share theirs)"
        if any(_status(r) == SUSPECT for r in results):
            caption += f"; {SUSPECT}: finished, but its final metrics are no result"
        table = _build(results, columns, caption)
        droppable = [c for c in columns if c[1] < 99]
        wide = Measurement.get(console, console.options.update_width(1_000_000), table).maximum
        if wide <= console.width or not droppable:
            return table
        columns.remove(min(reversed(droppable), key=lambda c: c[1]))  # of equals, the rightmost goes first


def plan_lines(configs: Sequence, banks: Sequence[Sequence[int]]) -> list[str]:
    """A dry run's plan: a line per run (its name, method, k or λ, seed and bank), in the order they run."""
    bank_of = {i: b for b, bank in enumerate(banks, 1) for i in bank}
    width = max((len(c.name) for c in configs), default=0)
    lines = []
    for i, cfg in enumerate(configs):
        sparsity = sparsity_label(cfg.sae.method, cfg.sparsity)
        lines.append(f"{i + 1:>4}  {cfg.name:<{width}}  {cfg.sae.method:<9} {sparsity:<9} seed {cfg.seed:<3} "
                     f"bank {bank_of.get(i, '?')}")
    return lines


# A sweep table's columns a reader needs first; the others follow while the terminal has room.
KEY_COLUMNS = ("dataset", "method", "remedy", "k / λ", "setting", "seeds", DEAD.label, "L0", "EV")


def sweep_table(rows, console: Console, columns: Sequence[str] | None = None, show_all: bool = False) -> Table:
    """A sweep's table (:func:`~collapse_tui.report.table_cells`: mean ± std over seeds) for the terminal:
    the key columns first, then as many of the others as fit ``console``; ``columns``: exactly these
    (headers, in this order; ValueError naming an unknown one); ``show_all``: every column, unfitted.
    Unless columns are named, a descriptive column with one value in every row (one dataset, no remedy)
    is said once in the table's title instead."""
    from collapse_tui.report import table_cells

    headers, texts, _ = table_cells(rows)
    common = {}
    if columns is None and len(texts) > 1:
        common = {h: texts[0][i] for i, h in enumerate(headers)
                  if h in ("dataset", "method", "remedy") and len({cells[i] for cells in texts}) == 1}
    dead_first = next((h for h in headers if h.startswith(DEAD.label)), None)
    keys = [dead_first if k == DEAD.label else k for k in KEY_COLUMNS]
    if columns is not None:
        unknown = [c for c in columns if c not in headers]
        if unknown:
            raise ValueError(f"no column {', '.join(map(repr, unknown))}; the columns: {', '.join(headers)}")
        order = list(columns)
    else:
        order = [h for h in keys if h in headers and h not in common] + [h for h in headers if h not in keys]
    fixed = len(order) if columns is not None or show_all else sum(h in keys for h in order)
    title = "  ".join(f"{h}: {v}" for h, v in common.items()) or None
    while True:
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for h in order:
            table.add_column(h, no_wrap=True, justify="left" if h in KEY_COLUMNS[:5] else "right")
        for cells in texts:
            by_header = dict(zip(headers, cells))
            table.add_row(*(by_header[h] for h in order))
        if len(order) <= fixed or Measurement.get(console, console.options.update_width(1_000_000), table).maximum <= console.width:
            return table
        order.pop()  # the rightmost of the optional columns
