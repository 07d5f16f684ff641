"""Running the expanded runs of a config file one after another, sharing one engine."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable

from collapse_tui.config import RunConfig
from collapse_tui.engine.events import Listener
from collapse_tui.engine.runner import Engine, RunResult
from collapse_tui.report import SweepRecorder


def run_sweep(
    runs: Iterable[tuple[RunConfig, dict[str, Any]]],
    listeners: Iterable[Listener] = (),
    stop_event: threading.Event | None = None,
    on_run_start: Callable[[int, RunConfig, dict[str, Any]], None] | None = None,
    recorder: "SweepRecorder | None" = None,
) -> list[RunResult]:
    """Run each config in turn; the VAE, images and codes are computed once and shared.

    A failed run does not stop the sweep; a stopped one (Ctrl-C or the stop event) does. With a
    ``recorder``, each run is added to the sweep's directory as it ends, and its table rewritten.
    """
    engine = Engine(stop_event)
    results = []
    for i, (config, overrides) in enumerate(runs):
        if on_run_start is not None:
            on_run_start(i, config, overrides)
        result = engine.run(config, listeners)
        results.append(result)
        if recorder is not None:
            recorder.add(result.run_dir)
        if result.status == "stopped":
            break
    return results
