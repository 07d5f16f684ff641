"""Screenshots at 80x24 of a sweep's results table (its labels frozen, the headline columns first, the
legend of the column under the cursor), its plot (dead % against L0, one marker per method and remedy)
and its paired comparison, on a sweep of hand-made runs (tests/tui/sweep_fixture.py). The app's F1-F4 and
quit must still show in the footer. Accept an intended change with ``--snapshot-update`` after review."""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_textual_snapshot")

from collapse_tui.tui.app import CollapseApp  # noqa: E402
from collapse_tui.tui.screens.paired import PairedScreen  # noqa: E402
from collapse_tui.tui.screens.sweep import SweepScreen  # noqa: E402
from collapse_tui.tui.screens.sweep_plot import SweepPlotScreen  # noqa: E402
from tests.tui.sweep_fixture import make_sweep  # noqa: E402

SIZE = (80, 24)


@pytest.fixture
def sweep_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "presets").mkdir()
    path, _ = make_sweep(tmp_path)
    return path


def app() -> CollapseApp:
    return CollapseApp(runs_dir="runs", presets_dir="presets", environment_label="tensorflow · CPU")


def opening(make_screen, keys=()):
    async def run_before(pilot):
        pilot.app.push_screen(make_screen())
        for _ in range(100):
            await pilot.pause(0.02)
            if pilot.app.screen.is_mounted:
                break
        for key in keys:
            await pilot.press(key)
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    return run_before


def test_sweep_table_at_80_columns(sweep_dir, snap_compare):
    # The cursor moved onto L0: the columns scroll, the labels stay, the line below says what L0 is.
    keys = ["right"] * 6
    assert snap_compare(app(), terminal_size=SIZE, run_before=opening(lambda: SweepScreen(sweep_dir), keys))


def test_sweep_table_scrolled_to_its_last_columns(sweep_dir, snap_compare):
    keys = ["right"] * 14
    assert snap_compare(app(), terminal_size=SIZE, run_before=opening(lambda: SweepScreen(sweep_dir), keys))


def test_sweep_plot_at_80_columns(sweep_dir, snap_compare):
    assert snap_compare(app(), terminal_size=SIZE, run_before=opening(lambda: SweepPlotScreen.for_sweep(sweep_dir)))


def test_sweep_plot_on_log_axes(sweep_dir, snap_compare):
    assert snap_compare(app(), terminal_size=SIZE,
                        run_before=opening(lambda: SweepPlotScreen.for_sweep(sweep_dir), ["x", "y"]))


def test_paired_comparison_at_80_columns(sweep_dir, snap_compare):
    from collapse_tui.store import sweep_records

    assert snap_compare(app(), terminal_size=SIZE,
                        run_before=opening(lambda: PairedScreen(sweep_records(sweep_dir), title="remedies")))
