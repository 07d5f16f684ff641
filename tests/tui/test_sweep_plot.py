"""The sweep's results table at a glance: its key columns frozen and its headline columns first, a plot of
any metric against another or a setting (axes chosen from a list, log scales, refused where a value is not
positive), marked runs plotted the same way, and each remedy against the plain SAE seed by seed."""

from __future__ import annotations

import asyncio

from textual.widgets import DataTable, OptionList, Static

from collapse_tui.tui.screens.choose import ChooseScreen
from collapse_tui.tui.screens.paired import PairedScreen
from collapse_tui.tui.screens.sweep import SweepScreen
from collapse_tui.tui.screens.sweep_plot import SweepPlotScreen
from collapse_tui.tui.widgets.scatter import MARKERS, ScatterChart
from tests.tui.support import make_app, wait_for
from tests.tui.sweep_fixture import FINALS, make_sweep

SIZE = (80, 24)


def cells(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(r)] for r in range(table.row_count)]


def detail(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def choose(pilot, key: str) -> None:
    """Pick ``key`` in the open ChooseScreen."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChooseScreen))
    dialog = pilot.app.screen
    dialog.query_one(OptionList).highlighted = [k for k, _ in dialog.choices].index(key)
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(pilot.app.screen, ChooseScreen))


def test_the_sweep_table_freezes_its_labels_shows_headline_columns_first_and_explains_each(tmp_path):
    sweep_dir, _ = make_sweep(tmp_path)

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(SweepScreen(sweep_dir))
            await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.texts)
            screen = app.screen
            assert screen.columns[:8] == ["dataset", "method", "remedy", "k / λ", "seeds", "dead % @0", "L0", "EV"]
            assert screen.columns[8] == "MIG" and "dead % @1e-06" in screen.columns[9:]
            table = screen.query_one("#sweep-table", DataTable)
            assert table.fixed_columns == 4
            first = screen.texts[screen.order()[0]]
            assert first[:7] == ["dsprites", "topk", "none", "k=8", "3", "20.0 ± 10.0", "8.0 ± 2.0"]
            table.move_cursor(column=6)
            await pilot.pause()
            assert "L0: Mean number of active neurons per input." in detail(screen, "#sweep-detail")
            table.move_cursor(column=2)
            await pilot.pause()
            assert detail(screen, "#sweep-detail").splitlines()[1].startswith("remedy: what the runs changed")
            await pilot.press("p")
            await wait_for(pilot, lambda: isinstance(app.screen, SweepPlotScreen))
            assert app.screen.title_text == "remedies"
            await pilot.press("escape")
            await pilot.press("P")
            await wait_for(pilot, lambda: isinstance(app.screen, PairedScreen))

    asyncio.run(scenario())


def test_the_plot_shows_dead_against_l0_and_axes_are_chosen_and_put_on_log_scales(tmp_path):
    sweep_dir, _ = make_sweep(tmp_path)

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(SweepPlotScreen.for_sweep(sweep_dir))
            await wait_for(pilot, lambda: isinstance(app.screen, SweepPlotScreen))
            await pilot.pause()
            screen = app.screen
            assert (screen.axis["x"], screen.axis["y"]) == ("l0", "dead_fraction")
            assert [s.label for s in screen.series] == ["topk", "topk + auxk", "l1"]
            topk = screen.series[0].points
            assert [(p.x, p.x_err, p.y, p.y_err) for p in topk][0] == (8.0, 2.0, 20.0, 10.0)
            chart = screen.query_one("#plot-chart", ScatterChart)
            drawn = chart.render().plain
            assert drawn.splitlines()[0].startswith(f"{MARKERS[0]} topk  {MARKERS[1]} topk + auxk  {MARKERS[2]} l1")
            assert all(m in drawn.split("\n", 1)[1] for m in MARKERS[:3])  # every series' points drawn
            await pilot.press("a")
            await choose(pilot, "sae.k")
            assert screen.axis["x"] == "sae.k"
            assert [s.label for s in screen.series] == ["topk", "topk + auxk"]  # k has no effect on L1
            assert all(p.x_err is None and p.y_err is not None for s in screen.series for p in s.points)
            assert [p.x for p in screen.series[0].points] == [8.0, 16.0]
            await pilot.press("x", "y")
            await pilot.pause()
            assert screen.log_scale == {"x": True, "y": True} and chart.log_x and chart.log_y
            assert "(log)" in chart.render().plain
            await pilot.press("b")
            await choose(pilot, "explained_variance")
            assert chart.y_label == "EV" and screen.log_scale["y"]
            await pilot.press("x")
            await pilot.pause()
            assert not screen.log_scale["x"]

    asyncio.run(scenario())


def test_a_log_axis_is_refused_with_a_line_when_a_value_is_not_positive(tmp_path):
    finals = {("topk", 8, ()): {0: (0.0, 6.0), 1: (0.0, 8.0)}, ("topk", 16, ()): {0: (0.1, 12.0), 1: (0.2, 14.0)}}
    sweep_dir, _ = make_sweep(tmp_path, finals)

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(SweepPlotScreen.for_sweep(sweep_dir))
            await wait_for(pilot, lambda: isinstance(app.screen, SweepPlotScreen))
            screen = app.screen
            await pilot.press("y")
            await pilot.pause()
            assert not screen.log_scale["y"]
            assert detail(screen, "#plot-detail").splitlines()[0] == (
                "no log y: dead % has the value 0.0, and a log axis shows only values > 0")
            await pilot.press("x")  # L0 is positive everywhere
            await pilot.pause()
            assert screen.log_scale["x"]

    asyncio.run(scenario())


def test_marked_runs_are_plotted_from_their_directories_and_an_unreadable_one_is_counted(tmp_path):
    _, runs = make_sweep(tmp_path)
    broken = tmp_path / "runs" / "20260101-130000-broken"
    broken.mkdir()
    marked = [r for r in runs if "-k8-" in r.name] + [broken]

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(SweepPlotScreen.for_runs(marked))
            await wait_for(pilot, lambda: isinstance(app.screen, SweepPlotScreen))
            await pilot.pause()
            screen = app.screen
            assert [s.label for s in screen.series] == ["topk", "topk + auxk"]
            assert [len(s.points) for s in screen.series] == [1, 1]
            assert screen.series[1].points[0].y == 100 * (0.05 + 0.14 + 0.27) / 3
            assert detail(screen, "#plot-title").startswith("6 marked runs") and "1 unreadable" in detail(
                screen, "#plot-title")

    asyncio.run(scenario())


def test_paired_screen_shows_each_remedy_against_plain_seed_by_seed(tmp_path):
    sweep_dir, _ = make_sweep(tmp_path)

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(SweepPlotScreen.for_sweep(sweep_dir))
            await wait_for(pilot, lambda: isinstance(app.screen, SweepPlotScreen))
            await pilot.press("P")
            await wait_for(pilot, lambda: isinstance(app.screen, PairedScreen))
            screen = app.screen
            table = screen.query_one("#paired-table", DataTable)
            assert [str(c.label) for c in table.columns.values()] == [
                "method", "remedy", "k / λ", "pairs", "mean Δ", "95% interval", "p",
                "Δ seed 0", "Δ seed 1", "Δ seed 2"]
            assert table.fixed_columns == 3
            # −5, −6, −3 points: mean −14/3, interval −14/3 ± 4.3027·√(7/9), p 0.0339 (by hand)
            assert cells(table)[0] == ["topk", "auxk", "k=8", "3", "-4.7", "[-8.5, -0.9]", "0.034", "-5.0", "-6.0",
                                       "-3.0"]
            assert cells(table)[1][:5] == ["topk", "auxk", "k=16", "3", "-3.0"]
            assert detail(screen, "#paired-legend").startswith("Δ = remedy run − plain run of the same seed")
            await pilot.press("m")
            await choose(pilot, "l0")
            assert cells(table)[0][4:] == ["0.0", "[-2.5, 2.5]", "1.000", "+1.0", "0.0", "-1.0"]

    asyncio.run(scenario())


def test_paired_screen_says_in_one_line_when_there_is_no_plain_sae(tmp_path):
    sweep_dir, _ = make_sweep(tmp_path, {k: v for k, v in FINALS.items() if k[2]})

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            sweep = SweepScreen(sweep_dir)
            app.push_screen(sweep)
            await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.texts)
            await pilot.press("P")
            await wait_for(pilot, lambda: isinstance(app.screen, PairedScreen))
            screen = app.screen
            assert screen.query_one("#paired-table", DataTable).row_count == 0
            assert detail(screen, "#paired-detail") == (
                "no plain SAE (remedy none) among these runs: no remedy can be compared with it")

    asyncio.run(scenario())


def test_two_series_whose_points_share_a_cell_both_stay_visible():
    from collapse_tui.tui.widgets.scatter import ScatterPoint, ScatterSeries, render_scatter

    series = [ScatterSeries("a", [ScatterPoint(1.0, 10.0), ScatterPoint(5.0, 50.0)], "●"),
              ScatterSeries("b", [ScatterPoint(1.0, 10.2)], "■")]
    plot = render_scatter(series, 40, 12, x_label="x", y_label="y").plain.split("\n", 2)[2]
    assert plot.count("●") == 2 and plot.count("■") == 1
