"""The results table of a sweep: one row per dataset × method × remedy × sparsity, mean ± std over seeds,
with the published numbers beside ours. Built from run records alone; written as Markdown and CSV
(``results.md``, ``results.csv``) into a sweep's directory, beside its ``sweep.json``, after each run,
so a sweep cut short still leaves the table of what it measured.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from collapse_tui.config import DATASET_NAMES, K_METHODS, PENALTY_METHODS
from collapse_tui.metrics.specs import DEAD, MISSING, SPECS, MetricSpec, csv_number, dead_keys, dead_spec
from collapse_tui.store import RunRecord, load_sweep, write_atomic

RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"

# Roy, Misra & Singh (2026), arXiv 2603.18056: dead neurons at k = 50 (mean ± std over seeds), and the
# specialized neurons left after sparsification (the method is not stated there).
PAPER_SOURCE = "Roy, Misra & Singh (2026), arXiv 2603.18056"
PAPER_DEAD_PCT = {
    ("dsprites", "topk"): (34.4, 0.9),
    ("shapes3d", "topk"): (62.7, 1.3),
    ("dsprites", "l1"): (41.7, 4.4),
    ("shapes3d", "l1"): (90.6, 0.5),
}
PAPER_SPECIALIZED = {"dsprites": 479, "shapes3d": 86}
PAPER_FINAL_K = 50

_DATASET_ORDER = DATASET_NAMES
_METHOD_ORDER = K_METHODS + PENALTY_METHODS  # the k-sparse methods first, then the penalised ones

# Every final metric after the dead@<t> columns, which already hold the dead fraction at each threshold.
_METRICS = tuple(s for s in SPECS if s.in_final and s is not DEAD)


def remedy_label(record: RunRecord) -> str:
    """What a run changed against the plain method: its remedies, and a SAE input other than the default."""
    names = list(record.summary.get("remedies") or [])
    source = record.summary.get("source")
    if source and source != "encoder_hidden":
        names.append(str(source).replace("_", " "))
    return " + ".join(names) if names else "none"


@dataclass
class Row:
    """One table row: the runs that differ only in seed, and their metrics."""

    dataset: str
    method: str
    remedy: str
    sparsity: float
    seeds: list[int] = field(default_factory=list)
    finals: list[dict[str, Any]] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)

    def values(self, key: str, scale: float = 1.0) -> list[float]:
        return [float(f[key]) * scale for f in self.finals if isinstance(f.get(key), (int, float))]

    def stat(self, key: str, scale: float = 1.0) -> tuple[float, float] | None:
        """Mean and sample standard deviation over the seeds (std 0 for one seed), None if never measured."""
        vals = self.values(key, scale)
        if not vals:
            return None
        std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        return float(np.mean(vals)), std

    @property
    def paper_dead(self) -> tuple[float, float] | None:
        if self.remedy != "none" or (self.method == "topk" and self.sparsity != PAPER_FINAL_K):
            return None
        return PAPER_DEAD_PCT.get((self.dataset, self.method))

    @property
    def paper_specialized(self) -> int | None:
        return PAPER_SPECIALIZED.get(self.dataset) if self.paper_dead is not None else None


def build_rows(records: Iterable[RunRecord]) -> tuple[list[Row], list[RunRecord]]:
    """Group finished runs into rows; returns the rows and the runs left out (not finished ok)."""
    rows: dict[tuple, Row] = {}
    left_out = []
    for rec in records:
        s = rec.summary
        if rec.error or s.get("status") != "ok":
            left_out.append(rec)
            continue
        key = (s.get("dataset", "?"), s.get("method", "?"), remedy_label(rec), float(s.get("sparsity") or 0.0))
        row = rows.setdefault(key, Row(*key))
        row.seeds.append(int(rec.config.get("seed", 0)))
        row.finals.append(dict(s.get("final") or {}))
        row.run_ids.append(rec.run_id)

    def order(row: Row):
        d = _DATASET_ORDER.index(row.dataset) if row.dataset in _DATASET_ORDER else len(_DATASET_ORDER)
        m = _METHOD_ORDER.index(row.method) if row.method in _METHOD_ORDER else len(_METHOD_ORDER)
        return d, row.dataset, m, row.method, row.remedy != "none", row.remedy, row.sparsity

    return sorted(rows.values(), key=order), left_out


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
    return f"k={row.sparsity:g}" if row.method in K_METHODS else f"λ={row.sparsity:g}"


def _measured(rows: list[Row]) -> list[MetricSpec]:
    """The metrics some run of ``rows`` has: a sweep without extended epochs or schedules should not
    carry columns of dashes for them."""
    return [m for m in _METRICS if any(m.key in final for row in rows for final in row.finals)]


def table_columns(rows: list[Row]) -> list[str]:
    return ["dataset", "method", "remedy", "k / λ", "seeds", *(m.label for m in _dead_specs(rows)),
            *(m.label for m in _measured(rows)), f"paper {DEAD.label}", "paper spec."]


def markdown_table(rows: list[Row]) -> str:
    """The table as GitHub Markdown, mean ± std over seeds; metrics no run measured are left out."""
    columns = table_columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    shown = _dead_specs(rows) + _measured(rows)
    for row in rows:
        n = len(row.finals)
        cells = [row.dataset, row.method, row.remedy, _sparsity(row), str(n)]
        cells += [_fmt(m, row.stat(m.key, m.scale), n) for m in shown]
        paper = row.paper_dead
        cells.append(f"{paper[0]:.1f} ± {paper[1]:.1f}" if paper else "")
        cells.append(str(row.paper_specialized) if row.paper_specialized is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: list[Row]) -> str:
    """The table as CSV: a mean and a std column per metric, one row per group, run ids last."""
    metrics = _dead_specs(rows) + list(_METRICS)
    header = ["dataset", "method", "remedy", "sparsity", "n_seeds", "seeds"]
    for m in metrics:
        header += [f"{m.csv_name}_mean", f"{m.csv_name}_std"]
    header += ["paper_dead_pct_mean", "paper_dead_pct_std", "paper_specialized", "runs"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        line: list[Any] = [row.dataset, row.method, row.remedy, f"{row.sparsity:g}", len(row.finals),
                           " ".join(map(str, row.seeds))]
        for m in metrics:
            stat = row.stat(m.key, m.scale)
            line += [csv_number(v) for v in (stat or (None, None))]
        paper = row.paper_dead
        line += [paper[0], paper[1]] if paper else ["", ""]
        line += [row.paper_specialized if row.paper_specialized is not None else "", " ".join(row.run_ids)]
        writer.writerow(line)
    return out.getvalue()


def report_markdown(rows: list[Row], left_out: list[RunRecord], title: str) -> str:
    """The table with the notes a reader needs to read it."""
    parts = [f"# {title}\n", markdown_table(rows) if rows else "No run has finished yet.\n"]
    notes = [
        "dead % @t: neurons whose activation never exceeds t on the evaluation set; mean ± std over seeds.",
        "spec. dense: specialized neurons after the first epoch, before the schedule sparsified the SAE "
        "(only for runs with a schedule); spec.: at the end. A specialized neuron (our definition) is a live "
        "neuron whose normalised MI with one factor is ≥ τ and at least twice that with any other factor.",
        "revived / newly dead: neurons dead before the extended epochs and alive after them, and the other "
        "way round (runs with extended epochs).",
        f"paper: {PAPER_SOURCE}, at k = {PAPER_FINAL_K} (L1 at a comparable sparsity); the paper does not say "
        "which method its specialized-neuron counts come from.",
    ]
    parts.append("\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    if left_out:
        parts.append("\nNot in the table (not finished ok): "
                     + ", ".join(f"{r.run_id} ({r.status})" for r in left_out) + "\n")
    return "".join(parts)


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
