"""Screenshots of the runs screen at 80x24: as it opens, filtered by a predicate, grouped by a setting.

The fixture runs have fixed events and dates (more than a week old, so shown in full), so the pictures do
not depend on the clock. Accept an intended change with ``--snapshot-update`` after reviewing it.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_textual_snapshot")

from collapse_tui.tui.app import CollapseApp  # noqa: E402
from tests.tui.support import make_runs  # noqa: E402

SIZE = (80, 24)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Fixture runs under ./runs, with relative paths so that none shows tmp_path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "presets").mkdir()
    return make_runs(tmp_path)


def app() -> CollapseApp:
    return CollapseApp(runs_dir="runs", presets_dir="presets", environment_label="tensorflow · CPU")


def test_runs_screen_80x24(workdir, snap_compare):
    assert snap_compare(app(), press=["f3"], terminal_size=SIZE)


def test_runs_screen_filtered(workdir, snap_compare):
    async def filtered(pilot):
        await pilot.press("f3")
        await pilot.pause()
        screen = pilot.app.screen
        screen.query_one("#filter").cursor_blink = False
        await pilot.press("slash", *"dead>20", "enter")
        await pilot.pause()

    assert snap_compare(app(), terminal_size=SIZE, run_before=filtered)


def test_runs_screen_grouped(workdir, snap_compare):
    async def grouped(pilot):
        await pilot.press("f3")
        await pilot.pause()
        pilot.app.screen.group_by("sae.method")
        await pilot.pause()

    assert snap_compare(app(), terminal_size=SIZE, run_before=grouped)
