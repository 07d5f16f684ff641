"""An event line that is valid JSON and names a known event but holds a field of the wrong type
(``"metrics": 5``, ``"epoch": "x"``, a loss that is text) is left out, with a warning, wherever the TUI
reads a run's events: the run screen's panels and the compare screen draw the rest, never crash."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapse_tui.store import EVENTS_FILE, load_run
from collapse_tui.tui.event_checks import read_run_events
from collapse_tui.tui.screens.compare import CompareScreen
from collapse_tui.tui.screens.run import RunScreen
from collapse_tui.tui.feeds import FileFeed
from collapse_tui.tui.widgets.charts import render_heatmap, render_histogram, render_line_chart
from tests.tui.support import make_app, make_run, make_runs

SIZE = (100, 30)


class Drawn:
    """Stands in for every widget a screen updates, and draws what it is given as the widget would."""

    content = ""
    title = ""

    def set_series(self, series, empty=""):
        render_line_chart(series, 60, 12)

    def set_histogram(self, counts, left="", right="", subtitle=""):
        render_histogram(counts, 40, 10)

    def set_matrix(self, nmi, factors, best_factor, dead):
        render_heatmap(nmi, factors, best_factor, dead, 60, 12)

    def update(self, *args, **kwargs):
        pass


def draw_run_screen(run_dir: Path) -> RunScreen:
    """Follow ``run_dir`` and draw every panel of every run it holds, at every threshold."""
    screen = RunScreen(FileFeed(run_dir))
    screen.query_one = lambda *args, **kwargs: Drawn()
    screen.feed.poll()
    for position in range(len(screen.feed.states)):
        screen.selected = position
        state = screen.run_state
        for _ in range(max(1, len(state.thresholds))):
            screen._update_head(state)
            screen._update_loss(state)
            screen._update_dead(state)
            screen._update_mig(state)
            screen.threshold_index += 1
    return screen


def draw_compare_screen(*run_dirs: Path) -> CompareScreen:
    screen = CompareScreen([load_run(d) for d in run_dirs])
    screen.query_one = lambda *args, **kwargs: Drawn()
    screen.fill_curves()
    return screen


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A run whose events are damaged in each example, beside one that is left whole."""
    tmp = tmp_path_factory.mktemp("events")
    damaged = make_run(tmp, "quick-topk-k2", "20260101-120000", epochs=3, n_neurons=12)
    whole = make_run(tmp, "quick-topk-k8", "20260101-120100", epochs=3, n_neurons=12)
    lines = [json.loads(line) for line in (damaged / EVENTS_FILE).read_text().splitlines()]
    return damaged, whole, lines


def kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {int: "number", float: "number", str: "text", list: "list", dict: "object"}[type(value)]


def paths(value, prefix=(), depth=4):
    """Every place in an event's JSON a value sits, lists by their first and last item, to ``depth``."""
    if depth == 0:
        return
    keys = value.keys() if isinstance(value, dict) else sorted({0, len(value) - 1}) if isinstance(value, list) else ()
    for key in keys:
        if prefix == () and key == "type":
            continue
        yield prefix + (key,)
        yield from paths(value[key], prefix + (key,), depth - 1)


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4),
                        st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def damaged_lines(lines, index, path, value):
    line = json.loads(json.dumps(lines[index]))
    place = line
    for key in path[:-1]:
        place = place[key]
    place[path[-1]] = value
    return [*lines[:index], line, *lines[index + 1:]]


def write(run_dir: Path, lines) -> None:
    (run_dir / EVENTS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_field_of_the_wrong_type_is_left_out_and_every_view_still_draws(runs, data):
    run_dir, whole, lines = runs
    index = data.draw(st.integers(0, len(lines) - 1), label="line")
    path = data.draw(st.sampled_from(list(paths(lines[index]))), label="path")
    original = lines[index]
    for key in path:
        original = original[key]
    value = data.draw(JSON_VALUES.filter(lambda v: kind(v) != kind(original)), label="value")
    try:
        write(run_dir, damaged_lines(lines, index, path, value))
        events, _ = read_run_events(run_dir)
        assert len(events) == len(lines)  # one event a line: the damaged one, or a warning in its place
        warnings = [e.text for e in events if e.kind == "message" and "left out a damaged" in e.text]
        if len(path) == 1 and None not in (original, value):  # a field of the event itself, of another kind
            assert len(warnings) == 1 and warnings[0].startswith(f"{run_dir / EVENTS_FILE}: left out a damaged ")
        draw_run_screen(run_dir)
        draw_compare_screen(whole, run_dir)
    finally:
        write(run_dir, lines)


@pytest.mark.parametrize("kind_, field, value", [
    ("evaluation", "metrics", 5), ("epoch_end", "epoch", "x"), ("progress", "logs", {"loss": "x"}),
    ("evaluation", "metrics", {"nmi": [[0.1, 0.2], [0.3]]}), ("run_started", "config", {"eval": {"thresholds": "x"}}),
])
def test_the_damage_users_met_is_left_out_with_a_warning(runs, kind_, field, value):
    run_dir, whole, lines = runs
    index = next(i for i, line in enumerate(lines) if line["type"] == kind_ and line.get("phase", "sae") == "sae")
    try:
        write(run_dir, damaged_lines(lines, index, (field,), value))
        screen = draw_run_screen(run_dir)
        assert any(f"left out a damaged {kind_} event (" in m for m in screen.run_state.messages)
        compared = draw_compare_screen(whole, run_dir)
        assert compared.runs[1].state.status == "ok"  # the rest of the run is read
    finally:
        write(run_dir, lines)


def test_compare_and_the_run_screen_stay_up_on_damaged_events(tmp_path):
    runs = make_runs(tmp_path)
    path = runs["k2"] / EVENTS_FILE
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    evaluation = next(i for i, line in enumerate(lines) if line["type"] == "evaluation" and line["phase"] == "sae")
    epoch_end = next(i for i, line in enumerate(lines) if line["type"] == "epoch_end" and line["phase"] == "sae")
    lines[evaluation]["metrics"], lines[epoch_end]["epoch"] = 5, "x"
    write(runs["k2"], lines)

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"), compare=[load_run(runs["k8"]), load_run(runs["k2"])])
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, CompareScreen)
            for tab in "123":
                await pilot.press(tab)
                await pilot.pause()
            assert app.is_running and isinstance(app.screen, CompareScreen)
            screen = app.open_run(runs["k2"])
            await pilot.pause()
            for tab in "123":
                await pilot.press(tab)
                await pilot.pause()
            assert app.is_running and app.screen is screen and screen.run_state.status == "ok"
            said = [m for m in screen.run_state.messages if "left out a damaged" in m]
            assert len(said) == 2 and str(path) in said[0]

    asyncio.run(scenario())
