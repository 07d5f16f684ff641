"""Whether a run that says "running" still has a process behind it.

A running run records its host and process (PID, and the process's start time where the system tells
it, so that a reused PID is not taken for the run's); while its process lives, a heartbeat touches its
events.jsonl every :data:`HEARTBEAT_SECONDS`, events or not. A reader decides from these whether a
"running" run's process is gone (:func:`process_gone`): same host, by its PID and start time; another
host, by a heartbeat older than :data:`STALE_SECONDS`. Without this a run killed by the OOM killer or a
power cut would say "running" for ever, and could never be resumed.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Protocol

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


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return False
    return True


_pid_alive = pid_alive  # the name it had in the single-module store



def process_gone(summary: dict[str, Any], events_file: Path, now: float | None = None) -> bool:
    """Whether the process of a run whose summary says "running" is gone (see above)."""
    host, pid, started = summary.get("host"), summary.get("pid"), summary.get("pid_started")
    if host == socket.gethostname() and isinstance(pid, int) and not isinstance(pid, bool):
        if not pid_alive(pid):
            return True
        current = _process_start(pid)
        if current is not None and isinstance(started, int):
            return current != started  # the PID now belongs to another process
    try:
        beat = events_file.stat().st_mtime
    except OSError:
        beat = summary.get("started") if isinstance(summary.get("started"), (int, float)) else 0.0
    return (now if now is not None else time.time()) - beat > STALE_SECONDS


class Beating(Protocol):
    def beat(self) -> None: ...


class Heartbeat:
    """Calls ``beat()`` on every registered writer every ``HEARTBEAT_SECONDS``, from one daemon thread
    (started with the first writer): a run's events file stays fresh while its process lives, through
    phases that write no events for minutes. Writers are held weakly: one dropped unclosed stops beating."""

    def __init__(self) -> None:
        self._writers: weakref.WeakSet = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, writer: Beating) -> None:
        with self._lock:
            self._writers.add(writer)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._beat, name="collapse-tui-heartbeat", daemon=True)
                self._thread.start()

    def discard(self, writer: Beating) -> None:
        with self._lock:
            self._writers.discard(writer)

    def _beat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            with self._lock:
                writers = list(self._writers)
            for writer in writers:
                writer.beat()


HEARTBEAT = Heartbeat()
