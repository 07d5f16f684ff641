"""Sweep directories: which runs a sweep made, in order, and the plan it is finishing.

``<runs_dir>/sweeps/<timestamp>-<name>/`` (names in :mod:`~collapse_tui.store.layout`) holds
``sweep.json``, the config file a sweep ran and the run directories it made so far, replaced after each
run starts, and ``plan.json``, the resolved configs of all its runs, written once: what ``--resume``
finishes. The sweep's results tables (:mod:`collapse_tui.report`) and a cluster sweep's stop file and
task records (:mod:`collapse_tui.engine.ray_sweep`) are written beside them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import collapse_tui.store.layout as layout
from collapse_tui.config import shorten
from collapse_tui.store.files import dumps, read_bounded, read_json, write_atomic
from collapse_tui.store.records import RunRecord, load_run
from collapse_tui.store.runs import create_run_dir

SWEEP_LIMIT = 64 << 20  # bytes a sweep.json may hold (a path a run: a few MB for the largest sweeps)


class SweepWriter:
    """A sweep's directory, kept current: ``add`` each run directory as the run starts. ``plan``: the
    resolved configs of all its runs, written once (``plan.json``); ``path``: reopen an existing
    sweep directory instead of creating one (its runs so far are kept)."""

    def __init__(self, runs_dir: str | Path, name: str, config_path: str | None = None, n_runs: int = 0,
                 plan: list[dict[str, Any]] | None = None, path: str | Path | None = None):
        if path is not None:
            record = load_sweep(path)
            self.path, self.runs = Path(path), [str(r) for r in record.runs]
            info = read_json(layout.sweep_file(self.path, layout.SWEEP_FILE))
            self.started = info.get("started") if isinstance(info.get("started"), (int, float)) else time.time()
        else:
            self.path = create_run_dir(layout.sweeps_dir(runs_dir), name)
            self.runs = []
            self.started = time.time()
            if plan is not None:
                write_atomic(layout.sweep_file(self.path, layout.PLAN_FILE), dumps({"runs": plan}))
        self.name = name
        self.config_path = config_path
        self.n_runs = n_runs
        self._write()

    def add(self, run_dir: str | Path) -> None:
        resolved = str(Path(run_dir).resolve())
        if resolved not in self.runs:
            self.runs.append(resolved)
            self._write()

    def records(self) -> list[RunRecord]:
        return sweep_records(self.path)

    def _write(self) -> None:
        info = {"name": self.name, "config": self.config_path, "started": self.started, "updated": time.time(),
                "n_runs": self.n_runs, "runs": self.runs}
        write_atomic(layout.sweep_file(self.path, layout.SWEEP_FILE), dumps(info))


@dataclass
class SweepRecord:
    """A sweep directory as read back: its name, the config file it ran, and its run directories in the
    order they ran."""

    path: Path
    name: str
    config: str | None
    n_runs: int
    runs: list[Path]


def is_sweep_dir(path: str | Path) -> bool:
    return layout.sweep_file(path, layout.SWEEP_FILE).is_file()


def load_sweep(path: str | Path) -> SweepRecord:
    """Read a sweep directory; raises ValueError naming ``sweep.json`` if it is unreadable.

    Each run is read from the sweep's own runs dir (the one its ``sweeps/`` folder is in) where a run of
    its name is there, else at the path recorded: a runs dir copied or moved elsewhere reads its own
    copies of its runs, never the original's (whose results may have changed, or gone), while a run
    written into another runs dir is still found where it was written."""
    path = Path(path)
    file = layout.sweep_file(path, layout.SWEEP_FILE)
    try:
        info = json.loads(read_bounded(file, SWEEP_LIMIT).decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ValueError(f"{file}: unreadable ({exc.__class__.__name__}: {exc})") from None
    problem = _record_problem(info)
    if problem:
        raise ValueError(f"{file}: unreadable ({problem})")
    own = layout.runs_dir_of_sweep(path)
    resolved = [_own_copy(own, Path(run)) for run in info["runs"]]
    name = info.get("name") if isinstance(info.get("name"), str) else path.name
    n_runs = info.get("n_runs")
    n_runs = n_runs if type(n_runs) is int and n_runs >= len(resolved) else len(resolved)
    config = info.get("config") if isinstance(info.get("config"), str) else None
    return SweepRecord(path=path, name=name, config=config, n_runs=n_runs, runs=resolved)


def _record_problem(info: Any) -> str | None:
    """What makes a parsed sweep.json no record of runs: not a mapping, or runs not a list of paths."""
    if not isinstance(info, dict):
        return f"it holds {type(info).__name__}, not a mapping"
    runs = info.get("runs")
    if not isinstance(runs, list):
        return f"runs is {type(runs).__name__}, not a list of run directories"
    for run in runs:
        if not isinstance(run, str) or "\0" in run or Path(run).name in ("", ".", ".."):
            return f"runs holds {shorten(repr(run), 40)}, not a run directory"
    return None


def _own_copy(runs_dir: Path, recorded: Path) -> Path:
    """The run of ``recorded``'s name in ``runs_dir`` (absolute, as the writer records runs, so the two
    compare equal) where there is one, else ``recorded``; a relative path (the writer records absolute
    ones) is the sweep's runs dir's, never the current directory's."""
    try:
        own = runs_dir.resolve() / recorded.name
        return own if own.is_dir() or not recorded.is_absolute() else recorded
    except (OSError, RuntimeError, ValueError):  # a name too long, a symlink loop, a NUL: a damaged sweep.json
        return recorded if recorded.is_absolute() else runs_dir / recorded.name


def load_plan(path: str | Path) -> list[dict[str, Any]]:
    """The resolved configs of every run a sweep directory planned; ValueError if it has no plan (none,
    unreadable, not a list of mappings, or empty)."""
    file = layout.sweep_file(path, layout.PLAN_FILE)
    plan = read_json(file).get("runs")
    if not isinstance(plan, list) or not all(isinstance(c, dict) for c in plan):
        raise ValueError(f"{file}: missing or unreadable (a sweep written before sweeps "
                         "recorded their plan cannot be resumed as a whole; resume its runs one by one)")
    if not plan:  # a sweep plans two runs or more: an empty plan is no record of one that finished
        raise ValueError(f"{file}: it plans no runs")
    return plan


def sweep_run_dirs(path: str | Path) -> list[Path]:
    """The run directories a sweep recorded, in the order they ran."""
    return load_sweep(path).runs


def sweep_dirs(runs_dir: str | Path) -> list[Path]:
    """The sweep directories of a runs dir, oldest first (their names start with their dates)."""
    return sorted(layout.sweeps_dir(runs_dir).glob("*"))


def sweep_of(run_dir: str | Path) -> Path | None:
    """The sweep directory (beside ``run_dir``, in its runs dir's ``sweeps/``) that recorded ``run_dir``,
    the newest if several did; None if none did."""
    run_dir = Path(run_dir)
    target = run_dir.resolve()
    for sweep in reversed(sweep_dirs(run_dir.parent)):
        try:
            if any(Path(r).resolve() == target for r in load_sweep(sweep).runs):
                return sweep
        except ValueError:
            continue
    return None


def sweep_records(path: str | Path) -> list[RunRecord]:
    """The runs of a sweep as records; one that cannot be read is returned with ``error`` set."""
    records = []
    for run in sweep_run_dirs(path):
        try:
            records.append(load_run(run))
        except ValueError as exc:
            records.append(RunRecord(path=run, error=str(exc)))
    return records


def sweep_name(names: Iterable[str]) -> str:
    """A sweep's name from its runs' names (the config's name plus each run's overrides): their common
    leading words."""
    names = list(names)
    if not names:
        return "sweep"
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    if len(names) > 1 and not all(n == prefix or n[len(prefix):].startswith("-") for n in names):
        prefix = prefix.rsplit("-", 1)[0] if "-" in prefix else prefix
    return prefix.strip("-") or "sweep"
