"""Every reader of a run's events stays up on a run whose event lines hold fields of the wrong type: the
sweep's table (``--table``), the live view (``--follow``, a run or its sweep) and resume planning
(``--resume``). Each damaged line is left out with one warning; the rest of the run is read."""

from __future__ import annotations

import asyncio
import json

import pytest

from collapse_tui import cli
from collapse_tui.engine.runner import resume_plan
from collapse_tui.store import EVENTS_FILE, SweepWriter, read_events
from collapse_tui.tui.screens.run import RunScreen
from tests.tui.support import make_app, make_run

# One damaged field a line, of each kind a user met: (event type, field, value of another kind).
# The run's first and last events are whole: the run is still seen to start and to stop.
DAMAGE = [("evaluation", "metrics", 5), ("epoch_end", "epoch", "x"), ("progress", "logs", {"loss": "x"}),
          ("phase_started", "time", "soon"), ("progress", "done", None), ("epoch_end", "seconds", [1.0])]


@pytest.fixture()
def sweep(tmp_path):
    """A stopped run in a sweep, its events damaged once for each of :data:`DAMAGE`."""
    run_dir = make_run(tmp_path, "quick-topk-k2", status="stopped", epochs=3, n_neurons=12, sparsity=2)
    recorder = SweepWriter(tmp_path / "runs", "quick", n_runs=1)
    recorder.add(run_dir)
    lines = [json.loads(line) for line in (run_dir / EVENTS_FILE).read_text().splitlines()]
    damaged: set[int] = set()
    for kind, field, value in DAMAGE:  # each on a line of its own
        index = next(i for i, line in enumerate(lines) if line["type"] == kind and i not in damaged)
        lines[index][field] = value
        damaged.add(index)
    (run_dir / EVENTS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return recorder.path, run_dir


def warnings_of(messages) -> list[str]:
    return [m for m in messages if "left out a damaged" in m]


def test_the_table_and_resume_planning_read_a_run_with_damaged_events(sweep, capsys):
    sweep_dir, run_dir = sweep
    events, _ = read_events(run_dir)
    assert len(warnings_of([e.text for e in events if e.kind == "message"])) == len(DAMAGE)
    assert cli.main(["--table", str(sweep_dir)]) == 0
    assert cli.main(["--table", str(run_dir.parent), "--format", "csv"]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err and out.out.count("\n") > 2
    planned_dir, config, checkpoint = resume_plan(run_dir)
    assert planned_dir == run_dir and config.name == "quick-topk-k2" and checkpoint is None


@pytest.mark.parametrize("followed", ["run", "sweep"])
def test_following_a_run_with_damaged_events_shows_the_rest_and_says_what_it_left_out(sweep, tmp_path, followed):
    sweep_dir, run_dir = sweep

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"), follow=str(run_dir if followed == "run" else sweep_dir))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            for tab in "123":
                await pilot.press(tab)
                await pilot.pause()
            assert app.is_running and isinstance(app.screen, RunScreen)
            state = app.screen.run_state
            assert state.status == "stopped" and len(warnings_of(state.messages)) == len(DAMAGE)

    asyncio.run(scenario())
