"""The rows written out: Markdown and CSV tables with their notes, a run's line of ``runs.jsonl``, and a
sweep directory's results files."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Iterable

from collapse_tui.config import sparsity_label
from collapse_tui.metrics.specs import (
    DEAD,
    MISSING,
    MetricSpec,
    csv_number,
    dead_keys,
    dead_spec,
    is_frequency_key,
    is_threshold_key,
)
from collapse_tui.report.paper import PAPER_FINAL_K, PAPER_SOURCE
from collapse_tui.report.rows import TABLE_METRICS, Row, build_rows, experiment_settings
from collapse_tui.store import RunRecord, load_sweep, write_atomic
from collapse_tui.store.layout import RESULTS_CSV, RESULTS_MD


def _dead_specs(rows: list[Row]) -> list[MetricSpec]:
    """The dead@ columns measured, in the order of the first run that has them."""
    return [dead_spec(k) for k in dead_keys(f for row in rows for f in row.finals)]


def _fmt(spec: MetricSpec, stat: tuple[float, float] | None, n: int) -> str:
    """Mean ± std over the seeds (the mean alone for one seed), as the spec shows a value."""
    if stat is None or not math.isfinite(stat[0]):
        return MISSING
    mean, std = stat
    return f"{spec.text(mean)} ± {spec.text(std)}" if n > 1 else spec.text(mean)


def _sparsity(row: Row) -> str:
    return sparsity_label(row.method, row.sparsity)


def _measured(rows: list[Row]) -> list[MetricSpec]:
    """The metrics some run of ``rows`` has: a sweep without extended epochs or schedules should not
    carry columns of dashes for them."""
    return [m for m in TABLE_METRICS if any(m.key in final for row in rows for final in row.finals)]


def _labelled(rows: list[Row]) -> bool:
    """Whether the table needs its setting column: some rows differ in more than the other columns show."""
    return any(row.setting for row in rows)


def _cites_paper(rows: list[Row]) -> bool:
    """Whether the table has the paper's columns: only when some row has the paper's number beside it."""
    return any(row.paper_dead is not None for row in rows)


def table_columns(rows: list[Row]) -> list[str]:
    return ["dataset", "method", "remedy", "k / λ", *(["setting"] if _labelled(rows) else []), "seeds",
            *(m.label for m in _dead_specs(rows)), *(m.label for m in _measured(rows)),
            *([f"paper {DEAD.label}", "paper spec."] if _cites_paper(rows) else [])]


def table_cells(rows: list[Row]) -> tuple[list[str], list[list[str]], list[list[Any]]]:
    """The table's columns (:func:`table_columns`) and, per row, its cells as text and as values to sort
    by (a metric's mean over the seeds, None where not measured; the text itself elsewhere, k / λ as a
    number)."""
    columns = table_columns(rows)
    shown = _dead_specs(rows) + _measured(rows)
    labelled, cites = _labelled(rows), _cites_paper(rows)
    texts, values = [], []
    for row in rows:
        n = len(row.finals)
        cells = [row.dataset, row.method, row.remedy, _sparsity(row)]
        keys: list[Any] = [row.dataset, row.method, row.remedy, row.sparsity]
        if labelled:
            cells.append(row.setting)
            keys.append(row.setting)
        cells.append(str(n))
        keys.append(n)
        for m in shown:
            stat = row.stat(m.key, m.scale)
            cells.append(_fmt(m, stat, n))
            keys.append(stat[0] if stat else None)
        if cites:
            paper = row.paper_dead
            cells.append(f"{paper[0]:.1f} ± {paper[1]:.1f}" if paper else "")
            cells.append(str(row.paper_specialized) if row.paper_specialized is not None else "")
            keys += [paper[0] if paper else None, row.paper_specialized]
        texts.append(cells)
        values.append(keys)
    return columns, texts, values


def markdown_table(rows: list[Row]) -> str:
    """The table as GitHub Markdown, mean ± std over seeds; metrics no run measured are left out, the
    setting column too when no two rows differ in a setting the other columns do not show, and the
    paper's columns when no row corresponds to the paper's experiment."""
    columns, texts, _ = table_cells(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for cells in texts:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: list[Row]) -> str:
    """The table as CSV: the rows of the Markdown table (``setting`` always there, empty where no label
    is needed), a mean and a std column per metric, run ids last."""
    metrics = _dead_specs(rows) + list(TABLE_METRICS)
    header = ["dataset", "method", "remedy", "sparsity", "setting", "n_seeds", "seeds"]
    for m in metrics:
        header += [f"{m.csv_name}_mean", f"{m.csv_name}_std"]
    header += ["paper_dead_pct_mean", "paper_dead_pct_std", "paper_specialized", "runs"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        line: list[Any] = [row.dataset, row.method, row.remedy, f"{row.sparsity:g}", row.setting,
                           len(row.finals), " ".join(map(str, row.seeds))]
        for m in metrics:
            stat = row.stat(m.key, m.scale)
            line += [csv_number(v) for v in (stat or (None, None))]
        paper = row.paper_dead
        line += [paper[0], paper[1]] if paper else ["", ""]
        line += [row.paper_specialized if row.paper_specialized is not None else "", " ".join(row.run_ids)]
        writer.writerow(line)
    return out.getvalue()


_SPECIALIZED = ("A specialized neuron (our definition) is a live neuron whose normalised MI with one factor is ≥ τ "
                "and at least twice that with any other factor.")


def table_notes(rows: list[Row]) -> list[str]:
    """The notes of the columns the table has, and of no other."""
    if not rows:
        return []
    keys = {m.key for m in _dead_specs(rows) + _measured(rows)}
    notes = []
    if any(is_threshold_key(k) for k in keys):
        notes.append("dead % @t: neurons whose activation never exceeds t on the evaluation set; "
                     "mean ± std over seeds.")
    else:
        notes.append("mean ± std over seeds.")
    if any(is_frequency_key(k) for k in keys):
        notes.append("dead % f<f: neurons firing on fewer than a fraction f of the evaluation inputs.")
    if _labelled(rows):
        notes.append("setting: what else these rows' runs were set to, where rows of one dataset, method and "
                     "remedy differ (config.yaml's keys; data: the images' fingerprint). A row holds only runs "
                     "identical but for their seed.")
    paper = [row for row in rows if row.paper_dead is not None]
    if "dead_before_extension" in keys:
        notes.append("dead % sched. end: dead at the end of the schedule, before the extended epochs (the other "
                     "dead % columns are after them).")
    if "dead_change_last_20pct" in keys:
        notes.append("Δdead last 20%: percentage points the dead fraction moved over the last 20% of the "
                     "optimiser updates, at the final sparsity (a plateau: under 1).")
    if "specialized_before_sparsification" in keys:
        notes.append("spec. dense: specialized neurons after the first epoch, before the schedule sparsified "
                     "the SAE (only for runs with a schedule).")
    if "specialized" in keys or paper:
        notes.append(f"spec.: specialized neurons at the end. {_SPECIALIZED}")
    if "revived" in keys:
        notes.append("revived: neurons dead before the extended epochs that fire afterwards on at least "
                     "eval.revival_frequency (1e-3 by default) of the evaluation inputs.")
    if "newly_dead" in keys:
        notes.append("newly dead: neurons alive before the extended epochs and dead after them.")
    if "updates" in keys:
        notes.append("updates: the SAE's optimiser updates in all.")
    if paper:
        where = []
        if any(row.method == "topk" for row in paper):
            where.append(f"Top-k at k = {PAPER_FINAL_K}")
        if any(row.method == "l1" for row in paper):
            where.append(f"L1 beside the λ whose mean L0 is closest to {PAPER_FINAL_K}")
        notes.append(f"paper: {PAPER_SOURCE}; {' and '.join(where)}, without remedies; the paper does not say "
                     "which method its specialized-neuron counts come from.")
    return notes


def report_markdown(rows: list[Row], left_out: list[RunRecord], title: str) -> str:
    """The table with the notes a reader needs to read it (:func:`table_notes`)."""
    parts = [f"# {title}\n", markdown_table(rows) if rows else "No run has finished yet.\n"]
    notes = table_notes(rows)
    if notes:
        parts.append("\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    if left_out:
        parts.append("\nNot in the table (not finished ok, or flagged as no result): "
                     + ", ".join(f"{r.run_id} ({'; '.join([r.status, *r.flags])})" for r in left_out) + "\n")
    return "".join(parts)


def run_line(record: RunRecord) -> dict[str, Any]:
    """One finished run as a line of ``runs.jsonl``: its directory's name, status and flags, seed and the
    k / λ in effect, the settings that define its experiment (:func:`experiment_settings`, the row it
    belongs to) and its final metrics."""
    summary = record.summary
    return {"run": record.run_id, "status": record.status, "flags": list(record.flags),
            "seed": record.config.get("seed"), "sparsity": summary.get("sparsity"),
            "settings": experiment_settings(record), "final": dict(summary.get("final") or {})}


def write_report(directory: str | Path, records: Iterable[RunRecord], title: str) -> tuple[Path, Path]:
    """Write results.md and results.csv into ``directory``; returns their paths."""
    directory = Path(directory)
    rows, left_out = build_rows(records)
    md, csv_path = directory / RESULTS_MD, directory / RESULTS_CSV
    write_atomic(md, report_markdown(rows, left_out, title))
    write_atomic(csv_path, csv_table(rows))
    return md, csv_path


def sweep_title(path: str | Path) -> str:
    """The heading of a sweep's table: its name as recorded, so that --table writes the same file again."""
    try:
        name = load_sweep(path).name
    except ValueError:
        name = Path(path).name
    return table_title(name)


def table_title(name: str) -> str:
    return f"{name}: results"
