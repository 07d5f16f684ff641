"""Typed events that a run emits: the vocabulary shared by the engine, the run store and every front end.

Events are plain dataclasses that round-trip through JSON (``to_dict`` / :func:`event_from_dict`), so a
reader of ``events.jsonl`` rebuilds exactly what a live listener saw.
"""

from __future__ import annotations

import dataclasses
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
    logs: dict[str, float] | None = None


@dataclass
class EpochEnd(Event):
    kind: ClassVar[str] = "epoch_end"
    phase: str
    epoch: int  # 1-based
    epochs: int
    logs: dict[str, float]
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


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from its ``to_dict`` form; unknown fields are ignored so old readers survive new writers."""
    if not isinstance(data, dict):
        raise ValueError(f"an event is a JSON object, got {type(data).__name__}")
    data = dict(data)
    kind = data.pop("type", None)
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}; known: {', '.join(EVENT_TYPES)}")
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:  # a required field missing
        raise ValueError(f"{kind} event: {exc}") from None
