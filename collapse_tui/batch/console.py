"""What ``--batch`` shows while it trains: one live progress line per phase in progress (the members of
a bank condensed into one), a line when each run ends (always naming it), each message once; with
``verbose`` a line per epoch and evaluation of every run as well.

Every line is printed by rich at the console's width, and the lines that name a run never wrap: a run
name is the one thing a reader scans for.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from collapse_tui import events as ev
from collapse_tui.metrics.specs import DEAD, DEAD_IN_TRAINING, spec
from collapse_tui.store import SUSPECT


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
