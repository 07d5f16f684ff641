"""A run directory copied (or moved) elsewhere is shown from where it is: its events record the path it
was written at, which may be another machine's, or the original a copy was made from."""

from __future__ import annotations

import asyncio
import shutil

from collapse_tui.store import NEURONS_FILE
from collapse_tui.tui.screens.neurons import NeuronScreen
from tests.tui.support import add_neuron_profiles, make_app, make_run, wait_for

SIZE = (100, 30)


def test_a_copied_run_shows_its_own_neuron_profiles_after_the_original_changes_or_goes(tmp_path):
    original = make_run(tmp_path / "first", "quick-topk-k2")
    add_neuron_profiles(original)
    copy = shutil.copytree(original, tmp_path / "runs" / original.name)
    (original / NEURONS_FILE).write_bytes(b"changed since the copy")

    async def neurons_shown(pilot, app) -> NeuronScreen:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NeuronScreen), timeout=10)
        await pilot.pause()
        return app.screen

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            app.open_run(copy)
            await pilot.pause()
            screen = await neurons_shown(pilot, app)
            assert screen.run_dir == copy and not screen.problem
            assert screen.query_one("#neuron-table").row_count == 40
            await pilot.press("escape")
            shutil.rmtree(tmp_path / "first")  # the original gone: the copy still shows its own
            await pilot.pause()
            screen = await neurons_shown(pilot, app)
            assert screen.run_dir == copy and not screen.problem
            assert screen.query_one("#neuron-table").row_count == 40

    asyncio.run(scenario())
