"""The runs screen driven headless: filter predicates, groups by a setting with their mean ± std, marks,
legends, dates and sweep labels, and a listing of a few hundred runs filtered after a pause in typing."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from collapse_tui.metrics.specs import DEAD
from collapse_tui.store import SweepWriter
from collapse_tui.tui.runs_table import shown_date, sweep_index
from tests.tui.support import make_app, make_runs, wait_for

pytest.importorskip("textual")

from textual.widgets import DataTable, Input, OptionList, Static  # noqa: E402

from collapse_tui.tui.screens.choose import ChooseScreen  # noqa: E402
from collapse_tui.tui.screens.runs import GROUP_ROW, RunsScreen  # noqa: E402

SIZE = (100, 30)


def row_ids(table: DataTable) -> list[str]:
    return [table.coordinate_to_cell_key((r, 0)).row_key.value for r in range(table.row_count)]


async def open_runs(pilot) -> RunsScreen:
    await pilot.pause()
    await pilot.press("f3")
    await pilot.pause()
    assert isinstance(pilot.app.screen, RunsScreen)
    return pilot.app.screen


async def type_filter(pilot, screen: RunsScreen, text: str) -> None:
    field = screen.query_one("#filter", Input)
    field.focus()
    field.value = ""
    await pilot.press(*text) if text else None
    await pilot.pause()


def test_filter_by_predicates_and_a_malformed_one_filters_nothing(tmp_path):
    runs = make_runs(tmp_path)  # final dead %: k8 10, failed 13.3, k2 50, l1 70; one unreadable

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_runs(pilot)
            table = screen.query_one("#runs", DataTable)
            await type_filter(pilot, screen, "dead>40")
            assert sorted(row_ids(table)) == sorted(runs[k].name for k in ("k2", "l1"))
            await type_filter(pilot, screen, "method=topk sae.k>=8")
            assert row_ids(table) == [runs["k8"].name]
            await type_filter(pilot, screen, "l1 status!=failed")  # free text and a predicate
            assert row_ids(table) == [runs["l1"].name]
            await type_filter(pilot, screen, "dead> topk")
            assert sorted(row_ids(table)) == sorted(runs[k].name for k in ("k8", "k2"))  # "dead>" filters nothing
            count = str(screen.query_one("#runs-count", Static).render())
            assert "dead>" in count and "value is needed" in count
            await type_filter(pilot, screen, "sae.k>abc")
            assert table.row_count == 5 and "sae.k is a number" in str(screen.query_one("#runs-count").render())

    asyncio.run(scenario())


def test_group_by_a_setting_with_mean_and_std_per_group_and_fold_it(tmp_path):
    runs = make_runs(tmp_path)

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_runs(pilot)
            await pilot.press("g")
            await pilot.pause()
            chooser = app.screen
            assert isinstance(chooser, ChooseScreen)
            settings = [key for key, _ in chooser.choices]
            assert settings[:2] == ["none", "sweep"] and "sae.method" in settings
            assert "seed" not in settings  # the same in every run
            await pilot.press(*["down"] * settings.index("sae.method"), "enter")
            await pilot.pause()
            assert app.screen is screen and screen.group == "sae.method"
            table = screen.query_one("#runs", DataTable)
            l1, topk, none = (f"{GROUP_ROW}sae.method={v}" for v in ("l1", "topk", "–"))
            assert row_ids(table) == [l1, runs["failed"].name, runs["l1"].name, topk, runs["k2"].name,
                                      runs["k8"].name, none, runs["broken"].name]  # newest first in a group
            header = dict(zip([str(c.value) for c in table.columns], table.get_row(topk)))
            assert header["run"].plain == "▾ sae.method=topk (2)"
            # Dead 50.0 and 10.0: mean 30.0, sample std sqrt(2 × 20²) = 28.28.
            assert header["dead %"].plain == "30.0 ± 28.3"
            assert header["L0"].plain != "–" and header["status"].plain == "2 ok"
            table.move_cursor(row=3)
            await pilot.press("enter")  # on a group's header: folded
            await pilot.pause()
            assert row_ids(table)[3:5] == [topk, none]
            assert table.get_row(topk)[0].plain.startswith("▸")

    asyncio.run(scenario())


def test_marking_a_run_changes_its_cell_and_the_legend_follows_the_sort(tmp_path):
    runs = make_runs(tmp_path)

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_runs(pilot)
            table = screen.query_one("#runs", DataTable)
            assert table.fixed_columns == 4
            screen.sort_by("run")
            await pilot.pause()
            table.move_cursor(row=3)  # quick-topk-k2
            await pilot.press("space")
            await pilot.pause()
            assert screen.marked == [runs["k2"].name]
            assert str(table.get_cell(runs["k2"].name, "run")).startswith("✓ quick-topk-k2")
            assert "1 marked" in str(screen.query_one("#runs-count", Static).render())
            screen.sort_by("dead %")
            await pilot.pause()
            detail = str(screen.query_one("#runs-detail", Static).render())
            assert f"dead %: {DEAD.description[:30]}" in detail

    asyncio.run(scenario())


def test_a_few_hundred_runs_are_filtered_once_typing_pauses(tmp_path):
    runs = make_runs(tmp_path)
    for i in range(300):  # copies of two runs: 150 with dead 10 %, 150 with 50 %
        source = runs["k8" if i % 2 else "k2"]
        shutil.copytree(source, source.parent / f"20250101-{i // 60:02d}{i % 60:02d}00-copy-{i}")

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_runs(pilot)
            screen.DEBOUNCE_ROWS = 100  # as a listing of thousands is filtered
            table = screen.query_one("#runs", DataTable)
            assert table.row_count == 305
            await type_filter(pilot, screen, "dead<=10")
            await wait_for(pilot, lambda: table.row_count == 151, timeout=10)
            assert all(screen.values[i]["dead %"] == pytest.approx(0.1) for i in row_ids(table))
            await type_filter(pilot, screen, "")
            await wait_for(pilot, lambda: table.row_count == 305, timeout=10)

    asyncio.run(scenario())


def test_dates_read_as_ages_within_a_week_and_in_full_beyond():
    started = "2026-03-01 10:15"
    stamp = time.mktime((2026, 3, 1, 10, 15, 0, 0, 0, -1))
    assert shown_date(started, now=stamp + 125) == "2 min ago"
    assert shown_date(started, now=stamp + 2 * 3600 + 5) == "2 h ago"
    assert shown_date(started, now=stamp + 3 * 86400 + 5) == "3 d ago"
    assert shown_date(started, now=stamp + 8 * 86400) == started  # beyond a week: the date, its year whole
    assert shown_date(started, now=stamp - 60) == started  # a clock behind the run: the date
    assert shown_date("", now=stamp) == ""


def test_two_sweeps_of_one_name_and_minute_are_told_apart(tmp_path):
    runs = make_runs(tmp_path)
    labels = []
    for stamp, key in (("20250301-101500", "k8"), ("20260301-101500", "k2")):
        sweep = SweepWriter(tmp_path / "runs", "quick", n_runs=1)
        sweep.add(runs[key])
        sweep.path.rename(sweep.path.parent / f"{stamp}-quick")
    index = sweep_index(tmp_path / "runs")
    labels = [index[runs[k].name][1] for k in ("k8", "k2")]
    assert labels == ["quick·03-01 10:15", "quick·03-01 10:15·2"]
    assert all(Path(index[runs[k].name][0]).name.endswith("-quick") for k in ("k8", "k2"))


def test_the_group_list_escapes_without_a_change(tmp_path):
    make_runs(tmp_path)

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_runs(pilot)
            await pilot.press("g")
            await pilot.pause()
            assert app.screen.query_one(OptionList).highlighted == 0  # "none": the current grouping
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is screen and screen.group == "none"
            assert screen.query_one("#runs", DataTable).row_count == 5

    asyncio.run(scenario())


def test_marked_runs_open_in_the_plot_screen(tmp_path):
    runs = make_runs(tmp_path)

    async def scenario():
        from collapse_tui.tui.screens.sweep_plot import SweepPlotScreen

        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_runs(pilot)
            await pilot.press("p")  # nothing marked: a hint, no screen
            await pilot.pause()
            assert app.screen is screen
            screen.marked = [runs["k2"].name, runs["k8"].name, runs["broken"].name]
            await pilot.press("p")
            await pilot.pause()
            plot = app.screen
            assert isinstance(plot, SweepPlotScreen)
            assert sorted(r.run_id for r in plot.records) == sorted([runs["k2"].name, runs["k8"].name])

    asyncio.run(scenario())
