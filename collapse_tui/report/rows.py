"""A table's rows: which runs are one experiment (identical but for their seed), labelled by what sets
them apart, with mean ± std over the seeds of each final metric."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from collapse_tui.config import (
    DATASET_NAMES,
    K_METHODS,
    PENALTY_METHODS,
    REMEDY_SWITCHES,
    RunConfig,
    flatten,
)
from collapse_tui.metrics.specs import DEAD, SPECS
from collapse_tui.report.paper import PAPER_DEAD_PCT, PAPER_FINAL_K, PAPER_SPECIALIZED
from collapse_tui.store import RunRecord
from collapse_tui.store.records import finite_number

_METHOD_ORDER = K_METHODS + PENALTY_METHODS  # the k-sparse methods first, then the penalised ones

# Every final metric after the dead@<t> columns, which already hold the dead fraction at each threshold.
TABLE_METRICS = tuple(s for s in SPECS if s.in_final and s is not DEAD)


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
    "eval.dci_tree_samples": "whether (and on how many inputs) the tree DCI is added to the final evaluation",
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
# Settings the table's other columns already show (dataset, method, remedy: its switches, the bias floor and
# the schedule's delay, whose labels carry their values, normalisation and the SAE input): part of a row's
# identity, never repeated in its setting label.
# (``sae.remedies.resample_epochs`` is labelled: the remedy column says "resampling", not when.)
_IN_COLUMNS = ("data.dataset", "sae.method", "sae.source", "sae.normalization",
               *(f"sae.remedies.{name}" for name in REMEDY_SWITCHES), "sae.remedies.bias_floor",
               "sae.lr_schedule.warmup_steps", "sae.lr_schedule.decay", "sae.schedule.delay")
# What makes a row's remedy (a key names its whole subtree): the remedy column's settings, less the dataset and
# the method, and every remedy's own parameters (AuxK's k and coefficient, the resampling epochs, idle steps),
# which are inert in a plain run. A remedy row and the plain row it is compared with differ in these alone.
REMEDY_KEYS = (*(key for key in _IN_COLUMNS if key not in ("data.dataset", "sae.method")), "sae.remedies",
               "sae.lr_schedule")


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


@cache
def _defaults() -> tuple[tuple[str, Any], ...]:
    return tuple(flatten(RunConfig().to_dict()).items())


def _inert(flat: dict[str, Any]) -> set[str]:
    """Settings that have no effect in this run (its method, switches and schedule ignore them)."""
    sae = lambda key: flat.get(f"sae.{key}")  # noqa: E731
    inert = set()
    if sae("method") != "jumprelu":
        inert |= {"sae.jumprelu_threshold", "sae.jumprelu_bandwidth"}
    if sae("method") != "batchtopk":
        inert |= {"sae.batchtopk_threshold_momentum", "sae.batchtopk_threshold_start"}
    if sae("lr_schedule.decay") == "none":
        inert |= {"sae.lr_schedule.decay_start_epoch", "sae.lr_schedule.final_fraction"}
    if not sae("remedies.bias_floor"):
        inert |= {"sae.remedies.bias_step", "sae.remedies.bias_window"}
    if not sae("remedies.auxk"):
        inert |= {"sae.remedies.auxk_k", "sae.remedies.auxk_coefficient", "sae.remedies.auxk_candidates"}
        if not sae("remedies.resample_epochs") and not sae("remedies.ghost_grads"):
            inert.add("sae.remedies.dead_steps")  # idle steps count only for AuxK, ghost grads and resampling
    if sae("schedule.kind") == "constant":
        inert |= {"sae.schedule.start", "sae.schedule.epochs", "sae.schedule.delay"}  # a constant schedule is its final value
    if not sae("extended_epochs"):
        inert.add("eval.revival_frequency")  # read only after extended epochs
    return inert


def unused_settings(config: dict[str, Any]) -> set[str]:
    """The dotted keys of a run's config that have no effect in it: :func:`_inert`'s, and the other
    kind of method's sparsity (``sae.k`` for a penalised method, ``sae.l1_coefficient`` for a k-sparse
    one)."""
    flat = dict(_defaults())
    flat.update(flatten(dict(config or {})))
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
    flat.update(flatten(dict(record.config or {})))
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
    run_dirs: list[Path] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    setting: str = ""
    shows_paper: bool = False

    def values(self, key: str, scale: float = 1.0) -> list[float]:
        """The seeds' values of a final metric that are finite real numbers (a bool, a string, NaN or
        null is none: never averaged), scaled."""
        return [float(f[key]) * scale for f in self.finals if finite_number(f.get(key))]

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
        row.run_dirs.append(rec.path)

    labelled = _differing(list(rows.values()))
    for row in rows.values():
        row.setting = ", ".join(f"{key}={setting_text(row.settings[key])}" for key in labelled if key in row.settings)

    datasets = list(DATASET_NAMES)  # the registered datasets, in their order

    def order(row: Row):
        d = datasets.index(row.dataset) if row.dataset in datasets else len(datasets)
        m = _METHOD_ORDER.index(row.method) if row.method in _METHOD_ORDER else len(_METHOD_ORDER)
        by_setting = tuple(_value_order(row.settings[k]) if k in row.settings else (2, 0.0, "") for k in labelled)
        return d, row.dataset, m, row.method, row.remedy != "none", row.remedy, by_setting, row.sparsity

    ordered = sorted(rows.values(), key=order)
    _mark_paper_rows(ordered)
    return ordered, left_out


