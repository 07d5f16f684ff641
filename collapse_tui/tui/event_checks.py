"""A run's events as the run views read them: the store's, with what the views draw from them checked.

The store's reader hands on only events whose fields hold their declared types
(:func:`collapse_tui.events.event_problem`); two of those fields are free-form mappings that the views
draw from without checking each value: an evaluation's ``metrics`` (the dead fractions at each
threshold, the NMI heatmap, the density histogram) and the run's ``config`` (its thresholds). An event
whose mapping holds what the views cannot draw (an NMI matrix with ragged rows, thresholds that are
text) is replaced, where it is read, by the same warning the store gives a damaged event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collapse_tui import events as ev
from collapse_tui.metrics.specs import DEAD_PREFIX
from collapse_tui.store import layout, read_events


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(value: Any, finite: bool = False) -> bool:
    """A list of numbers (``finite``: that a view can count or index with)."""
    return isinstance(value, list) and all((ev.finite_number if finite else _number)(v) for v in value)


def _threshold_key(key: str) -> bool:
    try:
        float(key[len(DEAD_PREFIX):])
    except ValueError:
        return False
    return True


def _metrics_problem(metrics: dict[str, Any]) -> str | None:
    """What in an evaluation's ``metrics`` the run views cannot draw; None when they can."""
    for key, value in metrics.items():
        if key.startswith(DEAD_PREFIX) and not (_threshold_key(key) and (value is None or _number(value))):
            return f"{key!r} is not a dead fraction at a threshold"
    for key in ("n_neurons", "l0", "mig", "mig_vae", "sparsity"):
        if metrics.get(key) is not None and not _number(metrics[key]):
            return f"{key} is {type(metrics[key]).__name__}, not a number"
    histogram = metrics.get("density_histogram")
    if histogram is not None and not (isinstance(histogram, dict) and _numbers(histogram.get("counts") or [], finite=True)
                                      and _numbers(histogram.get("edges") or [])):
        return "density_histogram is not counts and edges of numbers"
    nmi = metrics.get("nmi") or []
    if not (isinstance(nmi, list) and all(_numbers(row) for row in nmi) and len({len(row) for row in nmi}) <= 1):
        return "nmi is not a table of numbers, one row a neuron"
    best = metrics.get("best_factor") or []
    if not (_numbers(best, finite=True) and len(best) <= len(nmi)):
        return "best_factor is not one factor index a neuron"
    for key in ("factors", "dead_mask"):
        if metrics.get(key) is not None and not isinstance(metrics[key], list):
            return f"{key} is {type(metrics[key]).__name__}, not a list"
    return None


def _config_problem(config: dict[str, Any]) -> str | None:
    """What in a run's config the run views cannot read (its thresholds, its method); None when they can."""
    evaluation, sae = config.get("eval", {}), config.get("sae", {})
    thresholds = evaluation.get("thresholds") if isinstance(evaluation, dict) else None
    if not (isinstance(evaluation, dict) and (thresholds is None or _numbers(thresholds, finite=True))):
        return "config's eval.thresholds is not a list of numbers"
    if not isinstance(sae, dict):
        return "config's sae is not a mapping"
    return None


def view_problem(event: ev.Event) -> str | None:
    """What in ``event`` (its fields already of their types) the run views cannot draw; None when they can."""
    if isinstance(event, ev.Evaluation):
        return _metrics_problem(event.metrics)
    if isinstance(event, ev.RunStarted):
        return _config_problem(event.config)
    return None


def read_run_events(path: str | Path, offset: int = 0) -> tuple[list[ev.Event], int]:
    """:func:`~collapse_tui.store.read_events` (``path``: a run directory or its events file), each event
    the views cannot draw replaced by a warning naming the file: what every run view reads events with."""
    events, offset = read_events(path, offset)
    file = Path(path)
    where = str(layout.run_file(file, layout.EVENTS_FILE) if file.is_dir() else file)
    for i, event in enumerate(events):
        problem = view_problem(event)
        if problem is not None:
            events[i] = ev.DamagedEvent(event, problem).warning(where)
    return events, offset
