"""Events read from a run directory, checked for what the run views draw from them.

``events.jsonl`` may have been edited, damaged or written by something else: a line that is valid JSON
and names a known event can still hold a field of the wrong type (``"metrics": 5``, ``"epoch": "x"``, a
loss that is a string, an NMI matrix with ragged rows). The views fold events into
:class:`~collapse_tui.tui.state.RunState` and draw from it without checking each value, so such an event
is replaced, where it is read, by a warning :class:`~collapse_tui.events.Message` naming the file and
what is wrong: the run shows what it can, and says which event it left out.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from collapse_tui import events as ev
from collapse_tui.metrics.specs import DEAD_PREFIX
from collapse_tui.store import layout, read_events

Check = Callable[[Any], bool]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    """A count or a time: the views do arithmetic and progress bars with it."""
    return _number(value) and math.isfinite(value)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _mapping(value: Any) -> bool:
    return isinstance(value, dict)


def _optional(check: Check) -> Check:
    return lambda value: value is None or check(value)


def _numbers(value: Any, finite: bool = False) -> bool:
    return isinstance(value, list) and all((_finite if finite else _number)(v) for v in value)


def _logs(value: Any) -> bool:
    """A training step's or epoch's logs: each a mean of a loss term or a measurement, a number (None
    where it could not be measured)."""
    return _mapping(value) and all(v is None or _number(v) for v in value.values())


def _threshold_key(key: str) -> bool:
    try:
        float(key[len(DEAD_PREFIX):])
    except ValueError:
        return False
    return True


def metrics_problem(metrics: Any) -> str | None:
    """What in an evaluation's ``metrics`` the run views cannot draw; None when they can."""
    if not _mapping(metrics):
        return f"metrics is {type(metrics).__name__}, not an object"
    for key, value in metrics.items():
        if not isinstance(key, str):
            return "a metric name that is not text"
        if key.startswith(DEAD_PREFIX) and not (_threshold_key(key) and (value is None or _number(value))):
            return f"{key!r} is not a dead fraction at a threshold"
    for key in ("n_neurons", "l0", "mig", "mig_vae", "sparsity"):
        if metrics.get(key) is not None and not _number(metrics[key]):
            return f"{key} is {type(metrics[key]).__name__}, not a number"
    histogram = metrics.get("density_histogram")
    if histogram is not None and not (_mapping(histogram) and _numbers(histogram.get("counts") or [], finite=True)
                                      and _numbers(histogram.get("edges") or [])):
        return "density_histogram is not counts and edges of numbers"
    nmi = metrics.get("nmi") or []
    if not (isinstance(nmi, list) and all(_numbers(row) for row in nmi)
            and len({len(row) for row in nmi}) <= 1):
        return "nmi is not a table of numbers, one row a neuron"
    best = metrics.get("best_factor") or []
    if not (_numbers(best, finite=True) and len(best) <= len(nmi)):
        return "best_factor is not one factor index a neuron"
    for key in ("factors", "dead_mask"):
        if metrics.get(key) is not None and not isinstance(metrics[key], list):
            return f"{key} is {type(metrics[key]).__name__}, not a list"
    return None


def _config(value: Any) -> bool:
    """A run's config as the views read it: its thresholds and its method."""
    if not _mapping(value):
        return False
    evaluation, sae = value.get("eval", {}), value.get("sae", {})
    return (_mapping(evaluation) and _optional(lambda t: _numbers(t, finite=True))(evaluation.get("thresholds"))
            and _mapping(sae))


# Each event's fields and what they must hold; every event also has a finite ``time`` and a text ``run_id``.
FIELDS: dict[type[ev.Event], dict[str, Check]] = {
    ev.RunStarted: {"name": _text, "run_dir": _text, "config": _config, "environment": _mapping},
    ev.RunResumed: {"name": _optional(_text), "epoch": _finite, "environment": _mapping},
    ev.PhaseStarted: {"phase": _text, "detail": _optional(_text), "epochs": _optional(_finite),
                      "steps_per_epoch": _optional(_finite)},
    ev.Progress: {"phase": _text, "done": _finite, "total": _finite, "epoch": _optional(_finite),
                  "logs": _optional(_logs)},
    ev.EpochEnd: {"phase": _text, "epoch": _finite, "epochs": _finite, "logs": _logs, "seconds": _number,
                  "sparsity": _optional(_number)},
    ev.Evaluation: {"phase": _text, "epoch": _finite, "metrics": _mapping},
    ev.DataSource: {"provenance": _mapping},
    ev.Message: {"text": _text, "level": _text},
    ev.RunFinished: {"status": _text, "summary": _mapping},
    ev.RunFailed: {"reason": _text, "traceback": _optional(_text), "summary": _mapping},
    ev.SweepStarted: {"name": _text, "sweep_dir": _text, "n_runs": _finite},
}


def event_problem(event: ev.Event) -> str | None:
    """Which field of ``event`` holds what the run views cannot use, and why; None when all can."""
    checks = {"time": _finite, "run_id": _text, **FIELDS.get(type(event), {})}
    for name, check in checks.items():
        value = getattr(event, name, None)
        if not check(value):
            shown = repr(value)
            return f"{name} = {shown if len(shown) <= 40 else shown[:39] + '…'} is not what a {event.kind} event holds"
    if isinstance(event, ev.Evaluation):
        return metrics_problem(event.metrics)
    return None


def checked(events: list[ev.Event], where: str) -> list[ev.Event]:
    """``events`` with each one the views cannot use replaced by a warning naming ``where`` it was read."""
    out: list[ev.Event] = []
    last_time = 0.0
    for event in events:
        problem = event_problem(event)
        if problem is None:
            out.append(event)
            last_time = event.time
        else:  # at the time of the event before it, when its own is what is damaged
            out.append(ev.Message(text=f"{where}: left out a damaged {event.kind} event ({problem})",
                                  level="warning", time=event.time if _finite(event.time) else last_time,
                                  run_id=event.run_id if _text(event.run_id) else ""))
    return out


def read_run_events(path: str | Path, offset: int = 0) -> tuple[list[ev.Event], int]:
    """:func:`~collapse_tui.store.read_events` (``path``: a run directory or its events file), each
    event checked (:func:`checked`): what every run view reads a run directory's events with."""
    events, offset = read_events(path, offset)
    file = Path(path)
    where = str(layout.run_file(file, layout.EVENTS_FILE) if file.is_dir() else file)
    return checked(events, where), offset
