"""Run and sweep directories: the interface between the engine and every front end.

``runs/<YYYYmmdd-HHMMSS>-<name>/`` holds

- ``config.yaml``: the resolved config plus the environment (backend, keras and package versions);
- ``events.jsonl``: one JSON event per line, flushed as written, so another process can follow it;
- ``summary.json``: status (running / ok / failed / stopped), final metrics, durations; replaced atomically;
- ``sae.keras``: the trained sparse autoencoder.

``runs/sweeps/<YYYYmmdd-HHMMSS>-<name>/`` holds ``sweep.json``: the config file a sweep ran and the run
directories it made so far, updated after each run (the sweep's results tables are written beside it
by :mod:`collapse_tui.report`).

A run or sweep directory is created exclusively and never reused, so nothing is ever overwritten.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import socket
import tempfile
import threading
import time
import warnings
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import yaml

from collapse_tui.config import ConfigError, parse_yaml, shorten, stored_config_errors
from collapse_tui.events import (DataSource, Event, Message, RunFailed, RunFinished, RunResumed, RunStarted,
                                event_from_dict)

CONFIG_FILE = "config.yaml"
EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"
SAE_FILE = "sae.keras"
NEURONS_FILE = "neurons.npz"  # per-neuron profiles of the final evaluation (write_neurons)
SWEEPS_DIR = "sweeps"
SWEEP_FILE = "sweep.json"
SUSPECT = "suspect"  # an ok run whose final metrics are no result (RunSummary.flags)


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


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; empty if it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _file_mode() -> int:
    """The mode a plainly created file gets under the process's umask (read once: setting the umask to
    read it is not thread-safe)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees a half-written file. The file gets
    the mode any other file of the run gets (mkstemp's own is 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        binary = isinstance(text, bytes)
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def writable_dir_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot hold runs (not a directory, cannot be created, not writable), in a few words;
    None when it can. Creates the directory if it is missing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{path} is not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"{path} is not writable ({exc.strerror or exc})"
    return None


class _Deferral:
    """The main thread's :func:`uninterrupted` blocks: how deep, and the interruption held back."""

    depth = 0
    pending: BaseException | None = None


@contextlib.contextmanager
def uninterrupted():
    """A block a stop signal must not cut short (writing a run's summary, saving a model): a signal
    handler that asks :func:`defer_interrupt` first has its exception raised when the outermost block
    ends instead of inside it. Only the main thread (where signals are handled) defers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _Deferral.depth += 1
    try:
        yield
    finally:
        _Deferral.depth -= 1
        if _Deferral.depth == 0 and _Deferral.pending is not None:
            pending, _Deferral.pending = _Deferral.pending, None
            raise pending


def defer_interrupt(exc: BaseException) -> bool:
    """For a signal handler: hold ``exc`` back until the current :func:`uninterrupted` block ends (True),
    or False when none is running (raise it now)."""
    if _Deferral.depth == 0:
        return False
    if _Deferral.pending is None:
        _Deferral.pending = exc
    return True


@contextlib.contextmanager
def file_lock(path: str | Path, waiting: Callable[[], None] | None = None, poll_seconds: float = 0.5):
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block: two processes on
    one machine, or on the nodes of a cluster sharing the directory, never do the block at once. A
    process that dies drops its lock with it. While another holds it, ``waiting`` is called every
    ``poll_seconds`` (to say so, or to raise and give up). POSIX record locks (``lockf``), which network
    filesystems carry across nodes; where there are none (Windows) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        while True:
            try:
                fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if waiting is not None:
                    waiting()
                time.sleep(poll_seconds)
        try:
            yield
        finally:
            fcntl.lockf(fh, fcntl.LOCK_UN)


def save_model(model, path: str | Path) -> None:
    """``model.save(path)`` atomically, without interruption: a reader, a crash or a second Ctrl-C never
    leaves a half-written ``.keras`` file at ``path`` (it is written beside it, then renamed)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    with uninterrupted():
        try:
            model.save(tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def write_neurons(run_dir: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write a run's per-neuron profiles, ``<run_dir>/neurons.npz``, atomically. Its arrays (m neurons,
    F factors, n evaluation samples, ``top`` examples a neuron):

    - ``factors`` (F,): the factors' names; ``eval_indices`` (n,): each evaluation sample's index in its
      dataset, from which its image is rendered again (images are not stored);
    - ``frequency``, ``max_activation``, ``mean_activation`` (m,); ``dead`` (m,) as the evaluation counts it;
    - ``top_examples`` (m, top): rows of the evaluation set, largest activation first, -1 padding;
      ``top_values`` (m, top);
    - ``nmi`` (m, F): normalised mutual information with each factor; ``best_factor`` (m,);
    - ``tuning/<factor>`` (m, values): mean activation at each value of the factor, and
      ``tuning_values/<factor>`` those values (indices into the factor's grid);
    - ``neighbours``, ``neighbour_cosines`` (m, 8): the neurons whose decoder directions are nearest
      (by cosine), nearest first;
    - ``auroc`` (m,): where the neuron is the best single detector of some factor's value, its highest
      such AUROC (NaN elsewhere), for the factor ``auroc_factor`` (index into ``factors``) and its value
      ``auroc_value`` (-1 elsewhere).
    """
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path = Path(run_dir) / NEURONS_FILE
    write_atomic(path, buffer.getvalue())
    return path


def read_neurons(run_dir: str | Path) -> dict[str, np.ndarray] | None:
    """The profiles :func:`write_neurons` wrote, or None if the run has none (not finished, or older);
    ValueError if the file cannot be read."""
    path = Path(run_dir) / NEURONS_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: unreadable neuron profiles ({type(exc).__name__}: {exc})") from None


def remove_stale_temporaries(directory: str | Path, everything: bool = False) -> list[Path]:
    """Remove what writes cut short by a crash left in ``directory``: ``save_model``'s temporaries
    (``.<name>.<pid>.tmp.<ext>``) whose process is gone, or, with ``everything`` (a run directory no
    process is writing), every hidden file. Returns what was removed."""
    removed = []
    for path in Path(directory).glob(".*"):
        if not path.is_file():
            continue
        parts = path.name.split(".")
        pid = parts[-3] if len(parts) >= 4 and parts[-2] == "tmp" else None
        if everything or (pid is not None and pid.isdigit() and not _pid_alive(int(pid))):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


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


@dataclass
class RunSummary:
    """What ``summary.json`` holds once a run has ended (while it runs: status, run_id, name, started).

    ``final``: the last evaluation's scalar metrics; ``vae``: the VAE's; ``durations``: seconds per phase;
    ``updates_by_sparsity``: the SAE's optimiser updates at each k or λ it trained at (the total is
    ``final["updates"]``);
    ``reason``: why a failed run failed (absent otherwise); ``flags``: why an ok run's final metrics are
    not a result (absent when they are: the engine's ``result_flags``). Readers take the file as a mapping
    (:class:`RunRecord`), so runs written before a field existed still load.
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


# ---------------------------------------------------------------------- liveness
# A running run records its host and process (PID, and the process's start time where the system tells
# it, so that a reused PID is not taken for the run's); while its process lives, a heartbeat touches its
# events.jsonl every HEARTBEAT_SECONDS, events or not. A reader decides from these whether a "running"
# run's process is gone: same host, by its PID and start time; another host, by a heartbeat older than
# STALE_SECONDS.
HEARTBEAT_SECONDS = 20.0
STALE_SECONDS = 120.0
CRASHED = "crashed"  # a "running" run whose process is gone


def _process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux's /proc), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:  # the command name (field 2) is parenthesised and may hold spaces: count from after it
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def process_identity() -> dict[str, Any]:
    """This process, as a run records it: host, PID and start time."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_started": _process_start(pid)}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return False
    return True


def process_gone(summary: dict[str, Any], events_file: Path, now: float | None = None) -> bool:
    """Whether the process of a run whose summary says "running" is gone (see above)."""
    host, pid, started = summary.get("host"), summary.get("pid"), summary.get("pid_started")
    if host == socket.gethostname() and isinstance(pid, int) and not isinstance(pid, bool):
        if not _pid_alive(pid):
            return True
        current = _process_start(pid)
        if current is not None and isinstance(started, int):
            return current != started  # the PID now belongs to another process
    try:
        beat = events_file.stat().st_mtime
    except OSError:
        beat = summary.get("started") if isinstance(summary.get("started"), (int, float)) else 0.0
    return (now if now is not None else time.time()) - beat > STALE_SECONDS


class _Heartbeat:
    """Touches the events file of every open :class:`RunWriter` every ``HEARTBEAT_SECONDS``, from one
    daemon thread (started with the first writer): a run's file stays fresh while its process lives,
    through phases that write no events for minutes."""

    def __init__(self) -> None:
        self._writers: weakref.WeakSet = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, writer: "RunWriter") -> None:
        with self._lock:
            self._writers.add(writer)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._beat, name="collapse-tui-heartbeat", daemon=True)
                self._thread.start()

    def discard(self, writer: "RunWriter") -> None:
        with self._lock:
            self._writers.discard(writer)

    def _beat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            with self._lock:
                writers = list(self._writers)
            for writer in writers:
                writer.beat()


_HEARTBEAT = _Heartbeat()


class RunWriter:
    """A listener that records one run's events into its directory (and keeps its heartbeat)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._events = open(self.run_dir / EVENTS_FILE, "a", encoding="utf-8")
        self._started: float | None = None
        self._config: dict[str, Any] | None = None
        _HEARTBEAT.add(self)

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
            previous = _read_json(self.run_dir / SUMMARY_FILE)
            self._started = previous.get("started") if isinstance(previous.get("started"), (int, float)) else event.time
            with contextlib.suppress(OSError, ValueError):
                self._config = parse_yaml((self.run_dir / CONFIG_FILE).read_text(encoding="utf-8")) or {}
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
        write_atomic(self.run_dir / CONFIG_FILE, yaml.safe_dump(_jsonable(self._config), sort_keys=False))

    def _write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.run_dir / SUMMARY_FILE, json.dumps(_jsonable(summary), indent=2, allow_nan=False))

    def close(self) -> None:
        _HEARTBEAT.discard(self)
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
        """The summary's status, as readers show it: ``unreadable`` when it could not be read, ``crashed``
        for a ``running`` run whose process is gone (:func:`process_gone`), ``suspect`` for an ``ok`` run
        whose final metrics are flagged as no result (see :attr:`flags`)."""
        if self.error:
            return "unreadable"
        status = str(self.summary.get("status", "unknown"))
        if status == "running" and process_gone(self.summary, self.path / EVENTS_FILE):
            return CRASHED
        return SUSPECT if status == "ok" and self.flags else status

    @property
    def flags(self) -> list[str]:
        return [str(f) for f in self.summary.get("flags") or []]


# The types readers rely on in a summary, for the fields it has (a field may be absent in a run written
# before it existed, and null where a number was not finite); see RunSummary.
_NUMBER = (int, float)
_SUMMARY_TYPES: dict[str, type | tuple[type, ...]] = {
    "status": str, "run_id": str, "name": str, "dataset": str, "method": str, "sparsity": _NUMBER,
    "n_neurons": int, "source": str, "remedies": list, "resampled": int, "started": _NUMBER,
    "finished": _NUMBER, "seconds": _NUMBER, "durations": dict, "sae_epochs": int,
    "updates_by_sparsity": dict, "evaluated_at_epoch": int, "final": dict, "vae": dict, "vae_model": str,
    "data": dict, "reason": str, "flags": list, "host": str, "pid": int, "pid_started": int, "resumed": list,
}
# What config.yaml holds beside the run's settings.
CONFIG_EXTRAS = ("environment", "data_source")


def stored_settings(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config.yaml less what it holds beside the run's settings (:data:`CONFIG_EXTRAS`)."""
    return {k: v for k, v in config.items() if k not in CONFIG_EXTRAS}


def summary_problem(summary: dict[str, Any]) -> str | None:
    """What is wrong with a summary's shape (a field of the wrong type), or None."""
    if not isinstance(summary.get("status"), str):
        return "summary.json has no status"
    for key, expected in _SUMMARY_TYPES.items():
        value = summary.get(key)
        if value is not None and (not isinstance(value, expected) or (expected is not bool and
                                                                       isinstance(value, bool))):
            names = expected if isinstance(expected, tuple) else (expected,)
            return (f"summary.json: {key} is {type(value).__name__} {shorten(repr(value), 60)}, not "
                    f"{' or '.join(n.__name__ for n in names)}")
    return None


def config_problem(config: dict[str, Any]) -> str | None:
    """What is wrong with a run's config.yaml as a config (a value of the wrong type or out of range),
    or None."""
    errors = stored_config_errors(stored_settings(config))
    return f"config.yaml: {errors[0]}" if errors else None


def load_run(path: str | Path) -> RunRecord:
    """Read a run directory's config and summary; raises ValueError naming the file that is unreadable
    or holds a value of the wrong type (so that no reader meets one)."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not a run directory")
    try:  # parsed within the bounds a config file has (no alias bombs from a run directory either)
        config = parse_yaml((path / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    except ConfigError as exc:
        raise ValueError(f"{path / CONFIG_FILE}: unreadable ({'; '.join(exc.errors)})") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path / CONFIG_FILE}: unreadable ({exc.__class__.__name__}: {shorten(str(exc))})") from None
    try:
        summary = json.loads((path / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSON and UTF-8 decoding errors are ValueErrors
        raise ValueError(f"{path / SUMMARY_FILE}: unreadable ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(config, dict) or not isinstance(summary, dict):
        raise ValueError(f"{path}: config.yaml and summary.json must each hold a mapping")
    problem = summary_problem(summary) or config_problem(config)
    if problem:
        raise ValueError(f"{path}: {problem}")
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
                       if p.is_dir() and not p.name.startswith(".") and p.name != SWEEPS_DIR):
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

    A last line without its newline is still being written: it is left for the next call. A line that is
    not an event (damaged, or written by something else) becomes a :class:`Message` saying so, in its
    place: a reader shows what it can and never fails on it.
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
    position = offset
    for line in data[:end].splitlines(keepends=True):
        if line.strip():
            try:
                events.append(event_from_dict(json.loads(line)))
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
                events.append(Message(text=f"{file.name}: unreadable line at byte {position} "
                                              f"({shorten(str(exc), 120)})", level="warning"))
        position += len(line)
    return events, offset + end


def iter_events(path: str | Path) -> Iterator[Event]:
    yield from read_events(path)[0]


# ---------------------------------------------------------------------- sweeps

PLAN_FILE = "plan.json"  # every run of a sweep, as resolved configs, in order: what --resume finishes


class SweepWriter:
    """A sweep's directory, kept current: ``add`` each run directory as the run starts. ``plan``: the
    resolved configs of all its runs, written once (:data:`PLAN_FILE`); ``path``: reopen an existing
    sweep directory instead of creating one (its runs so far are kept)."""

    def __init__(self, runs_dir: str | Path, name: str, config_path: str | None = None, n_runs: int = 0,
                 plan: list[dict[str, Any]] | None = None, path: str | Path | None = None):
        if path is not None:
            record = load_sweep(path)
            self.path, self.runs = Path(path), [str(r) for r in record.runs]
            info = _read_json(self.path / SWEEP_FILE)
            self.started = info.get("started") if isinstance(info.get("started"), (int, float)) else time.time()
        else:
            self.path = create_run_dir(Path(runs_dir) / SWEEPS_DIR, name)
            self.runs = []
            self.started = time.time()
            if plan is not None:
                write_atomic(self.path / PLAN_FILE, dumps({"runs": plan}))
        self.name = name
        self.config_path = config_path
        self.n_runs = n_runs
        self._write()

    def add(self, run_dir: str | Path) -> None:
        resolved = str(Path(run_dir).resolve())
        if resolved not in self.runs:
            self.runs.append(resolved)
            self._write()

    def records(self) -> list[RunRecord]:
        return sweep_records(self.path)

    def _write(self) -> None:
        info = {"name": self.name, "config": self.config_path, "started": self.started, "updated": time.time(),
                "n_runs": self.n_runs, "runs": self.runs}
        write_atomic(self.path / SWEEP_FILE, dumps(info))


@dataclass
class SweepRecord:
    """A sweep directory as read back: its name, the config file it ran, and its run directories in the
    order they ran."""

    path: Path
    name: str
    config: str | None
    n_runs: int
    runs: list[Path]


def is_sweep_dir(path: str | Path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


def load_sweep(path: str | Path) -> SweepRecord:
    """Read a sweep directory; raises ValueError naming ``sweep.json`` if it is unreadable. A sweep
    directory moved together with its runs dir still resolves: a recorded run that is gone is looked up
    by name beside the sweeps dir."""
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
    name = info.get("name") if isinstance(info.get("name"), str) else path.name
    n_runs = info.get("n_runs") if isinstance(info.get("n_runs"), int) else len(resolved)
    return SweepRecord(path=path, name=name, config=info.get("config"), n_runs=n_runs, runs=resolved)


def load_plan(path: str | Path) -> list[dict[str, Any]]:
    """The resolved configs of every run a sweep directory planned; ValueError if it has no plan."""
    plan = _read_json(Path(path) / PLAN_FILE).get("runs")
    if not isinstance(plan, list) or not all(isinstance(c, dict) for c in plan):
        raise ValueError(f"{Path(path) / PLAN_FILE}: missing or unreadable (a sweep written before sweeps "
                         "recorded their plan cannot be resumed as a whole; resume its runs one by one)")
    return plan


def sweep_run_dirs(path: str | Path) -> list[Path]:
    """The run directories a sweep recorded, in the order they ran."""
    return load_sweep(path).runs


def sweep_of(run_dir: str | Path) -> Path | None:
    """The sweep directory (beside ``run_dir``, in its runs dir's ``sweeps/``) that recorded ``run_dir``,
    the newest if several did; None if none did."""
    run_dir = Path(run_dir)
    target = run_dir.resolve()
    for sweep in sorted((run_dir.parent / SWEEPS_DIR).glob("*"), reverse=True):
        try:
            if any(Path(r).resolve() == target for r in load_sweep(sweep).runs):
                return sweep
        except ValueError:
            continue
    return None


def sweep_records(path: str | Path) -> list[RunRecord]:
    """The runs of a sweep as records; one that cannot be read is returned with ``error`` set."""
    records = []
    for run in sweep_run_dirs(path):
        try:
            records.append(load_run(run))
        except ValueError as exc:
            records.append(RunRecord(path=run, error=str(exc)))
    return records


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
