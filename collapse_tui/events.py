"""Typed events that a run emits: the vocabulary shared by the engine, the run store and every front end.

Events are plain dataclasses that round-trip through JSON (``to_dict`` / :func:`event_from_dict`), so a
reader of ``events.jsonl`` rebuilds exactly what a live listener saw. What each field may hold is
checked as an event is rebuilt (:data:`FIELD_CHECKS`): a file edited, damaged or written by something
else can hold valid JSON naming a known event with a field of another type (``"metrics": 5``,
``"epoch": "x"``), which no reader should be handed.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

Listener = Callable[["Event"], None]

# A run's phases in the order it goes through them (one reusing a VAE or codes skips those phases).
PHASES = ("data", "vae", "codes", "sae", "evaluate")


@dataclass
class Event:
    """Every event carries when it happened and which run it belongs to: the run directory's name,
    set by the run that emits it (the runs of a bank train at once, so their events interleave)."""

    kind: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)
    run_id: str = field(default="", kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **dataclasses.asdict(self)}


@dataclass
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    name: str
    run_dir: str
    config: dict[str, Any]
    environment: dict[str, Any]


@dataclass
class RunResumed(Event):
    """An interrupted run goes on in its own directory (``collapse-tui --resume``): from the checkpoint
    after SAE epoch ``epoch`` (0: its SAE phase starts again), in another process."""

    kind: ClassVar[str] = "run_resumed"
    name: str
    epoch: int
    environment: dict[str, Any] = field(default_factory=dict)


@dataclass
class PhaseStarted(Event):
    """A phase begins: ``data``, ``vae``, ``codes``, ``sae`` or ``evaluate``. ``epochs`` for training phases."""

    kind: ClassVar[str] = "phase_started"
    phase: str
    detail: str = ""
    epochs: int | None = None
    steps_per_epoch: int | None = None


@dataclass
class Progress(Event):
    """Long work inside a phase (rendering images, training steps): ``done`` of ``total``.

    In training, ``logs`` holds each metric's mean over the steps since the previous progress event of
    the same epoch (from the epoch's start for its first): the points of the per-step curves."""

    kind: ClassVar[str] = "progress"
    phase: str
    done: int
    total: int
    epoch: int | None = None
    logs: dict[str, float | None] | None = None  # None: a metric that could not be measured


@dataclass
class EpochEnd(Event):
    kind: ClassVar[str] = "epoch_end"
    phase: str
    epoch: int  # 1-based
    epochs: int
    logs: dict[str, float | None]
    seconds: float
    sparsity: float | None = None  # the schedule's k or L1 coefficient during this epoch (SAE phase)


@dataclass
class Evaluation(Event):
    """Every metric of one evaluation. ``epoch`` is the SAE epoch (0 for the VAE's own evaluation)."""

    kind: ClassVar[str] = "evaluation"
    phase: str
    epoch: int
    metrics: dict[str, Any]


@dataclass
class DataSource(Event):
    """Where the run's images come from (dataset, source, fingerprint, description; for a file its path,
    sha256 and whether it is the published release)."""

    kind: ClassVar[str] = "data_source"
    provenance: dict[str, Any]


@dataclass
class Message(Event):
    kind: ClassVar[str] = "message"
    text: str
    level: str = "info"


@dataclass
class RunFinished(Event):
    """The run ended: ``status`` is ``ok`` or ``stopped``."""

    kind: ClassVar[str] = "run_finished"
    status: str
    summary: dict[str, Any]


@dataclass
class RunFailed(Event):
    kind: ClassVar[str] = "run_failed"
    reason: str
    traceback: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepStarted(Event):
    """A sweep of ``n_runs`` runs begins; its directory (``sweep_dir``) holds its record and results table.
    Sent to listeners before the first run's events; not part of any run's ``events.jsonl``."""

    kind: ClassVar[str] = "sweep_started"
    name: str
    sweep_dir: str
    n_runs: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (RunStarted, RunResumed, DataSource, PhaseStarted, Progress, EpochEnd, Evaluation, Message, RunFinished, RunFailed,
                SweepStarted)
}


# ---------------------------------------------------------------------------- what each field holds
Check = Callable[[Any], bool]


def finite_number(value: Any) -> bool:
    """A finite number that arithmetic with floats can use (an int too large for a float cannot)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) if isinstance(value, float) else abs(value) <= sys.float_info.max


def _whole(value: Any) -> bool:
    """A count or an epoch: a whole number (as JSON may give it, 3.0 too)."""
    return finite_number(value) and (isinstance(value, int) or value.is_integer())


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _mapping(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(key, str) for key in value)


def _logs(value: Any) -> bool:
    """A training step's or epoch's logs: each the mean of a loss term or a measurement (None where it
    could not be measured)."""
    return _mapping(value) and all(v is None or finite_number(v) for v in value.values())


def _optional(check: Check) -> Check:
    return lambda value: value is None or check(value)


_optional_whole = _optional(_whole)
_WHOLE_CHECKS = (_whole, _optional_whole)  # the fields event_from_dict makes ints of (JSON may say 3.0)


# What each field of each event must hold (its declared type, as JSON gives it); every event also has a
# finite ``time`` and a text ``run_id``. What a mapping holds (a config, metrics) is its readers' to check.
FIELD_CHECKS: dict[type[Event], dict[str, Check]] = {
    RunStarted: {"name": _text, "run_dir": _text, "config": _mapping, "environment": _mapping},
    RunResumed: {"name": _text, "epoch": _whole, "environment": _mapping},
    PhaseStarted: {"phase": _text, "detail": _text, "epochs": _optional_whole, "steps_per_epoch": _optional_whole},
    Progress: {"phase": _text, "done": _whole, "total": _whole, "epoch": _optional_whole, "logs": _optional(_logs)},
    EpochEnd: {"phase": _text, "epoch": _whole, "epochs": _whole, "logs": _logs, "seconds": finite_number,
               "sparsity": _optional(finite_number)},
    Evaluation: {"phase": _text, "epoch": _whole, "metrics": _mapping},
    DataSource: {"provenance": _mapping},
    Message: {"text": _text, "level": _text},
    RunFinished: {"status": _text, "summary": _mapping},
    RunFailed: {"reason": _text, "traceback": _text, "summary": _mapping},
    SweepStarted: {"name": _text, "sweep_dir": _text, "n_runs": _whole},
}


def event_problem(event: Event) -> str | None:
    """Which field of ``event`` holds what its type does not declare, and what it holds; None when none."""
    checks = {"time": finite_number, "run_id": _text, **FIELD_CHECKS.get(type(event), {})}
    for name, check in checks.items():
        value = getattr(event, name, None)
        if not check(value):
            shown = repr(value)
            return f"{name} = {shown if len(shown) <= 40 else shown[:39] + '…'} is not what a {event.kind} event holds"
    return None


class DamagedEvent(ValueError):
    """A known event with a field that holds what its type does not declare. ``time`` and ``run_id``:
    when and of which run the event was, where those are readable (else None and "")."""

    def __init__(self, event: Event, problem: str):
        super().__init__(f"{event.kind} event: {problem}")
        self.kind, self.problem = event.kind, problem
        self.time = float(event.time) if finite_number(event.time) else None
        self.run_id = event.run_id if _text(event.run_id) else ""

    def warning(self, where: str, before: float | None = None, at_byte: int | None = None) -> Message:
        """The warning a reader puts in the event's place, naming ``where`` it was read (and ``at_byte``,
        its line's offset): at the event's time, or ``before`` (the event before it) where that is
        unreadable, or now where neither is known."""
        line = f"; the line at byte {at_byte}" if at_byte is not None else ""
        when = self.time if self.time is not None else before
        return Message(text=f"{where}: left out a damaged {self.kind} event ({self.problem}{line})", level="warning",
                       run_id=self.run_id, **({"time": when} if when is not None else {}))


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from its ``to_dict`` form; unknown fields are ignored so old readers survive new
    writers. ValueError if it is no event; :class:`DamagedEvent` if a field holds another type."""
    if not isinstance(data, dict):
        raise ValueError(f"an event is a JSON object, got {type(data).__name__}")
    data = dict(data)
    kind = data.pop("type", None)
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}; known: {', '.join(EVENT_TYPES)}")
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        event = cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:  # a required field missing
        raise ValueError(f"{kind} event: {exc}") from None
    problem = event_problem(event)
    if problem is not None:
        raise DamagedEvent(event, problem)
    # A count or an epoch JSON gave as 3.0 is the whole number 3 to every reader (range, indexing).
    for name, check in FIELD_CHECKS.get(cls, {}).items():
        value = getattr(event, name)
        if check in _WHOLE_CHECKS and isinstance(value, float):
            setattr(event, name, int(value))
    return event
