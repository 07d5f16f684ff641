"""The text charts, checked cell by cell on small hand-made inputs."""

from __future__ import annotations

from collapse_tui.tui.schema import errors_by_field, flatten, form_fields
from collapse_tui.tui.widgets.charts import (
    Series,
    format_number,
    heatmap_order,
    render_heatmap,
    render_histogram,
    render_line_chart,
)


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
    text = render_heatmap(nmi, ["shape", "scale"], best, dead, width=20, title="nmi")
    lines = text.plain.split("\n")
    assert lines[1].startswith("shape") and lines[1].endswith("   ·")
    # One coloured cell per live neuron and factor: 3 x 2.
    coloured = [span for span in text.spans if getattr(span.style, "bgcolor", None) is not None]
    assert len(coloured) == 6
    # Colours are relative to the largest live value (0.9): it gets the top of the ramp.
    assert "max 0.9" in lines[0]
    rgb = {tuple(span.style.bgcolor.get_truecolor()) for span in coloured}
    assert (250, 230, 80) in rgb and len(rgb) == 6


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
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": {}}


def test_compare_legend_says_a_shared_leading_name_once():
    from collapse_tui.tui.screens.compare import common_prefix

    assert common_prefix(["paper-quick-dsprites-s0-topk", "paper-quick-shapes3d-s0-topk"]) == "paper-quick-"
    assert common_prefix(["quick-topk-k2", "quick-topk-k8"]) == "quick-topk-"
    assert common_prefix(["quick-k2", "quick-k2-auxk"]) == "quick-"  # whole words only: "k2" stays in both
    assert common_prefix(["a-b", "c-d"]) == "" and common_prefix(["solo-run"]) == ""
