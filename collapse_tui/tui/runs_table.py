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
METRIC_COLUMNS = {s.label: s for s in map(spec, HEADLINE_KEYS)}
# The measurements first, so that a narrow terminal still shows them; date and dataset last.
COLUMNS = ("run", "status", "method", "k/λ", *METRIC_COLUMNS, "sweep", "dataset", "date")
_STAMP = re.compile(r"^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})")


def run_started(record: RunRecord) -> str:
    """When the run started, ``YYYY-MM-DD HH:MM`` (it sorts as text): from its directory name's timestamp
    (what the store wrote), else the summary; "" when neither says."""
    m = _STAMP.match(record.run_id)
    if m:
        y, mo, d, h, mi, _ = m.groups()
        return f"{y}-{mo}-{d} {h}:{mi}"
    started = record.summary.get("started")
    if isinstance(started, (int, float)) and not isinstance(started, bool):
        try:
            return time.strftime("%Y-%m-%d %H:%M", time.localtime(started))
        except (OverflowError, OSError, ValueError):
            return ""
    return ""


# Within this many seconds a date reads as an age (``2 h ago``); beyond, or in the future, in full.
RELATIVE_FOR = 7 * 24 * 3600


def shown_date(started: str, now: float | None = None) -> str:
    """A ``YYYY-MM-DD HH:MM`` start as the table shows it: ``5 min ago``, ``2 h ago``, ``3 d ago`` within a
    week, else as it is."""
    try:
        stamp = time.mktime((int(started[:4]), int(started[5:7]), int(started[8:10]), int(started[11:13]),
                             int(started[14:16]), 0, 0, 0, -1))
    except (ValueError, OverflowError, IndexError):
        return started
    age = (time.time() if now is None else now) - stamp
    if not 0 <= age < RELATIVE_FOR:
        return started
    if age < 3600:
        return f"{int(age // 60)} min ago"
    if age < 86400:
        return f"{int(age // 3600)} h ago"
    return f"{int(age // 86400)} d ago"


def _final(record: RunRecord) -> dict[str, Any]:
    final = record.summary.get("final")
    return final if isinstance(final, dict) else {}


# Between a sweep's name and its start in the sweep column: never part of a name the sweep chose.
SWEEP_SEP = "·"


def sweep_label(sweep_dir: Path, name: str) -> str:
    """How the runs table names a sweep: its name and when it started (``quick·12-01 19:42``)."""
    m = _STAMP.match(sweep_dir.name)
    return f"{name}{SWEEP_SEP}{m.group(2)}-{m.group(3)} {m.group(4)}:{m.group(5)}" if m else name


def sweep_index(runs_dir: str | Path) -> dict[str, tuple[Path, str]]:
    """``run directory name -> (sweep directory, its label)`` for the sweeps in ``runs_dir/sweeps``; a run
    recorded by several sweeps (one resumed into another) belongs to the newest. Two sweeps whose labels
    would read alike (one name, one minute of different years) are told apart by ``·2``, ``·3``... after
    the later one's."""
    from collapse_tui.store import load_sweep, sweep_dirs

    index: dict[str, tuple[Path, str]] = {}
    taken: set[str] = set()
    for sweep_dir in sweep_dirs(runs_dir):
        try:
            record = load_sweep(sweep_dir)
        except ValueError:
            continue
        label = base = sweep_label(sweep_dir, record.name)
        n = 2
        while label in taken:
            label, n = f"{base}{SWEEP_SEP}{n}", n + 1
        taken.add(label)
        for run in record.runs:
            index[Path(run).name] = (sweep_dir, label)
    return index


def row_values(record: RunRecord, sweep: str | None = None) -> dict[str, Any]:
    """Sortable values of one row (None where the run has no such value); ``sweep``: the label of the
    sweep it belongs to."""
    if record.error:
        name = record.run_id[_STAMP.match(record.run_id).end():].lstrip("-") if _STAMP.match(record.run_id) else ""
        return {c: None for c in COLUMNS} | {"run": name or record.run_id, "status": "unreadable",
                                             "date": run_started(record), "sweep": sweep}
    cfg, s = record.config, record.summary
    sae = cfg.get("sae") if isinstance(cfg.get("sae"), dict) else {}
    method = s.get("method") or sae.get("method")
    sparsity = s.get("sparsity")
    if sparsity is None and method:
        sparsity = sae.get("k") if method in K_METHODS else sae.get("l1_coefficient")
    return {
        "run": str(s.get("name") or cfg.get("name") or record.run_id),
        "status": record.status,
        "date": run_started(record),
        "sweep": sweep,
        "dataset": s.get("dataset") or (cfg.get("data") or {}).get("dataset"),
        "method": method,
        "k/λ": sparsity,
        **{column: _metric(m, s) for column, m in METRIC_COLUMNS.items()},
    }


def _metric(m: MetricSpec, summary: dict[str, Any]) -> Any:
    """A metric's value in a run summary; "n/a" where the run cannot have it (a factor metric, no factors)."""
    value = m.value(summary)
    final = summary.get("final")
    return NOT_APPLICABLE if value is None and isinstance(final, dict) and m.not_applicable([final]) else value


def format_cell(column: str, value: Any) -> str:
    """A cell's text; metrics as their spec shows them (a raw fraction in, a percentage out)."""
    if column in METRIC_COLUMNS:
        return METRIC_COLUMNS[column].format(value)
    if value is None:
        return MISSING
    if column == "k/λ":
        return f"{value:g}" if isinstance(value, (int, float)) else str(value)
    if column == "date":
        return shown_date(str(value))
    return str(value)


# What each column of the runs table holds, in a line (the metrics' lines are their specs' descriptions).
_LEGENDS = {
    "run": "The run's name (✓: marked for comparison with space).",
    "status": "ok, running, stopped, failed, crashed (its process is gone), suspect (flagged final metrics) "
              "or unreadable.",
    "method": "The SAE's sparsity method.",
    "k/λ": "The run's sparsity: k of a k-sparse method, else the penalty's coefficient λ.",
    "sweep": "The sweep that ran it: its name·the day and minute it started.",
    "dataset": "The dataset the VAE and SAE were trained on.",
    "date": "When the run started: its age within a week, else the date.",
}


def legend(column: str) -> str:
    """One line saying what ``column`` of the runs table holds."""
    if column in METRIC_COLUMNS:
        m = METRIC_COLUMNS[column]
        return m.description or m.label
    return _LEGENDS.get(column, "")


def sort_key(value: Any) -> tuple:
    """Missing values last; numbers by value; text case-insensitively."""
    if value is None:
        return (2, 0, "")
    if isinstance(value, (int, float)):
        return (0, float(value), "")
    return (1, 0, str(value).lower())


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


def row_legends(runs: list[Compared]) -> dict[str, str]:
    """What each row of the comparison holds, one line each: a metric's description by its label (as
    :func:`metric_rows` titles it), a config key's from the schema."""
    from collapse_tui.tui.schema import form_fields

    return ({f.path: f.description for f in form_fields()}
            | {m.label: m.description for m, _ in _measured(runs) if m.description}
            | {"status": "How the run ended: ok, stopped, failed, crashed, or running."})


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
