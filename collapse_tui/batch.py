"""Headless front end: run a config file (and its sweep), or resume one, showing the events on a rich
console fitted to the terminal's width.

While it trains: one live progress line per phase in progress (the members of a bank condensed into
one), a line when each run ends (always naming it), each message once; with ``verbose`` a line per epoch
and evaluation of every run as well. Then the runs' table, fitted by dropping whole columns, least
needed first: a cell is never wrapped (a run name broken over two lines is hard to scan, a number
broken is wrong).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from collapse_tui import config as config_mod
from collapse_tui import events as ev
from collapse_tui.config.presets import resolve_config
from collapse_tui.config.vocabulary import sparsity_label
from collapse_tui.interrupts import Terminated as _Terminated
from collapse_tui.interrupts import ignore_late_signals as _ignore_late_signals  # noqa: F401
from collapse_tui.interrupts import stop_on_signals as _stop_on_signals
from collapse_tui.metrics.specs import DEAD, DEAD_IN_TRAINING, dead_spec, spec, threshold_key
from collapse_tui.store import SUSPECT

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
         yes: bool = False, ray=None, data_parallel: bool = False, verbose: bool = False, stop=None) -> int:
    """``--batch``: run a config file's runs (a sweep) here, or as Ray tasks, a bank each, given ``ray`` (a
    :class:`~collapse_tui.engine.ray_sweep.RayOptions`). ``data_parallel``: every run trains over all local
    devices (``--data-parallel``; the config's field otherwise). ``verbose``: a line per epoch and evaluation of
    every run; with ``dry_run``, every run's full YAML. ``stop``: once set, it stops the runs as Ctrl-C does."""
    console, err = consoles()
    try:
        source = resolve_config(config_path)  # a file, or a shipped preset by name
        runs = config_mod.load(source)
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

    from collapse_tui.engine.environment import quiet_native_logs

    # The backend loads once the config is known to be good (a refusal must be quick: importing keras
    # brings in its framework, and scikit-learn and scipy for keras' wrappers), without its start-up chatter.
    with quiet_native_logs():
        import keras  # noqa: F401
    from collapse_tui.engine.preflight import preflight

    if _refused(err, preflight([cfg for cfg, _ in runs], large_sweep_confirmed=yes, ray=ray)):
        return EXIT_INVALID

    if ray is not None:
        return _on_ray(console, err, config_path, source, runs, ray, verbose, stop)

    from collapse_tui.engine.sweep import run_sweep

    first_of = {bank[0]: (b, bank) for b, bank in enumerate(banks, 1)}

    def announce(i, cfg, overrides):
        if i in first_of:
            b, bank = first_of[i]
            console.rule(f"bank {b}/{len(banks)}: {len(bank)} run(s)", style="dim")

    console.print(f"[bold]collapse-tui[/] {config_path}: {len(runs)} run(s) → {Path(runs[0][0].runs_dir)}/")
    return _execute(console, err, Path(runs[0][0].runs_dir), runs[0][0].eval.thresholds,
                    lambda listener, stop: run_sweep(runs, [listener], stop_event=stop, on_run_start=announce,
                                                     config_path=str(source.resolve())),
                    verbose=verbose, stop=stop)


def _refused(err: Console, problems: list[str]) -> bool:
    """Print the pre-flight's problems (:mod:`~collapse_tui.engine.preflight`), one line each; True if any."""
    for problem in problems:
        err.print(f"collapse-tui: {problem}", style="red", markup=False, highlight=False)
    return bool(problems)


def _on_ray(console: Console, err: Console, config_path: str, source: Path, runs, options,
            verbose: bool = False, stop=None) -> int:
    from collapse_tui.engine.ray_sweep import run_sweep_on_ray

    runs_dir = Path(runs[0][0].runs_dir)
    console.print(f"[bold]collapse-tui[/] {config_path}: {len(runs)} run(s) on Ray → {runs_dir}/ (a directory every "
                  "node must see)")
    say = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
    return _execute(console, err, runs_dir, runs[0][0].eval.thresholds,
                    lambda listener, stop: run_sweep_on_ray(runs, options, [listener], stop_event=stop,
                                                            config_path=str(source.resolve()), say=say),
                    verbose=verbose, stop=stop)


def resume(path: str, verbose: bool = False, stop=None, yes: bool = False) -> int:
    """``--resume``: a stopped or crashed run goes on from its checkpoint; a sweep directory is finished
    (see :func:`~collapse_tui.engine.sweep.resume_sweep`). ``stop``, ``yes``: as :func:`main`'s."""
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
    from collapse_tui.store import LockHeld, resume_locks

    if _refused(err, preflight(new, resume=resumed, large_sweep_confirmed=yes)):  # a plan may be edited: ask again
        return EXIT_INVALID

    try:  # one writer per run: a second --resume of the same run (or sweep) is refused while this one holds it
        with resume_locks(([target] if is_sweep_dir(target) else []) + [Path(p[0]) for p in resumed]):
            console.print(f"[bold]collapse-tui[/] resuming {what}")
            return _execute(console, err, runs_dir, thresholds, work, verbose=verbose, stop=stop)
    except LockHeld as exc:
        err.print(f"cannot resume: {exc}", style="red", markup=False, highlight=False)
        return EXIT_INVALID


def _execute(console: Console, err: Console, runs_dir: Path, thresholds: list[float], work,
             verbose: bool = False, stop: threading.Event | None = None) -> int:
    """Run ``work(listener, stop_event)`` (which returns the runs' results) with the console's progress
    and the stop signals, which set ``stop`` (given, or its own); print the results table; return the exit status."""
    progress = live_progress(console)
    listener = ConsoleListener(console, progress, verbose=verbose)
    stop = threading.Event() if stop is None else stop
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


# ------------------------------------------------------------------ the console

def percent(value: Any) -> str:
    return DEAD.format(value, unit=True)


def metric(metrics: dict[str, Any], key: str) -> str:
    """An evaluation's metric in running text: as the tables show it, its unit after the number."""
    return spec(key).format(metrics.get(key), unit=True)


def duration(seconds: float) -> str:
    """``42.3s``, ``3m07s``, ``1h02m``: short enough for a one-line summary."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


class _Count(MofNCompleteColumn):
    """``done/total`` of a phase that counts its steps; nothing for one that cannot (no ``0/?``)."""

    def render(self, task):
        return Text("") if task.total is None else super().render(task)


class _Remaining(TimeRemainingColumn):
    def render(self, task):
        return Text("") if task.total is None else super().render(task)


def live_progress(console: Console) -> Progress:
    """The progress lines (one per phase in progress), gone once the phase ends."""
    return Progress(TextColumn("{task.description}"), BarColumn(), _Count(), TimeElapsedColumn(), _Remaining(),
                    console=console, transient=True)


class _Run:
    """What the console tracks of one run."""

    def __init__(self, name: str):
        self.name = name
        self.group: tuple | None = None  # the progress line it is part of
        self.done = 0.0
        self.phase_started: dict[str, float] = {}
        self.epoch = ""
        self.last_dead: float | None = None


class ConsoleListener:
    """Shows runs' events on ``console`` with ``progress`` (see the module's description)."""

    def __init__(self, console: Console, progress: Progress, verbose: bool = False):
        self.console = console
        self.progress = progress
        self.verbose = verbose
        self.runs: dict[str, _Run] = {}
        self.groups: dict[tuple, Any] = {}  # (phase, total) -> progress task
        self.said: set[str] = set()
        self.sweep_dir: Path | None = None

    # ------------------------------------------------------------------ lines
    def line(self, text: str | Text, name: str | None = None, cut: bool = False) -> None:
        """Print a line, ``name`` first and never broken (a name too long for the line is shortened with
        an ellipsis); the rest wraps at spaces, or with ``cut`` (a line per epoch) is cut to one line."""
        if name is None:
            self.console.print(text, markup=isinstance(text, str), highlight=False)
            return
        room = max(self.console.width - 12, 8)
        shown = Text(name if len(name) <= room else name[: room - 1] + "…", style="bold")
        shown.append("  ")
        shown.append_text(Text.from_markup(text) if isinstance(text, str) else text)
        if cut:
            self.console.print(shown, no_wrap=True, overflow="ellipsis", highlight=False)
        else:
            self.console.print(shown, highlight=False)

    def once(self, text: str, key: str | None = None) -> None:
        """A line that several runs send alike (their data source, a shared VAE): shown the first time
        (``key``, when given, says what makes it the same line; else the text)."""
        key = text if key is None else key
        if key not in self.said:
            self.said.add(key)
            self.line(text)

    # ------------------------------------------------------------------ progress lines
    def _join(self, run: _Run, phase: str, total: float | None) -> None:
        self._leave(run)
        key = (phase, total)
        run.group, run.done = key, 0.0
        if key not in self.groups:
            self.groups[key] = self.progress.add_task("", total=total)
        self._describe(key)

    def _leave(self, run: _Run) -> None:
        key, run.group = run.group, None
        if key is None:
            return
        if not self._members(key):
            self.progress.remove_task(self.groups.pop(key))
        else:
            self._describe(key)

    def _members(self, key: tuple) -> list[_Run]:
        return [r for r in self.runs.values() if r.group == key]

    def _describe(self, key: tuple) -> None:
        members = self._members(key)
        phase = key[0]
        who = members[0].name if len(members) == 1 else f"{len(members)} runs"
        text = f"{who}: {phase}"
        if members and members[0].epoch:
            text += f" epoch {members[0].epoch}"
        dead = [r.last_dead for r in members if r.last_dead is not None]
        if phase == "sae" and dead:
            low, high = min(dead), max(dead)
            text += f"  dead {percent(low)}" + (f"–{percent(high)}" if high != low else "")
        self.progress.update(self.groups[key], description=text,
                             completed=min((r.done for r in members), default=0.0))

    # ------------------------------------------------------------------ events
    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.SweepStarted):
            self.sweep_dir = Path(event.sweep_dir)
            self.line(f"[dim]sweep table: {self.sweep_dir}/results.md (and .csv), updated as runs end[/]")
            return
        if isinstance(event, (ev.RunStarted, ev.RunResumed)):
            self.runs[event.run_id] = _Run(event.name)
        run = self.runs.setdefault(event.run_id, _Run(event.run_id))
        if isinstance(event, ev.RunStarted):
            if self.verbose:
                self.line(f"[dim]started in {event.run_dir} ({event.environment.get('backend')}, "
                          f"{event.environment.get('device')})[/]", run.name)
        elif isinstance(event, ev.RunResumed):
            self.line("[dim]resumed" + (f" from the checkpoint after SAE epoch {event.epoch}" if event.epoch
                                        else "") + "[/]", run.name)
        elif isinstance(event, ev.Message):
            style = "yellow" if event.level == "warning" else "dim"
            self.once(f"[{style}]{escape(event.text)}[/]")
        elif isinstance(event, ev.PhaseStarted):
            run.phase_started[event.phase] = time.perf_counter()
            run.epoch = ""
            total = event.epochs * event.steps_per_epoch if event.epochs and event.steps_per_epoch else None
            self._join(run, event.phase, total)
        elif isinstance(event, ev.Progress):
            run.done = event.done
            if run.group is not None:
                self._describe(run.group)
        elif isinstance(event, ev.EpochEnd):
            run.epoch = f"{event.epoch}/{event.epochs}"
            if self.verbose:
                self._epoch_line(run, event)
            if run.group is not None:
                self._describe(run.group)
        elif isinstance(event, ev.Evaluation):
            self._evaluation(run, event)
        elif isinstance(event, (ev.RunFinished, ev.RunFailed)):
            self._leave(run)
            self._end_line(run, event)
            del self.runs[event.run_id]  # a long sweep's progress lines look only at the runs in progress

    def _epoch_line(self, run: _Run, event: ev.EpochEnd) -> None:
        # Dead neurons read as percentages everywhere; the other logs as the model logs them.
        logs = "  ".join(f"dead in training {percent(v)}" if k == DEAD_IN_TRAINING else f"{k} {v:.4g}"
                         for k, v in event.logs.items())
        self.line(f"{event.phase} epoch {event.epoch}/{event.epochs}  {logs}  [dim]{event.seconds:.1f}s[/]",
                  run.name, cut=True)

    def _evaluation(self, run: _Run, event: ev.Evaluation) -> None:
        m = event.metrics
        if event.phase == "vae":
            # Every run of a sweep evaluates the VAE it shares: one line for it, with the time it took
            # where it was trained (or loaded).
            spent = time.perf_counter() - run.phase_started.get("vae", time.perf_counter())
            numbers = f"MIG {metric(m, 'mig')}  BCE {metric(m, 'bce')}  active latents {m.get('active_latents')}"
            self.once(f"[cyan]VAE[/]  {numbers}  [dim]({duration(spent)})[/]", key=f"VAE {numbers}")
            return
        run.last_dead = m.get("dead_fraction")
        if self.verbose:
            self.line(f"[cyan]eval @ epoch {event.epoch}[/]  dead {metric(m, 'dead_fraction')}  L0 "
                      f"{metric(m, 'l0')}  EV {metric(m, 'explained_variance')}  MIG {metric(m, 'mig')}  "
                      f"specialized {metric(m, 'specialized')}", run.name, cut=True)

    def _end_line(self, run: _Run, event: ev.RunFinished | ev.RunFailed) -> None:
        summary = event.summary or {}
        if isinstance(event, ev.RunFailed):
            self.line(f"[red]✗ failed: {escape(event.reason)}[/]", run.name)
            return
        if event.status == "stopped":
            self.line("[yellow]■ stopped: what was measured is kept[/]", run.name)
            return
        final = summary.get("final") or {}
        # The run's own time: its SAE (a bank's members share theirs); the VAE's is on the VAE's line.
        sae = (summary.get("durations") or {}).get("sae")
        numbers = (f"dead {percent(final.get(DEAD.key))}  L0 {metric(final, 'l0')}  "
                   f"EV {metric(final, 'explained_variance')}" + (f"  [dim]sae {duration(sae)}[/]" if sae else ""))
        if summary.get("flags"):
            self.line(f"[yellow]! {SUSPECT}: {escape('; '.join(summary['flags']))}[/]  {numbers}", run.name)
        else:
            self.line(f"[green]✓[/] {numbers}", run.name)


# ------------------------------------------------------------------ the tables

_STATUS_STYLE = {"ok": "green", "failed": "red", "stopped": "yellow", SUSPECT: "yellow"}


def _status(result) -> str:
    return SUSPECT if result.status == "ok" and result.summary.get("flags") else result.status


def _sae_time(summary: dict[str, Any]) -> str:
    seconds = (summary.get("durations") or {}).get("sae")
    return duration(seconds) if seconds else "–"


def _columns(results, thresholds: Sequence[float]) -> list[tuple[str, int, Callable[[Any], str]]]:
    """``(header, priority, cell)`` of every column the table may show; the lower the priority, the
    sooner the column goes when the table is too wide (the run's name is never dropped)."""
    first, *others = [dead_spec(threshold_key(t)) for t in thresholds] or [DEAD]
    columns = [
        ("run", 99, lambda r: r.summary.get("name", r.run_dir.name)),
        ("method", 8, lambda r: str(r.summary.get("method", ""))),
        ("k / λ", 9, lambda r: sparsity_label(r.summary.get("method"), r.summary.get("sparsity", 0))),
    ]
    if any(_status(r) != "ok" for r in results):
        columns.append(("status", 10, lambda r: f"[{_STATUS_STYLE.get(_status(r), '')}]{_status(r)}[/]"))
    columns.append((first.label, 10, lambda r, s=first: s.shown(r.summary)))
    for key, priority in (("l0", 7), ("explained_variance", 6), ("mig", 4), ("specialized", 3)):
        m = spec(key)
        columns.append((m.label, priority, lambda r, m=m: m.shown(r.summary)))
    columns += [(d.label, 2, lambda r, d=d: d.shown(r.summary)) for d in others]
    columns.append((spec("mig_vae").label, 1, lambda r, m=spec("mig_vae"): m.shown(r.summary)))
    columns.append(("sae time", 0, lambda r: _sae_time(r.summary)))
    return columns


def _build(results, columns, caption: str) -> Table:
    table = Table(title="Runs", caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
    for header, _, _ in columns:
        table.add_column(header, no_wrap=True, justify="left" if header in ("run", "method", "status") else "right")
    for r in results:
        table.add_row(*(cell(r) for _, _, cell in columns))
    return table


def results_table(results, thresholds: Sequence[float], console: Console) -> Table:
    """One row per run, the final metrics side by side, as many columns as fit ``console``'s width."""
    columns = _columns(results, thresholds)
    while True:
        caption = f"{DEAD.label} @t: neurons never above t on the evaluation set"
        if any(header == "sae time" for header, _, _ in columns):
            caption += "; sae time: its training and evaluation (a bank's runs share theirs)"
        if any(_status(r) == SUSPECT for r in results):
            caption += f"; {SUSPECT}: finished, but its final metrics are no result"
        table = _build(results, columns, caption)
        droppable = [c for c in columns if c[1] < 99]
        wide = Measurement.get(console, console.options.update_width(1_000_000), table).maximum
        if wide <= console.width or not droppable:
            return table
        columns.remove(min(reversed(droppable), key=lambda c: c[1]))  # of equals, the rightmost goes first


def plan_lines(configs: Sequence, banks: Sequence[Sequence[int]]) -> list[str]:
    """A dry run's plan: a line per run (its name, method, k or λ, seed and bank), in the order they run."""
    bank_of = {i: b for b, bank in enumerate(banks, 1) for i in bank}
    width = max((len(c.name) for c in configs), default=0)
    lines = []
    for i, cfg in enumerate(configs):
        sparsity = sparsity_label(cfg.sae.method, cfg.sparsity)
        lines.append(f"{i + 1:>4}  {cfg.name:<{width}}  {cfg.sae.method:<9} {sparsity:<9} seed {cfg.seed:<3} "
                     f"bank {bank_of.get(i, '?')}")
    return lines
