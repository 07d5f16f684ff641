"""A run on an activations file started from the terminal UI's form: it trains with no VAE phase, its
live screen draws the SAE's curves, and its MIG panel has the SAE's points when the file has factors."""

from __future__ import annotations

import asyncio
import time

import pytest

from collapse_tui.data.activations import write_activations
from collapse_tui.store import load_run
from tests.helpers import tiny_config
from tests.integration.test_activations_run import planted
from tests.tui.support import make_app, wait_for

pytest.importorskip("textual")

from collapse_tui.tui.screens.run import REDRAW_HZ, RunScreen  # noqa: E402
from collapse_tui.tui.widgets.charts import LineChart  # noqa: E402

SIZE = (100, 30)


@pytest.mark.parametrize("with_factors", [True, False])
def test_an_activations_run_started_from_the_form_trains_and_draws(tmp_path, with_factors):
    acts, factors = planted()
    path = (write_activations(tmp_path / "acts.npz", acts, factors, ["colour", "size", "place"]) if with_factors
            else write_activations(tmp_path / "acts.npy", acts))
    data = tiny_config(tmp_path, data={"dataset": "activations", "path": str(path), "n_train": 200},
                       eval={"n_samples": 80}, sae={"n_neurons": 32, "k": 4, "epochs": 2})

    async def scenario():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.screen.set_values(data)
            await pilot.pause()
            started = time.monotonic()
            await pilot.click("#start")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RunScreen)
            await wait_for(pilot, lambda: not app.training.running, timeout=120)
            await pilot.pause(2 / REDRAW_HZ)
            state = screen.run_state
            assert state.status == "ok", (state.reason, app.training.error)
            assert time.monotonic() - started < 120
            await pilot.press("1")
            await pilot.pause()
            assert screen.query_one("#sae-loss", LineChart).series[0].xs[-1] == pytest.approx(2.0)
            await pilot.press("3")
            await pilot.pause()
            sae_mig = [s for s in screen.query_one("#mig-chart", LineChart).series if s.label == "SAE codes"]
            record = load_run(state.run_dir)
            assert record.status == "ok" and record.config["data_source"]["dataset"] == "activations"
            if with_factors:
                assert sae_mig and len(sae_mig[0].xs) == 2
                assert isinstance(record.summary["final"]["mig"], float)
            else:
                assert not sae_mig or not sae_mig[0].xs  # nothing to draw: no factors, no MIG
                assert "mig" not in record.summary["final"]

    asyncio.run(scenario())
