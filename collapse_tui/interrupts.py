"""Stop signals and the blocks they must not cut short: the bottom layer every writer relies on.

Three ideas that only work together, hence one module:

- **polling**: :func:`stop_polled` marks a block that checks the stop event between its steps (training
  with Keras' ``fit``); a stop signal there only sets the event, never raises: an exception raised in the
  middle of a framework's step can land in its own callbacks, where it is wrapped as the framework's
  error (the run then counts as failed) or leaves native state half-updated;
- **deferral**: :func:`uninterrupted` marks a block a stop signal must not cut short (writing a run's
  summary, saving a model); a signal handler that asks :func:`defer_interrupt` first has its exception
  raised when the outermost such block ends instead of in the middle of it;
- **handling**: :func:`stop_on_signals` turns Ctrl-C (SIGINT), SIGTERM and SIGHUP into a clean stop of the
  run in progress (an event set, and an exception deferred past any save), and
  :func:`ignore_late_signals` keeps a stopping process from being killed half-way through its report;
  :func:`end_process_once_saved` ends a process whose own way out cannot be trusted (an event loop
  blocked on a terminal that is gone) once its run is saved, and within a bound if the save sticks.

Nothing here imports anything of the package: the store, the engine and the front ends all use it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Callable


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


class _Polling:
    """How deep the main thread is in :func:`stop_polled` blocks."""

    depth = 0


@contextlib.contextmanager
def stop_polled():
    """A block that checks the stop event between its steps itself: a stop signal arriving inside only
    sets the event (see :func:`stop_on_signals`); the block ends at its next check. Main thread only
    (signals are handled there); elsewhere it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _Polling.depth += 1
    try:
        yield
    finally:
        _Polling.depth -= 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered the way Ctrl-C is, so that the run in progress stops and is kept."""


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, ignore_after_stop: bool = False):
    """Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal went away: an SSH connection dropped) end the run
    in progress cleanly; yields an event set once SIGTERM or SIGHUP came. A first signal that arrives
    while something is being saved interrupts once the save is done (:func:`uninterrupted`); later ones
    only mark a SIGTERM or SIGHUP, since the stop they would ask for is under way.

    Python's own Ctrl-C raises KeyboardInterrupt wherever the main thread is, and an exception raised
    inside a garbage-collector callback (JAX registers one) is printed and dropped: the run went on.
    Setting the engine's stop event as well makes the stop certain; it takes effect at the next step.
    SIGTERM (job schedulers, `timeout`) would otherwise kill the process and leave the run 'running'.
    SIGINT is handled even if the process started with it ignored (a background job of a shell without
    job control): Ctrl-C in a terminal never reaches such a job, so only an explicit kill -INT does.
    ``ignore_after_stop``: once a stop came, leave the signals ignored rather than restoring the earlier
    handlers (a process that then only reports and exits: a second signal must not find the default
    handler in between, which for SIGTERM kills it).
    """
    terminated = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield terminated
        return

    def handler(signum, frame):
        stopping = stop.is_set()
        stop.set()
        if signum != signal.SIGINT:
            terminated.set()
        if stopping:
            # A stop is under way (the first signal's); it ends the process once what was measured is
            # saved. Raising again could only land somewhere harmful: in a garbage-collector callback
            # (printed as "Exception ignored", traceback and all) or in the middle of the report.
            return
        if _Polling.depth:
            return  # the block in progress checks the event between steps: it ends at the next one
        exc = Terminated() if signum != signal.SIGINT else KeyboardInterrupt()
        # While a run's summary or model is being saved (a second Ctrl-C 10 ms after the first lands
        # there), the interruption waits for the save to end: never a damaged file or a run left "running".
        if not defer_interrupt(exc):
            raise exc

    stopping = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, handler) for sig in stopping}
    try:
        yield terminated
    finally:
        if ignore_after_stop and stop.is_set():
            ignore_late_signals()
        else:
            for sig, old in previous.items():
                signal.signal(sig, old)


def ignore_late_signals() -> None:
    """After a stop has been saved, the process only reports and exits: a second Ctrl-C or a kill
    arriving now (a user pressing twice) must not end it with a traceback or as killed."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                signal.signal(sig, signal.SIG_IGN)


def end_process_once_saved(saved: Callable[[], bool], status: int, timeout: float, poll: float = 0.1) -> None:
    """Wait until ``saved()`` (the run in progress is stopped and written) or ``timeout`` seconds passed,
    then end the process at once with ``status``: no clean-up, no waiting for other threads, since what
    would run them (an event loop blocked writing to a terminal that is gone) may never get to it. The
    bound is what keeps a stuck save (a native op that never returns) from keeping the process alive."""
    deadline = time.monotonic() + timeout
    while not saved() and time.monotonic() < deadline:
        time.sleep(poll)
    os._exit(status)
