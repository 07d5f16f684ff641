"""A sweep's points to plot: each row's mean ± std over its seeds on both axes (metric against metric) or
on y alone (against a setting), grouped by method and remedy, checked against hand-computed values."""

import math

import pytest

from collapse_tui.report import build_rows
from collapse_tui.report.sweep_points import (
    first_non_positive,
    metric_quantities,
    quantities,
    setting_quantities,
    plot_points,
)
from collapse_tui.store import RunRecord


def record(tmp_path, seed, method="topk", sparsity=8.0, remedies=(), dead=0.1, l0=8.0):
    sae = {"method": method, "k" if method == "topk" else "l1_coefficient": sparsity,
           "remedies": {name: True for name in remedies}}
    summary = {"status": "ok", "dataset": "dsprites", "method": method, "sparsity": sparsity,
               "remedies": list(remedies), "source": "encoder_hidden",
               "final": {"dead_fraction": dead, "dead@0": dead, "l0": l0, "explained_variance": 0.9}}
    name = f"{method}-{sparsity:g}-{'-'.join(remedies) or 'plain'}-s{seed}"
    return RunRecord(path=tmp_path / name, config={"seed": seed, "sae": sae}, summary=summary)


def sweep(tmp_path):
    """Hand-chosen finals: per row, dead fractions and L0 by seed (means and stds worked out below)."""
    runs = []
    for seed, dead, l0 in ((0, 0.10, 6), (1, 0.20, 8), (2, 0.30, 10)):  # dead 20 ± 10 %, L0 8 ± 2
        runs.append(record(tmp_path, seed, sparsity=8.0, dead=dead, l0=l0))
    for seed, dead, l0 in ((0, 0.05, 14), (1, 0.05, 15), (2, 0.08, 16)):  # dead 6 ± √3 %, L0 15 ± 1
        runs.append(record(tmp_path, seed, sparsity=16.0, dead=dead, l0=l0))
    for seed, dead, l0 in ((0, 0.02, 7), (1, 0.04, 8), (2, 0.06, 9)):  # auxk: dead 4 ± 2 %, L0 8 ± 1
        runs.append(record(tmp_path, seed, sparsity=8.0, remedies=("auxk",), dead=dead, l0=l0))
    for seed, dead, l0 in ((0, 0.5, 20), (1, 0.7, 30)):  # l1: dead 60 ± 10√2 %, L0 25 ± 5√2
        runs.append(record(tmp_path, seed, method="l1", sparsity=0.1, dead=dead, l0=l0))
    rows, left_out = build_rows(runs)
    assert left_out == []
    return rows


def by_key(found):
    return {q.key: q for q in found}


def test_dead_against_l0_is_each_rows_mean_and_std_over_its_seeds_on_both_axes(tmp_path):
    rows = sweep(tmp_path)
    q = by_key(quantities(rows))
    series = plot_points(rows, q["l0"], q["dead_fraction"])
    assert [s.label for s in series] == ["topk", "topk + auxk", "l1"]
    got = {s.label: [(p.x, p.x_err, p.y, p.y_err, p.n) for p in s.points] for s in series}
    expected = {"topk": [(8, 2, 20, 10, 3), (15, 1, 6, math.sqrt(3), 3)],
                "topk + auxk": [(8, 1, 4, 2, 3)],
                "l1": [(25, 5 * math.sqrt(2), 60, 10 * math.sqrt(2), 2)]}
    assert got.keys() == expected.keys()
    for label, points in expected.items():
        assert len(got[label]) == len(points)
        for have, want in zip(got[label], points):
            assert have == pytest.approx(want, abs=1e-9), label


def test_against_a_setting_the_error_bar_is_on_y_alone_and_rows_without_it_are_left_out(tmp_path):
    rows = sweep(tmp_path)
    settings = by_key(setting_quantities(rows))
    assert list(settings) == ["sae.k"]  # λ takes one value only: nothing to plot against
    series = plot_points(rows, settings["sae.k"], by_key(metric_quantities(rows))["dead_fraction"])
    assert [s.label for s in series] == ["topk", "topk + auxk"]  # sae.k has no effect on an L1 run
    topk = series[0].points
    assert [(p.x, p.x_err) for p in topk] == [(8.0, None), (16.0, None)]
    assert [p.y for p in topk] == pytest.approx([20.0, 6.0])
    assert [p.y_err for p in topk] == pytest.approx([10.0, math.sqrt(3)])


def test_the_choosers_list_headline_metrics_first_and_only_what_was_measured(tmp_path):
    rows = sweep(tmp_path)
    keys = [q.key for q in metric_quantities(rows)]
    assert keys[:3] == ["dead_fraction", "l0", "explained_variance"]
    assert "dead@0" in keys and "mig" not in keys and "mse" not in keys
    dead = by_key(metric_quantities(rows))["dead_fraction"]
    assert dead.text(20.0) == "20.0" and dead.description


def test_a_log_axis_is_refused_where_a_value_is_not_positive(tmp_path):
    runs = [record(tmp_path, seed, dead=0.0, l0=l0) for seed, l0 in ((0, 4), (1, 6))]
    rows, _ = build_rows(runs)
    q = by_key(quantities(rows))
    series = plot_points(rows, q["l0"], q["dead_fraction"])
    assert first_non_positive(series, "y") == 0.0
    assert first_non_positive(series, "x") is None
