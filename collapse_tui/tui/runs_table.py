"""Rows of the runs table and the comparison of runs, from run directories (no widgets here)."""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collapse_tui.config import K_METHODS
from collapse_tui.store import RunRecord, iter_events
from collapse_tui.tui.schema import flatten
from collapse_tui.tui.state import RunState

# The measurements first, so that a narrow terminal still shows them; date and dataset last.
COLUMNS = ("run", "status", "method", "k/λ", "dead %", "L0", "EV", "MIG", "dataset", "date")
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


def row_values(record: RunRecord) -> dict[str, Any]:
    """Sortable values of one row (None where the run has no such value)."""
    if record.error:
        name = record.run_id[_STAMP.match(record.run_id).end():].lstrip("-") if _STAMP.match(record.run_id) else ""
        return {c: None for c in COLUMNS} | {"run": name or record.run_id, "status": "unreadable",
                                             "date": run_date(record)}
    cfg, s, final = record.config, record.summary, _final(record)
    sae = cfg.get("sae") if isinstance(cfg.get("sae"), dict) else {}
    method = s.get("method") or sae.get("method")
    sparsity = s.get("sparsity")
    if sparsity is None and method:
        sparsity = sae.get("k") if method in K_METHODS else sae.get("l1_coefficient")
    dead = final.get("dead_fraction")
    return {
        "run": str(s.get("name") or cfg.get("name") or record.run_id),
        "status": record.status,
        "date": run_date(record),
        "dataset": s.get("dataset") or (cfg.get("data") or {}).get("dataset"),
        "method": method,
        "k/λ": sparsity,
        "dead %": None if dead is None else 100 * dead,
        "L0": final.get("l0"),
        "EV": final.get("explained_variance"),
        "MIG": final.get("mig"),
    }


def format_cell(column: str, value: Any) -> str:
    if value is None:
        return "–"
    if column == "k/λ":
        return f"{value:g}"
    if column == "dead %":
        return f"{value:.1f}"
    if column == "L0":
        return f"{value:.1f}"
    if column in ("EV", "MIG"):
        return f"{value:.3f}"
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

METRIC_ROWS = ("status", "dead_fraction", "l0", "mse", "explained_variance", "bce", "mig", "mig_vae",
               "specialized", "seconds")


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
            for event in iter_events(record.path):
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


def config_rows(runs: list[Compared], only_differing: bool = True) -> list[tuple[str, list[str]]]:
    """``(dotted key, [value per run])`` of the runs' configs; with ``only_differing``, keys whose
    values are not all equal."""
    flats = [flatten(r.record.config) for r in runs]
    keys: list[str] = []
    for flat in flats:
        keys.extend(k for k in flat if k not in keys)
    rows = []
    for key in keys:
        values = [flat.get(key) for flat in flats]
        if only_differing and all(v == values[0] for v in values):
            continue
        rows.append((key, ["–" if v is None else str(v) for v in values]))
    return rows


def _metric(c: Compared, key: str) -> Any:
    summary = c.record.summary
    if key == "status":
        return c.record.status
    if key == "seconds":
        return summary.get("seconds")
    final = _final(c.record)
    if key in final:
        return final[key]
    return (summary.get("vae") or {}).get("mig") if key == "mig_vae" else None


def metric_rows(runs: list[Compared]) -> list[tuple[str, list[str]]]:
    """Final metrics side by side: every ``dead@t`` the runs have, then the usual ones."""
    dead_keys: list[str] = []
    for c in runs:
        dead_keys.extend(k for k in _final(c.record) if k.startswith("dead@") and k not in dead_keys)
    rows = []
    for key in [*dead_keys, *METRIC_ROWS]:
        values = [_metric(c, key) for c in runs]
        if all(v is None for v in values):
            continue
        rows.append((key, [_fmt_metric(v) for v in values]))
    return rows


def _fmt_metric(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


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
    """One row per run: run id, label, differing config keys, final metrics (plain numbers)."""
    config = config_rows(runs, only_differing=True)
    metrics = metric_rows(runs)
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
