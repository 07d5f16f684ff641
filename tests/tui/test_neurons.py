"""The neuron inspector: the table of a run's neurons, and one neuron's images, tuning and neighbours."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from collapse_tui.tui.screens.neurons import COLUMNS, NeuronScreen, neuron_rows, tuning_lines
from collapse_tui.tui.widgets.pixels import downsample, render_images
from tests.tui.support import add_neuron_profiles, make_app, make_runs, wait_for

SIZE = (100, 30)


def test_downsampling_takes_block_means_on_the_images_own_range():
    image = np.array([[0, 2, 4, 4], [2, 0, 4, 4], [0, 0, 0, 4], [0, 0, 4, 0]], np.uint8)[:, :, None]
    small = downsample(image, 2)[:, :, 0]
    np.testing.assert_allclose(small, [[1 / 4, 1.0], [0.0, 2 / 4]])  # block means of image / 4
    text = render_images([image, image], size=2)
    assert text.plain == "▀▀ ▀▀\n"  # one line holds two pixel rows; one column between images
    assert text.spans[0].style.color.get_truecolor() == (64, 64, 64)  # upper left: 0.25 of white
    assert text.spans[0].style.bgcolor.get_truecolor() == (0, 0, 0)


def test_rows_and_tuning_lines_from_profiles(tmp_path):
    runs = make_runs(tmp_path)
    profiles = add_neuron_profiles(runs["k2"])
    rows = neuron_rows(profiles)
    assert len(rows) == 40 and len(rows[0]) == len(COLUMNS)
    assert rows[0][3] == "scale" and rows[0][4] == pytest.approx(0.4) and rows[0][5] == pytest.approx(0.9)
    assert rows[39][3] == "dead" and rows[39][4] == 0.0 and rows[39][1] == 0.0
    assert rows[1][5] == -1.0  # the best detector of no value: sorts last
    lines = tuning_lines(profiles, 0).plain.split("\n")[:-1]
    assert [line.split()[0] for line in lines] == ["shape", "scale", "orientation", "pos_x", "pos_y"]
    # Neuron 0 follows scale: its bars rise over scale's values; shape's do not reach the top.
    assert lines[1].split()[1] == "".join(sorted(lines[1].split()[1]))


def test_the_inspector_lists_the_neurons_and_shows_the_selected_one(tmp_path):
    runs = make_runs(tmp_path)
    add_neuron_profiles(runs["k2"])

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            app.open_run(runs["k2"])
            await pilot.pause()
            await pilot.press("n")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, NeuronScreen)
            table = screen.query_one("#neuron-table")
            assert table.row_count == 40
            # Most often firing first; the dead ones last.
            order = [int(table.get_row_at(r)[0]) for r in range(table.row_count)]
            freq = [screen.rows[i][1] for i in order]
            assert freq == sorted(freq, reverse=True) and screen.rows[order[-1]][3] == "dead"
            # The highlighted neuron's profile, its images rendered again from the dataset.
            first = order[0]
            await wait_for(pilot, lambda: "▀" in str(screen.query_one("#neuron-images").content), timeout=30)
            assert screen.selected == first
            assert f"neuron {first}" in str(screen.query_one("#neuron-head").content)
            screen.show(0)  # the best detector of scale = 2 in the fixture
            assert "best detector of scale = 2 (AUROC 0.900)" in str(screen.query_one("#neuron-head").content)
            screen.show(first)
            assert str(screen.query_one("#neuron-neighbours").content).count("#") == 8
            await pilot.press("o")  # the next column, largest first
            assert screen.sort_column == "max"
            maxima = [screen.rows[int(table.get_row_at(r)[0])][2] for r in range(table.row_count)]
            assert maxima == sorted(maxima, reverse=True)
            screen.sort_by("neuron")
            assert [int(table.get_row_at(r)[0]) for r in range(3)] == [0, 1, 2]
            # A dead neuron: no images, said so.
            table.move_cursor(row=39)
            await pilot.pause()
            assert screen.selected == 39 and "never fired" in str(screen.query_one("#neuron-images").content)
            with pytest.raises(ValueError):
                screen.sort_by("colour")
            await pilot.press("escape")
            assert not isinstance(app.screen, NeuronScreen)
            # A run without profiles says why there are none.
            app.push_screen(NeuronScreen(runs["k8"]))
            await pilot.pause()
            assert "no neuron profiles yet" in str(app.screen.query_one("#neuron-title").content)

    asyncio.run(scenario())
