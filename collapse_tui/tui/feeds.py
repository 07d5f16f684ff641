"""Where a run view's events come from: a live engine in this process (:class:`LiveFeed`), a run
directory another process writes (:class:`FileFeed`) or a sweep directory (:class:`SweepFeed`), each
folded into :class:`~collapse_tui.tui.state.RunState` per run, so the live and the follow views are one
view."""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path
from typing import Callable

from collapse_tui import events as ev
from collapse_tui.tui.state import RunState


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
        self.stop_after_bank = threading.Event()  # let the runs training now end, start no more
        for plan in self.resume:
            self._read_history(Path(plan[0]))

    def _read_history(self, run_dir: Path) -> None:
        """A resumed run's events so far, from its directory: the view shows its whole history at once,
        then what the engine adds (the engine appends to the same file; only the new events come live)."""
        from collapse_tui.tui.event_checks import read_run_events

        try:
            events, _ = read_run_events(run_dir, 0)
        except (OSError, ValueError):
            return  # its history unreadable: the live events still show
        self._apply(events, source=run_dir)

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
