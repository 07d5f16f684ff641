"""Screenshots of the main screens at 100x30, compared with the accepted ones in __snapshots__/.

Every screen shows fixture run directories with fixed events, so the pictures do not depend on
training, the clock or the backend. After an intended change of the look, accept the new pictures
with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and review them.
"""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("pytest_textual_snapshot")

from collapse_tui.tui.app import CollapseApp  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402
from tests.tui.support import add_neuron_profiles, make_runs, open_inspector  # noqa: E402

SIZE = (100, 30)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Fixture runs under ./runs and one preset, with relative paths so that none shows tmp_path."""
    monkeypatch.chdir(tmp_path)
    runs = make_runs(tmp_path)
    presets = tmp_path / "presets"
    presets.mkdir()
    data = tiny_config(tmp_path, runs_dir="runs", models_dir="models", name="quick")
    data["sweep"] = [{"sae.method": ["topk"], "sae.k": [8, 4]}, {"sae.method": ["l1"], "sae.l1_coefficient": [0.1]}]
    (presets / "quick.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return runs


def app() -> CollapseApp:
    return CollapseApp(runs_dir="runs", presets_dir="presets", environment_label="tensorflow · CPU")


def test_configure_screen(workdir, snap_compare):
    assert snap_compare(app(), terminal_size=SIZE)


def test_configure_screen_with_an_error(workdir, snap_compare):
    async def invalid(pilot):
        field = pilot.app.screen.query_one("#field-sae-k")
        field.cursor_blink = False  # a blinking cursor would be on or off depending on the machine's speed
        field.value = "900"
        field.focus()
        # On a loaded machine the change message and the scroll to the focused field take a few frames.
        for _ in range(100):
            await pilot.pause(0.02)
            if pilot.app.screen.query_one("#cfg-status").has_class("invalid"):
                break
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    assert snap_compare(app(), terminal_size=SIZE, run_before=invalid)


def test_runs_screen(workdir, snap_compare):
    assert snap_compare(app(), press=["f3"], terminal_size=SIZE)


@pytest.mark.parametrize("tab", ["loss", "dead", "mig"])
def test_run_screen_panels(workdir, snap_compare, tab):
    async def open_run(pilot):
        pilot.app.open_run(workdir["k2"])
        await pilot.pause()
        pilot.app.screen.action_tab(tab)
        await pilot.pause()

    assert snap_compare(app(), terminal_size=SIZE, run_before=open_run)


def test_run_screen_charts_smoothed_on_a_log_axis_with_a_cursor(workdir, snap_compare):
    async def open_run(pilot):
        pilot.app.open_run(workdir["k2"])
        await pilot.pause()
        for key in ("e", "e", "l", "comma", "comma", "comma", "plus"):
            await pilot.press(key)
        await pilot.pause()

    assert snap_compare(app(), terminal_size=SIZE, run_before=open_run)


def test_neuron_inspector(workdir, snap_compare, tmp_path):
    add_neuron_profiles(workdir["k2"])

    async def inspect(pilot):
        await open_inspector(pilot, workdir["k2"])

    assert snap_compare(app(), terminal_size=SIZE, run_before=inspect)


@pytest.mark.parametrize("tab", ["config", "curves"])
def test_compare_screen(workdir, snap_compare, tab):
    async def compare(pilot):
        await pilot.press("f3")
        await pilot.pause()
        screen = pilot.app.screen
        screen.sort_by("run")
        screen.marked = [workdir["k2"].name, workdir["k8"].name, workdir["l1"].name]
        await pilot.press("c")
        await pilot.pause()
        pilot.app.screen.action_tab(tab)
        await pilot.pause()

    assert snap_compare(app(), terminal_size=SIZE, run_before=compare)
