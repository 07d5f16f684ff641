"""Running the expanded runs of a config file, bank by bank, sharing one engine; a sweep of more
than one run keeps its own directory with the results table, current after every run."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from collapse_tui.config import RunConfig
from collapse_tui.engine.bank_phase import bank_groups
from collapse_tui.engine.runner import Engine, RunResult
from collapse_tui.events import Listener, SweepStarted
from collapse_tui.report import table_title, write_report
from collapse_tui.store import SweepWriter, sweep_name


class SweepRecorder:
    """A sweep's directory (:class:`~collapse_tui.store.SweepWriter`) and its results tables
    (:mod:`~collapse_tui.report`), rewritten as each run is added."""

    def __init__(self, runs_dir: str | Path, name: str, config_path: str | None = None, n_runs: int = 0):
        self.writer = SweepWriter(runs_dir, name, config_path=config_path, n_runs=n_runs)
        self.path = self.writer.path
        self.name = name
        self._write_tables()

    def add(self, run_dir: str | Path) -> None:
        self.writer.add(run_dir)
        self._write_tables()

    def _write_tables(self) -> None:
        write_report(self.path, self.writer.records(), title=table_title(self.name))


def run_sweep(
    runs: Iterable[tuple[RunConfig, dict[str, Any]]],
    listeners: Iterable[Listener] = (),
    stop_event: threading.Event | None = None,
    on_run_start: Callable[[int, RunConfig, dict[str, Any]], None] | None = None,
    config_path: str | None = None,
) -> list[RunResult]:
    """Run the configs, their SAEs in banks (:func:`~collapse_tui.engine.bank_phase.bank_groups`: runs
    that can share a training step, up to ``bank_size`` at a time, in the order they first come); the
    VAE, images and codes are computed once and shared. Results come bank by bank.

    A failed run does not stop the sweep; a stopped one (Ctrl-C or the stop event) does. More than one
    run makes a sweep: its directory is created first (listeners get a :class:`SweepStarted` naming
    it), and each run is added to it as it ends, with the table rewritten. ``config_path``: the file
    the runs came from, recorded in the sweep's directory.
    """
    runs = list(runs)
    listeners = list(listeners)
    recorder = None
    if len(runs) > 1:
        recorder = SweepRecorder(runs[0][0].runs_dir, sweep_name(cfg.name for cfg, _ in runs),
                                 config_path=config_path, n_runs=len(runs))
        started = SweepStarted(name=recorder.name, sweep_dir=str(recorder.path), n_runs=len(runs))
        for listener in listeners:
            listener(started)
    engine = Engine(stop_event)
    results = []
    for bank in bank_groups([config for config, _ in runs]):
        if on_run_start is not None:
            for i in bank:
                on_run_start(i, *runs[i])
        for result in engine.run_bank([runs[i][0] for i in bank], listeners):
            results.append(result)
            if recorder is not None:
                recorder.add(result.run_dir)
        if any(result.status == "stopped" for result in results):
            break
    return results
