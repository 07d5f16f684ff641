"""Has the dead fraction stopped changing? The slope against ln(updates) over the second half of a run,
by hand; the curve it is read from; the verdict over a row's seeds (the slope's 95% t-interval against
±1 pp per e-fold) and the row's dead % against updates in results.md and results.csv."""

import csv
import io
import math

import pytest

from collapse_tui.metrics.plateau import dead_change, dead_curve, dead_slope, slope_window
from collapse_tui.metrics.specs import DEAD_CURVE, spec
from collapse_tui.report import build_rows, csv_table, report_markdown
from collapse_tui.report.plateau import (
    PLATEAU_TITLE,
    count_text,
    curve_points,
    curve_text,
    mean_curve,
    plateau_cells,
    plateau_of,
)
from collapse_tui.store import RunRecord

T_975_DF2 = 4.302652729911275  # the 0.975 quantile of Student's t with 2 degrees of freedom (tables)


def log_growth(updates, sparsity=50, a=0.1, b=0.085):
    """Marks of a dead fraction that is exactly a + b·ln(updates)."""
    return [(u, sparsity, a + b * math.log(u)) for u in updates]


# ---------------------------------------------------------------------------------------- the slope

def test_a_dead_fraction_linear_in_log_updates_has_its_slope():
    history = log_growth([1000, 2000, 4000, 6000, 8000, 10000])
    slope, marks = dead_slope(history, 50)
    # The second half: 6,000, 8,000 and 10,000 updates (at least 5,000); 0.085 per e-fold is 8.5 pp.
    assert marks == 3 and slope == pytest.approx(0.085)
    assert spec("dead_slope_per_efold").format(slope) == "8.5pp"
    # Whatever the length: ten times longer, the same slope.
    assert dead_slope(log_growth([10 * u for u, _, _ in history]), 50)[0] == pytest.approx(0.085)


def test_the_slope_by_hand_from_three_uneven_marks():
    # ln(updates) at 0, 0.25, 0.5 above ln 1000: dx = −0.25, 0, 0.25; dead 0.1, 0.3, 0.2 (mean 0.2).
    # slope = Σ dx·dy / Σ dx² = (−0.25·−0.1 + 0 + 0.25·0) / (2 · 0.0625) = 0.025 / 0.125 = 0.2.
    history = [(1000 * math.exp(x), 50, d) for x, d in ((0.0, 0.1), (0.25, 0.3), (0.5, 0.2))]
    assert dead_slope(history, 50) == (pytest.approx(0.2), 3)


def test_a_flat_series_has_slope_zero():
    history = [(u, 50, 0.3) for u in range(1000, 10001, 1000)]
    slope, marks = dead_slope(history, 50)
    assert marks == 6 and slope == pytest.approx(0.0, abs=1e-12)  # 5,000 ... 10,000


def test_too_few_marks_give_no_slope():
    assert dead_slope([(4000, 50, 0.2), (8000, 50, 0.3)], 50) == (None, 2)
    # Three marks, but one before half the updates: two in the window.
    assert dead_slope([(1000, 50, 0.1), (6000, 50, 0.2), (10000, 50, 0.3)], 50) == (None, 2)
    assert dead_slope([], 50) == (None, 0)


def test_marks_before_the_final_sparsity_are_left_out():
    # At 5,000 updates (half the run) k was still 100: left out, whatever its dead fraction.
    tail = log_growth([6000, 8000, 10000])
    history = [(1000, 500, 0.0), (5000, 100, 0.9), *tail]
    assert slope_window(history, 50) == [(u, d) for u, _, d in tail]
    assert dead_slope(history, 50) == (pytest.approx(0.085), 3)
    # A run stopped while still sparsifying: its last mark is not at the final sparsity, no window at all.
    assert dead_slope([*tail, (12000, 100, 0.5)], 50) == (None, 0)


def test_marks_before_half_the_updates_are_left_out():
    tail = log_growth([5000, 7000, 10000])
    assert dead_slope([(100, 50, 0.9), (4999, 50, 0.0), *tail], 50) == (pytest.approx(0.085), 3)
    # The window's start is a parameter: from the first mark on, the wild marks count.
    assert dead_slope(tail, 50, start=0.0) == (pytest.approx(0.085), 3)


def test_an_l1_coefficient_read_back_from_float32_is_the_final_sparsity():
    history = log_growth([5000, 7500, 10000], sparsity=0.029999999329447746)
    assert dead_slope(history, 0.03) == (pytest.approx(0.085), 3)


def test_a_mark_evaluated_twice_counts_once():
    # A run stopped right after a mark evaluates that epoch again as its final evaluation: the later one.
    history = [*log_growth([5000, 7500, 10000]), (10000, 50, 0.1 + 0.085 * math.log(10000))]
    assert dead_slope(history, 50) == (pytest.approx(0.085), 3)
    assert [u for u, _ in dead_curve(history)] == [5000, 7500, 10000]


def test_the_curve_holds_every_mark():
    history = [(625, 500.0, 0.0), (5000, 50.0, 0.1), (10000, 50.0, 0.25)]
    assert dead_curve(history) == [[625, 0.0], [5000, 0.1], [10000, 0.25]]
    assert dead_curve([]) == []


def test_the_change_over_the_last_fifth_is_about_a_fifth_of_the_slope_at_any_length():
    # Why the old criterion cannot be met by a curve growing with ln(updates): ln(1.25) × slope, always.
    for scale in (1, 10, 100):
        history = log_growth([scale * u for u in (1000, 2000, 4000, 8000, 10000)])
        assert dead_change(history, 50) == pytest.approx(0.085 * math.log(1.25))


# ------------------------------------------------------------------------------ the verdict over seeds

def record(tmp_path, seed, slope=None, curve=None, dataset="dsprites", **final):
    final = {"dead_fraction": 0.3, "dead@0": 0.3, "l0": 50.0, **final}
    if slope is not None:
        final["dead_slope_per_efold"] = slope
        final["dead_slope_marks"] = 5
    if curve is not None:
        final[DEAD_CURVE] = curve
    summary = {"status": "ok", "dataset": dataset, "method": "topk", "sparsity": 50.0, "remedies": [],
               "source": "encoder_hidden", "final": final}
    return RunRecord(path=tmp_path / f"{dataset}-{seed}", config={"seed": seed, "data": {"dataset": dataset}},
                     summary=summary)


def row_of(tmp_path, slopes, **kwargs):
    rows, _ = build_rows([record(tmp_path, seed, slope, **kwargs) for seed, slope in enumerate(slopes)])
    assert len(rows) == 1
    return rows[0]


def interval(pp):
    """The 95% t-interval of three values by hand (2 degrees of freedom)."""
    mean = sum(pp) / 3
    se = math.sqrt(sum((v - mean) ** 2 for v in pp) / 2) / math.sqrt(3)
    return mean, (mean - T_975_DF2 * se, mean + T_975_DF2 * se)


@pytest.mark.parametrize("slopes, verdict", [
    ([0.002, -0.003, 0.001], "plateau"),  # 0 ± 0.66 pp: within ±1
    ([0.08, 0.085, 0.09], "still rising"),  # 8.5 [7.26, 9.74]
    ([-0.05, -0.06, -0.04], "falling"),  # −5.0 [−7.48, −2.52]
    ([0.0, 0.02, 0.04], "undecided (3 seeds)"),  # 2.0 [−2.97, 6.97]: neither within ±1 nor beyond it
    ([0.005, 0.015, -0.005], "undecided (3 seeds)"),  # 0.5 [−1.98, 2.98]: small, but the seeds cannot say
])
def test_the_verdict_reads_the_slopes_interval_over_the_seeds(tmp_path, slopes, verdict):
    row = row_of(tmp_path, slopes)
    result = plateau_of(row)
    mean, ci = interval([100 * s for s in slopes])
    assert result.n == 3 and result.mean == pytest.approx(mean) and result.ci == pytest.approx(ci)
    assert result.verdict == verdict


def test_one_seed_is_undecided_and_no_slope_is_no_verdict(tmp_path):
    one = plateau_of(row_of(tmp_path, [0.0001]))
    assert one.ci is None and one.verdict == "undecided (1 seed)" and one.text() == "+0.0"
    none = plateau_of(row_of(tmp_path, [None, None]))
    assert none.n == 0 and none.verdict == "–" and none.text() == "–"
    # Every seed the same slope: the interval is that point.
    same = plateau_of(row_of(tmp_path, [0.003, 0.003]))
    assert same.ci == pytest.approx((0.3, 0.3)) and same.verdict == "plateau"


# ------------------------------------------------------------------------------------------ the curve

def test_the_curve_is_the_mean_over_seeds_at_the_marks_they_share(tmp_path):
    curves = [[[100, 0.1], [200, 0.2], [300, 0.3]], [[100, 0.3], [300, 0.5]]]
    rows, _ = build_rows([record(tmp_path, seed, curve=c) for seed, c in enumerate(curves)])
    assert mean_curve(rows[0]) == ([(100, pytest.approx(20.0)), (300, pytest.approx(40.0))], 2)
    assert curve_text(rows[0]) == "100/300: 20.0 → 40.0"
    # A run without a curve (an earlier version) is left out of the mean, not a reason to show none.
    rows, _ = build_rows([record(tmp_path, 0, curve=curves[0]), record(tmp_path, 1)])
    assert mean_curve(rows[0])[1] == 1 and curve_text(rows[0]) == "100/200/300: 10.0 → 20.0 → 30.0"
    rows, _ = build_rows([record(tmp_path, 0, curve="broken")])
    assert curve_text(rows[0]) == "–"


def test_a_long_curve_shows_six_marks_spread_in_log_updates():
    curve = [(u, float(i)) for i, u in enumerate([625, *range(5000, 100001, 5000)])]
    points = curve_points(curve)
    assert points[0] == (625, 0.0) and points[-1] == (100000, 20.0) and len(points) <= 6
    assert [u for u, _ in points] == sorted({u for u, _ in points})
    assert curve_points(curve[:4]) == curve[:4]
    assert [count_text(u) for u in (625, 5000, 12500, 100000, 1250000)] == ["625", "5k", "12.5k", "100k", "1.25M"]


# -------------------------------------------------------------------------------------- the files

def test_results_md_and_csv_carry_the_interval_the_verdict_and_the_curve(tmp_path):
    slopes = [0.08, 0.085, 0.09]
    curve = [[625, 0.0], [50000, 0.35], [100000, 0.41]]
    records = [record(tmp_path, s, slope, curve=curve, dead_change_last_20pct=0.02) for s, slope in enumerate(slopes)]
    records += [record(tmp_path, s, slope, dataset="shapes3d") for s, slope in enumerate([0.002, -0.003, 0.001])]
    rows, left_out = build_rows(records)
    text = report_markdown(rows, left_out, "t")
    mean, (low, high) = interval([100 * s for s in slopes])
    assert f"## {PLATEAU_TITLE}" in text
    assert (f"| dsprites | topk | none | k=50 | 3 | +8.5 [{low:.1f}, {high:.1f}] | still rising | "
            "625/50k/100k: 0.0 → 35.0 → 41.0 |") in text
    assert "| shapes3d | topk | none | k=50 | 3 | +0.0 [-0.7, 0.7] | plateau | – |" in text
    headers, _ = plateau_cells(rows)
    assert headers[-3:] == ["dead slope /e-fold (pp, 95% CI)", "plateau", "dead % at updates"]
    # The note under the table states the rule, the window and why.
    note = next(line for line in text.splitlines() if line.startswith("- dead slope /e-fold:"))
    assert "within ±1 pp per e-fold" in note and "at or after 50% of its updates" in note and "ln(updates)" in note
    assert "Not a plateau test" in next(line for line in text.splitlines() if line.startswith("- Δdead last 20%"))
    table = {r["dataset"]: r for r in csv.DictReader(io.StringIO(csv_table(rows)))}
    assert float(table["dsprites"]["dead_slope_pp_per_efold_ci_low"]) == pytest.approx(low, rel=1e-5)
    assert float(table["dsprites"]["dead_slope_pp_per_efold_ci_high"]) == pytest.approx(high, rel=1e-5)
    assert float(table["dsprites"]["dead_slope_pp_per_efold_mean"]) == pytest.approx(mean, rel=1e-5)
    assert table["dsprites"]["plateau"] == "still rising" and table["shapes3d"]["plateau"] == "plateau"


def test_no_slope_and_no_curve_no_section(tmp_path):
    rows, _ = build_rows([record(tmp_path, 0)])
    text = report_markdown(rows, [], "t")
    assert PLATEAU_TITLE not in text and "dead slope" not in text
    row = next(csv.DictReader(io.StringIO(csv_table(rows))))
    assert (row["dead_slope_pp_per_efold_ci_low"], row["plateau"]) == ("", "")
