"""The runs table's groups: which settings tell the listed runs apart, the runs under each value of one,
and a group's metrics as mean ± std over its runs (no widgets here)."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any, Hashable, Iterable, Mapping, Sequence

from collapse_tui.metrics.specs import MISSING, MetricSpec
from collapse_tui.tui.runs_table import sort_key


def _hashable(value: Any) -> Hashable:
    """A config value as a dict key: lists and mappings by their JSON text."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def differing_keys(flats: Iterable[Mapping[str, Any]]) -> list[str]:
    """The flattened config keys whose value is not the same in every run (a key some runs lack differs),
    in the order the runs first list them."""
    first: dict[str, Hashable] = {}
    differs: set[str] = set()
    seen_runs = 0
    counts: dict[str, int] = {}
    for flat in flats:
        seen_runs += 1
        for key, value in flat.items():
            counts[key] = counts.get(key, 0) + 1
            if key in differs:
                continue
            value = _hashable(value)
            if key not in first:
                first[key] = value
            elif first[key] != value or type(first[key]) is not type(value):
                differs.add(key)
    return [k for k in first if k in differs or counts[k] < seen_runs]


def value_text(value: Any) -> str:
    """A setting's value as a group's header names it."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def group_by(ids: Sequence[str], value_of: Mapping[str, Any]) -> list[tuple[Any, list[str]]]:
    """``ids`` under each value ``value_of`` gives them, in the order of ``ids`` within a group; the groups
    by value (numbers by size, text case-insensitively, runs without the setting last)."""
    groups: dict[Hashable, tuple[Any, list[str]]] = {}
    for run_id in ids:
        value = value_of.get(run_id)
        groups.setdefault(_hashable(value), (value, []))[1].append(run_id)
    return sorted(groups.values(), key=lambda group: sort_key(group[0] if not isinstance(group[0], bool)
                                                              else str(group[0])))


def mean_std(metric: MetricSpec, values: Iterable[Any]) -> str:
    """A group's metric as its cell shows it: mean ± sample standard deviation of the values as shown
    (scaled), each to the spec's digits, over the runs that have the value; one run: its value alone;
    none: "–"."""
    shown = [s for s in (metric.scaled(v) for v in values) if s is not None and math.isfinite(s)]
    if not shown:
        return MISSING
    if len(shown) == 1:
        return metric.text(shown[0])
    return f"{metric.text(statistics.fmean(shown))} ± {metric.text(statistics.stdev(shown))}"
