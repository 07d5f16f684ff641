"""Reading runs back: a run directory as a checked :class:`RunRecord`, and every run of a runs dir.

Every reader (the TUI, the tables, resume) goes through :func:`load_run`, which raises one clear
``ValueError`` naming the file for a run it cannot trust (unreadable, cut short, the wrong shape, a
value of the wrong type, a FIFO or a symlink to /dev/zero in place of a file), so that no reader ever
meets one. A final metric that is not a number spoils that run's results, not the run: it is read, flagged with the
key (:func:`final_problem`), and kept out of tables as ``suspect``.

Listing is fast for runs this version wrote: the config comes from the run's listing sidecar
(:mod:`~collapse_tui.store.listing`) when it proves it matches config.yaml, and from parsing the YAML
otherwise (runs written by earlier versions, or edited by hand): the same record either way.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import collapse_tui.store.layout as layout
from collapse_tui.config import MAX_CONFIG_BYTES, ConfigError, parse_yaml, shorten, stored_config_errors
from collapse_tui.metrics.specs import DEAD_CURVE
from collapse_tui.store.files import read_bounded
from collapse_tui.store.listing import LISTING_LIMIT, read_listing, written_config
from collapse_tui.store.liveness import CRASHED, process_gone

STATUSES = ("running", "ok", "stopped", "failed")  # what a run's summary.json says it is (RunSummary.status)
SUSPECT = "suspect"  # an ok run whose final metrics are no result (RunSummary.flags)
SUMMARY_LIMIT = 64 << 20  # bytes a summary.json may hold (a real one holds a few kB)


@dataclass
class RunRecord:
    """A run directory as read back: its config and summary (``error`` set if it could not be read;
    ``problems``: what is wrong with a summary that could be read, :func:`final_problem`'s)."""

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        """The summary's status, as readers show it: ``unreadable`` when it could not be read, ``crashed``
        for a ``running`` run whose process is gone (:func:`process_gone`), ``suspect`` for an ``ok`` run
        whose final metrics are flagged as no result (see :attr:`flags`)."""
        if self.error:
            return "unreadable"
        status = str(self.summary.get("status", "unknown"))
        if status == "running" and process_gone(self.summary, layout.run_file(self.path, layout.EVENTS_FILE)):
            return CRASHED
        return SUSPECT if status == "ok" and self.flags else status

    @property
    def flags(self) -> list[str]:
        """Why the run's final metrics are no result: the summary's own flags, then its :attr:`problems`."""
        return [str(f) for f in self.summary.get("flags") or []] + self.problems


# The types readers rely on in a summary, for the fields it has (a field may be absent in a run written
# before it existed, and null where a number was not finite); see RunSummary.
_NUMBER = (int, float)
_SUMMARY_TYPES: dict[str, type | tuple[type, ...]] = {
    "status": str, "run_id": str, "name": str, "dataset": str, "method": str, "sparsity": _NUMBER,
    "n_neurons": int, "source": str, "remedies": list, "resampled": int, "started": _NUMBER,
    "finished": _NUMBER, "seconds": _NUMBER, "durations": dict, "sae_epochs": int,
    "updates_by_sparsity": dict, "evaluated_at_epoch": int, "final": dict, "vae": dict, "vae_model": str,
    "data": dict, "reason": str, "flags": list, "host": str, "pid": int, "pid_started": int, "resumed": list,
}
# What config.yaml holds beside the run's settings.
CONFIG_EXTRAS = ("environment", "data_source")


def stored_settings(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config.yaml less what it holds beside the run's settings (:data:`CONFIG_EXTRAS`)."""
    return {k: v for k, v in config.items() if k not in CONFIG_EXTRAS}


# The exact types JSON gives a field that has one of _SUMMARY_TYPES (anything else, a bool for a number
# included, takes the full check): one lookup a field for the summaries that are fine.
_EXACT = {key: frozenset(expected if isinstance(expected, tuple) else (expected,))
          for key, expected in _SUMMARY_TYPES.items()}


# The summary's numbers that readers show, group by (k / λ) or compute with (times): finite where given
# (JSON's NaN and Infinity are floats, an int of 400 digits an int; neither is a k / λ or a time).
_FINITE = ("sparsity", "n_neurons", "started", "finished", "seconds")


def summary_problem(summary: dict[str, Any]) -> str | None:
    """What is wrong with a summary's shape (a field of the wrong type, a number that is not a finite
    one, a negative k / λ), or None."""
    if summary.get("status") is None:
        return "summary.json has no status"
    exact = _EXACT
    if not all(v is None or k not in exact or type(v) in exact[k] for k, v in summary.items()):
        for key, expected in _SUMMARY_TYPES.items():
            value = summary.get(key)
            if value is not None and (not isinstance(value, expected) or (expected is not bool and
                                                                           isinstance(value, bool))):
                names = expected if isinstance(expected, tuple) else (expected,)
                return (f"summary.json: {key} is {type(value).__name__} {shorten(repr(value), 60)}, not "
                        f"{' or '.join(n.__name__ for n in names)}")
    if summary["status"] not in STATUSES:
        return f"summary.json: status is {shorten(repr(summary['status']), 40)}, not one of {', '.join(STATUSES)}"
    for key in _FINITE:
        value = summary.get(key)
        if value is not None and not finite_number(value):
            return f"summary.json: {key} is {shorten(repr(value), 60)}, not a finite number"
    if (summary.get("sparsity") or 0) < 0:  # null: a k / λ that was not finite when written
        return f"summary.json: sparsity is {summary['sparsity']!r}, not a k or λ (0 or more)"
    return None


def finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number as JSON gives one: an int or a float, not a bool (which
    Python counts as an int), not NaN or infinite, and not an int too large for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


_SHOWN_PROBLEMS = 3  # wrong final values named one by one; the rest are counted


def _curve(value: Any) -> bool:
    """Whether ``value`` is a curve as the final section keeps one: a list of [number, number] pairs."""
    return isinstance(value, list) and all(isinstance(point, list) and len(point) == 2
                                           and finite_number(point[0]) and finite_number(point[1])
                                           for point in value)


def final_problem(final: dict[str, Any]) -> str | None:
    """What is wrong with a summary's final metrics, naming each key: a value that is neither a finite
    real number nor null (null stands for a number that was not finite), except :data:`DEAD_CURVE`, the
    one list the section keeps, which must be a list of pairs of finite numbers. None when every value is
    one of those."""
    wrong = [(key, value) for key, value in final.items()
             if not (_curve(value) if key == DEAD_CURVE else value is None or finite_number(value))]
    if not wrong:
        return None
    named = [f"final.{shorten(str(key), 40)} is {type(value).__name__} {shorten(repr(value), 40)}, not "
             + ("a list of [number, number] pairs" if key == DEAD_CURVE else "a finite number")
             for key, value in wrong[:_SHOWN_PROBLEMS]]
    more = f" (and {len(wrong) - _SHOWN_PROBLEMS} more)" if len(wrong) > _SHOWN_PROBLEMS else ""
    return f"summary.json: {'; '.join(named)}{more}"


def config_problem(config: dict[str, Any]) -> str | None:
    """What is wrong with a run's config.yaml as a config (a value of the wrong type or out of range),
    or None."""
    errors = stored_config_errors(stored_settings(config))
    if errors:
        return f"config.yaml: {errors[0]}"
    # The checks take true for 1 and '3_0' for 30 where an integer belongs; a table shows the seed as the
    # number int() makes of it, so only the integer a run writes is one.
    seed = config.get("seed")
    if seed is not None and type(seed) is not int:
        return f"config.yaml: seed is {type(seed).__name__} {shorten(repr(seed), 40)}, not an integer"
    return None


def _unreadable(file: str, exc: BaseException) -> ValueError:
    return ValueError(f"{file}: unreadable ({exc.__class__.__name__}: {shorten(str(exc))})")


def read_config(path: str | Path, fast: bool = True) -> tuple[Any, bool]:
    """The parsed config.yaml of the run directory ``path``, and whether this code's config checks
    passed it already: from its listing sidecar when ``fast`` and the sidecar is intact and matches the
    file, else parsed (within the bounds a config file has: no alias bombs from a run directory either;
    not checked). ValueError naming the file if it cannot be read."""
    # Paths as strings: listing 10,000 runs makes 30,000 of them, and pathlib's cost would show.
    file = os.path.join(path, layout.CONFIG_FILE)
    try:
        text = read_bounded(file, MAX_CONFIG_BYTES)
    except (OSError, ValueError) as exc:
        raise _unreadable(file, exc) from None
    try:
        listing = read_bounded(os.path.join(path, layout.LISTING_FILE), LISTING_LIMIT)
    except (OSError, ValueError):
        listing = None
    if fast and listing is not None:
        found = read_listing(listing, text)
        if found is not None:
            return found
    if listing is not None:
        # A config.yaml cut after a whole line still parses, into fewer settings whose defaults would
        # stand for what the run wrote (another row, a resume at other settings): its sidecar knows.
        written = written_config(listing)
        if written is not None and len(text) < len(written) and written.startswith(text):
            raise ValueError(f"{file}: cut short (the first {len(text):,} of the {len(written):,} bytes the run "
                             f"wrote; {layout.LISTING_FILE} holds them all)")
    try:
        config = parse_yaml(text.decode("utf-8"))
    except ConfigError as exc:
        raise ValueError(f"{file}: unreadable ({'; '.join(exc.errors)})") from None
    except ValueError as exc:  # UnicodeDecodeError
        raise _unreadable(file, exc) from None
    if config is None:  # an empty file: no settings, not a run of every default
        raise ValueError(f"{file}: empty (it holds no settings)")
    return config, False


def read_summary(path: str | Path) -> Any:
    """The parsed summary.json of the run directory ``path``; ValueError naming it if it cannot be read."""
    file = os.path.join(path, layout.SUMMARY_FILE)
    try:
        return json.loads(read_bounded(file, SUMMARY_LIMIT).decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # JSON and UTF-8 decoding errors are ValueErrors
        raise ValueError(f"{file}: unreadable ({exc.__class__.__name__}: {exc})") from None


def load_run(path: str | Path, fast: bool = True, _is_dir: bool = False) -> RunRecord:
    """Read a run directory's config and summary; raises ValueError naming the file that is unreadable
    or holds a value of the wrong type (so that no reader meets one). ``fast=False`` parses config.yaml
    even where the listing sidecar would do (the same record: see :mod:`~collapse_tui.store.listing`)."""
    path = path if isinstance(path, Path) else Path(path)
    if not _is_dir and not path.is_dir():
        raise ValueError(f"{path} is not a run directory")
    name = str(path)
    config, checked = read_config(name, fast)
    summary = read_summary(name)
    for file, value in ((layout.CONFIG_FILE, config), (layout.SUMMARY_FILE, summary)):
        if not isinstance(value, dict):
            raise ValueError(f"{os.path.join(name, file)}: holds {type(value).__name__} "
                             f"{shorten(repr(value), 40)}, not a mapping")
    problem = summary_problem(summary) or (None if checked else config_problem(config))
    if problem:
        raise ValueError(f"{path}: {problem}")
    # Wrong final values spoil the run's metrics, not the run: it is listed, flagged, and kept out of tables.
    final = summary.get("final")
    wrong = final_problem(final) if final else None
    return RunRecord(path=path, config=config, summary=summary, problems=[wrong] if wrong else [])


def run_dirs(runs_dir: str | Path) -> list[Path]:
    """The directories of ``runs_dir`` that may be runs (not hidden, not its sweeps), sorted by name:
    oldest first, since a run's name starts with its date."""
    runs_dir = Path(runs_dir)
    with os.scandir(runs_dir) as entries:
        names = [e.name for e in entries if layout.is_run_entry(e.name) and e.is_dir()]
    return [runs_dir / name for name in sorted(names)]


def list_runs(runs_dir: str | Path, include_unreadable: bool = False, fast: bool = True) -> list[RunRecord]:
    """All runs under ``runs_dir``, oldest first. Unreadable ones are skipped with a warning, or
    returned with ``error`` set when ``include_unreadable`` is true. ``fast``: as :func:`load_run`."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    records = []
    for path in run_dirs(runs_dir):
        try:
            records.append(load_run(path, fast, _is_dir=True))  # run_dirs just saw it is one
        except ValueError as exc:
            if include_unreadable:
                records.append(RunRecord(path=path, error=str(exc)))
            else:
                warnings.warn(f"skipping run {path.name}: {exc}", stacklevel=2)
    return records
