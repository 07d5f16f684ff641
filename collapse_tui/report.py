"""The results table of a sweep: one row per dataset × method × remedy × sparsity, mean ± std over seeds,
with the published numbers beside ours. Written as Markdown and CSV into the sweep's directory.

A sweep directory, ``<runs_dir>/sweeps/<timestamp>-<name>/``, holds

- ``sweep.json``: the config file it ran, and the run directories it made so far (updated after each run);
- ``results.md`` and ``results.csv``: the table over the runs finished so far (rewritten after each run),
  so a sweep cut short still leaves the table of what it measured.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from collapse_tui.store import RunRecord, create_run_dir, dumps, load_run, write_atomic

SWEEPS_DIR = "sweeps"
SWEEP_FILE = "sweep.json"
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

_DATASET_ORDER = ("dsprites", "shapes3d")
_METHOD_ORDER = ("topk", "batchtopk", "l1", "jumprelu")

# (key in the summary's "final", column title, scale, digits)
_METRICS = (
    ("l0", "L0", 1.0, 1),
    ("explained_variance", "EV", 1.0, 3),
    ("mse", "MSE", 1.0, 5),
    ("bce", "BCE", 1.0, 1),
    ("mig", "MIG", 1.0, 3),
    ("specialized_before_sparsification", "spec. dense", 1.0, 0),
    ("specialized", "spec.", 1.0, 0),
    ("revived", "revived", 1.0, 0),
    ("newly_dead", "newly dead", 1.0, 0),
)


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


def _thresholds(rows: list[Row]) -> list[str]:
    """The dead@ keys measured, in the order of the first run that has them."""
    keys: list[str] = []
    for row in rows:
        for final in row.finals:
            for k in final:
                if k.startswith("dead@") and k not in keys:
                    keys.append(k)
    return keys


def _fmt(stat: tuple[float, float] | None, digits: int, n: int) -> str:
    if stat is None or not math.isfinite(stat[0]):
        return "–"
    mean, std = stat
    text = f"{mean:.{digits}f}"
    return f"{text} ± {std:.{digits}f}" if n > 1 else text


def _sparsity(row: Row) -> str:
    return f"k={row.sparsity:g}" if row.method in ("topk", "batchtopk") else f"λ={row.sparsity:g}"


def _measured(rows: list[Row]) -> list[tuple[str, str, float, int]]:
    """The metrics some run of ``rows`` has: a sweep without extended epochs or schedules should not
    carry columns of dashes for them."""
    return [m for m in _METRICS if any(m[0] in final for row in rows for final in row.finals)]


def table_columns(rows: list[Row]) -> list[str]:
    dead = [f"dead % @{k[5:]}" for k in _thresholds(rows)]
    return ["dataset", "method", "remedy", "k / λ", "seeds", *dead, *(m[1] for m in _measured(rows)),
            "paper dead %", "paper spec."]


def markdown_table(rows: list[Row]) -> str:
    """The table as GitHub Markdown, mean ± std over seeds; metrics no run measured are left out."""
    columns = table_columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    dead_keys = _thresholds(rows)
    measured = _measured(rows)
    for row in rows:
        n = len(row.finals)
        cells = [row.dataset, row.method, row.remedy, _sparsity(row), str(n)]
        cells += [_fmt(row.stat(k, 100.0), 1, n) for k in dead_keys]
        cells += [_fmt(row.stat(key, scale), digits, n) for key, _, scale, digits in measured]
        paper = row.paper_dead
        cells.append(f"{paper[0]:.1f} ± {paper[1]:.1f}" if paper else "")
        cells.append(str(row.paper_specialized) if row.paper_specialized is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: list[Row]) -> str:
    """The table as CSV: a mean and a std column per metric, one row per group, run ids last."""
    dead_keys = _thresholds(rows)
    metric_keys = [(k, f"dead_pct@{k[5:]}", 100.0) for k in dead_keys] + [(k, k, s) for k, _, s, _ in _METRICS]
    header = ["dataset", "method", "remedy", "sparsity", "n_seeds", "seeds"]
    for _, name, _ in metric_keys:
        header += [f"{name}_mean", f"{name}_std"]
    header += ["paper_dead_pct_mean", "paper_dead_pct_std", "paper_specialized", "runs"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        line: list[Any] = [row.dataset, row.method, row.remedy, f"{row.sparsity:g}", len(row.finals),
                           " ".join(map(str, row.seeds))]
        for key, _, scale in metric_keys:
            stat = row.stat(key, scale)
            line += ["", ""] if stat is None else [f"{stat[0]:.6g}", f"{stat[1]:.6g}"]
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


class SweepRecorder:
    """Keeps a sweep's directory up to date: ``add`` each run as it ends, and the table follows."""

    def __init__(self, runs_dir: str | Path, name: str, config_path: str | None = None, n_runs: int = 0):
        self.path = create_run_dir(Path(runs_dir) / SWEEPS_DIR, name)
        self.name = name
        self.config_path = config_path
        self.n_runs = n_runs
        self.started = time.time()
        self.runs: list[str] = []
        self._write()

    def add(self, run_dir: str | Path) -> None:
        self.runs.append(str(Path(run_dir).resolve()))
        self._write()

    def _write(self) -> None:
        info = {"name": self.name, "config": self.config_path, "started": self.started, "updated": time.time(),
                "n_runs": self.n_runs, "runs": self.runs}
        write_atomic(self.path / SWEEP_FILE, dumps(info))
        write_report(self.path, sweep_records(self.path), title=_title(self.name))


def sweep_name(names: Iterable[str]) -> str:
    """A sweep's name from its runs' names (the config's name plus each run's overrides): their common
    leading words."""
    names = list(names)
    if not names:
        return "sweep"
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    if len(names) > 1 and not all(n == prefix or n[len(prefix):].startswith("-") for n in names):
        prefix = prefix.rsplit("-", 1)[0] if "-" in prefix else prefix
    return prefix.strip("-") or "sweep"


def sweep_title(path: str | Path) -> str:
    """The heading of a sweep's table: its name as recorded, so that --table writes the same file again."""
    import json

    try:
        name = json.loads((Path(path) / SWEEP_FILE).read_text(encoding="utf-8"))["name"]
    except (OSError, ValueError, KeyError, TypeError):
        name = Path(path).name
    return _title(name)


def _title(name: str) -> str:
    return f"{name}: results"


def is_sweep_dir(path: str | Path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


def sweep_run_dirs(path: str | Path) -> list[Path]:
    """The run directories a sweep recorded, in the order they ran. A sweep directory moved together with
    its runs dir still resolves: a recorded path that is gone is looked up by name beside the sweeps dir."""
    import json

    path = Path(path)
    try:
        info = json.loads((path / SWEEP_FILE).read_text(encoding="utf-8"))
        runs = [Path(p) for p in info["runs"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path / SWEEP_FILE}: unreadable ({exc.__class__.__name__}: {exc})") from None
    resolved = []
    for run in runs:
        if not run.is_dir():
            beside = path.parent.parent / run.name
            run = beside if beside.is_dir() else run
        resolved.append(run)
    return resolved


def sweep_records(path: str | Path) -> list[RunRecord]:
    """The runs of a sweep as records; one that cannot be read is returned with ``error`` set."""
    records = []
    for run in sweep_run_dirs(path):
        try:
            records.append(load_run(run))
        except ValueError as exc:
            records.append(RunRecord(path=run, error=str(exc)))
    return records
