"""Rows of the runs table and the comparison of runs, from run directories (no widgets here)."""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collapse_tui.config import K_METHODS, flatten
from collapse_tui.metrics.specs import MISSING, NOT_APPLICABLE, SPECS, MetricSpec, csv_number, dead_keys, dead_spec, spec
from collapse_tui.report import HEADLINE_KEYS, unused_settings
from collapse_tui.store import RunRecord
from collapse_tui.tui.event_checks import read_run_events
from collapse_tui.tui.state import RunState

# The measurements the runs table shows, keyed by their column titles.
_METRIC_COLUMNS = {s.label: s for s in map(spec, HEADLINE_KEYS)}
# The measurements first, so that a narrow terminal still shows them; date and dataset last.
COLUMNS = ("run", "status", "method", "k/λ", *_METRIC_COLUMNS, "sweep", "dataset", "date")
_STAMP = re.compile(r"^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})")


def run_date(record: RunRecord) -> str:
    """When the run started: from its directory name's timestamp (what the store wrote), else the summary."""
    m = _STAMP.match(record.run_id)
    if m:
        y, mo, d, h, mi, _ = m.groups()
        return f"{y[2:]}-{mo}-{d} {h}:{mi}"
    started = record.summary.get("started")
    if isinstance(started, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(started))
    return ""


def _final(record: RunRecord) -> dict[str, Any]:
    final = record.summary.get("final")
    return final if isinstance(final, dict) else {}


def sweep_label(sweep_dir: Path, name: str) -> str:
    """How the runs table names a sweep: its name and when it started (``quick 12-01 19:42``)."""
    m = _STAMP.match(sweep_dir.name)
    return f"{name} {m.group(2)}-{m.group(3)} {m.group(4)}:{m.group(5)}" if m else name


def sweep_index(runs_dir: str | Path) -> dict[str, tuple[Path, str]]:
    """``run directory name -> (sweep directory, its label)`` for the sweeps in ``runs_dir/sweeps``; a run
    recorded by several sweeps (one resumed into another) belongs to the newest."""
    from collapse_tui.store import load_sweep, sweep_dirs

    index: dict[str, tuple[Path, str]] = {}
    for sweep_dir in sweep_dirs(runs_dir):
        try:
            record = load_sweep(sweep_dir)
        except ValueError:
            continue
        for run in record.runs:
            index[Path(run).name] = (sweep_dir, sweep_label(sweep_dir, record.name))
    return index


def row_values(record: RunRecord, sweep: str | None = None) -> dict[str, Any]:
    """Sortable values of one row (None where the run has no such value); ``sweep``: the label of the
    sweep it belongs to."""
    if record.error:
        name = record.run_id[_STAMP.match(record.run_id).end():].lstrip("-") if _STAMP.match(record.run_id) else ""
        return {c: None for c in COLUMNS} | {"run": name or record.run_id, "status": "unreadable",
                                             "date": run_date(record), "sweep": sweep}
    cfg, s = record.config, record.summary
    sae = cfg.get("sae") if isinstance(cfg.get("sae"), dict) else {}
    method = s.get("method") or sae.get("method")
    sparsity = s.get("sparsity")
    if sparsity is None and method:
        sparsity = sae.get("k") if method in K_METHODS else sae.get("l1_coefficient")
    return {
        "run": str(s.get("name") or cfg.get("name") or record.run_id),
        "status": record.status,
        "date": run_date(record),
        "sweep": sweep,
        "dataset": s.get("dataset") or (cfg.get("data") or {}).get("dataset"),
        "method": method,
        "k/λ": sparsity,
        **{column: _metric(m, s) for column, m in _METRIC_COLUMNS.items()},
    }


def _metric(m: MetricSpec, summary: dict[str, Any]) -> Any:
    """A metric's value in a run summary; "n/a" where the run cannot have it (a factor metric, no factors)."""
    value = m.value(summary)
    final = summary.get("final")
    return NOT_APPLICABLE if value is None and isinstance(final, dict) and m.not_applicable([final]) else value


def format_cell(column: str, value: Any) -> str:
    """A cell's text; metrics as their spec shows them (a raw fraction in, a percentage out)."""
    if column in _METRIC_COLUMNS:
        return _METRIC_COLUMNS[column].format(value)
    if value is None:
        return MISSING
    if column == "k/λ":
        return f"{value:g}"
    return str(value)


def sort_key(value: Any) -> tuple:
    """Missing values last; numbers by value; text case-insensitively."""
    if value is None:
        return (2, 0, "")
    if isinstance(value, (int, float)):
        return (0, float(value), "")
    return (1, 0, str(value).lower())


def matches(values: dict[str, Any], text: str) -> bool:
    """Does any cell of the row contain ``text`` (case-insensitive)? Every word must match somewhere."""
    cells = " ".join(format_cell(c, values.get(c)) for c in COLUMNS).lower()
    return all(word in cells for word in text.lower().split())


# ---------------------------------------------------------------------- comparison


@dataclass
class Compared:
    """A run read for comparison: record, its events folded, and a short label."""

    record: RunRecord
    state: RunState
    label: str


def load_compared(records: list[RunRecord]) -> list[Compared]:
    out = []
    for record in records:
        state = RunState()
        try:
            for event in read_run_events(record.path)[0]:  # checked: a damaged event is left out, said so
                state.apply(event)
        except (OSError, ValueError):
            pass  # a run whose events cannot be read still compares by config and summary
        label = str(record.summary.get("name") or record.run_id)
        out.append(Compared(record, state, label))
    # Sweep runs often share a name prefix: labels must still tell runs apart.
    seen: dict[str, int] = {}
    for c in out:
        seen[c.label] = seen.get(c.label, 0) + 1
    for c in out:
        if seen[c.label] > 1:
            c.label = c.record.run_id
    return out


# How the comparison shows a setting that has no effect in a run (an L1 run's k, AuxK's settings without
# AuxK): not a difference between runs.
UNUSED = "n/a"


def config_rows(runs: list[Compared], only_differing: bool = True) -> list[tuple[str, list[str]]]:
    """``(dotted key, [value per run])`` of the runs' configs, a setting a run does not use shown as
    :data:`UNUSED` (:func:`~collapse_tui.report.unused_settings`); with ``only_differing``, keys whose
    values differ among the runs that use them."""
    flats = [flatten(r.record.config) for r in runs]
    unused = [unused_settings(r.record.config) for r in runs]
    keys: list[str] = []
    for flat in flats:
        keys.extend(k for k in flat if k not in keys)
    rows = []
    for key in keys:
        values = [flat.get(key) for flat in flats]
        used = [v for v, off in zip(values, unused) if key not in off]
        if only_differing and all(v == used[0] for v in used):
            continue
        rows.append((key, [UNUSED if key in off else MISSING if v is None else str(v)
                           for v, off in zip(values, unused)]))
    return rows


def _measured(runs: list[Compared]) -> list[tuple[MetricSpec, list[Any]]]:
    """``(spec, [raw value per run])``: every ``dead@t`` the runs have, then every metric of the one
    vocabulary; metrics no run has are left out."""
    specs = [*map(dead_spec, dead_keys(_final(c.record) for c in runs)), *SPECS]
    rows = [(m, [m.value(c.record.summary) for c in runs]) for m in specs]
    return [(m, values) for m, values in rows if any(v is not None for v in values)]


def metric_rows(runs: list[Compared]) -> list[tuple[str, list[str]]]:
    """The runs' status, then their final metrics side by side, titled and formatted as every table
    shows them (dead % as a percentage)."""
    return [("status", [c.record.status for c in runs]),
            *((m.label, [m.format(v) for v in values]) for m, values in _measured(runs))]


def to_markdown(runs: list[Compared], only_differing: bool = True) -> str:
    """The comparison as Markdown: a config table (differing keys) and a final-metrics table."""
    head = "| key | " + " | ".join(c.label for c in runs) + " |"
    rule = "|---|" + "---|" * len(runs)

    def table(rows):
        return "\n".join([head, rule, *("| " + key + " | " + " | ".join(vals) + " |" for key, vals in rows)])

    title = "config (keys that differ)" if only_differing else "config"
    parts = ["# Run comparison", "", "runs: " + ", ".join(f"`{c.record.run_id}`" for c in runs), "",
             f"## {title}", "", table(config_rows(runs, only_differing)), "",
             "## final metrics", "", table(metric_rows(runs)), ""]
    return "\n".join(parts)


def to_csv(runs: list[Compared]) -> str:
    """One row per run: run id, label, differing config keys, final metrics (plain numbers, scaled and
    named as the sweep table's CSV has them: ``dead_pct@0``)."""
    config = config_rows(runs, only_differing=True)
    metrics = [("status", [c.record.status for c in runs]),
               *((m.csv_name, [csv_number(m.scaled(v)) for v in values]) for m, values in _measured(runs))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["run_id", "label", *(k for k, _ in config), *(k for k, _ in metrics)])
    for i, c in enumerate(runs):
        writer.writerow([c.record.run_id, c.label, *(v[i] for _, v in config), *(v[i] for _, v in metrics)])
    return buffer.getvalue()


def export_path(directory: str | Path, suffix: str) -> Path:
    """A new ``compare-<timestamp><suffix>`` file in ``directory``; never an existing file. The
    exports of one moment share their stem whatever their format."""
    directory = Path(directory)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"compare-{stamp}{suffix}"
    i = 2
    while path.exists():
        path = directory / f"compare-{stamp}-{i}{suffix}"
        i += 1
    return path
