"""The results table of a sweep: one row per experiment (the runs identical but for their seed), mean ±
std over the seeds, with the published numbers beside the rows they correspond to. Built from run
records alone; written as Markdown and CSV (``results.md``, ``results.csv``) into a sweep's directory,
beside its ``sweep.json``, as its runs end, so a sweep cut short still leaves the table of what it
measured. Beside them ``runs.jsonl`` gets one line per finished run (:func:`run_line`), appended as it
finishes: the sweep's per-run table, written in constant time per run however long the sweep.

A row is labelled by dataset, method, remedy and k / λ and, where runs of the table differ in some other
setting (batch size, epochs, schedule, the VAE, the data file...), by those settings too: see
:func:`experiment_settings` for what defines an experiment and :func:`build_rows` for the labels.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from collapse_tui.config import DATASET_NAMES, K_METHODS, PENALTY_METHODS, REMEDY_SWITCHES, RunConfig
from collapse_tui.metrics.specs import (DEAD, MISSING, SPECS, MetricSpec, csv_number, dead_keys, dead_spec,
                                        is_frequency_key, is_threshold_key)
from collapse_tui.store import RunRecord, load_sweep, write_atomic

RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"
RUNS_JSONL = "runs.jsonl"

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


# ---------------------------------------------------------------------------------------- experiments

# What a run's config.yaml holds that does not define its experiment (dotted keys; a key names its whole
# subtree), and why. Everything else of the resolved config does: two runs that differ in any of it are
# different experiments and never share a row.
BOOKKEEPING = {
    "seed": "what a row averages over",
    "name": "the run's label (a sweep writes its overrides, the seed among them, into it)",
    "runs_dir": "where the run was written",
    "models_dir": "where trained VAEs are cached (a cached VAE is the one that would be trained)",
    "bank_size": "how many SAEs trained together (each trains as it would alone)",
    "data_parallel": "whether training was split over devices (the same models up to float rounding)",
    "environment": "host, device, backend and versions: provenance, not a setting",
    "data_source": "provenance of the images, kept only as the data's identity: its fingerprint (below)",
    "eval.every": "when intermediate evaluations happen; the final one is always made at the end",
    "eval.explained_variance_floor": "which runs are flagged as no result (flagged runs stay out of the rows)",
}
# How the images were found (the requested source, a path, the render cache): the fingerprint says which
# images they were, so these count only where a run recorded no fingerprint.
_DATA_LOOKUP = ("data.source", "data.path")
DATA_CACHE = "data.cache"  # a cached render is the same images as a fresh one
DATA_KEY = "data"  # the data's identity among a row's settings: the fingerprint, or "unknown"
UNKNOWN_DATA = "unknown"
# The sparsity parameters: the k / λ column holds the one in effect (the summary's), the other is inert.
_SPARSITY = ("sae.k", "sae.l1_coefficient")
# Settings the table's other columns already show (dataset, method, remedy: its switches, normalisation and
# the SAE input): part of a row's identity, never repeated in its setting label.
# (``sae.remedies.resample_epochs`` is labelled: the remedy column says "resampling", not when.)
_IN_COLUMNS = ("data.dataset", "sae.method", "sae.source", "sae.normalization",
               *(f"sae.remedies.{name}" for name in REMEDY_SWITCHES))


def _flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config dicts as dotted keys (``{"sae": {"batch_size": 16}}`` → ``{"sae.batch_size": 16}``);
    an empty section sets nothing."""
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


@cache
def _defaults() -> tuple[tuple[str, Any], ...]:
    return tuple(_flatten(RunConfig().to_dict()).items())


def _inert(flat: dict[str, Any]) -> set[str]:
    """Settings that have no effect in this run (its method, switches and schedule ignore them)."""
    sae = lambda key: flat.get(f"sae.{key}")  # noqa: E731
    inert = set()
    if sae("method") != "jumprelu":
        inert |= {"sae.jumprelu_threshold", "sae.jumprelu_bandwidth"}
    if not sae("remedies.auxk"):
        inert |= {"sae.remedies.auxk_k", "sae.remedies.auxk_coefficient"}
        if not sae("remedies.resample_epochs"):
            inert.add("sae.remedies.dead_steps")  # idle steps count only for AuxK and resampling
    if sae("schedule.kind") == "constant":
        inert |= {"sae.schedule.start", "sae.schedule.epochs"}  # a constant schedule is its final value
    if not sae("extended_epochs"):
        inert.add("eval.revival_frequency")  # read only after extended epochs
    return inert


def unused_settings(config: dict[str, Any]) -> set[str]:
    """The dotted keys of a run's config that have no effect in it: :func:`_inert`'s, and the other
    kind of method's sparsity (``sae.k`` for a penalised method, ``sae.l1_coefficient`` for a k-sparse
    one)."""
    flat = dict(_defaults())
    flat.update(_flatten(dict(config or {})))
    method = flat.get("sae.method")
    other = "sae.l1_coefficient" if method in K_METHODS else "sae.k" if method in PENALTY_METHODS else None
    return _inert(flat) | ({other} if other else set())


def experiment_settings(record: RunRecord) -> dict[str, Any]:
    """What defines a run's experiment besides its k / λ, as dotted keys of its resolved config (the
    settings the dataset, method and remedy columns show are among them, never labelled: ``_IN_COLUMNS``).

    The config as config.yaml holds it (keys it lacks take the schema's defaults: a run written before a
    setting existed ran as its default), flattened, less:

    - :data:`BOOKKEEPING` (seed, name, runs_dir, models_dir, bank_size, data_parallel, environment,
      data_source, eval.every);
    - settings with no effect in this run (:func:`_inert`: JumpReLU's on another method, AuxK's without
      AuxK, the start and length of a constant schedule...), so that they cannot split a row;
    - ``sae.k`` and ``sae.l1_coefficient``: the row's k / λ is the summary's, the one in effect;
    - ``data.cache``, and ``data.source`` / ``data.path`` when the data's fingerprint is known,

    plus ``data``: the fingerprint of the images the run read (config.yaml's ``data_source``, else the
    summary's ``data``), so two files of one dataset are two experiments; ``"unknown"`` for a run that
    recorded none, which then never pools with a run that did.
    """
    flat = dict(_defaults())
    flat.update(_flatten(dict(record.config or {})))
    provenance = record.config.get("data_source") or record.summary.get("data") or {}
    fingerprint = provenance.get("fingerprint") if isinstance(provenance, dict) else None
    dropped = set(_SPARSITY) | _inert(flat) | {DATA_CACHE}
    if fingerprint:
        dropped |= set(_DATA_LOOKUP)
    settings: dict[str, Any] = {DATA_KEY: str(fingerprint) if fingerprint else UNKNOWN_DATA}
    for key, value in flat.items():
        if key not in dropped and not _under(key, BOOKKEEPING):
            settings[key] = value
    return settings


def _frozen(value: Any) -> Any:
    """A setting as a hashable value (lists → tuples, dicts → sorted item tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def setting_text(value: Any) -> str:
    """A setting's value as a label shows it: YAML's words for switches and empties, lists without spaces."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(setting_text, value)) + "]"
    return str(value)


@dataclass
class Row:
    """One table row: the runs identical but for their seed, and their metrics.

    ``settings``: what defines the experiment besides the columns (:func:`experiment_settings`);
    ``setting``: the part of it that the table shows, ``"sae.batch_size=16"`` ("" when no row needs one);
    ``shows_paper``: whether the paper's number stands beside this row (set by :func:`build_rows`).
    """

    dataset: str
    method: str
    remedy: str
    sparsity: float
    seeds: list[int] = field(default_factory=list)
    finals: list[dict[str, Any]] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    setting: str = ""
    shows_paper: bool = False

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
    def settings_key(self) -> tuple:
        return _frozen(self.settings)

    @property
    def paper_dead(self) -> tuple[float, float] | None:
        return PAPER_DEAD_PCT.get((self.dataset, self.method)) if self.shows_paper else None

    @property
    def paper_specialized(self) -> int | None:
        return PAPER_SPECIALIZED.get(self.dataset) if self.paper_dead is not None else None


def _differing(rows: list[Row]) -> list[str]:
    """The settings to label rows by: those that take more than one value among rows of one dataset,
    method and remedy (a row where a setting has no effect does not count; what the other columns show
    is never labelled), in config order."""
    groups: dict[tuple, dict[str, set]] = {}
    order: dict[str, None] = {}
    for row in rows:
        seen = groups.setdefault((row.dataset, row.method, row.remedy), {})
        for key, value in row.settings.items():
            if key in _IN_COLUMNS:
                continue
            order.setdefault(key)
            seen.setdefault(key, set()).add(_frozen(value))
    varying = {key for seen in groups.values() for key, values in seen.items() if len(values) > 1}
    return [key for key in order if key in varying]


def _value_order(value: Any) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 0, float(value), ""
    return 1, 0.0, setting_text(value)


def _mark_paper_rows(rows: list[Row]) -> None:
    """The paper's number stands beside the rows that match its experiment: the plain method (no remedy),
    for Top-k at k = PAPER_FINAL_K, for L1 the λ whose mean L0 is closest to PAPER_FINAL_K (the paper
    compares them at that sparsity; a tie goes to the first row, the smaller λ; a row without L0 is never
    the one). Rows of different settings are different experiments: each settings group gets its own."""
    closest: dict[tuple, tuple[float, Row]] = {}
    for row in rows:
        if row.remedy != "none" or (row.dataset, row.method) not in PAPER_DEAD_PCT:
            continue
        if row.method == "topk":
            row.shows_paper = row.sparsity == PAPER_FINAL_K
        elif row.method == "l1":
            l0 = row.stat("l0")
            if l0 is None or not math.isfinite(l0[0]):
                continue
            group = (row.dataset, row.settings_key)
            distance = abs(l0[0] - PAPER_FINAL_K)
            if group not in closest or distance < closest[group][0]:
                closest[group] = (distance, row)
    for _, row in closest.values():
        row.shows_paper = True


def build_rows(records: Iterable[RunRecord]) -> tuple[list[Row], list[RunRecord]]:
    """Group finished runs into rows; returns the rows and the runs left out (not finished ok).

    A row holds the runs of one experiment: the same dataset, method, remedy, k / λ and
    :func:`experiment_settings`, so runs that differ in anything but the seed (and bookkeeping) are never
    pooled. When rows of one dataset, method and remedy differ in some setting, every row is labelled with
    its value of each such setting (``setting``: ``"sae.batch_size=16"``, comma-separated when several):
    a row never looks like another, a series over k or λ shows what else changed along it, and a sweep
    over seeds alone has no label at all. Rows are ordered by dataset, method, remedy, those settings'
    values, then k / λ.
    """
    rows: dict[tuple, Row] = {}
    left_out = []
    for rec in records:
        s = rec.summary
        if rec.status != "ok":  # failed, stopped, unreadable, or suspect (ok but flagged as no result)
            left_out.append(rec)
            continue
        head = (s.get("dataset", "?"), s.get("method", "?"), remedy_label(rec), float(s.get("sparsity") or 0.0))
        settings = experiment_settings(rec)
        row = rows.setdefault((*head, _frozen(settings)), Row(*head, settings=settings))
        row.seeds.append(int(rec.config.get("seed", 0)))
        row.finals.append(dict(s.get("final") or {}))
        row.run_ids.append(rec.run_id)

    labelled = _differing(list(rows.values()))
    for row in rows.values():
        row.setting = ", ".join(f"{key}={setting_text(row.settings[key])}" for key in labelled if key in row.settings)

    def order(row: Row):
        d = _DATASET_ORDER.index(row.dataset) if row.dataset in _DATASET_ORDER else len(_DATASET_ORDER)
        m = _METHOD_ORDER.index(row.method) if row.method in _METHOD_ORDER else len(_METHOD_ORDER)
        by_setting = tuple(_value_order(row.settings[k]) if k in row.settings else (2, 0.0, "") for k in labelled)
        return d, row.dataset, m, row.method, row.remedy != "none", row.remedy, by_setting, row.sparsity

    ordered = sorted(rows.values(), key=order)
    _mark_paper_rows(ordered)
    return ordered, left_out


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
    metrics = _dead_specs(rows) + list(_METRICS)
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
