"""Fault injection, for the crash tests: a process that kills itself (SIGKILL, nothing cleaned up) right
after writing the event a test names, so that what a real crash leaves behind can be resumed.

Production code calls :func:`crash_if_asked` in one place, where a run's events are written (the runner's
emitter); with neither variable set it does nothing.
"""

from __future__ import annotations

import os
import signal

from collapse_tui.events import EpochEnd, Evaluation, Event, PhaseStarted

# The event after which the process dies: a phase's start ("vae"), the end of one of a phase's epochs
# ("sae:3"), or the SAE's evaluation after an epoch ("evaluation:6": the final one, just before sae.keras
# is saved).
FAULT_PHASE_ENV = "COLLAPSE_TUI_FAULT_AT"
# With this naming a file as well, the crash happens once: in the process that creates the file (a task
# that is retried after it must not die again at the same point).
FAULT_ONCE_ENV = "COLLAPSE_TUI_FAULT_ONCE"


def crash_if_asked(event: Event) -> None:
    """Kill this process if :data:`FAULT_PHASE_ENV` names ``event`` (which has just been written)."""
    fault = os.environ.get(FAULT_PHASE_ENV)
    if fault and fault in fault_points(event) and _armed():
        os.kill(os.getpid(), signal.SIGKILL)


def fault_points(event: Event) -> tuple[str, ...]:
    """The names :data:`FAULT_PHASE_ENV` may give ``event`` (none for most events)."""
    if isinstance(event, PhaseStarted):
        return (event.phase,)
    if isinstance(event, EpochEnd):
        return (f"{event.phase}:{event.epoch}",)
    if isinstance(event, Evaluation) and event.phase == "sae":
        return (f"evaluation:{event.epoch}",)
    return ()


def _armed() -> bool:
    once = os.environ.get(FAULT_ONCE_ENV)
    if not once:
        return True
    try:
        os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
