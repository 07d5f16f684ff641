"""Screenshots of the configure form at 80x24 and 120x35: its top (the settings changed most, then the
sweep block), and a folded section jumped to with ctrl+down, unfolded, a switch turned on.

Accept an intended change of the look with ``pytest tests/tui/test_snapshots_form.py --snapshot-update``
after reviewing the new pictures.
"""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("pytest_textual_snapshot")

from collapse_tui.tui.app import CollapseApp  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

SIZES = [(80, 24), (120, 35)]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """One preset with a sweep, and relative paths so that none shows tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    presets = tmp_path / "presets"
    presets.mkdir()
    data = tiny_config(tmp_path, runs_dir="runs", models_dir="models", name="quick")
    data["sweep"] = [{"sae.method": ["topk"], "sae.k": [8, 4]}, {"sae.method": ["l1"], "sae.l1_coefficient": [0.1]}]
    (presets / "quick.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return tmp_path


def app() -> CollapseApp:
    return CollapseApp(runs_dir="runs", presets_dir="presets", environment_label="tensorflow · CPU")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_form_top(workdir, snap_compare, size):
    assert snap_compare(app(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_form_with_a_section_unfolded(workdir, snap_compare, size):
    async def unfold(pilot):
        await pilot.pause()
        # From the preset list: the first fields, the sweep, then run, data, vae, sae, sae.remedies.
        await pilot.press(*["ctrl+down"] * 7)
        await pilot.pause()
        await pilot.press("space")  # its first field, a switch: on, and the preset marked as edited
        for _ in range(100):
            await pilot.pause(0.02)
            if "edited" in pilot.app.screen.query_one("#section-sae-remedies").title:
                break
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    assert snap_compare(app(), terminal_size=size, run_before=unfold)
