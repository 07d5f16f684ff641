"""What the run panels show, folded from a run's events.

The same :class:`RunState` is fed by a live engine (events from the training thread) or by a run
directory's ``events.jsonl`` (another process may still be writing it), so the live and the follow
views are one view.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from collapse_tui import events as ev
from collapse_tui.metrics.specs import DEAD_IN_TRAINING, DEAD_PREFIX, is_threshold_key, threshold_key

TERMINAL = ("ok", "stopped", "failed", "crashed")
# The loss and the terms it is the sum of, as the VAE and SAE log them each epoch (chart labels).
LOSS_TERMS = {"loss": "loss", "reconstruction": "reconstruction", "kl": "KL", "sparsity_loss": "sparsity",
              "auxk_loss": "AuxK (unweighted)"}


def dead_neurons(metrics: dict[str, Any]) -> list[bool]:
    """Per-neuron dead flags: the evaluation's ``dead_mask`` if it has one, else neurons whose
    normalised MI with every factor is exactly 0 (a neuron that never fires carries no information)."""
    mask = metrics.get("dead_mask")
    if isinstance(mask, list):
        return [bool(m) for m in mask]
    return [all(v == 0 for v in row) for row in metrics.get("nmi") or []]


@dataclass
class RunState:
    """One run as the panels see it. ``version`` grows with every applied event."""

    run_id: str = ""
    name: str = ""
    run_dir: str = ""  # as the run recorded it: where it was written, not necessarily where it is now
    # The directory its events were read from (empty for a live run): a copied or moved run is read here.
    source_dir: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    status: str = "waiting"
    reason: str = ""
    phase: str = ""
    phase_detail: str = ""
    phase_started: float | None = None
    # How long each phase that ended took, in seconds (what the next runs' ETAs are estimated from).
    phase_seconds: dict[str, float] = field(default_factory=dict)
    epoch: int = 0
    epochs: int = 0
    done: int = 0
    total: int = 0
    progress_started: tuple[float, int] | None = None
    last_time: float | None = None
    started: float | None = None  # when the run started (its RunStarted event)
    # Per phase, each logged term ("loss", "reconstruction", "kl", "sparsity_loss", ...) per epoch.
    vae_terms: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    sae_terms: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    # The same terms per few steps (the progress events' means since the last), at fractional epochs.
    vae_steps: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    sae_steps: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    sae_l0: list[tuple[int, float]] = field(default_factory=list)
    # Percent of neurons that fired on no training input of an epoch, after every SAE epoch.
    dead_in_training: list[tuple[int, float]] = field(default_factory=list)
    sparsity: float | None = None
    evaluations: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    vae_metrics: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    data_source: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    # Grows only with events that change what the panels draw (not progress ticks), so the charts are
    # redrawn when their data changed rather than with every progress report.
    panel_version: int = 0

    # ------------------------------------------------------------------ folding events
    def apply(self, event: ev.Event) -> None:
        self.version += 1
        if not isinstance(event, (ev.Progress, ev.PhaseStarted)) or getattr(event, "logs", None):
            self.panel_version += 1
        self.last_time = event.time
        if isinstance(event, ev.RunStarted):
            self.run_id, self.name, self.run_dir = event.run_id, event.name, event.run_dir
            self.config, self.environment = dict(event.config), dict(event.environment)
            self.status = "running"
            self.started = event.time
        elif isinstance(event, ev.RunResumed):
            self.run_id, self.name = event.run_id, event.name or self.name
            self.status, self.reason = "running", ""
            self.messages.append(f"resumed from SAE epoch {event.epoch}" if event.epoch else "resumed")
        elif isinstance(event, ev.PhaseStarted):
            self._end_phase(event.time)
            self.phase, self.phase_detail, self.phase_started = event.phase, event.detail, event.time
            self.epochs = event.epochs or 0
            self.epoch = 0
            self.done, self.total = 0, (event.epochs or 0) * (event.steps_per_epoch or 0)
            self.progress_started = None
        elif isinstance(event, ev.Progress):
            self.done, self.total = event.done, event.total
            if event.epoch is not None:
                self.epoch = max(self.epoch, event.epoch)
            if self.progress_started is None or event.done < self.progress_started[1]:
                self.progress_started = (event.time, event.done)
            if event.logs and event.phase in ("vae", "sae") and self.epochs and event.total:
                steps = self.vae_steps if event.phase == "vae" else self.sae_steps
                x = event.done * self.epochs / event.total
                for name, value in event.logs.items():
                    if name in LOSS_TERMS and value is not None:
                        steps.setdefault(name, []).append((x, float(value)))
        elif isinstance(event, ev.EpochEnd):
            self.epoch, self.epochs = event.epoch, event.epochs
            terms = self.vae_terms if event.phase == "vae" else self.sae_terms
            for name, value in event.logs.items():
                if name in LOSS_TERMS and value is not None:
                    terms.setdefault(name, []).append((event.epoch, float(value)))
            if event.phase == "sae":
                if event.sparsity is not None:
                    self.sparsity = event.sparsity
                if event.logs.get("l0") is not None:
                    self.sae_l0.append((event.epoch, float(event.logs["l0"])))
                if event.logs.get(DEAD_IN_TRAINING) is not None:
                    self.dead_in_training.append((event.epoch, 100.0 * float(event.logs[DEAD_IN_TRAINING])))
        elif isinstance(event, ev.Evaluation):
            if event.phase == "vae":
                self.vae_metrics = dict(event.metrics)
            else:
                self.evaluations.append((event.epoch, dict(event.metrics)))
                if event.metrics.get("sparsity") is not None:
                    self.sparsity = event.metrics["sparsity"]
        elif isinstance(event, ev.Message):
            self.messages.append(f"{event.level}: {event.text}" if event.level != "info" else event.text)
        elif event.kind == "data_source":
            self.data_source = dict(getattr(event, "provenance", {}) or {})
        elif isinstance(event, ev.RunFinished):
            self._end_phase(event.time)
            self.status, self.summary = event.status, dict(event.summary)
        elif isinstance(event, ev.RunFailed):
            self._end_phase(event.time)
            self.status, self.reason, self.summary = "failed", event.reason, dict(event.summary)

    def _end_phase(self, now: float | None) -> None:
        if self.phase and self.phase_started is not None and now is not None:
            self.phase_seconds[self.phase] = max(0.0, now - self.phase_started)

    # ------------------------------------------------------------------ views
    @property
    def vae_loss(self) -> list[tuple[int, float]]:
        return self.vae_terms.get("loss", [])

    @property
    def sae_loss(self) -> list[tuple[int, float]]:
        return self.sae_terms.get("loss", [])

    def loss_curves(self, phase: str) -> dict[str, list[tuple[float, float]]]:
        """Each loss term of ``phase`` (``vae`` or ``sae``) over epochs, per few steps where those are the
        finer curve (a run whose epochs take under the progress interval has about one step point per
        epoch, and a run written before step points existed has none), else per epoch."""
        epochs, steps = (self.vae_terms, self.vae_steps) if phase == "vae" else (self.sae_terms, self.sae_steps)
        return {name: steps[name] if len(steps.get(name, ())) > len(points) else points
                for name, points in epochs.items()} | {name: points for name, points in steps.items()
                                                        if name not in epochs}

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def thresholds(self) -> list[float]:
        found = self.config.get("eval", {}).get("thresholds")
        if found:
            return [float(t) for t in found]
        if self.evaluations:
            keys = [k for k in self.evaluations[-1][1] if is_threshold_key(k)]
            return [float(k[len(DEAD_PREFIX):]) for k in keys]
        return []

    @property
    def method(self) -> str:
        return str(self.config.get("sae", {}).get("method", ""))

    @property
    def latest(self) -> dict[str, Any]:
        return self.evaluations[-1][1] if self.evaluations else {}

    def dead_series(self, threshold: float) -> list[tuple[int, float]]:
        key = threshold_key(threshold)
        return [(e, m[key]) for e, m in self.evaluations if m.get(key) is not None]

    def dead_pct_series(self, threshold: float) -> list[tuple[int, float]]:
        """:meth:`dead_series` in percent, as every table shows dead neurons."""
        return [(e, 100.0 * f) for e, f in self.dead_series(threshold)]

    def metric_series(self, key: str) -> list[tuple[int, float]]:
        return [(e, m[key]) for e, m in self.evaluations if isinstance(m.get(key), (int, float))]

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left in the current phase, from the progress rate since the phase's first report."""
        if self.finished or self.progress_started is None or not self.total:
            return None
        t0, d0 = self.progress_started
        now = self.last_time if now is None else now
        if now is None or self.done <= d0 or now <= t0:
            return None
        rate = (self.done - d0) / (now - t0)
        return max(0.0, (self.total - self.done) / rate) if rate > 0 else None


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class EventFeed:
    """Where a run view's events come from. ``poll()`` folds what arrived into ``states`` and says
    whether anything changed; the view calls it on a timer."""

    live = False

    def __init__(self) -> None:
        self.states: list[RunState] = []
        self.error: str | None = None
        self.sweep_dir: str | None = None  # where a sweep of several runs keeps its record and table

    @property
    def current(self) -> RunState:
        return self.states[-1] if self.states else RunState()

    def directory_of(self, state: RunState) -> Path | None:
        """The directory that holds ``state``'s run: the one its events were read from, else (a live run)
        the one its engine writes; None before it started."""
        found = state.source_dir or state.run_dir
        return Path(found) if found else None

    def _apply(self, events: list[ev.Event], source: Path | None = None) -> None:
        # The runs of a bank train at once: their events interleave, each naming its run. Events written
        # before they carried a run's name belong to the latest run. ``source``: the run directory the
        # events were read from (a run's recorded path may be another machine's, or the original of a copy).
        by_run = {state.run_id: state for state in self.states if state.run_id}
        for event in events:
            if isinstance(event, ev.SweepStarted):  # about the sweep, not one of its runs
                self.sweep_dir = event.sweep_dir
                continue
            state = by_run.get(event.run_id) if event.run_id else None
            if isinstance(event, ev.RunStarted) or (state is None and not self.states):
                state = RunState()
                self.states.append(state)
                if event.run_id:
                    by_run[event.run_id] = state
            state = state or self.states[-1]
            state.apply(event)
            if source is not None:
                state.source_dir = str(source)

    @property
    def planned(self) -> int:
        """How many runs the feed will show in all (the sweep's plan, else the runs given or seen)."""
        return (getattr(self, "n_planned", None) or len(getattr(self, "runs", ()) or ()) or len(self.states))

    def run_eta(self, state: RunState, now: float | None = None) -> tuple[float, bool] | None:
        """Seconds left in the run ``state`` across its phases, and whether that is only a lower bound.

        What is left of its phase (its progress rate, counted down with the clock ``now`` since the last
        report), plus what the phases after it took in this feed's latest run that ended well (a sweep's
        earlier run). With no such run the later phases are unknown: the phase's time left is returned as
        a lower bound. None when the run is over or nothing can be estimated yet."""
        if state.finished or state.phase not in ev.PHASES:
            return None
        past = next((s for s in reversed(self.states) if s is not state and s.status == "ok" and s.phase_seconds),
                    None)
        left = state.eta()
        if left is not None and now is not None and state.last_time is not None:
            left = max(0.0, left - max(0.0, now - state.last_time))
        if left is None:  # a phase without progress reports: as long as it took the run before
            if past is None or state.phase not in past.phase_seconds or state.phase_started is None:
                return None
            clock = now if now is not None else state.last_time or state.phase_started
            left = max(0.0, past.phase_seconds[state.phase] - max(0.0, clock - state.phase_started))
        later = ev.PHASES[ev.PHASES.index(state.phase) + 1:]
        if past is None:
            return left, bool(later)
        return left + sum(past.phase_seconds.get(phase, 0.0) for phase in later), False

    def sweep_eta(self, now: float | None = None) -> float | None:
        """Seconds left in the whole sweep, extrapolated linearly: the time since its first run started,
        times the work left over the work done, where a finished run counts 1 and a run in its SAE phase
        the fraction of its steps done (earlier phases count 0: the SAE phase is most of a sweep's
        time, and a bank's runs move through it together). None for one run or before any work."""
        n = self.planned
        starts = [s.started for s in self.states if s.started is not None]
        if n < 2 or not starts:
            return None
        done = sum(1.0 if s.finished else (s.done / s.total if s.phase == "sae" and s.total else 0.0)
                   for s in self.states)
        if done <= 0 or done >= n:
            return None
        now = time.time() if now is None else now
        return max(0.0, now - min(starts)) * (n - done) / done

    def poll(self) -> bool:  # pragma: no cover - overridden
        return False

    @property
    def running(self) -> bool:
        return False

    def stop(self) -> bool:
        return False


class FileFeed(EventFeed):
    """Follows a run directory's ``events.jsonl`` from byte offset 0, as ``tail -f`` would."""

    # How often, while no event arrives, the follower asks whether the writing process is still there.
    LIVENESS_SECONDS = 5.0

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.offset = 0
        self._checked = time.monotonic()

    def poll(self) -> bool:
        from collapse_tui.tui.event_checks import read_run_events

        try:
            events, self.offset = read_run_events(self.run_dir, self.offset)
        except (OSError, ValueError) as exc:
            self.error = f"cannot read {self.run_dir.name}/events.jsonl: {exc}"
            return False
        self._apply(events, source=self.run_dir)
        if events:
            self._checked = time.monotonic()
            return True
        return self._check_alive()

    def _check_alive(self) -> bool:
        """A run still open when its process is gone is marked crashed (it will never end otherwise)."""
        if time.monotonic() - self._checked < self.LIVENESS_SECONDS or not self.running:
            return False
        self._checked = time.monotonic()
        from collapse_tui.store import CRASHED, load_run

        try:
            status = load_run(self.run_dir).status
        except ValueError:
            return False
        if status != CRASHED:
            return False
        for state in self.states:
            if not state.finished:
                state.status, state.reason = CRASHED, "the process writing this run is gone"
                state.version += 1
        return True

    @property
    def running(self) -> bool:
        return bool(self.states) and not self.current.finished


class SweepFeed(EventFeed):
    """Follows a sweep directory: every run its ``sweep.json`` lists, each run's ``events.jsonl`` read on
    as it grows (as :class:`FileFeed` reads one), runs the sweep starts later picked up as they appear; so
    a view that follows the latest run moves on to the sweep's next run by itself."""

    # How often the sweep's list of runs is read again (it grows by one line per run started).
    RUNS_SECONDS = 1.0

    def __init__(self, sweep_dir: str | Path) -> None:
        super().__init__()
        self.sweep_dir = str(sweep_dir)
        self.n_planned: int | None = None
        self.offsets: dict[Path, int] = {}
        self._listed = 0.0
        self._checked = time.monotonic()
        self._last_event = time.time()

    def _list_runs(self) -> None:
        from collapse_tui.store import load_sweep

        self._listed = time.monotonic()
        try:
            record = load_sweep(self.sweep_dir)
        except ValueError as exc:
            self.error = str(exc)
            return
        self.n_planned = record.n_runs or None
        for run in record.runs:
            self.offsets.setdefault(Path(run), 0)

    def poll(self) -> bool:
        from collapse_tui.tui.event_checks import read_run_events

        if time.monotonic() - self._listed >= self.RUNS_SECONDS or not self.offsets:
            self._list_runs()
        arrived = False
        ended = {self.directory_of(state) for state in self.states if state.finished}
        for run_dir, offset in self.offsets.items():
            if run_dir in ended:
                continue  # a run that ended writes nothing more: not read again at every poll
            try:
                more, self.offsets[run_dir] = read_run_events(run_dir, offset)
            except (OSError, ValueError):
                continue  # not written yet, or gone: the others still show
            self._apply(more, source=run_dir)
            arrived = arrived or bool(more)
        if arrived:
            self._checked, self._last_event = time.monotonic(), time.time()
            return True
        return self._check_alive()

    def _check_alive(self) -> bool:
        """Open runs whose process is gone are marked crashed, as :meth:`FileFeed._check_alive` does."""
        if time.monotonic() - self._checked < FileFeed.LIVENESS_SECONDS:
            return False
        self._checked = time.monotonic()
        from collapse_tui.store import CRASHED, load_run

        changed = False
        for state in self.states:
            if state.finished or self.directory_of(state) is None:
                continue
            try:
                status = load_run(self.directory_of(state)).status
            except ValueError:
                continue
            if status == CRASHED:
                state.status, state.reason = CRASHED, "the process writing this run is gone"
                state.version += 1
                changed = True
        return changed

    @property
    def running(self) -> bool:
        """A run still open, or runs still to come from a sweep that wrote lately."""
        from collapse_tui.store import STALE_SECONDS

        if any(not state.finished for state in self.states):
            return True
        return (self.n_planned is not None and len(self.offsets) < self.n_planned
                and time.time() - self._last_event < STALE_SECONDS)


class LiveFeed(EventFeed):
    """Events from an engine running in another thread: the listener only appends to a queue (it
    must not slow training); ``notify`` tells the UI that the queue went from empty to non-empty."""

    live = True

    def __init__(self, runs: list, notify: Callable[[], None] | None = None, resume: list | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.resume = list(resume or [])  # run directories to go on with instead of new runs
        self.stop_event = threading.Event()
        self.notify = notify
        self.finished = False
        self.started = time.time()
        self._queue: collections.deque[ev.Event] = collections.deque()
        self._lock = threading.Lock()

    def listener(self, event: ev.Event) -> None:
        with self._lock:
            was_empty = not self._queue
            self._queue.append(event)
        if was_empty and self.notify is not None:
            self.notify()

    def poll(self) -> bool:
        with self._lock:
            events = list(self._queue)
            self._queue.clear()
        self._apply(events)
        return bool(events)

    @property
    def running(self) -> bool:
        return not self.finished

    def stop(self) -> bool:
        if self.finished:
            return False
        self.stop_event.set()
        return True
