"""A backend that is installed but cannot load (a broken jaxlib, a torch built for another CPU) stops
nothing but the start: pressing Start or resume says why in one line, and the TUI stays up."""

from __future__ import annotations

import asyncio

from collapse_tui.tui import app as app_module
from tests.tui.support import make_app, make_run
from tests.tui.test_resume_lock import SIZE, press_u_on_the_run, resumed_engines


def test_a_backend_that_cannot_load_is_one_line_and_the_tui_stays_up(tmp_path, monkeypatch):
    make_run(tmp_path, "quick-topk-k8", status="stopped")
    calls = resumed_engines(monkeypatch)

    def broken():
        raise ImportError("libjax.so: cannot open shared object file:\n  No such file or directory")

    monkeypatch.setattr(app_module, "load_keras", broken)
    monkeypatch.setenv("KERAS_BACKEND", "jax")

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            await press_u_on_the_run(app, pilot)
            shown = [n.message for n in app._notifications]
            assert ("Keras cannot load its backend (jax): libjax.so: cannot open shared object file: No such "
                    "file or directory") in shown, shown
            assert app.training is None and app.is_running

    asyncio.run(scenario())
    assert calls == []  # nothing trained
