"""A sweep's results as points to plot: any final metric against another metric, or against a setting
that varies in the sweep (``sae.k``, ``sae.batch_size``...), one series per method and remedy.

A point is one row of the results table (:func:`~collapse_tui.report.rows.build_rows`: the runs of one
experiment, identical but for their seed) placed at the mean over its seeds, with the seeds' sample
standard deviation as its error bar: on both axes for a metric against a metric, on y alone against a
setting, which every run of the row shares exactly. Rows of one series that differ in some other setting
(a batch size) stay separate points even where they share an x: pooling them would average two
experiments. Values are in the metric's shown scale (a fraction of neurons as a percentage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from collapse_tui.config import K_METHODS, PENALTY_METHODS
from collapse_tui.metrics.specs import DEAD, MetricSpec, dead_keys, dead_spec
from collapse_tui.report.rows import TABLE_METRICS, Row, setting_text
from collapse_tui.report.tables import HEADLINE_KEYS

METRIC, SETTING = "metric", "setting"
# The sparsity settings: a row holds the one in effect as its k / λ (the summary's), not among its settings.
SPARSITY_SETTINGS = {"sae.k": K_METHODS, "sae.l1_coefficient": PENALTY_METHODS}
# What a chooser lists first: the dead fraction the study is about and what it costs or buys.
DEFAULT_X, DEFAULT_Y = "l0", DEAD.key


@dataclass(frozen=True)
class Quantity:
    """Something to put on an axis: a final metric (``spec`` says how it is shown) or a numeric setting
    (a dotted config key)."""

    key: str
    label: str
    kind: str
    spec: MetricSpec | None = None
    description: str = ""

    @property
    def is_metric(self) -> bool:
        return self.kind == METRIC

    def text(self, value: float) -> str:
        """A value already in the shown scale, as the metric's spec writes it (a setting: as a label does)."""
        return self.spec.text(value) if self.spec is not None else setting_text(value)


@dataclass(frozen=True)
class Point:
    """One row's mean over its seeds; ``x_err`` / ``y_err`` the seeds' standard deviation (0 for one seed,
    None on a setting's axis); ``n`` the seeds the y value is over."""

    x: float
    y: float
    x_err: float | None
    y_err: float | None
    n: int
    row: Row


@dataclass
class PointSeries:
    """The points of one method and remedy (and dataset, where a sweep has several), in x order."""

    label: str
    points: list[Point] = field(default_factory=list)


def _metric(spec: MetricSpec) -> Quantity:
    return Quantity(spec.key, spec.label, METRIC, spec, spec.description)


def _has(rows: Sequence[Row], key: str) -> bool:
    return any(key in final for row in rows for final in row.finals)


def metric_quantities(rows: Sequence[Row]) -> list[Quantity]:
    """The final metrics some run of ``rows`` measured: the headline ones first, then the dead fraction at
    each threshold and firing frequency, then the results table's other columns in its order."""
    specs = [DEAD, *TABLE_METRICS]
    headline = [s for key in HEADLINE_KEYS for s in specs if s.key == key]
    ordered = headline + [dead_spec(k) for k in dead_keys(f for row in rows for f in row.finals)]
    ordered += [s for s in TABLE_METRICS if s not in headline]
    return [_metric(s) for s in ordered if _has(rows, s.key)]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def setting_value(row: Row, key: str) -> float | None:
    """A row's value of a numeric setting; None where the setting has no effect in it (``sae.k`` of a
    penalised method) or is not a number."""
    if key in SPARSITY_SETTINGS:
        return float(row.sparsity) if row.method in SPARSITY_SETTINGS[key] else None
    value = row.settings.get(key)
    return float(value) if _number(value) else None


def setting_quantities(rows: Sequence[Row]) -> list[Quantity]:
    """The numeric settings that take more than one value among ``rows``: k and λ first, then the other
    settings in config order (a setting with no effect in a row, such as AuxK's k without AuxK, is not
    among its settings and does not count)."""
    keys = list(SPARSITY_SETTINGS)
    for row in rows:
        keys += [key for key in row.settings if key not in keys]
    found = []
    for key in keys:
        values = {setting_value(row, key) for row in rows} - {None}
        if len(values) > 1:
            found.append(Quantity(key, key, SETTING, None, f"the setting {key} of the runs' config.yaml"))
    return found


def quantities(rows: Sequence[Row]) -> list[Quantity]:
    """Everything an axis can show for ``rows``: :func:`metric_quantities`, then :func:`setting_quantities`."""
    return metric_quantities(rows) + setting_quantities(rows)


def series_label(row: Row, datasets: int = 1) -> str:
    """``topk`` for a plain method, ``topk + auxk`` with a remedy; the dataset first where there are several."""
    label = row.method if row.remedy == "none" else f"{row.method} + {row.remedy}"
    return f"{row.dataset} {label}" if datasets > 1 else label


def _value(row: Row, quantity: Quantity) -> tuple[float, float | None, int] | None:
    """A row's mean, spread and count on one axis; None where it has no finite value."""
    if quantity.is_metric:
        assert quantity.spec is not None
        stat = row.stat(quantity.key, quantity.spec.scale)
        if stat is None or not math.isfinite(stat[0]):
            return None
        return stat[0], stat[1], len(row.values(quantity.key))
    value = setting_value(row, quantity.key)
    return None if value is None else (value, None, len(row.finals))


def plot_points(rows: Sequence[Row], x: Quantity, y: Quantity) -> list[PointSeries]:
    """A point per row that has a value on both axes (see the module's note), grouped by method and remedy
    in the order the rows come, each series in x order."""
    datasets = len({row.dataset for row in rows})
    series: dict[str, PointSeries] = {}
    for row in rows:
        on_x, on_y = _value(row, x), _value(row, y)
        if on_x is None or on_y is None:
            continue
        label = series_label(row, datasets)
        point = Point(on_x[0], on_y[0], on_x[1], on_y[1], on_y[2], row)
        series.setdefault(label, PointSeries(label)).points.append(point)
    for s in series.values():
        s.points.sort(key=lambda p: (p.x, p.y))
    return list(series.values())


def first_non_positive(series: Sequence[PointSeries], axis: str) -> float | None:
    """The first value ≤ 0 on ``axis`` ("x" or "y") among the points: what a log scale has no place for;
    None when every value is positive."""
    for s in series:
        for p in s.points:
            value = p.x if axis == "x" else p.y
            if value <= 0:
                return value
    return None
