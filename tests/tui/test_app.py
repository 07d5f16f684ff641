"""The TUI driven headless with Pilot: configure and start a real tiny run, stop one, follow a run
another process writes, list, sort, filter, compare, export and delete runs."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from collapse_tui import config as config_mod
from collapse_tui.store import sweep_run_dirs
from collapse_tui.store import list_runs, load_run
from tests.helpers import tiny_config
from tests.tui.support import make_app, make_run, make_runs, wait_for

pytest.importorskip("textual")

from textual.widgets import Button, DataTable, Input, Label, Select, Static  # noqa: E402

from collapse_tui.tui.app import CollapseApp  # noqa: E402
from collapse_tui.tui.screens.compare import CompareScreen  # noqa: E402
from collapse_tui.tui.screens.configure import ConfigureScreen  # noqa: E402
from collapse_tui.tui.screens.help import HelpScreen  # noqa: E402
from collapse_tui.tui.screens.run import REDRAW_HZ, RunScreen  # noqa: E402
from collapse_tui.tui.screens.runs import ConfirmScreen, RunsScreen  # noqa: E402
from collapse_tui.tui.widgets.chart_view import ChartView, smoothed  # noqa: E402
from collapse_tui.tui.widgets.charts import Heatmap, Histogram, LineChart, format_number, line_glyph  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SIZE = (100, 30)


def footer_keys(app) -> list[str]:
    """The keys the screen's footer lists (Textual's own collection of them, as the footer reads it)."""
    return [active.binding.key for active in app.screen.active_bindings.values() if active.binding.show]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """One models dir for the module: the tiny VAE is trained once and loaded by later tests."""
    return tmp_path_factory.mktemp("models")


async def open_runs_screen(pilot) -> None:
    """From start-up to the runs table (F3)."""
    await pilot.pause()
    await pilot.press("f3")
    await pilot.pause()


async def type_into(pilot, widget: Input, text: str) -> None:
    """Replace an input's text by key presses, as a user would."""
    widget.focus()
    await pilot.pause()
    widget.value = ""
    await pilot.press(*text)
    await pilot.pause()


# --------------------------------------------------------------------------- configure


FIRST_PAINT = """
import asyncio, os, sys
sys.path.insert(0, {repo!r})
from collapse_tui.tui import app as app_module
from collapse_tui.tui.app import CollapseApp
from collapse_tui.tui.screens.configure import ConfigureScreen

seen = []
load = app_module.load_keras

def load_keras():  # what the screen showed when the Keras import began
    screen = app.screen
    seen.append(isinstance(screen, ConfigureScreen) and bool(screen.n_runs))
    return load()

app_module.load_keras = load_keras

async def main():
    async with app.run_test(size=(100, 30)):
        while not seen:
            await asyncio.sleep(0.005)
        print("form shown when Keras began loading:", seen[0], app.sub_title, flush=True)
    os._exit(0)  # not waiting for the worker that imports Keras

app = CollapseApp(presets_dir={presets!r})
asyncio.run(main())
"""


def test_the_first_screen_paints_before_keras_is_loaded(tmp_path):
    # A fresh interpreter: the form is on the screen, validated, before Keras (seconds) begins to load;
    # the header says it is loading.
    script = tmp_path / "first_paint.py"
    script.write_text(FIRST_PAINT.format(repo=str(REPO), presets=str(REPO / "configs")))
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert "form shown when Keras began loading: True" in out.stdout and "loading Keras…" in out.stdout, \
        out.stdout + out.stderr[-2000:]


def test_form_is_generated_from_the_schema(tmp_path):
    async def scenario():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, ConfigureScreen)
            # Every leaf of the schema has a widget, with its description (its tooltip; the focused
            # field's also shows below the form).
            for path, _type, _default, description in config_mod.field_docs():
                widget_id = "field-" + path.replace(".", "-").replace("_", "-")
                assert description in str(screen.query_one(f"#{widget_id}").tooltip)
            # Bounds are shown beside the field: vae.epochs is 1..10000 in the schema.
            row = screen.query_one("#field-vae-epochs").parent
            assert "≥ 1, ≤ 10000" in str(row.query_one(".field-bounds", Static).render())
            # With no preset the form holds the schema defaults, which are valid.
            assert screen.errors == [] and screen.n_runs == 1
            assert config_mod.validate(screen.form_data()) == config_mod.RunConfig()
            # The focused field stands out even in 256 colours (tmux's default): another colour there,
            # and a colour, not a grey.
            from rich.color import ColorSystem

            focused, other = screen.query_one("#field-sae-k", Input), screen.query_one("#field-vae-epochs", Input)
            focused.focus()
            await pilot.pause()
            shown = [w.background_colors[1] for w in (focused, other)]
            assert len({c.rich_color.downgrade(ColorSystem.EIGHT_BIT).number for c in shown}) == 2
            r, g, b = shown[0].rgb
            assert max(r, g, b) - min(r, g, b) > 40

    asyncio.run(scenario())


def test_invalid_input_shows_the_schema_error_and_start_is_refused(tmp_path):
    async def scenario():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            await type_into(pilot, screen.query_one("#field-sae-k", Input), "900")
            expected = "sae.k: 900 exceeds sae.n_neurons (500)"
            assert screen.errors == [expected]
            # The schema's own words, beside the field.
            shown = str(screen.query_one("#err-field-sae-k", Static).render())
            assert "900 exceeds sae.n_neurons (500)" in shown
            assert screen.query_one("#err-field-sae-k").has_class("shown")
            assert screen.query_one("#start", Button).disabled
            await type_into(pilot, screen.query_one("#field-vae-epochs", Input), "ten")
            try:
                config_mod.validate({"sae": {"k": "900"}, "vae": {"epochs": "ten"}})
            except config_mod.ConfigError as exc:
                schema_lines = exc.errors
            assert sorted(screen.errors) == sorted(schema_lines)
            assert "valid integer" in str(screen.query_one("#err-field-vae-epochs", Static).render())
            # Refused by the key binding too, not only by the disabled button.
            await pilot.press("ctrl+g")
            await pilot.pause()
            assert isinstance(app.screen, ConfigureScreen) and app.training is None
            # Fixing both fields clears the errors and enables Start.
            await type_into(pilot, screen.query_one("#field-sae-k", Input), "50")
            await type_into(pilot, screen.query_one("#field-vae-epochs", Input), "10")
            assert screen.errors == [] and not screen.query_one("#start", Button).disabled
            # A sweep is validated run by run: the error names the sweep values.
            screen.query_one("#sweep").text = "- {sae.k: [10, 600]}\n"
            await pilot.pause()
            assert any("sae.k: 600 exceeds" in e and "sweep run" in e for e in screen.sweep_errors)
            assert screen.query_one("#start", Button).disabled
            screen.query_one("#sweep").text = "- {sae.k: [10, 20]\n"
            await pilot.pause()
            assert screen.sweep_errors and screen.sweep_errors[0].startswith("sweep: YAML syntax error")

    asyncio.run(scenario())


def test_preset_loads_and_save_as_yaml_round_trips(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    data = tiny_config(tmp_path, sae={"n_neurons": 30})
    data["sweep"] = [{"sae.method": ["topk"], "sae.k": [4, 8]}, {"sae.method": ["l1"], "sae.l1_coefficient": [0.1]}]
    (presets / "quick.yaml").write_text(yaml.safe_dump(data, sort_keys=False))

    async def scenario():
        app = CollapseApp(presets_dir=presets, environment_label="test · CPU")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            # quick.yaml is the preset selected on first launch.
            assert str(screen.query_one("#preset").value) == "quick.yaml"
            assert screen.query_one("#field-sae-n-neurons", Input).value == "30"
            assert screen.n_runs == 3
            target = tmp_path / "out" / "mine.yaml"
            await pilot.press("ctrl+s")  # asks where
            await pilot.pause()
            app.screen.query_one("#save-target", Input).value = str(target)
            await pilot.press("enter")
            await pilot.pause()
            saved = config_mod.load(target)
            assert [c.name for c, _ in saved] == [c.name for c, _ in config_mod.expand(data)]
            assert [c for c, _ in saved] == [c for c, _ in config_mod.expand(data)]
        # A config file given on the command line is loaded and selected.
        app = CollapseApp(config_path=str(target), presets_dir=presets, environment_label="test · CPU")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert str(app.screen.query_one("#preset").value) == "mine.yaml"
            assert app.screen.query_one("#field-sae-n-neurons", Input).value == "30"
            assert app.screen.n_runs == 3

    asyncio.run(scenario())


def test_the_form_says_what_the_sweep_sets_asks_before_dropping_edits_and_opens_files(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    data = tiny_config(tmp_path)
    data["sweep"] = [{"sae.method": ["topk"], "sae.k": [4, 8]}]
    (presets / "quick.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (presets / "other.yaml").write_text(yaml.safe_dump(tiny_config(tmp_path, sae={"n_neurons": 30})))

    async def scenario():
        app = CollapseApp(presets_dir=presets, environment_label="test · CPU")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            # The sweep, not the form, decides the method and k: the status line and the fields say so.
            assert "the sweep sets sae.k, sae.method" in str(screen.query_one("#cfg-status", Static).render())
            assert screen.query_one("#field-sae-k").has_class("swept")
            assert not screen.query_one("#field-sae-n-neurons").has_class("swept")
            # An edit, then another preset: asked first; "no" keeps the edit and shows its preset again.
            await type_into(pilot, screen.query_one("#field-sae-n-neurons", Input), "40")
            assert screen.edited
            screen.query_one("#preset", Select).value = "other.yaml"
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            await pilot.pause()
            assert screen.query_one("#field-sae-n-neurons", Input).value == "40"
            assert str(screen.query_one("#preset", Select).value) == "quick.yaml"
            screen.query_one("#preset", Select).value = "other.yaml"
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
            assert screen.query_one("#field-sae-n-neurons", Input).value == "30" and not screen.edited
            # Saved, the file joins the preset list, selected; Open loads any file by its path.
            target = tmp_path / "out" / "mine.yaml"
            await pilot.press("ctrl+s")
            await pilot.pause()
            app.screen.query_one("#save-target", Input).value = str(target)
            await pilot.press("enter")
            await pilot.pause()
            assert str(screen.query_one("#preset", Select).value) == "mine.yaml" and screen.presets["mine.yaml"] == target
            # (another file of the same name: loaded, not taken for the preset already shown)
            elsewhere = tmp_path / "elsewhere" / "mine.yaml"
            elsewhere.parent.mkdir()
            elsewhere.write_text(yaml.safe_dump(tiny_config(tmp_path, sae={"n_neurons": 50})))
            screen.query_one("#open-path", Input).value = str(elsewhere)
            await pilot.press("ctrl+o")
            await pilot.pause()
            assert screen.query_one("#field-sae-n-neurons", Input).value == "50"
            assert str(screen.query_one("#preset", Select).value) == "mine.yaml"
            assert screen.presets["mine.yaml"] == elsewhere

    asyncio.run(scenario())


# --------------------------------------------------------------------------- live runs


def test_tiny_run_started_from_the_form_fills_every_panel(tmp_path, models_dir):
    data = tiny_config(tmp_path, models_dir=str(models_dir), runs_dir=str(tmp_path / "runs"))

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
            assert isinstance(screen, RunScreen) and screen.feed.live
            # Leaving the run screen does not stop training (the run still ends "ok" below; it may
            # already be over on a fast machine); F4 comes back to it.
            await pilot.press("escape")
            await pilot.pause(0.3)
            assert isinstance(app.screen, ConfigureScreen) and not app.training.stop_event.is_set()
            await pilot.press("f4")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RunScreen) and screen.feed is app.training
            await wait_for(pilot, lambda: not app.training.running, timeout=120)
            await pilot.pause(2 / REDRAW_HZ)
            elapsed = time.monotonic() - started
            state = screen.run_state
            assert state.status == "ok", (state.reason, app.training.error)
            # Loss panel: the VAE's one epoch every few steps (at least its end's point, which closes the
            # curve at epoch 1), or per epoch where the steps give no finer curve.
            await pilot.press("1")
            await pilot.pause()
            vae_loss = screen.query_one("#vae-loss", LineChart).series
            assert [s.label for s in vae_loss] == ["loss", "reconstruction", "KL"]
            assert len({len(s.xs) for s in vae_loss}) == 1 and all(s.xs[-1] == pytest.approx(1.0) for s in vae_loss)
            # Top-k has no sparsity term: its all-zero line is not drawn, and its loss is its
            # reconstruction: one line, so labelled.
            sae_loss = screen.query_one("#sae-loss", LineChart).series
            # Its 2 epochs per epoch, or per step where a slow machine reported steps within them.
            assert [s.label for s in sae_loss] == ["loss = reconstruction"]
            assert len(sae_loss[0].xs) >= 2 and sae_loss[0].xs[-1] == pytest.approx(2.0)
            # Dead panel: one dead fraction per evaluation (every epoch), a histogram covering all neurons.
            await pilot.press("2")
            await pilot.pause()
            assert screen.query_one("#dead-chart", LineChart).series[0].xs == [1, 2]
            hist = state.latest["density_histogram"]
            assert sum(screen.query_one("#density", Histogram).counts) + hist["dead"] == 24
            assert "L0:" in str(screen.query_one("#dead-stats", Static).render())
            assert "k = 4" in str(screen.query_one("#dead-stats", Static).render())
            # MIG panel: VAE and SAE series, the 24 x 5 NMI matrix, the specialized count.
            await pilot.press("3")
            await pilot.pause()
            mig = screen.query_one("#mig-chart", LineChart).series
            assert [s.label for s in mig] == ["VAE latents", "SAE codes"] and len(mig[1].xs) == 2
            heat = screen.query_one("#nmi", Heatmap)
            assert len(heat.nmi) == 24 and len(heat.nmi[0]) == 5 and heat.factors[0] == "shape"
            assert "specialized neurons:" in str(screen.query_one("#mig-stats", Static).render())
            # Redrawn on the timer (and on the three panel switches), not once per event.
            assert screen.redraws <= elapsed * REDRAW_HZ + 3 + 3
            record = load_run(state.run_dir)
            assert record.status == "ok" and record.summary["final"]["n_neurons"] == 24

    asyncio.run(scenario())


def test_stop_key_ends_the_run_as_stopped_and_the_sweep_with_it(tmp_path, models_dir):
    data = tiny_config(tmp_path, models_dir=str(models_dir), sae={"epochs": 2000}, eval={"every": 0})
    data["sweep"] = [{"sae.k": [4, 8]}]

    async def scenario():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.screen.set_values(data)
            await pilot.pause()
            assert app.screen.n_runs == 2
            await pilot.press("ctrl+g")
            await pilot.pause()
            screen = app.screen
            await wait_for(pilot, lambda: screen.run_state.sae_loss or not app.training.running, timeout=120)
            assert screen.run_state.sae_loss, screen.run_state.reason
            # The sweep's two runs train as one bank: both have started, the view shows the first, and
            # says they train together.
            title = lambda: str(screen.query_one("#run-title", Static).render())  # noqa: E731
            assert title().startswith("run 1/2 (2 train together)  tiny-k4")
            # No run has ended yet: the run's ETA is its SAE phase's time left, a bound (an evaluation
            # follows), and the sweep's counts the bank's steps.
            eta = lambda: str(screen.query_one("#eta", Label).render())  # noqa: E731
            await wait_for(pilot, lambda: "run ≥" in eta() and "sweep ~" in eta(), timeout=60)
            assert "s" in footer_keys(app)
            # s names what it stops and asks: keeping on is the first choice (Enter by habit stops nothing).
            await pilot.press("s")
            await pilot.pause()
            dialog = app.screen
            assert "Stop the 2 runs training together (tiny-k4, tiny-k8)?" in str(
                dialog.query_one("#choose-title", Static).render())
            await pilot.press("enter")
            await pilot.pause(0.5)
            assert app.screen is screen and app.training.running and not app.training.stop_event.is_set()
            await pilot.press("s")
            await pilot.pause()
            await pilot.press("down", "enter")  # stop now
            await wait_for(pilot, lambda: not app.training.running, timeout=60)
            await pilot.pause(2 / REDRAW_HZ)
            state = screen.run_state
            assert state.status == "stopped" and state.name == "tiny-k4"
            assert len(state.sae_loss) < 2000
            assert load_run(state.run_dir).summary["status"] == "stopped"
            # An ended run shows no progress, no ETA and no stop control: it says how far it got.
            assert "[stopped]  SAE epoch " in title() and "evaluated as it stood" in title()
            assert not screen.query_one("#stop", Button).display and not screen.query_one("#bar").display
            assert str(screen.query_one("#eta", Label).render()) == "" and "s" not in footer_keys(app)
            vae_chart = screen.query_one("#vae-loss", LineChart)
            if not state.vae_loss:  # the VAE was loaded from models_dir (an earlier test trained it)
                assert not vae_chart.series and "not trained in this run" in vae_chart.empty
            # The stop ended both runs of the bank, each kept as stopped and recorded in the sweep.
            assert [s.status for s in app.training.states] == ["stopped", "stopped"]
            names = sorted(Path(s.run_dir).name for s in app.training.states)
            assert sorted(Path(r.path).name for r in list_runs(tmp_path / "runs")) == names
            assert all(load_run(Path(s.run_dir)).summary["status"] == "stopped" for s in app.training.states)
            (sweep_dir,) = (tmp_path / "runs" / "sweeps").iterdir()
            assert sorted(p.name for p in sweep_run_dirs(sweep_dir)) == names
            # [ and ] move between the two runs, each with its own panels.
            await pilot.press("]")
            await pilot.pause()
            assert title().startswith("run 2/2  tiny-k8") and screen.run_state.name == "tiny-k8"
            assert screen.run_state.sae_loss and screen.run_state.status == "stopped"
            await pilot.press("]")  # already the last: stays
            await pilot.pause()
            assert title().startswith("run 2/2")
            await pilot.press("[")
            await pilot.pause()
            assert title().startswith("run 1/2  tiny-k4") and screen.selected is None

    asyncio.run(scenario())


def test_quitting_mid_run_stops_it_and_keeps_it(tmp_path, models_dir):
    data = tiny_config(tmp_path, models_dir=str(models_dir), sae={"epochs": 2000}, eval={"every": 0})

    async def scenario():
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.screen.set_values(data)
            await pilot.pause()
            await pilot.press("ctrl+g")
            await pilot.pause()
            feed = app.training
            await wait_for(pilot, lambda: feed.current.sae_loss or not feed.running, timeout=120)
            assert feed.running, "the run ended before it could be quit"
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: not feed.running, timeout=60)
            await pilot.pause(0.5)
            return feed

    feed = asyncio.run(scenario())
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and load_run(runs[0]).summary["status"] == "stopped"
    assert feed.stop_event.is_set()


# --------------------------------------------------------------------------- follow

FOLLOWER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from collapse_tui.store import RunWriter
from tests.tui.support import run_events
tmp, run_dir = Path({tmp!r}), Path({run_dir!r})
run_dir.mkdir(parents=True)
events = run_events(tmp, run_dir, "followed", epochs=4, n_neurons=12)
writer = RunWriter(run_dir)
cut = [i for i, e in enumerate(events) if e.kind == "evaluation" and getattr(e, "epoch", 0) == 2][0] + 1
for e in events[:cut]:
    writer(e)
(tmp / "half").touch()
while not (tmp / "go").exists():
    time.sleep(0.02)
for e in events[cut:]:
    writer(e)
    time.sleep(0.01)
writer.close()
"""


def test_follow_a_run_another_process_is_writing(tmp_path):
    run_dir = tmp_path / "runs" / "20260101-120000-followed"
    script = tmp_path / "writer.py"
    script.write_text(FOLLOWER.format(repo=str(REPO), tmp=str(tmp_path), run_dir=str(run_dir)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "half").exists():
            assert proc.poll() is None, "writer process died"
            assert time.monotonic() < deadline
            time.sleep(0.02)

        async def scenario():
            app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
            async with app.run_test(size=SIZE) as pilot:
                await open_runs_screen(pilot)
                runs = app.screen
                assert isinstance(runs, RunsScreen)
                assert runs.values[run_dir.name]["status"] == "running"
                await pilot.press("enter")
                await pilot.pause()
                screen = app.screen
                assert isinstance(screen, RunScreen) and not screen.feed.live
                await wait_for(pilot, lambda: screen.run_state.evaluations, timeout=10)
                assert screen.run_state.status == "running"
                assert [e for e, _ in screen.run_state.evaluations] == [1, 2]
                assert not screen.query_one("#stop").display  # a followed run is stopped where it runs
                (tmp_path / "go").touch()
                await wait_for(pilot, lambda: screen.run_state.finished, timeout=30)
                await pilot.pause(2 / REDRAW_HZ)
                assert screen.run_state.status == "ok"
                # Loss and reconstruction per step (3 points an epoch), the sparsity term (no step points) per epoch.
                assert [len(s.xs) for s in screen.query_one("#sae-loss", LineChart).series] == [12, 12, 4]
                await pilot.press("2")
                await pilot.pause()
                assert screen.query_one("#dead-chart", LineChart).series[0].xs == [1, 2, 3, 4]

        asyncio.run(scenario())
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


# --------------------------------------------------------------------------- runs and compare


def row_ids(table: DataTable) -> list[str]:
    return [table.coordinate_to_cell_key((r, 0)).row_key.value for r in range(table.row_count)]


def test_runs_table_sorts_filters_and_lists_unreadable_runs(tmp_path):
    runs = make_runs(tmp_path)

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            await open_runs_screen(pilot)
            screen = app.screen
            table = screen.query_one("#runs", DataTable)
            assert table.row_count == 5
            assert screen.values[runs["broken"].name]["status"] == "unreadable"
            # Newest first by default.
            assert row_ids(table)[0] == runs["broken"].name
            # Final dead %: k8 10%, failed run 13.3% (2 of 6 epochs), k2 50%, l1 70%; unreadable last.
            screen.sort_by("dead %")
            await pilot.pause()
            expected = [runs[k].name for k in ("k8", "failed", "k2", "l1", "broken")]
            assert row_ids(table) == expected
            screen.sort_by("dead %")  # again: descending, missing values still last
            await pilot.pause()
            assert row_ids(table) == [runs[k].name for k in ("l1", "k2", "failed", "k8", "broken")]
            # Clicking a header sorts by it.
            await pilot.click("#runs", offset=(5, 0))
            await pilot.pause()
            assert screen.sort_column == "run"
            assert row_ids(table)[:2] == [runs["broken"].name, runs["l1"].name]  # "broken" < "quick-…"
            screen.query_one("#filter", Input).focus()
            await pilot.press(*"topk")
            await pilot.pause()
            assert sorted(row_ids(table)) == sorted([runs["k8"].name, runs["k2"].name])
            await pilot.press(*" k2")
            await pilot.pause()
            assert row_ids(table) == [runs["k2"].name]

    asyncio.run(scenario())


def test_compare_two_runs_and_export(tmp_path):
    runs = make_runs(tmp_path)
    export_dir = tmp_path / "exports"
    # A dataset described at length, as real data sources are: the column of all keys must stay narrow.
    for key in ("k2", "k8"):
        config = yaml.safe_load((runs[key] / "config.yaml").read_text())
        config["data_source"] = {"description": "procedural dSprites, " + "rendered on the fly; " * 11}
        (runs[key] / "config.yaml").write_text(yaml.safe_dump(config))

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            await open_runs_screen(pilot)
            runs_screen = app.screen
            runs_screen.sort_by("run")
            await pilot.pause()
            # Rows: broken, quick-l1-lam0.3, quick-l1-lam9, quick-topk-k2, quick-topk-k8.
            await pilot.press("down", "down", "down", "space", "down", "space")
            assert runs_screen.marked == [runs["k2"].name, runs["k8"].name]
            await pilot.press("c")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, CompareScreen)
            config_table = screen.query_one("#cmp-config", DataTable)
            keys = [config_table.get_row_at(r)[0] for r in range(config_table.row_count)]
            assert keys == ["name", "sae.k"]  # all else is equal
            # Under the tables: the highlighted row of the tab in view (not the last table filled).
            assert str(screen.query_one("#cmp-detail", Static).render()).startswith("name: Run name")
            assert config_table.get_row_at(1)[1:] == ["2", "8"]
            await pilot.press("a")
            await pilot.pause()
            assert config_table.row_count > 20 and not screen.only_differing
            # Both runs' columns fit on the screen beside the keys; the long description is cut short.
            described = next(r for r in range(config_table.row_count)
                             if config_table.get_row_at(r)[0] == "data_source.description")
            assert all(v.endswith("…") for v in config_table.get_row_at(described)[1:])
            assert sum(c.get_render_width(config_table) for c in config_table.columns.values()) <= SIZE[0]
            await pilot.press("a")
            await pilot.pause()
            # Under the tables, what the highlighted row means: a setting from the schema, a metric from
            # its spec; the key column stays in view when the runs' columns scroll.
            detail = lambda: str(screen.query_one("#cmp-detail", Static).render())  # noqa: E731
            assert config_table.fixed_columns == 1
            config_table.move_cursor(row=1)
            await pilot.pause()
            assert detail().startswith("sae.k: ") and len(detail()) > len("sae.k: ") + 10
            screen.action_tab("metrics")
            await pilot.pause()
            metrics_table = screen.query_one("#cmp-metrics", DataTable)
            labels = [metrics_table.get_row_at(r)[0] for r in range(metrics_table.row_count)]
            metrics_table.focus()
            metrics_table.move_cursor(row=labels.index("EV"))
            await pilot.pause()
            assert detail().startswith("EV: ") and "variance" in detail()
            # Overlaid curves: one series per run, in the run's colour.
            dead = screen.query_one("#cmp-dead", LineChart).series
            assert [s.label for s in dead] == ["quick-topk-k2", "quick-topk-k8"]
            assert dead[0].color != dead[1].color
            # In percent, as the runs table and every results table show dead neurons.
            assert dead[0].ys[-1] == pytest.approx(50.0) and dead[1].ys[-1] == pytest.approx(10.0)
            # The loss per step where the runs recorded it (three points an epoch), from the first third.
            loss = screen.query_one("#cmp-loss", LineChart).series
            assert len(loss[0].xs) == 18 and loss[0].xs[0] == pytest.approx(1 / 3)
            # The chart keys change every curve at once; 0 puts them back.
            screen.action_tab("curves")
            await pilot.press("e", "l", "full_stop", "plus")
            await pilot.pause()
            views = {chart.view for chart in screen.query(LineChart)}
            assert len(views) == 1
            (view,) = views
            assert (view.smoothing, view.log_y, view.cursor, view.zoom) == (0.6, True, 1.0, 2.0)
            footer = screen.query_one("#cmp-dead", LineChart).render().plain.split("\n")[-1]
            # Each run's smoothed value at the cursor (the newest point).
            assert all(f"{line_glyph(i)} {format_number(smoothed(s.ys, 0.6)[-1])}" in footer
                       for i, s in enumerate(dead))
            await pilot.press("0")
            assert all(chart.view == ChartView() for chart in screen.query(LineChart))
            screen.action_tab("config")
            await pilot.pause()
            screen.query_one("#export-dir", Input).value = str(export_dir)
            md = screen.export("md")
            text = md.read_text()
            assert "| sae.k | 2 | 8 |" in text
            # Dead neurons read as percentages, as in every table.
            assert "| dead % @0 | 50.0 | 10.0 |" in text
            rows = list(csv.DictReader(io.StringIO(screen.export("csv").read_text())))
            assert [r["run_id"] for r in rows] == [runs["k2"].name, runs["k8"].name]
            assert [float(r["dead_pct"]) for r in rows] == [50.0, 10.0]
            assert [r["sae.k"] for r in rows] == ["2", "8"]
            screen.action_export("md")  # its toast ("wrote …") must not be in the next picture
            await pilot.pause()
            svg = screen.export("svg")
            assert svg.read_text().lstrip().startswith("<svg") and "quick-topk-k2" in svg.read_text()
            assert "wrote" not in svg.read_text()
            assert [p.parent for p in (md, svg)] == [export_dir] * 2 and md.name.startswith("compare-")

    asyncio.run(scenario())


def swept_runs(tmp_path):
    """make_runs' runs, three of them (k8, k2, l1, in that order) recorded by a sweep: (runs, its recorder)."""
    from collapse_tui.engine.sweep import SweepRecorder

    runs = make_runs(tmp_path)
    recorder = SweepRecorder(tmp_path / "runs", "quick", n_runs=3)
    for key in ("k8", "k2", "l1"):
        recorder.add(runs[key])
    return runs, recorder


def test_compare_opens_first_on_the_runs_of_a_sweep(tmp_path):
    from collapse_tui import cli

    runs, recorder = swept_runs(tmp_path)

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"), compare=cli.compared_runs([str(recorder.path)]))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, CompareScreen)
            dead = screen.query_one("#cmp-dead", LineChart).series
            assert [s.label for s in dead] == ["quick-topk-k8", "quick-topk-k2", "quick-l1-lam0.3"]
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, ConfigureScreen)

    asyncio.run(scenario())


def test_runs_group_by_sweep_and_a_sweep_shows_its_results_table(tmp_path):
    from collapse_tui.tui.screens.runs import SWEEP_ROW
    from collapse_tui.tui.screens.sweep import SweepScreen

    runs, recorder = swept_runs(tmp_path)

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            await open_runs_screen(pilot)
            screen = app.screen
            label = screen.values[runs["k8"].name]["sweep"]
            assert label.startswith("quick·") and screen.values[runs["failed"].name]["sweep"] is None
            await pilot.press("g")  # a list of settings to group by: none, sweep, ...
            await pilot.pause()
            await pilot.press("down", "enter")
            await pilot.pause()
            table = screen.query_one("#runs", DataTable)
            keys = row_ids(table)
            header = SWEEP_ROW + str(recorder.path)
            assert keys[0] == header and sorted(keys[1:4]) == sorted(runs[k].name for k in ("k8", "k2", "l1"))
            assert keys[4] == SWEEP_ROW and len(keys) == 7  # then the two runs in no sweep
            table.move_cursor(row=0)
            await pilot.press("space")  # on the sweep's header: folded
            await pilot.pause()
            assert row_ids(table)[:2] == [header, SWEEP_ROW]
            await pilot.press("enter")  # its results table
            await pilot.pause()
            sweep = app.screen
            assert isinstance(sweep, SweepScreen)
            assert sweep.columns[:4] == ["dataset", "method", "remedy", "k / λ"]
            assert [cells[3] for cells in sweep.texts] == ["k=2", "k=8", "λ=0.3"]  # the table's own order
            dead = next(c for c in sweep.columns if c.startswith("dead %"))
            sweep.sort_by(dead)  # k8 10%, k2 50%, l1 70%
            await pilot.pause()
            assert [sweep.texts[i][3] for i in sweep.order()] == ["k=8", "k=2", "λ=0.3"]
            sweep.sort_by(dead)
            assert [sweep.texts[i][3] for i in sweep.order()] == ["λ=0.3", "k=2", "k=8"]
            await pilot.press("enter")  # the top row has one seed: its run
            await pilot.pause()
            assert isinstance(app.screen, RunScreen) and app.screen.run_state.name == "quick-l1-lam0.3"

    asyncio.run(scenario())


def test_delete_asks_first(tmp_path):
    run = make_run(tmp_path, "victim")
    make_run(tmp_path, "keeper", stamp="20260101-110000")

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            await open_runs_screen(pilot)
            screen = app.screen
            assert screen.selected_id() == run.name  # newest first
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            assert app.focused.id == "no"
            await pilot.press("enter")  # Enter answers the focused button: no
            await pilot.pause()
            assert run.exists() and not isinstance(app.screen, ConfirmScreen)
            await pilot.press("d")
            await pilot.pause()
            await pilot.press("n")
            await pilot.pause()
            assert run.exists()
            await pilot.press("d")
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
            assert not run.exists()
            assert row_ids(screen.query_one("#runs", DataTable)) == ["20260101-110000-keeper"]

    asyncio.run(scenario())


def test_help_screen_and_palette_commands(tmp_path):
    async def scenario():
        app = make_app(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("f1")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await pilot.pause()
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert {"Configure", "Runs", "Live run", "Start", "Save as YAML"} <= set(titles)
            await pilot.press("f4")  # nothing running: a notice, no crash
            await pilot.pause()
            assert isinstance(app.screen, ConfigureScreen)

    asyncio.run(scenario())


def test_palette_screenshot_is_saved_in_the_runs_dir(tmp_path):
    # Textual's default target (~/Downloads) is often missing on a server; the runs dir is not.
    runs = tmp_path / "runs"

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(runs))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.deliver_screenshot(filename="shot.svg")
            await wait_for(pilot, lambda: (runs / "shot.svg").exists(), timeout=10)
            await pilot.pause()
            text = (runs / "shot.svg").read_text()
            assert text.startswith("<svg") and "valid" in text

    asyncio.run(scenario())


def test_a_stopped_run_is_resumed_from_the_runs_screen(tmp_path, monkeypatch):
    from collapse_tui.engine import bank_phase
    from collapse_tui.engine.runner import Engine

    stop = threading.Event()
    after = bank_phase.BankPhase.after_epoch

    def stopping(self, epoch, logs, seconds, **kwargs):
        after(self, epoch, logs, seconds, **kwargs)
        if epoch + 1 == 2:
            stop.set()

    monkeypatch.setattr(bank_phase.BankPhase, "after_epoch", stopping)
    cut = Engine(stop).run(config_mod.validate(tiny_config(tmp_path, sae={"epochs": 4})))
    monkeypatch.undo()
    assert cut.status == "stopped"

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            await open_runs_screen(pilot)
            assert app.screen.selected_id() == cut.run_dir.name
            await pilot.press("u")
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), timeout=60)
            # Its history is there at once, from the first epoch, before the engine says anything new.
            screen = app.screen
            assert [e for e, _ in screen.run_state.sae_loss][:2] == [1, 2]
            await wait_for(pilot, lambda: app.training is not None and app.training.finished, timeout=120)
            assert isinstance(app.screen, RunScreen) and app.screen.run_state.status == "ok"
            # Each epoch once: the file's history and the live events do not overlap.
            assert [e for e, _ in screen.run_state.sae_loss] == [1, 2, 3, 4]

    asyncio.run(scenario())
    record = load_run(cut.run_dir)
    assert record.status == "ok" and record.summary["sae_epochs"] == 4 and len(record.summary["resumed"]) == 1
