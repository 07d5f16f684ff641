"""The headless engine: runs configs and emits typed events to listeners (run store, console, TUI)."""

from collapse_tui.engine.events import (
    DataSource,
    EpochEnd,
    Evaluation,
    Event,
    Listener,
    Message,
    PhaseStarted,
    Progress,
    RunFailed,
    RunFinished,
    RunStarted,
    event_from_dict,
)

__all__ = [
    "DataSource", "EpochEnd", "Evaluation", "Event", "Listener", "Message", "PhaseStarted", "Progress", "RunFailed",
    "RunFinished", "RunStarted", "event_from_dict", "Engine", "RunResult", "run", "run_sweep",
]


def __getattr__(name):
    # The runner imports keras; keep `import collapse_tui.engine` light for readers of run directories.
    if name in ("Engine", "RunResult", "run"):
        from collapse_tui.engine import runner

        return getattr(runner, name)
    if name == "run_sweep":
        from collapse_tui.engine.sweep import run_sweep

        return run_sweep
    raise AttributeError(name)
