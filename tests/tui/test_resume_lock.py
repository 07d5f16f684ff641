"""The runs screen's ``u`` resumes a run as ``--resume`` does: holding the run's resume lock while it
trains, and refusing in one line, naming the process, when another process holds it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from collapse_tui.store import EVENTS_FILE, layout, load_run
from tests.tui.support import make_app, make_run, wait_for

REPO = Path(__file__).resolve().parents[2]
SIZE = (100, 30)
HOLDER = ("import sys, time\nfrom collapse_tui.store import only_writer\n"
          "with only_writer(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)")


def resumed_engines(monkeypatch) -> list:
    """Replace the engine's resume with one that records what held the run's lock while it 'trained'."""
    from collapse_tui.engine.runner import Engine

    calls = []

    def resume(self, plans, listeners):
        calls.append([(Path(plan[0]) / layout.RESUME_LOCK).read_text() for plan in plans])
        return []

    monkeypatch.setattr(Engine, "resume", resume)
    return calls


async def press_u_on_the_run(app, pilot) -> None:
    await pilot.pause()
    await pilot.press("f3")
    await pilot.pause()
    await pilot.press("u")
    await pilot.pause()


def test_u_refuses_a_run_another_process_is_resuming_and_trains_nothing(tmp_path, monkeypatch):
    run_dir = make_run(tmp_path, "quick-topk-k8", status="stopped")
    events = (run_dir / EVENTS_FILE).read_bytes()
    calls = resumed_engines(monkeypatch)
    lock = run_dir / layout.RESUME_LOCK
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"

        async def scenario():
            app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
            async with app.run_test(size=SIZE) as pilot:
                await press_u_on_the_run(app, pilot)
                shown = [n.message for n in app._notifications]
                assert f"cannot resume: {run_dir} is being resumed by process {holder.pid}" in shown, shown
                assert app.training is None and app.is_running

        asyncio.run(scenario())
    finally:
        holder.kill()
        holder.wait()
    assert calls == [] and (run_dir / EVENTS_FILE).read_bytes() == events
    assert load_run(run_dir).status == "stopped"


def test_u_holds_the_runs_lock_while_it_trains_and_lets_go_after(tmp_path, monkeypatch):
    run_dir = make_run(tmp_path, "quick-topk-k8", status="stopped")
    calls = resumed_engines(monkeypatch)

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            await press_u_on_the_run(app, pilot)
            await wait_for(pilot, lambda: app.training is not None and app.training.finished, timeout=120)

    asyncio.run(scenario())
    assert calls == [[str(os.getpid())]]  # held by this process while the engine ran
    assert (run_dir / layout.RESUME_LOCK).read_text() == ""  # and let go when it ended
    # Free again: another process may now take it.
    out = subprocess.run([sys.executable, "-c", HOLDER.replace("time.sleep(120)", "pass"),
                          str(run_dir / layout.RESUME_LOCK)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "held", out.stderr[-2000:]
