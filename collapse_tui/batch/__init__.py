"""Headless front end: run a config file (and its sweep) with rich progress and a result table."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from collapse_tui import config as config_mod
from collapse_tui import events as ev
from collapse_tui.interrupts import Terminated as _Terminated
from collapse_tui.interrupts import ignore_late_signals as _ignore_late_signals  # noqa: F401
from collapse_tui.interrupts import stop_on_signals as _stop_on_signals
from collapse_tui.metrics.specs import DEAD, DEAD_IN_TRAINING, dead_spec, spec, threshold_key
from collapse_tui.store import SUSPECT

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


def _pct(value: Any) -> str:
    return DEAD.format(value, unit=True)


def _num(metrics: dict[str, Any], key: str) -> str:
    """An evaluation's metric in running text: as the tables show it, its unit after the number."""
    return spec(key).format(metrics.get(key), unit=True)


class _RunLine:
    """What the console tracks of one run: its name, progress bar and latest dead fraction."""

    def __init__(self, name: str = ""):
        self.name = name
        self.task = None
        self.last_dead: float | None = None


class ConsoleListener:
    """Shows runs' events: a progress bar per phase of each running run, a line per epoch and evaluation.
    While several runs train at once (a bank), each line starts with its run's name."""

    def __init__(self, console: Console, progress: Progress):
        self.console = console
        self.progress = progress
        self.runs: dict[str, _RunLine] = {}
        self.sweep_dir: Path | None = None

    def _task(self, run: _RunLine, description: str, total: float | None) -> None:
        if run.task is not None:
            self.progress.remove_task(run.task)
        run.task = self.progress.add_task(description, total=total)

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.SweepStarted):
            self.sweep_dir = Path(event.sweep_dir)
            self.console.print(f"sweep table: {self.sweep_dir}/results.md (and .csv), updated as runs end; "
                               "runs.jsonl: a line per finished run", markup=False)
            return
        if isinstance(event, (ev.RunStarted, ev.RunResumed)):
            self.runs[event.run_id] = _RunLine(event.name)
        run = self.runs.setdefault(event.run_id, _RunLine(event.run_id))
        training = [r for r in self.runs.values() if r.task is not None]
        tag = f"[dim]{run.name}[/] " if len(training) > 1 or (training and run not in training) else ""

        def print_(text: str) -> None:
            self.console.print(f"{tag}{text}" if tag and not text.startswith("[bold]▶") else text)

        if isinstance(event, ev.RunStarted):
            print_(f"[bold]▶ {event.name}[/]  [dim]{event.run_dir}  ({event.environment.get('backend')}, "
                   f"{event.environment.get('device')})[/]")
        elif isinstance(event, ev.RunResumed):
            print_(f"[bold]▶ {event.name}[/]  [dim]resumed"
                   + (f" from the checkpoint after SAE epoch {event.epoch}" if event.epoch else "") + "[/]")
        elif isinstance(event, ev.Message):
            style = "yellow" if event.level == "warning" else "dim"
            print_(f"  [{style}]{event.text}[/]")
        elif isinstance(event, ev.PhaseStarted):
            total = event.epochs * event.steps_per_epoch if event.epochs and event.steps_per_epoch else None
            self._task(run, f"{run.name}: {event.phase}: {event.detail}", total)
        elif isinstance(event, ev.Progress):
            if run.task is not None:
                self.progress.update(run.task, completed=event.done, total=event.total)
        elif isinstance(event, ev.EpochEnd):
            # Dead neurons read as percentages everywhere; the other logs as the model logs them.
            logs = "  ".join(f"dead in training {_pct(v)}" if k == DEAD_IN_TRAINING else f"{k} {v:.4g}"
                             for k, v in event.logs.items())
            extra = ""
            if event.sparsity is not None:
                extra += f"  sparsity {event.sparsity:g}"
            if event.phase == "sae" and run.last_dead is not None:
                extra += f"  dead {_pct(run.last_dead)}"
            print_(f"  {event.phase} epoch {event.epoch}/{event.epochs}  {logs}{extra}  [dim]{event.seconds:.1f}s[/]")
            if run.task is not None:
                self.progress.update(run.task, description=f"{run.name}: {event.phase}: epoch {event.epoch}/"
                                     f"{event.epochs}  loss {event.logs.get('loss', float('nan')):.4g}{extra}")
        elif isinstance(event, ev.Evaluation):
            m = event.metrics
            if event.phase == "vae":
                print_(f"  [cyan]VAE[/]  MIG {_num(m, 'mig')}  BCE {_num(m, 'bce')}  "
                       f"active latents {m.get('active_latents')}")
            else:
                run.last_dead = m.get("dead_fraction")
                print_(f"  [cyan]eval @ epoch {event.epoch}[/]  dead {_num(m, 'dead_fraction')}  "
                       f"L0 {_num(m, 'l0')}  EV {_num(m, 'explained_variance')}  "
                       f"MIG {_num(m, 'mig')}  specialized {_num(m, 'specialized')}")
        elif isinstance(event, (ev.RunFinished, ev.RunFailed)):
            if run.task is not None:
                self.progress.remove_task(run.task)
                run.task = None
            if isinstance(event, ev.RunFailed):
                print_(f"  [red]✗ failed: {event.reason}[/]")
            elif event.status == "stopped":
                print_("  [yellow]■ stopped: what was measured is kept[/]")
            elif event.summary.get("flags"):
                print_(f"  [yellow]! done in {event.summary.get('seconds', 0):.1f}s, but {SUSPECT}: "
                       f"{'; '.join(event.summary['flags'])}[/]")
            else:
                print_(f"  [green]✓ done in {event.summary.get('seconds', 0):.1f}s[/]")


# The final metrics beside "dead %", in order; below 120 columns the table drops the wide-only ones.
_TABLE_METRICS = ("l0", "explained_variance", "mig", "mig_vae", "specialized", "seconds")
_WIDE_ONLY = ("mig_vae", "seconds")


def results_table(results, thresholds: list[float], width: int = 200) -> Table:
    """One row per run of the sweep: the final metrics side by side. Below 120 columns the table keeps
    the essentials (dead % at the first threshold only) so that no number is cut short."""
    compact = width < 120
    shown = thresholds[:1] if compact else thresholds
    caption = f"{DEAD.label}: neurons never above " + " / ".join(f"{t:g}" for t in shown) + " on the evaluation set"
    if any(r.status == "ok" and r.summary.get("flags") for r in results):
        caption += f"; {SUSPECT}: finished, but its final metrics are no result (and stay out of sweep tables)"
    table = Table(title="Runs", caption=caption)
    table.add_column("run", overflow="fold")
    dead_specs = [dead_spec(threshold_key(t)) for t in shown]
    metrics = [spec(k) for k in _TABLE_METRICS if not (compact and k in _WIDE_ONLY)]
    columns = ["method", "k / λ", *([] if compact else ["status"]), DEAD.label, *(m.label for m in metrics)]
    for col in columns:
        table.add_column(col, justify="left" if col in ("method", "status") else "right", no_wrap=True)
    for r in results:
        s = r.summary
        shown_status = SUSPECT if r.status == "ok" and s.get("flags") else r.status
        status = {"ok": "[green]ok[/]", "failed": "[red]failed[/]", "stopped": "[yellow]stopped[/]",
                  SUSPECT: f"[yellow]{SUSPECT}[/]"}.get(shown_status, shown_status)
        dead = " / ".join(d.format(d.value(s)) for d in dead_specs)
        name = s.get("name", r.run_dir.name)
        if compact and shown_status != "ok":
            name = f"{name} ({status})"
        table.add_row(name, str(s.get("method", "")), f"{s.get('sparsity', 0):g}", *([] if compact else [status]),
                      dead, *(m.format(m.value(s)) for m in metrics))
    return table


def with_data_dir(runs, data_dir: str | None):
    """Runs whose config names no data.path search ``data_dir`` for their dataset."""
    if not data_dir:
        return runs
    return [(cfg if cfg.data.path else cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": data_dir})}),
             overrides) for cfg, overrides in runs]


def main(config_path: str, runs_dir: str | None = None, dry_run: bool = False, data_dir: str | None = None,
         yes: bool = False, ray=None, data_parallel: bool = False) -> int:
    """``--batch``: run a config file's runs (a sweep) here, or, given ``ray`` (a
    :class:`~collapse_tui.engine.ray_sweep.RayOptions`), as Ray tasks, a bank each. ``data_parallel``:
    every run trains over all local devices (``--data-parallel``; the config's field otherwise)."""
    # Piped into a log file, rich would wrap at 80 columns and cut the result table: use a wide page.
    console = Console(width=None if sys.stdout.isatty() else 200)
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    try:
        runs = config_mod.load(config_path)
    except config_mod.ConfigError as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        return EXIT_INVALID
    if runs_dir is not None:
        runs = [(cfg.model_copy(update={"runs_dir": runs_dir}), o) for cfg, o in runs]
    runs = with_data_dir(runs, data_dir)
    if data_parallel:
        runs = [(cfg.model_copy(update={"data_parallel": True}), o) for cfg, o in runs]
    if dry_run:
        for i, (cfg, overrides) in enumerate(runs, 1):
            console.print(f"# run {i}/{len(runs)}: {cfg.name}", markup=False)
            console.print(cfg.to_yaml(), markup=False)
        return EXIT_OK

    from collapse_tui.engine.preflight import preflight

    if _refused(err, preflight([cfg for cfg, _ in runs], large_sweep_confirmed=yes, ray=ray)):
        return EXIT_INVALID

    if ray is not None:
        return _on_ray(console, err, config_path, runs, ray)

    from collapse_tui.engine.sweep import run_sweep

    def announce(i, cfg, overrides):
        console.rule(f"run {i + 1}/{len(runs)}" + (f": {overrides}" if overrides else ""))

    console.print(f"[bold]collapse-tui[/] {config_path}: {len(runs)} run(s) → {Path(runs[0][0].runs_dir)}/")
    return _execute(console, err, Path(runs[0][0].runs_dir), runs[0][0].eval.thresholds,
                    lambda listener, stop: run_sweep(runs, [listener], stop_event=stop, on_run_start=announce,
                                                     config_path=str(Path(config_path).resolve())))


def _refused(err: Console, problems: list[str]) -> bool:
    """Print the pre-flight's problems (:mod:`~collapse_tui.engine.preflight`), one line each; True if any."""
    for problem in problems:
        err.print(f"collapse-tui: {problem}", style="red", markup=False, highlight=False)
    return bool(problems)


def _on_ray(console: Console, err: Console, config_path: str, runs, options) -> int:
    from collapse_tui.engine.ray_sweep import run_sweep_on_ray

    runs_dir = Path(runs[0][0].runs_dir)
    console.print(f"[bold]collapse-tui[/] {config_path}: {len(runs)} run(s) on Ray → {runs_dir}/ (a directory every "
                  "node must see)")
    say = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
    return _execute(console, err, runs_dir, runs[0][0].eval.thresholds,
                    lambda listener, stop: run_sweep_on_ray(runs, options, [listener], stop_event=stop,
                                                            config_path=str(Path(config_path).resolve()), say=say))


def resume(path: str) -> int:
    """``--resume``: a stopped or crashed run goes on from its checkpoint; a sweep directory is finished
    (see :func:`~collapse_tui.engine.sweep.resume_sweep`)."""
    console = Console(width=None if sys.stdout.isatty() else 200)
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
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
    return _execute(console, err, runs_dir, thresholds, work)


def _execute(console: Console, err: Console, runs_dir: Path, thresholds: list[float], work) -> int:
    """Run ``work(listener, stop_event)`` (which returns the runs' results) with the console's progress
    and the stop signals; print the results table; return the exit status."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=console, transient=True)
    listener = ConsoleListener(console, progress)
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
    console.print(results_table(results, thresholds, width=console.width))
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
