"""The results table of a sweep: one row per experiment (the runs identical but for their seed), mean ±
std over the seeds, with the published numbers beside the rows they correspond to. Built from run
records alone; written as Markdown and CSV (``results.md``, ``results.csv``) into a sweep's directory,
beside its ``sweep.json``, as its runs end, so a sweep cut short still leaves the table of what it
measured. Beside them ``runs.jsonl`` gets one line per finished run (:func:`run_line`), appended as it
finishes: the sweep's per-run table, written in constant time per run however long the sweep.

A row is labelled by dataset, method, remedy and k / λ and, where runs of the table differ in some other
setting (batch size, epochs, schedule, the VAE, the data file...), by those settings too: see
:func:`experiment_settings` for what defines an experiment and :func:`build_rows` for the labels.

Below the table, each row's plateau verdict (from the 95% t-interval over its seeds of the dead fraction's
slope against ln(updates)) and its dead % against updates; then each remedy row compared with the plain SAE
at the same settings, paired by seed (mean difference, t-interval, paired t-test, and how many seeds an
effect needs), written into ``results.md`` and ``paired.csv``.

One idea a module: :mod:`~collapse_tui.report.paper` (the published numbers),
:mod:`~collapse_tui.report.rows` (experiments and their statistics), :mod:`~collapse_tui.report.paired`
(a remedy row against its plain row), :mod:`~collapse_tui.report.plateau` (whether the dead fraction stopped
changing), :mod:`~collapse_tui.report.tables` (writing them out), :mod:`~collapse_tui.report.sweep_points`
(the rows as points to plot). Everything is importable from here.
"""

from __future__ import annotations

from collapse_tui.report.paired import (
    Paired,
    across_methods,
    baseline_of,
    comparisons,
    detectable_effect,
    paired,
    paired_power,
    pooled_sd,
    seeds_needed,
    sparsity_baseline_of,
    target_l0,
)
from collapse_tui.report.paper import (
    PAPER_DEAD_PCT,
    PAPER_FINAL_K,
    PAPER_SOURCE,
    PAPER_SPECIALIZED,
)
from collapse_tui.report.plateau import (
    PLATEAU_BAND,
    PLATEAU_TITLE,
    Plateau,
    curve_text,
    mean_curve,
    plateau_cells,
    plateau_of,
)
from collapse_tui.report.rows import (
    BOOKKEEPING,
    DATA_CACHE,
    DATA_KEY,
    TABLE_METRICS,
    UNKNOWN_DATA,
    Row,
    build_rows,
    experiment_settings,
    remedy_label,
    setting_text,
    unused_settings,
)
from collapse_tui.report.sweep_points import (
    Point,
    PointSeries,
    Quantity,
    first_non_positive,
    metric_quantities,
    quantities,
    series_label,
    setting_quantities,
    setting_value,
    plot_points,
)
from collapse_tui.report.tables import (
    HEADLINE_KEYS,
    PAIRED_TITLE,
    against_text,
    csv_table,
    has_comparisons,
    markdown_table,
    paired_cells,
    paired_csv,
    paired_markdown,
    paired_notes,
    paired_text,
    plateau_markdown,
    report_markdown,
    run_line,
    sweep_title,
    table_cells,
    table_columns,
    table_notes,
    table_title,
    write_report,
)

__all__ = [
    "Point", "PointSeries", "Quantity", "first_non_positive", "metric_quantities", "quantities", "series_label",
    "setting_quantities", "setting_value", "plot_points",
    "BOOKKEEPING", "DATA_CACHE", "DATA_KEY", "HEADLINE_KEYS", "PAIRED_TITLE", "PAPER_DEAD_PCT", "PAPER_FINAL_K",
    "PAPER_SOURCE", "PAPER_SPECIALIZED", "PLATEAU_BAND", "PLATEAU_TITLE", "Paired", "Plateau", "Row",
    "TABLE_METRICS", "UNKNOWN_DATA", "across_methods", "against_text", "baseline_of", "build_rows", "comparisons",
    "csv_table", "curve_text", "detectable_effect", "experiment_settings", "has_comparisons", "markdown_table",
    "mean_curve", "paired", "paired_cells", "paired_csv", "paired_markdown", "paired_notes", "paired_power",
    "paired_text", "plateau_cells", "plateau_markdown", "plateau_of", "pooled_sd", "remedy_label",
    "report_markdown", "run_line", "seeds_needed", "setting_text", "sparsity_baseline_of", "sweep_title",
    "table_cells", "table_columns", "table_notes", "table_title", "target_l0", "unused_settings", "write_report",
]
