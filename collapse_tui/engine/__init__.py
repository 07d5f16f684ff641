"""The headless engine: runs configs and emits the typed events of :mod:`collapse_tui.events` to its
listeners (run store, console, TUI).

``Engine``, ``RunResult``, ``run`` and ``run_sweep`` load on first use: the runner imports keras, and
``import collapse_tui.engine`` stays light.
"""

__all__ = ["Engine", "RunResult", "run", "run_sweep"]


def __getattr__(name):
    if name in ("Engine", "run"):
        from collapse_tui.engine import runner

        return getattr(runner, name)
    if name == "RunResult":
        from collapse_tui.engine.active_run import RunResult

        return RunResult
    if name == "run_sweep":
        from collapse_tui.engine.sweep import run_sweep

        return run_sweep
    raise AttributeError(name)
