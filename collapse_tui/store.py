"""Run directories: the interface between the engine and every front end.

``runs/<YYYYmmdd-HHMMSS>-<name>/`` holds

- ``config.yaml``: the resolved config plus the environment (backend, keras and package versions);
- ``events.jsonl``: one JSON event per line, flushed as written, so another process can follow it;
- ``summary.json``: status (running / ok / failed / stopped), final metrics, durations; replaced atomically;
- ``sae.keras``: the trained sparse autoencoder.

A run directory is created exclusively and never reused, so nothing is ever overwritten.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from collapse_tui.engine.events import DataSource, Event, RunFailed, RunFinished, RunStarted, event_from_dict

CONFIG_FILE = "config.yaml"
EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"
SAE_FILE = "sae.keras"


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays to Python, non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(data: Any) -> str:
    return json.dumps(_jsonable(data), separators=(",", ":"), allow_nan=False)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_run_dir(runs_dir: str | Path, name: str, now: float | None = None) -> Path:
    """Create ``<runs_dir>/<timestamp>-<name>`` exclusively; a clash gets a ``-2``, ``-3`` ... suffix."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now if now is not None else time.time()))
    base = f"{stamp}-{name}"
    for i in range(1, 10_000):
        path = runs_dir / (base if i == 1 else f"{base}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"could not create a new run directory for {base!r} in {runs_dir}")


class RunWriter:
    """A listener that records one run's events into its directory."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._events = open(self.run_dir / EVENTS_FILE, "a", encoding="utf-8")
        self._started: float | None = None
        self._config: dict[str, Any] | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started = event.time
            self._config = dict(event.config)
            self._config["environment"] = event.environment
            self._write_config()
            self._write_summary({"status": "running", "run_id": event.run_id, "name": event.name,
                                 "started": event.time})
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
        write_atomic(self.run_dir / CONFIG_FILE, yaml.safe_dump(_jsonable(self._config), sort_keys=False))

    def _write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.run_dir / SUMMARY_FILE, json.dumps(_jsonable(summary), indent=2, allow_nan=False))

    def close(self) -> None:
        if not self._events.closed:
            self._events.close()


@dataclass
class RunRecord:
    """A run directory as read back: its config and summary (``error`` set if it could not be read)."""

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return "unreadable" if self.error else str(self.summary.get("status", "unknown"))


def load_run(path: str | Path) -> RunRecord:
    """Read a run directory's config and summary; raises ValueError naming the file that is unreadable."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not a run directory")
    try:
        config = yaml.safe_load((path / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path / CONFIG_FILE}: unreadable ({exc.__class__.__name__}: {exc})") from None
    try:
        summary = json.loads((path / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path / SUMMARY_FILE}: unreadable ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(config, dict) or not isinstance(summary, dict):
        raise ValueError(f"{path}: config.yaml and summary.json must each hold a mapping")
    return RunRecord(path=path, config=config, summary=summary)


def list_runs(runs_dir: str | Path, include_unreadable: bool = False) -> list[RunRecord]:
    """All runs under ``runs_dir``, oldest first. Unreadable ones are skipped with a warning, or
    returned with ``error`` set when ``include_unreadable`` is true."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    records = []
    # "sweeps" holds the sweep directories (their tables), not runs; a run's name starts with its date.
    for path in sorted(p for p in runs_dir.iterdir()
                       if p.is_dir() and not p.name.startswith(".") and p.name != "sweeps"):
        try:
            records.append(load_run(path))
        except ValueError as exc:
            if include_unreadable:
                records.append(RunRecord(path=path, error=str(exc)))
            else:
                warnings.warn(f"skipping run {path.name}: {exc}", stacklevel=2)
    return records


def read_events(path: str | Path, offset: int = 0) -> tuple[list[Event], int]:
    """Events appended to ``events.jsonl`` since byte ``offset``, and the offset to continue from.

    A last line without its newline is still being written: it is left for the next call.
    """
    file = Path(path)
    if file.is_dir():
        file = file / EVENTS_FILE
    events: list[Event] = []
    try:
        with open(file, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return events, offset
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        if line.strip():
            events.append(event_from_dict(json.loads(line)))
    return events, offset + end


def iter_events(path: str | Path) -> Iterator[Event]:
    yield from read_events(path)[0]
