"""Writing a run directory: creating it, recording its events, summary and config as they happen;
reading its events back (its per-neuron profiles: :mod:`~collapse_tui.store.neurons`).

A run directory (names in :mod:`~collapse_tui.store.layout`) is created exclusively and never reused, so
nothing is ever overwritten; every file but the append-only events is replaced atomically, so a reader
(the TUI following another process's run) never sees a half-written one. What is read back as a record
(config and summary, checked) is :mod:`~collapse_tui.store.records`.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

import collapse_tui.store.layout as layout
from collapse_tui.config import parse_yaml, shorten
from collapse_tui.events import (DamagedEvent, DataSource, Event, Message, RunFailed, RunFinished, RunResumed,
                                RunStarted, event_from_dict)
from collapse_tui.store.files import dumps, jsonable, open_regular, read_json, write_atomic
from collapse_tui.store.listing import make_listing
from collapse_tui.store.liveness import HEARTBEAT, process_identity
from collapse_tui.store.records import config_problem


def create_run_dir(runs_dir: str | Path, name: str, now: float | None = None) -> Path:
    """Create ``<runs_dir>/<timestamp>-<name>`` exclusively; a clash gets a ``-2``, ``-3`` ... suffix."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        path = runs_dir / layout.stamped_name(name, now, i)
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"could not create a new run directory for {layout.stamped_name(name, now)!r} in {runs_dir}")


@dataclass
class RunSummary:
    """What ``summary.json`` holds once a run has ended (while it runs: status, run_id, name, started).

    ``final``: the last evaluation's scalar metrics, and its ``dead_curve`` (``[updates, dead fraction]``
    at every evaluation mark); ``vae``: the VAE's; ``durations``: seconds per phase;
    ``updates_by_sparsity``: the SAE's optimiser updates at each k or λ it trained at (the total is
    ``final["updates"]``);
    ``reason``: why a failed run failed (absent otherwise); ``flags``: why an ok run's final metrics are
    not a result (absent when they are: the engine's ``result_flags``). Readers take the file as a mapping
    (:class:`~collapse_tui.store.records.RunRecord`), so runs written before a field existed still load.
    """

    status: str  # running | ok | stopped | failed
    run_id: str
    name: str
    dataset: str
    method: str
    sparsity: float
    n_neurons: int
    source: str
    remedies: list[str]
    resampled: int
    started: float
    finished: float
    seconds: float
    durations: dict[str, float]
    sae_epochs: int
    updates_by_sparsity: dict[str, int]
    evaluated_at_epoch: int | None
    final: dict[str, Any]
    vae: dict[str, Any]
    vae_model: str
    data: dict[str, Any]
    reason: str | None = None
    flags: list[str] = field(default_factory=list)
    resumed: list[float] = field(default_factory=list)  # when the run was resumed, if it was

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["reason"] is None:
            del data["reason"]
        for key in ("flags", "resumed"):
            if not data[key]:
                del data[key]
        return data


class RunWriter:
    """A listener that records one run's events into its directory (and keeps its heartbeat): the events
    file as they come, the config (and its listing sidecar) at the start, the summary at start and end."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._events = open(layout.run_file(self.run_dir, layout.EVENTS_FILE), "a", encoding="utf-8")
        self._started: float | None = None
        self._config: dict[str, Any] | None = None
        HEARTBEAT.add(self)

    def beat(self) -> None:
        """Mark the run alive now (the events file's modification time), while it is open."""
        if not self._events.closed:
            try:
                os.utime(self._events.fileno())
            except (OSError, ValueError):
                pass

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started = event.time
            self._config = dict(event.config)
            self._config["environment"] = event.environment
            self._write_config()
            self._write_summary({"status": "running", "run_id": event.run_id, "name": event.name,
                                 "started": event.time, **process_identity()})
        elif isinstance(event, RunResumed):
            # The same directory, written on by another process: its config as it was, running again.
            previous = read_json(layout.run_file(self.run_dir, layout.SUMMARY_FILE))
            self._started = previous.get("started") if isinstance(previous.get("started"), (int, float)) else event.time
            with contextlib.suppress(OSError, ValueError):
                text = layout.run_file(self.run_dir, layout.CONFIG_FILE).read_bytes()
                self._config = parse_yaml(text.decode("utf-8")) or {}
                self._write_listing(text)  # a run of an earlier version lists fast from now on
            resumed = [t for t in previous.get("resumed") or [] if isinstance(t, (int, float))] + [event.time]
            self._write_summary({"status": "running", "run_id": event.run_id, "name": event.name,
                                 "started": self._started, "resumed": resumed, **process_identity()})
        elif isinstance(event, DataSource) and self._config is not None:
            # Beside the config that asked for the data, what it resolved to: source, file and checksum.
            self._config["data_source"] = event.provenance
            self._write_config()
        self._events.write(dumps(event.to_dict()) + "\n")
        self._events.flush()
        if isinstance(event, (RunFinished, RunFailed)):
            summary = dict(event.summary)
            if isinstance(event, RunFailed):
                summary.setdefault("status", "failed")
                summary["reason"] = event.reason
            else:
                summary["status"] = event.status
            self._write_summary(summary)
            self.close()

    def _write_config(self) -> None:
        text = yaml.safe_dump(jsonable(self._config), sort_keys=False).encode("utf-8")
        write_atomic(layout.run_file(self.run_dir, layout.CONFIG_FILE), text)
        self._write_listing(text)

    def _write_listing(self, config_yaml: bytes) -> None:
        """The listing sidecar of the config just written (config.yaml first: a sidecar never names a
        config.yaml that is not there yet); none, and any older one removed, if it cannot be made."""
        listing = layout.run_file(self.run_dir, layout.LISTING_FILE)
        text = None
        if isinstance(self._config, dict):
            config = jsonable(self._config)
            text = make_listing(config_yaml, config, checked=_passes_checks(config))
        if text is None:
            listing.unlink(missing_ok=True)
        else:
            write_atomic(listing, text)

    def _write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(layout.run_file(self.run_dir, layout.SUMMARY_FILE),
                     json.dumps(jsonable(summary), indent=2, allow_nan=False))

    def close(self) -> None:
        HEARTBEAT.discard(self)
        if not self._events.closed:
            self._events.close()


def _passes_checks(config: dict[str, Any]) -> bool:
    try:
        return config_problem(config) is None
    except Exception:  # noqa: BLE001 - a check that cannot run passes nothing; readers check again
        return False


def read_events(path: str | Path, offset: int = 0) -> tuple[list[Event], int]:
    """Events appended to ``events.jsonl`` (``path``, or the run directory holding it) since byte
    ``offset``, and the offset to continue from.

    A missing file, or one that is not a regular file (a FIFO, which would block, a device, a
    directory), has no events. A last line without its newline is still being written: it is left for
    the next call. A line that is not an event (damaged, or written by something else), or an event with
    a field that holds what its type does not declare (:func:`~collapse_tui.events.event_problem`),
    becomes a warning
    :class:`Message` naming the file, the line and what is wrong, in its place and at the time of the
    event it stands for (of the event before it where that is unreadable): a reader shows what it can,
    is never handed a field of the wrong type, and never fails on it.
    """
    file = Path(path)
    if file.is_dir():
        file = layout.run_file(file, layout.EVENTS_FILE)
    events: list[Event] = []
    try:
        with open_regular(file) as fh:
            fh.seek(offset)
            data = fh.read()
    except (FileNotFoundError, ValueError):  # missing, or not a file (a FIFO, a device, a directory): no events
        return events, offset
    end = data.rfind(b"\n") + 1
    position = offset
    for line in data[:end].splitlines(keepends=True):
        before = events[-1].time if events else None  # the first line of a read: now
        if line.strip():
            try:
                events.append(event_from_dict(json.loads(line)))
            except DamagedEvent as exc:
                events.append(exc.warning(str(file), before, at_byte=position))
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
                events.append(Message(text=f"{file}: unreadable line at byte {position} ({shorten(str(exc), 120)})",
                                      level="warning", **({"time": before} if before is not None else {})))
        position += len(line)
    return events, offset + end


def iter_events(path: str | Path) -> Iterator[Event]:
    yield from read_events(path)[0]
