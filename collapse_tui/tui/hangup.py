"""How the TUI ends when its terminal goes away or it is told to stop (SIGHUP, SIGTERM, SIGINT): the run
in training is stopped and saved as ``stopped`` (resumable) first, then the process exits, at any moment.

None of it runs in Textual's event loop, which cannot be trusted once the terminal is gone: Textual's
output thread dies writing to it (EIO) and the loop then blocks for good on the full output queue; the
SIGCONT the kernel sends with a hang-up makes Textual start its terminal mode again on the dead terminal,
with one more input thread reading end-of-file in a tight loop. So the signal handlers only record what
came (Python runs them in the main thread even while it waits on a lock), and a guard thread of its own,
which also notices a terminal that closed without any signal, does the rest: it stops the run, waits for
it to be saved, and ends the process (:func:`~collapse_tui.interrupts.end_process_once_saved`), at once
where the terminal is gone, after a grace for the app's own exit (which gives the terminal back) where it
is still there. A save that sticks cannot keep the process past :data:`SAVE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import threading
import time
from typing import Any, Callable

from collapse_tui.interrupts import end_process_once_saved

SAVE_TIMEOUT = 300.0  # a stopped run's final evaluation of a large dictionary on a CPU can take minutes
EXIT_GRACE = 10.0  # after the save, for the app to give a terminal still there back as it found it
WATCH_INTERVAL = 0.5  # how often the guard looks whether the terminal is still there
EXIT_STOPPED = 143  # as --batch: stopped by SIGTERM or SIGHUP (a terminal gone is a hang-up)
EXIT_INTERRUPTED = 130  # as --batch: stopped with Ctrl-C (SIGINT)


def terminal_gone(fd: int) -> bool:
    """Whether the terminal on ``fd`` hung up: a hung-up terminal answers no terminal request any more (it
    no longer counts as a terminal), and reading it returns end-of-file at once, forever."""
    return not os.isatty(fd)


class HangUp:
    """The guard of one app. ``stop_run`` asks the run in training to stop; ``run_ended`` says it is saved
    (or none was training); ``quit_app`` asks the app to quit as ``ctrl+q`` does (called only while the
    terminal is there); ``stop_input`` ends the app's reading of a terminal that is gone; ``fd``: the
    terminal the app reads, watched while it is one."""

    def __init__(self, stop_run: Callable[[], Any], run_ended: Callable[[], bool], quit_app: Callable[[], Any],
                 stop_input: Callable[[], Any], fd: int | None = None, save_timeout: float = SAVE_TIMEOUT,
                 grace: float = EXIT_GRACE) -> None:
        self._stop_run, self._run_ended, self._quit_app, self._stop_input = stop_run, run_ended, quit_app, stop_input
        self._fd = fd if fd is not None and os.isatty(fd) else None
        self._save_timeout, self._grace = save_timeout, grace
        self._began = threading.Event()
        self.status: int | None = None  # the process's exit status, once an end began

    @property
    def began(self) -> bool:
        return self._began.is_set()

    def install(self) -> HangUp:
        """Take SIGHUP, SIGTERM and SIGINT (main thread only) and start the guard."""
        if threading.current_thread() is threading.main_thread():
            for sig in (getattr(signal, "SIGHUP", None), signal.SIGTERM, signal.SIGINT):
                if sig is not None:
                    signal.signal(sig, self._on_signal)
        threading.Thread(target=self._guard, name="collapse-tui-hangup", daemon=True).start()
        return self

    def _gone(self) -> bool:
        return self._fd is not None and terminal_gone(self._fd)

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Only records: this runs wherever the main thread was (inside Textual, holding who knows what).
        if self._gone() and hasattr(signal, "SIGCONT"):
            # The hang-up's SIGCONT, handled next, would have Textual set up the dead terminal again.
            signal.signal(signal.SIGCONT, signal.SIG_DFL)
        self._begin(EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_STOPPED)

    def _begin(self, status: int) -> None:
        # Later signals change nothing: the end under way is bounded, and a shell passing on the
        # kernel's SIGHUP sends a second one.
        if self.status is None:
            self.status = status
        self._began.set()

    def _guard(self) -> None:
        while not self._began.wait(WATCH_INTERVAL):
            if self._gone():
                self._begin(EXIT_STOPPED)
        deadline = time.monotonic() + self._save_timeout
        self._stop_run()
        if not self._gone():
            self._quit_app()  # the app quits once the run is saved, giving the terminal back
            self._wait(lambda: self._run_ended() or self._gone(), deadline)
            self._wait(self._gone, time.monotonic() + self._grace)
        self._stop_input()
        end_process_once_saved(self._run_ended, self.status or EXIT_STOPPED, max(0.0, deadline - time.monotonic()))

    @staticmethod
    def _wait(condition: Callable[[], bool], until: float) -> None:
        while not condition() and time.monotonic() < until:
            time.sleep(0.1)


def guard_app(app: Any) -> HangUp | None:
    """Install the guard for ``app`` (a running :class:`~collapse_tui.tui.app.CollapseApp`, from its
    mount, in its event loop); None for a headless app (tests), which has no terminal to lose."""
    if app.is_headless:
        return None
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()  # the app's (its active app): what its actions need to run

    def training():
        return app.training if app.training is not None and app.training.running else None

    def stop_run() -> None:
        if (feed := training()) is not None:
            feed.stop()

    def quit_app() -> None:
        try:
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(app.action_quit()), context=context)
        except RuntimeError:  # the loop has closed: the app has already quit
            pass

    def stop_input() -> None:
        # Textual's input thread ends at its next look at this event instead of reading end-of-file forever.
        exit_event = getattr(getattr(app, "_driver", None), "exit_event", None)
        if exit_event is not None:
            exit_event.set()

    fd = getattr(getattr(app, "_driver", None), "fileno", None)
    return HangUp(stop_run, lambda: training() is None, quit_app, stop_input,
                  fd=fd if isinstance(fd, int) else None).install()
