"""Running the expanded runs of a config file, bank by bank, sharing one engine; a sweep of more
than one run keeps its own directory with the results tables, kept current as its banks end."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from collapse_tui.config import ConfigError, RunConfig, validate
from collapse_tui.engine.banks import bank_groups
from collapse_tui.engine.active_run import RunResult
from collapse_tui.engine.runner import RESUMABLE, Engine, resume_plan
from collapse_tui.events import Event, Listener, RunResumed, RunStarted, SweepStarted
from collapse_tui.report import run_line, table_title, write_report
from collapse_tui.store import (SUSPECT, RunRecord, SweepWriter, load_plan, load_run, load_sweep, stored_settings,
                                sweep_name)
from collapse_tui.store.files import open_regular
from collapse_tui.store.layout import PLAN_FILE, RUNS_JSONL, sweep_file


# What a finished run of a sweep ended as: resuming the sweep leaves it as it is.
FINISHED = ("ok", "failed", SUSPECT)
ENDED = (*FINISHED, "stopped")  # what a run of this process will not change again


class SweepRecorder:
    """A sweep's directory (:class:`~collapse_tui.store.SweepWriter`) and its results tables
    (:mod:`~collapse_tui.report`). As a listener it records each run as it starts (so that a sweep cut
    short knows every run it began); :meth:`update` appends each run that finished to ``runs.jsonl`` and
    rewrites the tables unless that would cost more than a small share of the sweep's time;
    :meth:`write_tables` rewrites them."""

    # The tables are rewritten only once at least this many times the last rewrite's duration has gone
    # by since it: they hold every row (mean ± std over seeds needs all of them), so a rewrite grows with
    # the sweep (a second at 2,000 runs), and this keeps their cost under 1/20 of a long sweep's time.
    REWRITE_SPACING = 20.0

    def __init__(self, runs_dir: str | Path, name: str, config_path: str | None = None, n_runs: int = 0,
                 plan: list[dict[str, Any]] | None = None, path: str | Path | None = None):
        self.writer = SweepWriter(runs_dir, name, config_path=config_path, n_runs=n_runs, plan=plan, path=path)
        self.path = self.writer.path
        self.runs_dir = Path(runs_dir)
        self.name = name
        self._ended: dict[str, RunRecord] = {}  # runs read back once they had ended: not read again
        self._listed = _listed_runs(sweep_file(self.path, RUNS_JSONL))  # runs already in runs.jsonl
        self._written_at = self._write_seconds = 0.0
        self.write_tables()

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.writer.add(event.run_dir)
        elif isinstance(event, RunResumed):
            run = self.runs_dir / event.run_id
            self.writer.add(run)
            # Read as stopped or crashed before it was resumed: it will end again, and be read again then.
            self._ended.pop(str(run.resolve()), None)

    def add(self, run_dir: str | Path) -> None:
        self.writer.add(run_dir)
        self.write_tables()

    def records(self) -> list[RunRecord]:
        """The sweep's runs as records; a run that has ended is read from disk once, so that rewriting
        the tables after every bank of a long sweep reads only the runs that changed. A run that
        finished is appended to ``runs.jsonl`` the first time it is seen finished."""
        records, finished = [], []
        for run in self.writer.runs:
            record = self._ended.get(run)
            if record is None:
                try:
                    record = load_run(run)
                except ValueError as exc:
                    record = RunRecord(path=Path(run), error=str(exc))
                if record.status in ENDED:
                    self._ended[run] = record
                if record.status in FINISHED and record.run_id not in self._listed:
                    finished.append(record)
            records.append(record)
        if finished:
            lines = "".join(json.dumps(run_line(r), default=str) + "\n" for r in finished)
            if _append_lines(sweep_file(self.path, RUNS_JSONL), lines):
                self._listed.update(r.run_id for r in finished)
        return records

    def update(self) -> None:
        """After a bank: record what finished, and rewrite the tables unless they were rewritten lately
        (:data:`REWRITE_SPACING`)."""
        records = self.records()
        if time.monotonic() - self._written_at >= self.REWRITE_SPACING * self._write_seconds:
            self._write(records)

    def write_tables(self) -> None:
        self._write(self.records())

    def _write(self, records: list[RunRecord]) -> None:
        start = time.monotonic()
        write_report(self.path, records, title=table_title(self.name))
        self._written_at = time.monotonic()
        self._write_seconds = self._written_at - start


def _append_lines(path: Path, lines: str) -> bool:
    """Append ``lines`` to the log at ``path`` (created if missing), on a line of their own (a process
    killed mid-line left one torn). Whether they were: what is not a regular file there (a FIFO, whose
    opening for writing blocks until a reader comes, a device, a directory) is left alone, with a warning."""
    try:
        fd = os.open(path, _APPEND_FLAGS, 0o666)
    except OSError as exc:
        warnings.warn(f"{path}: not appended to ({exc.strerror or exc})", stacklevel=3)
        return False
    with os.fdopen(fd, "ab") as fh:  # opened for reading too: its last byte says whether a line was torn
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            warnings.warn(f"{path}: not appended to (not a regular file)", stacklevel=3)
            return False
        torn = info.st_size > 0 and os.pread(fd, 1, info.st_size - 1) != b"\n"
        fh.write(("\n" if torn else "").encode() + lines.encode("utf-8"))
    return True


_APPEND_FLAGS = (os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
RUNS_JSONL_LIMIT = 256 << 20  # bytes of runs.jsonl read back (about 100,000 runs); a run past them is listed again
_LINE_LIMIT = 1 << 20  # a line longer is no run's (a run's line holds a few kB)


def _listed_runs(path: Path) -> set[str]:
    """The runs a ``runs.jsonl`` lists. A damaged line (torn, not UTF-8, not a record, longer than any
    run's) is skipped: its run is listed again; a runs.jsonl that is not a regular file (a FIFO, a
    device, a directory) is read as empty, and one read only so far (:data:`RUNS_JSONL_LIMIT`)."""
    listed: set[str] = set()
    try:
        with open_regular(path) as fh:
            read = 0
            while read < RUNS_JSONL_LIMIT and (line := fh.readline(_LINE_LIMIT)):
                read += len(line)
                try:
                    run = json.loads(line.decode("utf-8"))["run"]
                except (ValueError, KeyError, TypeError, IndexError, RecursionError):  # UnicodeDecodeError: a ValueError
                    continue
                if isinstance(run, str):
                    listed.add(run)
    except (OSError, ValueError):
        pass
    return listed


def record_sweep(configs: list[RunConfig], listeners: list[Listener], config_path: str | None) -> SweepRecorder:
    """Create the sweep's directory with its plan, announce it to ``listeners`` (:class:`SweepStarted`)
    and append its recorder to them, so that each run is recorded there as it starts."""
    recorder = SweepRecorder(configs[0].runs_dir, sweep_name(cfg.name for cfg in configs), config_path=config_path,
                             n_runs=len(configs), plan=[cfg.to_dict() for cfg in configs])
    started = SweepStarted(name=recorder.name, sweep_dir=str(recorder.path), n_runs=len(configs))
    for listener in listeners:
        listener(started)
    listeners.append(recorder)
    return recorder


def _banked(engine: Engine, runs: list[tuple[RunConfig, dict[str, Any]]], listeners: list[Listener],
            recorder: SweepRecorder | None, results: list[RunResult],
            on_run_start: Callable[[int, RunConfig, dict[str, Any]], None] | None = None,
            stop_after_bank: threading.Event | None = None) -> None:
    """Train ``runs`` bank by bank (:func:`~collapse_tui.engine.banks.bank_groups`), appending to
    ``results`` and rewriting the sweep's tables after each bank; stops after a bank that was stopped,
    or after the bank in training when ``stop_after_bank`` is set (its runs end as they would)."""
    for bank in bank_groups([config for config, _ in runs]):
        if on_run_start is not None:
            for i in bank:
                on_run_start(i, *runs[i])
        results.extend(engine.run_bank([runs[i][0] for i in bank], listeners))
        if recorder is not None:
            recorder.update()
        if any(result.status == "stopped" for result in results):
            break
        if stop_after_bank is not None and stop_after_bank.is_set():
            break


def run_sweep(
    runs: Iterable[tuple[RunConfig, dict[str, Any]]],
    listeners: Iterable[Listener] = (),
    stop_event: threading.Event | None = None,
    on_run_start: Callable[[int, RunConfig, dict[str, Any]], None] | None = None,
    config_path: str | None = None,
    stop_after_bank: threading.Event | None = None,
) -> list[RunResult]:
    """Run the configs, their SAEs in banks (:func:`~collapse_tui.engine.banks.bank_groups`: runs
    that can share a training step, up to ``bank_size`` at a time, in the order they first come); the
    VAE, images and codes are computed once and shared. Results come bank by bank.

    A failed run does not stop the sweep; a stopped one (Ctrl-C or the stop event) does. More than one
    run makes a sweep: its directory is created first, with its plan (every run's resolved config, for
    :func:`resume_sweep`), listeners get a :class:`SweepStarted` naming it, each run is recorded in it
    as it starts, and the table is rewritten after each bank. ``config_path``: the file the runs came
    from, recorded in the sweep's directory. ``stop_after_bank``: once set, no bank starts after the one
    training (the runs not started stay in the sweep's plan, for :func:`resume_sweep`).
    """
    runs = list(runs)
    listeners = list(listeners)
    recorder = None
    if len(runs) > 1:
        recorder = record_sweep([cfg for cfg, _ in runs], listeners, config_path)
    results: list[RunResult] = []
    try:
        _banked(Engine(stop_event), runs, listeners, recorder, results, on_run_start, stop_after_bank)
    finally:
        if recorder is not None:
            recorder.write_tables()  # whatever the rewrites after each bank skipped
    return results


# ---------------------------------------------------------------------------------------- resuming



@dataclass
class SweepResume:
    """What :func:`resume_sweep` will do with a sweep directory: the runs to resume (as
    :func:`~collapse_tui.engine.runner.resume_plan` made them), the planned runs never started, and the
    finished ones it leaves alone."""

    path: Path
    name: str
    config_path: str | None
    n_runs: int
    resume: list[tuple] = field(default_factory=list)
    new: list[tuple[RunConfig, dict[str, Any]]] = field(default_factory=list)
    finished: list[Path] = field(default_factory=list)

    @property
    def thresholds(self) -> list[float]:
        configs = [plan[1] for plan in self.resume] + [cfg for cfg, _ in self.new]
        return configs[0].eval.thresholds if configs else [0.0]

    def summary(self) -> str:
        return (f"{len(self.finished)} of {self.n_runs} run(s) finished, {len(self.resume)} to resume, "
                f"{len(self.new)} to start")


def _settings_key(config: dict[str, Any]) -> str:
    """A resolved config as comparable text, less what a run adds beside its settings."""
    return json.dumps(stored_settings(config), sort_keys=True, default=str)


def _planned_configs(path: Path) -> list[RunConfig]:
    """The sweep's plan as configs; ValueError in one line naming plan.json and the first run that is no
    config (as the writer wrote each run's resolved config: its seed an integer, not true or '3')."""
    entries = load_plan(path)
    configs = []
    for i, entry in enumerate(entries):
        try:
            if "seed" in entry and type(entry["seed"]) is not int:
                raise ConfigError([f"seed: {entry['seed']!r} is not an integer"])
            configs.append(validate(entry))
        except ConfigError as exc:
            raise ValueError(f"{sweep_file(path, PLAN_FILE)}: run {i + 1} of {len(entries)} is no config "
                             f"({exc.errors[0] if exc.errors else exc})") from None
    return configs


def _written_to(cfg: RunConfig, runs_dir: Path) -> RunConfig:
    """``cfg`` writing its run into ``runs_dir``: a run a resumed sweep starts goes beside the sweep's other
    runs, where the sweep now is, never to the runs directory the plan recorded (which a moved or copied
    runs directory would otherwise have re-created)."""
    if Path(cfg.runs_dir).resolve() == runs_dir.resolve():
        return cfg
    return cfg.model_copy(update={"runs_dir": str(runs_dir)})


def plan_sweep_resume(path: str | Path) -> SweepResume:
    """Match a sweep's plan against the runs it recorded (by resolved config): finished runs are left
    alone, stopped or crashed ones resumed, runs never started started. ValueError when the sweep cannot
    be resumed (no plan, a run still running, nothing left to do)."""
    path = Path(path)
    record = load_sweep(path)
    plan = _planned_configs(path)
    by_key: dict[str, list[int]] = {}
    for i, cfg in enumerate(plan):
        by_key.setdefault(_settings_key(cfg.to_dict()), []).append(i)
    out = SweepResume(path=path, name=record.name, config_path=record.config, n_runs=len(plan))
    started: set[int] = set()
    for run_dir in record.runs:
        try:
            run = load_run(run_dir)
        except ValueError:
            continue  # unreadable or gone: its planned run counts as never started
        try:  # through the schema, so that a setting added since the run started is its default on both sides
            key = _settings_key(validate(stored_settings(run.config)).to_dict())
        except ConfigError:
            continue  # a config this version cannot read: its planned run counts as never started
        indices = [i for i in by_key.get(key, []) if i not in started]
        if not indices:
            continue  # not one of the plan's runs
        started.add(indices[0])
        if run.status in FINISHED:
            out.finished.append(run_dir)
        elif run.status in RESUMABLE:
            out.resume.append(resume_plan(run_dir))
        else:
            raise ValueError(f"{run_dir}: the run is {run.status}; resume the sweep once it has ended")
    here = path.parent.parent  # the runs directory the sweep is in now (it may have moved since it started)
    out.new = [(_written_to(plan[i], here), {}) for i in range(len(plan)) if i not in started]
    if not out.resume and not out.new:
        raise ValueError(f"{path}: every run of the sweep has finished; nothing to resume")
    return out


def resume_sweep(plan: SweepResume, listeners: Iterable[Listener] = (),
                 stop_event: threading.Event | None = None) -> list[RunResult]:
    """Finish a sweep (:func:`plan_sweep_resume`): its interrupted runs go on from their checkpoints, then
    the runs it never started train in banks; all are recorded in its directory and its tables."""
    listeners = list(listeners)
    recorder = SweepRecorder(plan.path.parent.parent, plan.name, config_path=plan.config_path,
                             n_runs=plan.n_runs, path=plan.path)
    started = SweepStarted(name=plan.name, sweep_dir=str(plan.path), n_runs=plan.n_runs)
    for listener in listeners:
        listener(started)
    listeners.append(recorder)
    engine = Engine(stop_event)
    results: list[RunResult] = []
    try:
        if plan.resume:
            results.extend(engine.resume(plan.resume, listeners))
            recorder.update()
        if not any(result.status == "stopped" for result in results):
            _banked(engine, plan.new, listeners, recorder, results)
    finally:
        recorder.write_tables()
    return results
