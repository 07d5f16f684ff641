"""Headless front end: run a config file (and its sweep) with rich progress and a result table."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from rich.console import Console

from collapse_tui import config as config_mod
from collapse_tui.batch.console import ConsoleListener, live_progress
from collapse_tui.batch.table import plan_lines, results_table
from collapse_tui.config.presets import resolve_config
from collapse_tui.interrupts import Terminated as _Terminated
from collapse_tui.interrupts import ignore_late_signals as _ignore_late_signals  # noqa: F401
from collapse_tui.interrupts import stop_on_signals as _stop_on_signals

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


def with_data_dir(runs, data_dir: str | None):
    """Runs whose config names no data.path search ``data_dir`` for their dataset."""
    if not data_dir:
        return runs
    return [(cfg if cfg.data.path else cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": data_dir})}),
             overrides) for cfg, overrides in runs]


def consoles() -> tuple[Console, Console]:
    """stdout and stderr as rich consoles. stdout is as wide as the terminal, or $COLUMNS; piped into a
    file without $COLUMNS, 200 columns (a log has no width to fit, and a table cut to 80 loses columns)."""
    fitted = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
    # Errors stay one line each, however long (a reader greps for them; the terminal wraps them).
    return (Console(highlight=False, width=None if fitted else 200),
            Console(stderr=True, highlight=False, soft_wrap=True))


def main(config_path: str, runs_dir: str | None = None, dry_run: bool = False, data_dir: str | None = None,
         yes: bool = False, ray=None, data_parallel: bool = False, verbose: bool = False) -> int:
    """``--batch``: run a config file's runs (a sweep) here, or, given ``ray`` (a
    :class:`~collapse_tui.engine.ray_sweep.RayOptions`), as Ray tasks, a bank each. ``data_parallel``:
    every run trains over all local devices (``--data-parallel``; the config's field otherwise).
    ``verbose``: a line per epoch and evaluation of every run; with ``dry_run``, every run's full YAML."""
    console, err = consoles()
    try:
        runs = config_mod.load(resolve_config(config_path))  # a file, or a shipped preset by name
    except FileNotFoundError as exc:
        err.print(f"collapse-tui: {exc}", style="red", markup=False, highlight=False)
        return EXIT_INVALID
    except config_mod.ConfigError as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        return EXIT_INVALID
    if runs_dir is not None:
        runs = [(cfg.model_copy(update={"runs_dir": runs_dir}), o) for cfg, o in runs]
    runs = with_data_dir(runs, data_dir)
    if data_parallel:
        runs = [(cfg.model_copy(update={"data_parallel": True}), o) for cfg, o in runs]
    from collapse_tui.engine.banks import bank_groups

    configs = [cfg for cfg, _ in runs]
    banks = bank_groups(configs)
    if dry_run:
        if verbose:
            for i, cfg in enumerate(configs, 1):
                console.print(f"# run {i}/{len(runs)}: {cfg.name}", markup=False)
                console.print(cfg.to_yaml(), markup=False, soft_wrap=True)
        else:
            console.print(f"{len(runs)} run(s) in {len(banks)} bank(s) → {Path(configs[0].runs_dir)}/ "
                          "(--verbose: each run's full YAML)", markup=False)
            for line in plan_lines(configs, banks):
                console.print(line, markup=False, no_wrap=True, overflow="ellipsis")
        return EXIT_OK

    from collapse_tui.engine.preflight import preflight

    if _refused(err, preflight([cfg for cfg, _ in runs], large_sweep_confirmed=yes, ray=ray)):
        return EXIT_INVALID

    if ray is not None:
        return _on_ray(console, err, config_path, runs, ray, verbose)

    from collapse_tui.engine.sweep import run_sweep

    first_of = {bank[0]: (b, bank) for b, bank in enumerate(banks, 1)}

    def announce(i, cfg, overrides):
        if i in first_of:
            b, bank = first_of[i]
            console.rule(f"bank {b}/{len(banks)}: {len(bank)} run(s)", style="dim")

    console.print(f"[bold]collapse-tui[/] {config_path}: {len(runs)} run(s) → {Path(runs[0][0].runs_dir)}/")
    return _execute(console, err, Path(runs[0][0].runs_dir), runs[0][0].eval.thresholds,
                    lambda listener, stop: run_sweep(runs, [listener], stop_event=stop, on_run_start=announce,
                                                     config_path=str(resolve_config(config_path).resolve())),
                    verbose=verbose)


def _refused(err: Console, problems: list[str]) -> bool:
    """Print the pre-flight's problems (:mod:`~collapse_tui.engine.preflight`), one line each; True if any."""
    for problem in problems:
        err.print(f"collapse-tui: {problem}", style="red", markup=False, highlight=False)
    return bool(problems)


def _on_ray(console: Console, err: Console, config_path: str, runs, options, verbose: bool = False) -> int:
    from collapse_tui.engine.ray_sweep import run_sweep_on_ray

    runs_dir = Path(runs[0][0].runs_dir)
    console.print(f"[bold]collapse-tui[/] {config_path}: {len(runs)} run(s) on Ray → {runs_dir}/ (a directory every "
                  "node must see)")
    say = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
    source = str(resolve_config(config_path).resolve())
    return _execute(console, err, runs_dir, runs[0][0].eval.thresholds,
                    lambda listener, stop: run_sweep_on_ray(runs, options, [listener], stop_event=stop,
                                                            config_path=source, say=say),
                    verbose=verbose)


def resume(path: str, verbose: bool = False) -> int:
    """``--resume``: a stopped or crashed run goes on from its checkpoint; a sweep directory is finished
    (see :func:`~collapse_tui.engine.sweep.resume_sweep`)."""
    console, err = consoles()
    from collapse_tui.engine.runner import Engine, resume_plan
    from collapse_tui.engine.sweep import plan_sweep_resume, resume_sweep
    from collapse_tui.store import is_sweep_dir

    target = Path(path)
    try:
        if is_sweep_dir(target):
            plan = plan_sweep_resume(target)
            runs_dir = target.parent.parent
            what, new, resumed = f"sweep {target}: {plan.summary()}", [cfg for cfg, _ in plan.new], plan.resume
            work = lambda listener, stop: resume_sweep(plan, [listener], stop_event=stop)  # noqa: E731
            thresholds = plan.thresholds
        else:
            run_plan = resume_plan(target)
            runs_dir = target.parent
            what, new, resumed = str(target), [], [run_plan]
            work = lambda listener, stop: Engine(stop).resume([run_plan], [listener])  # noqa: E731
            thresholds = run_plan[1].eval.thresholds
    except ValueError as exc:
        err.print(f"cannot resume: {exc}", style="red", markup=False, highlight=False)
        return EXIT_INVALID
    from collapse_tui.engine.preflight import preflight

    # The sweep's size was confirmed when it started.
    if _refused(err, preflight(new, resume=resumed, large_sweep_confirmed=True)):
        return EXIT_INVALID
    console.print(f"[bold]collapse-tui[/] resuming {what}")
    return _execute(console, err, runs_dir, thresholds, work, verbose=verbose)


def _execute(console: Console, err: Console, runs_dir: Path, thresholds: list[float], work,
             verbose: bool = False) -> int:
    """Run ``work(listener, stop_event)`` (which returns the runs' results) with the console's progress
    and the stop signals; print the results table; return the exit status."""
    progress = live_progress(console)
    listener = ConsoleListener(console, progress, verbose=verbose)
    stop = threading.Event()
    started = time.time()
    try:
        with _stop_on_signals(stop, ignore_after_stop=True) as terminated, progress:
            results = work(listener, stop)
    except _Terminated:
        err.print("terminated")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        err.print("interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:  # the disk filled up, the runs dir went away: what was written stays
        where = f" ({exc.filename})" if exc.filename else ""
        err.print(f"cannot go on: {exc.strerror or exc}{where}; the runs cut short are listed as crashed and "
                  "can be resumed (collapse-tui --resume)", style="red", markup=False, highlight=False)
        return EXIT_FAILED
    console.print(results_table(results, thresholds, console))
    console.print(f"{len(results)} run(s) in {time.time() - started:.0f}s; results in {runs_dir}/")
    if listener.sweep_dir is not None:
        from collapse_tui.store.layout import RESULTS_CSV, RESULTS_MD

        sweep_dir = listener.sweep_dir
        console.print(f"sweep table: {sweep_dir / RESULTS_MD} and {RESULTS_CSV} (mean ± std over seeds, "
                      f"the paper's numbers beside); compare its runs with: collapse-tui --compare {sweep_dir}")
    if any(r.interrupted or r.status == "stopped" for r in results):
        err.print("stopped before the end: the runs above are on disk with status 'stopped' (collapse-tui "
                  "--resume goes on with them)")
        return EXIT_TERMINATED if terminated.is_set() else EXIT_INTERRUPTED
    if any(r.status == "failed" for r in results):
        return EXIT_FAILED
    return EXIT_OK
