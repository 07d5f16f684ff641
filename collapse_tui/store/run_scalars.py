"""A run's numbers as the series another tool plots, and the runs a directory holds: what an export to
TensorBoard or W&B reads (:mod:`~collapse_tui.store.tensorboard_export`, :mod:`~collapse_tui.store.wandb_export`).

Each series is named ``<phase>/<kind>/<name>`` and indexed by the step its events carry:

- ``<phase>/step/<term>``: a training progress event's means of each loss term, at its step within the
  phase (``done``, counted over all of the phase's epochs);
- ``<phase>/epoch/<term>``: an epoch's logs (and the sparsity it trained at), at the epoch (1-based);
- ``<phase>/eval/<metric>``: every number of an evaluation, at its SAE epoch (0: the VAE's own);
- ``final/<key>``: the summary's final metrics, by their spec keys (:mod:`collapse_tui.metrics.specs`).

A run that resumed trains some steps again: the later value of a step is the one kept, as the run's own
results are. Runs are read through :func:`~collapse_tui.store.records.load_run` and
:func:`~collapse_tui.store.runs.read_events`, so a damaged file is one line naming it, never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import collapse_tui.store.layout as layout
from collapse_tui import events as ev
from collapse_tui.config import UNSWEPT, flatten
from collapse_tui.metrics.specs import SPECS, dead_keys, dead_spec
from collapse_tui.store.records import load_run, run_dirs, stored_settings
from collapse_tui.store.runs import read_events
from collapse_tui.store.sweeps import is_sweep_dir, load_sweep

FINAL = "final"  # the group of the final metrics' tags: final/dead_fraction
# Settings that tell runs apart without being a setting of the experiment (every run has its own name).
_NOT_HPARAMS = frozenset(UNSWEPT)


@dataclass
class RunScalars:
    """One run as an export writes it: its settings, its series (tag -> step -> (value, when it was
    measured)), its final metrics (``final/<key>`` -> value), the epoch they were measured at and when the
    run started and ended (None where the summary does not say)."""

    path: Path
    status: str
    settings: dict[str, Any]
    series: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    final_step: int = 0
    started: float | None = None
    finished: float | None = None

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class ExportSource:
    """What a directory given to an export holds: its kind (``run``, ``sweep`` or ``runs``), the runs
    read, and those skipped with why (one line each)."""

    path: Path
    kind: str
    runs: list[RunScalars]
    skipped: list[tuple[str, str]]

    @property
    def collection(self) -> bool:
        """A sweep or a runs dir: runs compared by their settings (a single run is not)."""
        return self.kind != "run"


def _finite(value: Any) -> bool:
    return ev.finite_number(value)


def _is_run_dir(path: Path) -> bool:
    return any(layout.run_file(path, name).exists()
               for name in (layout.CONFIG_FILE, layout.SUMMARY_FILE, layout.EVENTS_FILE))


def read_source(directory: str | Path) -> ExportSource:
    """The runs of ``directory``: a run directory, a sweep directory or a runs dir. ValueError in one line
    when it is none of those (or a sweep whose record cannot be read, or a single run that cannot)."""
    path = Path(directory)
    if not path.is_dir():
        raise ValueError(f"{directory} is not a run, sweep or runs directory")
    if is_sweep_dir(path):
        kind, candidates = "sweep", load_sweep(path).runs
    elif _is_run_dir(path):
        return ExportSource(path, "run", [read_run(path)], [])
    else:
        # A folder that holds none of a run's files is not a run (a damaged run holds some of them).
        candidates = [c for c in run_dirs(path) if _is_run_dir(c)]
        if not candidates:
            raise ValueError(f"{directory} is not a run, sweep or runs directory (it holds no runs)")
        kind = "runs"
    runs, skipped = [], []
    for candidate in candidates:
        try:
            runs.append(read_run(candidate))
        except ValueError as exc:
            skipped.append((candidate.name, _one_line(exc)))
    return ExportSource(path, kind, runs, skipped)


def read_run(path: str | Path) -> RunScalars:
    """A run directory's settings, series and final metrics; ValueError naming the file it cannot read."""
    record = load_run(path)
    summary = record.summary
    started, finished = (summary.get(key) for key in ("started", "finished"))
    run = RunScalars(path=record.path, status=record.status, settings=stored_settings(record.config),
                     started=float(started) if _finite(started) else None,
                     finished=float(finished) if _finite(finished) else None)
    for event in read_events(record.path)[0]:
        _add_event(run.series, event)
    final = summary.get("final") if isinstance(summary.get("final"), dict) else {}
    specs = list(SPECS) + [dead_spec(key) for key in dead_keys([final])]
    for spec in specs:
        value = spec.value(summary)
        if _finite(value):
            run.final[f"{FINAL}/{spec.key}"] = float(value)
    epoch = summary.get("evaluated_at_epoch")
    evaluations = run.series.get("sae/eval/dead_fraction") or {}
    run.final_step = int(epoch) if type(epoch) is int else max(evaluations, default=0)
    return run


def _add_event(series: dict[str, dict[int, tuple[float, float]]], event: ev.Event) -> None:
    """The numbers of one event, each at its step (a later value of a step replaces an earlier one)."""
    if isinstance(event, ev.Progress) and event.logs:
        values, kind, step = event.logs, "step", event.done
    elif isinstance(event, ev.EpochEnd):
        values = dict(event.logs)
        if event.sparsity is not None:
            values["sparsity"] = event.sparsity
        kind, step = "epoch", event.epoch
    elif isinstance(event, ev.Evaluation):
        values, kind, step = event.metrics, "eval", event.epoch
    else:
        return
    for name, value in values.items():
        if _finite(value):
            series.setdefault(f"{event.phase}/{kind}/{name}", {})[int(step)] = (float(value), float(event.time))


def varied_settings(runs: list[RunScalars]) -> list[dict[str, bool | float | str]]:
    """Per run (in ``runs``' order), the flattened settings (``sae.k``, ``remedy``, ``seed``) whose values
    differ between ``runs``, each as a bool, a number or text (a setting that is text in one run is text
    in all, a list is its JSON); a setting a run does not have is left out of its mapping."""
    flat = [flatten(run.settings) for run in runs]
    keys = sorted({key for settings in flat for key in settings} - _NOT_HPARAMS)
    varied: list[dict[str, bool | float | str]] = [{} for _ in flat]
    for key in keys:
        values = [settings.get(key) for settings in flat]
        if len({_text(v) for v in values}) < 2:
            continue
        present = [v for v in values if v is not None]
        if all(isinstance(v, bool) for v in present):
            convert = bool
        elif all(_finite(v) for v in present):
            convert = float
        else:
            convert = _text
        for found, value in zip(varied, values):
            if value is not None:
                found[key] = convert(value)
    return varied


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def final_tags(runs: list[RunScalars]) -> list[str]:
    """The final metrics any of ``runs`` has, in the specs' order."""
    order = {f"{FINAL}/{spec.key}": i for i, spec in enumerate(SPECS)}
    tags = {tag for run in runs for tag in run.final}
    return sorted(tags, key=lambda tag: (order.get(tag, len(order)), tag))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"


def unique_names(runs: list[RunScalars]) -> list[str]:
    """Each run's name as an export's folder: its directory's name, ``-2``… after a name already used
    (two runs dirs may hold runs of one name)."""
    used: set[str] = set()
    names = []
    for run in runs:
        name, attempt = run.name, 1
        while name in used:
            attempt += 1
            name = f"{run.name}-{attempt}"
        used.add(name)
        names.append(name)
    return names

