"""The run, compare, neuron and help screens in an 80x24 terminal: screenshots compared with the accepted
ones in __snapshots__/ (accept an intended change with ``--snapshot-update`` after reviewing it), and on
every screen the footer keeps the app's keys (F1-F4 and quit) in view, whatever the screen adds."""

from __future__ import annotations

import asyncio

import pytest
import yaml

pytest.importorskip("pytest_textual_snapshot")

from textual.widgets._footer import FooterKey  # noqa: E402

from collapse_tui.tui.app import CollapseApp  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402
from tests.tui.support import add_neuron_profiles, make_run, make_runs, open_inspector  # noqa: E402

SIZE = (80, 24)
APP_KEYS = {"f1", "f2", "f3", "f4", "ctrl+q"}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Fixture runs under ./runs (a stopped one and one still being written too) and one preset, with
    relative paths so that none shows tmp_path."""
    monkeypatch.chdir(tmp_path)
    runs = make_runs(tmp_path)
    runs["stopped"] = make_run(tmp_path, "quick-topk-k4", "20260101-120500", sparsity=4, status="stopped")
    runs["running"] = make_run(tmp_path, "quick-topk-k16", "20260101-120600", sparsity=16, status="running",
                               upto=30)
    presets = tmp_path / "presets"
    presets.mkdir()
    data = tiny_config(tmp_path, runs_dir="runs", models_dir="models", name="quick")
    (presets / "quick.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return runs


def app() -> CollapseApp:
    return CollapseApp(runs_dir="runs", presets_dir="presets", environment_label="tensorflow · CPU")


def opener(run_dir, tab: str = "loss", keys: tuple = ()):
    async def open_run(pilot):
        pilot.app.open_run(run_dir)
        await pilot.pause()
        pilot.app.screen.action_tab(tab)
        for key in keys:
            await pilot.press(key)
        await pilot.pause()

    return open_run


@pytest.mark.parametrize("which, tab", [("k2", "loss"), ("k2", "dead"), ("k2", "mig"), ("stopped", "loss"),
                                        ("running", "dead")])
def test_run_screen(workdir, snap_compare, which, tab):
    assert snap_compare(app(), terminal_size=SIZE, run_before=opener(workdir[which], tab))


def test_neuron_inspector(workdir, snap_compare):
    add_neuron_profiles(workdir["k2"])

    async def inspect(pilot):
        await open_inspector(pilot, workdir["k2"])

    assert snap_compare(app(), terminal_size=SIZE, run_before=inspect)


def compare_opener(workdir, tab: str):
    async def compare(pilot):
        from collapse_tui.store import load_run
        from collapse_tui.tui.screens.compare import CompareScreen

        records = [load_run(workdir[k]) for k in ("k2", "k8", "l1")]
        pilot.app.push_screen(CompareScreen(records, export_dir="runs"))
        await pilot.pause()
        pilot.app.screen.action_tab(tab)
        await pilot.pause()

    return compare


@pytest.mark.parametrize("tab", ["config", "metrics", "curves"])
def test_compare_screen(workdir, snap_compare, tab):
    assert snap_compare(app(), terminal_size=SIZE, run_before=compare_opener(workdir, tab))


def test_help_screen(workdir, snap_compare):
    assert snap_compare(app(), terminal_size=SIZE, press=["f1"])


@pytest.mark.parametrize("screen", ["configure", "runs", "run", "stopped", "compare", "neurons"])
def test_the_footer_shows_the_app_keys_at_80_columns(workdir, screen):
    """Each of F1-F4 and quit is drawn whole inside the 80 columns (the footer scrolls what does not fit,
    cutting it off the right edge)."""
    add_neuron_profiles(workdir["k2"])
    openers = {"configure": None, "runs": None, "run": opener(workdir["k2"]), "stopped": opener(workdir["stopped"]),
               "compare": compare_opener(workdir, "metrics"), "neurons": opener(workdir["k2"], keys=("n",))}

    async def scenario():
        the_app = app()
        async with the_app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            if screen == "runs":
                await pilot.press("f3")
            elif openers[screen] is not None:
                await openers[screen](pilot)
            await pilot.pause()
            keys = {key.key: key.region for key in the_app.screen.query(FooterKey)}
            assert APP_KEYS <= set(keys), sorted(keys)
            assert all(keys[k].right <= SIZE[0] and keys[k].width > 0 for k in APP_KEYS), \
                {k: (keys[k].x, keys[k].right) for k in APP_KEYS}

    asyncio.run(scenario())
