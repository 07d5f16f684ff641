"""The text charts, checked cell by cell on small hand-made inputs."""

from __future__ import annotations

import dataclasses

import pytest

from collapse_tui.config import flatten
from collapse_tui.tui.schema import errors_by_field, form_fields
from collapse_tui.tui.widgets.charts import (
    DASHES,
    Series,
    format_number,
    heatmap_order,
    line_glyph,
    render_heatmap,
    render_histogram,
    render_line_chart,
)
from collapse_tui.tui.widgets.chart_view import CURSOR_STEPS, SMOOTHING_STEPS, ChartView, log_points, smoothed


def plot_rows(text, height):
    """The plot area's rows (between the title line and the x axis line), axis labels removed."""
    lines = text.plain.split("\n")
    return [line.split("│", 1)[1] if "│" in line else line.split("└", 1)[1] for line in lines[1:height - 1]]


def test_line_chart_puts_the_ends_of_a_rising_line_in_opposite_corners():
    text = render_line_chart([Series("a", [0, 1], [0.0, 1.0])], width=20, height=6, y_range=(0.0, 1.0))
    rows = plot_rows(text, 6)
    assert len(rows) == 4
    # Braille dot 7 (0x40) is the bottom-left dot of a cell, dot 4 (0x08) the top-right.
    assert ord(rows[-1][0]) - 0x2800 & 0x40
    assert ord(rows[0][-1]) - 0x2800 & 0x08
    # A rising line: the top row is empty on the left, the bottom row empty on the right.
    assert rows[0][0] == " " and rows[-1][-1] == " "
    assert text.plain.split("\n")[1].lstrip().startswith("1 ")  # top label of the y range
    assert text.plain.split("\n")[-1].split() == ["0", "1"]


def test_line_chart_legend_only_with_several_series_and_cut_to_width():
    one = render_line_chart([Series("alpha", [1, 2], [1, 2])], 30, 6, title="T", legend=True)
    assert "alpha" in one.plain.split("\n")[0]
    many = [Series(f"a-very-long-run-name-{i}", [1, 2], [i, i + 1]) for i in range(4)]
    head = render_line_chart(many, 40, 6, title="T").plain.split("\n")[0]
    assert len(head) <= 40
    empty = render_line_chart([], 30, 6, title="T")
    assert "no data yet" in empty.plain
    assert "(VAE loaded)" in render_line_chart([], 30, 6, title="T", empty="VAE loaded").plain


def test_line_chart_skips_missing_values():
    text = render_line_chart([Series("a", [1, 2, 3], [1.0, None, float("nan")])], 20, 6)
    drawn = sum(ch != " " for row in plot_rows(text, 6) for ch in row)
    assert drawn == 1  # the single finite point


def test_format_number():
    assert [format_number(v) for v in (0, 18.0, 2834.2, 0.5, 0.01234, 1e-6, 123456.0, 12.34)] == [
        "0", "18", "2834", "0.5", "0.0123", "1.0e-06", "1.2e+05", "12.3"]


def test_histogram_bar_heights_in_eighths():
    text = render_histogram([0, 4, 8], width=3, height=3, title="h", left="-5", right="0")
    lines = text.plain.split("\n")
    assert lines[1] == " ▄█"  # one plot row: 0, half and full height
    assert lines[2] == "-5 0"


def test_heatmap_sorts_live_neurons_by_best_factor_and_greys_the_dead():
    nmi = [[0.1, 0.9], [0.0, 0.0], [0.8, 0.2], [0.3, 0.7]]
    best = [1, 0, 0, 1]
    dead = [False, True, False, False]
    assert heatmap_order(best, dead) == [2, 0, 3, 1]
    text = render_heatmap(nmi, ["shape", "scale"], best, dead, width=26, title="nmi")
    lines = text.plain.split("\n")
    assert lines[0] == "nmi  4 neurons, 1 dead"
    assert lines[1].startswith("shape") and lines[1].endswith("   ·")
    # One coloured cell per live neuron and factor: 3 x 2; the colour scale after them.
    scale_at = len("\n".join(lines[:3]))
    coloured = [span for span in text.spans if getattr(span.style, "bgcolor", None) is not None]
    cells = [span for span in coloured if span.start < scale_at]
    assert len(cells) == 6
    # Colours are relative to the largest live value (0.9): it gets the top of the ramp, which the
    # scale's right end names.
    assert lines[3].strip().startswith("0") and lines[3].endswith("0.9  · dead")
    rgb = {tuple(span.style.bgcolor.get_truecolor()) for span in cells}
    assert (250, 230, 80) in rgb and len(rgb) == 6
    ramp = [tuple(span.style.bgcolor.get_truecolor()) for span in coloured if span.start >= scale_at]
    assert ramp[0] == (20, 24, 60) and ramp[-1] == (250, 230, 80)
    # Given a height, each factor's band fills its share of it, the name on its middle line.
    lines = render_heatmap(nmi, ["shape", "scale"], best, dead, width=26, height=8, title="nmi").plain.split("\n")
    assert len(lines) == 8
    assert [line[:5].strip() for line in lines[1:7]] == ["", "shape", "", "", "scale", ""]
    assert lines[1][6:] == lines[2][6:] == lines[3][6:]


def test_form_fields_follow_the_schema_and_errors_map_to_fields():
    fields = {f.path: f for f in form_fields()}
    assert fields["sae.method"].kind == "choice"
    assert fields["sae.method"].choices == ("topk", "l1", "batchtopk", "jumprelu")
    # A nested section's fields appear with no form code of their own.
    assert fields["sae.remedies.auxk"].kind == "bool" and fields["sae.remedies.auxk"].default is False
    assert fields["sae.remedies.resample_epochs"].kind == "list"
    assert fields["sae.schedule.start"].optional and fields["sae.schedule.start"].from_text(" ") is None
    assert fields["eval.thresholds"].from_text("0, 1e-6;0.01") == ["0", "1e-6", "0.01"]
    assert fields["vae.epochs"].bounds == "≥ 1, ≤ 10000"
    by_field, rest = errors_by_field(
        ["sae.k: 900 exceeds sae.n_neurons (500)", "sae.schedule.start: bad", "something else"], list(fields))
    assert by_field == {"sae.k": ["900 exceeds sae.n_neurons (500)"], "sae.schedule.start": ["bad"]}
    assert rest == ["something else"]
    # an empty section has no leaf: it sets nothing (config.flatten, shared with the results table)
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2]}


def test_compare_legend_says_a_shared_leading_name_once():
    from collapse_tui.tui.screens.compare import common_prefix

    assert common_prefix(["paper-quick-dsprites-s0-topk", "paper-quick-shapes3d-s0-topk"]) == "paper-quick-"
    assert common_prefix(["quick-topk-k2", "quick-topk-k8"]) == "quick-topk-"
    assert common_prefix(["quick-k2", "quick-k2-auxk"]) == "quick-"  # whole words only: "k2" stays in both
    assert common_prefix(["a-b", "c-d"]) == "" and common_prefix(["solo-run"]) == ""


def test_smoothing_is_a_debiased_ema_and_log_points_drop_non_positive_values():
    # weight 0.5 on [2, 4]: m1 = 1, s1 = 1 / 0.5 = 2; m2 = 0.5 + 2 = 2.5, s2 = 2.5 / 0.75.
    assert smoothed([2.0, 4.0], 0.5) == pytest.approx([2.0, 2.5 / 0.75])
    assert smoothed([2.0, 4.0], 0.0) == [2.0, 4.0]
    assert log_points([(0, 100.0), (1, 0.0), (2, -1.0), (3, 0.01)]) == [(0, 2.0), (3, -2.0)]


def test_chart_view_keys_cycle_smoothing_toggle_log_move_the_cursor_and_zoom_around_it():
    view = ChartView()
    assert view.window() == (0.0, 1.0) and view.describe() == ""
    smooth = [view := view.changed("smooth") for _ in SMOOTHING_STEPS]
    assert [v.smoothing for v in smooth] == [*SMOOTHING_STEPS[1:], 0.0]
    view = ChartView().changed("zoom_in").changed("zoom_in")
    assert view.zoom == 4 and view.window() == (0.75, 1.0)  # no cursor: the newest quarter
    view = view.changed("left")  # the first press shows the cursor at the window's right edge
    assert view.cursor == 1.0
    view = view.changed("left")
    assert view.cursor == pytest.approx(1.0 - 0.25 / CURSOR_STEPS)
    view = dataclasses.replace(view, cursor=0.5)
    assert view.window() == (0.375, 0.625)  # centred on the cursor
    assert dataclasses.replace(view, cursor=0.01).window() == (0.0, 0.25)  # kept inside the range
    assert view.changed("zoom_out").changed("zoom_out").changed("zoom_out").zoom == 1.0
    assert view.changed("log").log_y and view.changed("log").describe() == "log y · zoom 4×"
    assert view.changed("reset") == ChartView()
    with pytest.raises(ValueError):
        view.changed("spin")


def test_line_chart_cursor_reads_every_series_at_the_nearest_point():
    series = [Series("a", [0, 1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0, 5.0], "red"),
              Series("b", [0, 2, 4], [10.0, 30.0, 50.0], "blue")]
    text = render_line_chart(series, width=40, height=6, x_label="epoch", view=ChartView(cursor=0.5))
    footer = text.plain.split("\n")[-1]
    assert "epoch 2" in footer and "━━ 3  ╍╍ 30" in footer  # each value beside its line's style
    # The cursor is drawn where no line is: a column of ┊ in the plot.
    assert "┊" in text.plain
    # Smoothed, the readout is the smoothed value: weight 0.6 over [1, 2, 3] debiased at x = 2.
    expected = smoothed([1.0, 2.0, 3.0], 0.6)[-1]
    text = render_line_chart(series[:1], width=40, height=6, view=ChartView(cursor=0.5, smoothing=0.6))
    assert f"━ {format_number(expected)}" in text.plain.split("\n")[-1]


def test_line_chart_log_axis_labels_in_data_units_and_zoom_shows_part_of_the_x_range():
    series = [Series("a", [0, 1, 2, 3], [1.0, 10.0, 100.0, 1000.0])]
    text = render_line_chart(series, width=40, height=7, view=ChartView(log_y=True))
    lines = text.plain.split("\n")
    # log10 y runs 0..3, padded by 5%: the top label is 10^3.15, the bottom 10^-0.15.
    assert lines[1].split("│")[0].strip() == format_number(10 ** 3.15)
    assert lines[-2].split("└")[0].strip() == format_number(10 ** -0.15)
    assert "log y" in lines[-1]
    # Zoomed 2x with no cursor: the newest half of the x range, 1.5 .. 3.
    text = render_line_chart(series, width=40, height=7, view=ChartView(zoom=2.0))
    footer = text.plain.split("\n")[-1].split()
    assert footer[0] == "1.5" and footer[-1] == "3"
    # Nothing positive to put on a log axis: the chart says so.
    text = render_line_chart([Series("z", [0, 1], [0.0, 0.0])], width=40, height=6, view=ChartView(log_y=True))
    assert "no positive values" in text.plain


def test_choosing_a_sort_column_again_reverses_it_and_another_starts_in_its_own_direction():
    from collapse_tui.tui.sorting import chosen_sort

    assert chosen_sort(["a", "b"], "a", None, False) == ("a", False)
    assert chosen_sort(["a", "b"], "a", "a", False) == ("a", True)
    assert chosen_sort(["a", "b"], "b", "a", True) == ("b", False)
    assert chosen_sort(["a", "b"], "b", "a", False, first_reverse=True) == ("b", True)
    with pytest.raises(ValueError, match="unknown column 'c'"):
        chosen_sort(["a", "b"], "c", "a", False)


def test_lines_are_told_apart_by_their_dash_as_well_as_their_colour():
    """Series i is drawn in DASHES[i % 4]: the same line as the second series leaves gaps in the pattern's
    rhythm, and the legend shows each series' style."""
    line = Series("a", [0, 1], [1.0, 1.0], "red")
    alone = render_line_chart([line], width=42, height=5)
    second = render_line_chart([Series("none", [], []), line], width=42, height=5)

    def dots(text):
        return sum(bin(ord(ch) - 0x2800).count("1") for ch in text.plain if 0x2800 < ord(ch) <= 0x28FF)

    solid, dashed = dots(alone), dots(second)
    pattern = DASHES[1]
    # A horizontal line: one pixel per braille column; the dashed one keeps 4 of each 6.
    assert dashed == sum(pattern[i % len(pattern)] for i in range(solid))
    assert dashed < solid
    assert "━━ a" in alone.plain.split("\n")[0] and "╍╍ a" in second.plain.split("\n")[0]
    assert [line_glyph(i) for i in range(5)] == ["━━", "╍╍", "┉┉", "━╸", "━━"]
