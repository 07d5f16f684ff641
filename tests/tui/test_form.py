"""The configure form driven as a user drives it at 80x24: the settings changed most first, the rest
folded; page and section keys wherever the focus is; switches that say on or off; a preset marked while
edited; and a save that asks where (never the current directory) and before overwriting."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from tests.helpers import tiny_config

pytest.importorskip("textual")

from textual.widgets import Collapsible, Input, Select, Static, Switch, TextArea  # noqa: E402

from collapse_tui.tui.app import CollapseApp  # noqa: E402
from collapse_tui.tui.form_layout import LEAD_FIELDS  # noqa: E402
from collapse_tui.tui.schema import form_fields  # noqa: E402
from collapse_tui.tui.screens.configure import ConfigureScreen  # noqa: E402
from collapse_tui.tui.screens.runs import ConfirmScreen  # noqa: E402
from collapse_tui.tui.screens.save_dialog import SaveDialog  # noqa: E402
from collapse_tui.tui.widgets.field_row import FieldRow  # noqa: E402

SIZE = (80, 24)


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A checkout-like current directory holding one preset, and a private user config directory."""
    work = tmp_path / "work"
    presets = work / "presets"
    presets.mkdir(parents=True)
    data = tiny_config(tmp_path, name="quick")
    data["sweep"] = [{"sae.k": [4, 8]}]
    (presets / "quick.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return work


def make_app() -> CollapseApp:
    return CollapseApp(presets_dir="presets", environment_label="test · CPU")


def preset_label(screen: ConfigureScreen) -> str:
    """What the preset list shows as the selected entry."""
    from textual.widgets._select import SelectCurrent

    return str(screen.query_one("#preset", Select).query_one(SelectCurrent).query_one("#label", Static).render())


def run(scenario) -> None:
    async def main():
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, ConfigureScreen)
            await scenario(app, app.screen, pilot)

    asyncio.run(main())


def test_lead_fields_come_first_then_the_sweep_then_folded_sections(workdir):
    assert all(path in {f.path for f in form_fields()} for path in LEAD_FIELDS)

    async def scenario(app, screen, pilot):
        form = screen.query_one("#form")
        rows = list(form.query(FieldRow))
        assert [r.field.path for r in rows[:len(LEAD_FIELDS)]] == list(LEAD_FIELDS)
        assert [r.field.path for r in rows[:5]] == ["name", "seed", "data.dataset", "data.n_train", "sae.method"]
        # The sweep block follows the lead block, before any section.
        order = [w for w in form.children]
        sweep_at = order.index(screen.query_one("#sweep", TextArea))
        assert all(order.index(r) < sweep_at for r in rows[:len(LEAD_FIELDS)])
        assert all(order.index(c) > sweep_at for c in form.query(Collapsible))
        # Every other field is in a folded section whose title counts its fields and the modified ones.
        sections = list(form.query(Collapsible))
        assert sections and all(c.collapsed for c in sections)
        folded = [r.field.path for c in sections for r in c.query(FieldRow)]
        assert sorted(folded + list(LEAD_FIELDS)) == sorted(f.path for f in form_fields())
        vae = screen.query_one("#section-vae", Collapsible)
        # tiny_config sets vae.batch_size and vae.learning_rate (vae.epochs is in the lead block).
        assert vae.title == "vae · 6 fields · 2 modified"
        # Every lead field is one line at 80 columns (bounds cut to the line, never wrapped).
        assert all(r.region.height == 1 for r in rows[:len(LEAD_FIELDS)])
        name_row = rows[0]
        assert "length 1–80" in str(name_row.query_one(".field-bounds", Static).render())
        # A key inside a folded section is shown without the section's name; the whole key is its tooltip.
        floor = screen.rows["eval.explained_variance_floor"]
        assert str(floor.query_one(".form-label", Static).render()) == "explained_variance_floor"
        assert floor.query_one(".form-label").tooltip == "eval.explained_variance_floor"
        # The focused field's key, bounds and description are below the form.
        screen.query_one("#field-vae-epochs", Input).focus()
        await pilot.pause()
        help_line = str(screen.query_one("#field-help", Static).render())
        assert help_line.startswith("vae.epochs (≥ 1, ≤ 10000): Training epochs of the VAE.")

    run(scenario)


def test_page_keys_scroll_the_form_with_the_preset_list_focused(workdir):
    async def scenario(app, screen, pilot):
        form = screen.query_one("#form")
        assert app.focused is screen.query_one("#preset", Select) and form.scroll_y == 0
        await pilot.press("pagedown")
        await pilot.pause()
        assert form.scroll_y > 0 and app.focused is screen.query_one("#preset", Select)
        await pilot.press("pageup")
        await pilot.pause()
        assert form.scroll_y == 0
        # From a field: the form pages, and the focus moves to a field still in sight.
        screen.query_one("#field-name", Input).focus()
        await pilot.pause()
        await pilot.press("pagedown")
        await pilot.pause()
        assert form.scroll_y > 0 and app.focused is not screen.query_one("#field-name", Input)
        assert form.content_region.contains_region(app.focused.region)

    run(scenario)


def test_section_keys_jump_to_the_next_part_unfolded(workdir):
    async def scenario(app, screen, pilot):
        await pilot.press("ctrl+down")  # from the preset list: the lead block
        await pilot.pause()
        assert app.focused is screen.query_one("#field-name", Input)
        await pilot.press("ctrl+down")
        await pilot.pause()
        assert app.focused is screen.query_one("#sweep", TextArea)
        await pilot.press("ctrl+down")
        await pilot.pause()
        first = screen.query(Collapsible).first()
        assert not first.collapsed
        assert app.focused is first.query(FieldRow).first().editor
        await pilot.press("ctrl+down")
        await pilot.pause()
        second = list(screen.query(Collapsible))[1]
        assert not second.collapsed and app.focused is second.query(FieldRow).first().editor
        assert screen.query_one("#form").content_region.contains_region(app.focused.region)
        await pilot.press("ctrl+up")
        await pilot.pause()
        assert app.focused is first.query(FieldRow).first().editor

    run(scenario)


def test_switches_say_on_or_off(workdir):
    async def scenario(app, screen, pilot):
        row = screen.rows["data_parallel"]
        state = lambda: str(row.query_one(".switch-state", Static).render())  # noqa: E731
        assert state() == "off"
        row.query_one(Switch).value = True
        await pilot.pause()
        assert state() == "on"
        assert screen.form_data()["data_parallel"] is True

    run(scenario)


def test_the_preset_is_marked_while_edited_and_unmarked_when_reloaded(workdir):
    async def scenario(app, screen, pilot):
        assert preset_label(screen) == "quick.yaml"
        field = screen.query_one("#field-seed", Input)
        field.focus()
        await pilot.pause()
        await pilot.press("end", "4")
        await pilot.pause()
        assert field.value == "34" and preset_label(screen) == "quick.yaml *"
        assert screen.query_one("#section-run", Collapsible).title.startswith("run · 4 fields")
        # Typed back as it was: no longer edited. Loading the preset again (asked first) clears the mark.
        await pilot.press("backspace")
        await pilot.pause()
        assert preset_label(screen) == "quick.yaml"
        screen.query_one("#field-vae-batch-size", Input).value = "16"
        await pilot.pause()
        assert preset_label(screen) == "quick.yaml *"
        assert screen.query_one("#section-vae", Collapsible).title == "vae · 6 fields · 2 modified · 1 edited"
        # A refused value in a folded section is counted in its title.
        screen.query_one("#field-eval-n-bins", Input).value = "1"
        await pilot.pause()
        assert screen.query_one("#section-eval", Collapsible).title.endswith(" · 1 edited · 1 error")
        screen._choose_preset("quick.yaml", again=True)
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause()
        assert preset_label(screen) == "quick.yaml" and not screen.edited

    run(scenario)


def test_save_asks_where_defaults_to_the_user_config_dir_and_asks_before_overwriting(workdir, tmp_path):
    user_dir = tmp_path / "xdg" / "collapse-tui"

    async def scenario(app, screen, pilot):
        screen.query_one("#field-seed", Input).value = "7"
        await pilot.pause()
        assert preset_label(screen) == "quick.yaml *"
        await pilot.press("ctrl+s")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, SaveDialog)
        target = Path(dialog.query_one("#save-target", Input).value)
        assert target == user_dir / "quick.yaml"
        assert Path.cwd() not in target.parents
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen and target.is_file()
        assert yaml.safe_load(target.read_text())["seed"] == 7
        assert list(Path.cwd().glob("*.yaml")) == []  # nothing written where the app was started
        assert screen.presets["quick.yaml"] == target and preset_label(screen) == "quick.yaml"
        assert not screen.edited
        # Saved again after an edit: the file exists, so the dialog asks; "n" keeps it as it was.
        screen.query_one("#field-seed", Input).value = "8"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert Path(app.screen.query_one("#save-target", Input).value) == target
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and "Overwrite? y/n" in str(
            app.screen.query_one(Static).render())
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, SaveDialog) and yaml.safe_load(target.read_text())["seed"] == 7
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert app.screen is screen and yaml.safe_load(target.read_text())["seed"] == 8

    run(scenario)


def test_a_save_that_cannot_be_written_says_why_in_one_line(workdir, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory would be")

    async def scenario(app, screen, pilot):
        await pilot.press("ctrl+s")
        await pilot.pause()
        dialog = app.screen
        dialog.query_one("#save-target", Input).value = str(blocker / "mine.yaml")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog
        message = str(dialog.query_one("#save-message", Static).render())
        assert message.startswith(f"cannot write {blocker / 'mine.yaml'}: ") and "\n" not in message
        assert dialog.query_one("#save-message").has_class("error")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and screen.edited is False and "mine.yaml" not in screen.presets

    run(scenario)


def test_configs_saved_to_the_user_config_dir_are_presets_at_the_next_start(workdir, tmp_path):
    user_dir = tmp_path / "xdg" / "collapse-tui"
    user_dir.mkdir(parents=True)
    (user_dir / "mine.yaml").write_text(yaml.safe_dump(tiny_config(tmp_path, name="mine")))
    app = CollapseApp(environment_label="test · CPU")  # the default preset directories
    assert app.presets["mine.yaml"] == user_dir / "mine.yaml"
