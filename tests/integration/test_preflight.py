"""One pre-flight (collapse_tui.engine.preflight) for every front end: each problem it finds is one line,
and --batch, --resume and the terminal UI's Start refuse the same bad setting with that same line, before
any run starts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from collapse_tui import cli
from collapse_tui import config as config_mod
from collapse_tui.engine import distribution, ray_sweep
from collapse_tui.engine.preflight import preflight
from collapse_tui.engine.ray_sweep import RAY_MISSING, RayOptions
from tests.helpers import tiny_config, write_config
from tests.tui.support import make_app, make_run, wait_for

TORCH_COMPILE = "COLLAPSE_TUI_TORCH_COMPILE"
BAD_TORCH_COMPILE = f"{TORCH_COMPILE} must be auto, on or off, got 'sometimes'"


def configs(tmp_path: Path, n: int = 1, **sections) -> list[config_mod.RunConfig]:
    cfg = config_mod.validate(tiny_config(tmp_path, **sections))
    return [cfg if n == 1 else cfg.model_copy(update={"name": f"tiny-{i}"}) for i in range(n)]


def a_file(path: Path) -> Path:
    path.write_text("a file, not a directory")
    return path


# Each case: what to set up (given tmp_path and monkeypatch), returning preflight's arguments; the lines
# expected (a function of tmp_path).
CASES = {
    "nothing wrong": (lambda tmp, mp: dict(configs=configs(tmp)), lambda tmp: []),
    "a large sweep": (
        lambda tmp, mp: dict(configs=configs(tmp, n=config_mod.LARGE_SWEEP + 1)),
        lambda tmp: ["the sweep expands to 1,001 runs; check it with --dry-run, then pass --yes to run them all"]),
    "a large sweep, confirmed": (
        lambda tmp, mp: dict(configs=configs(tmp, n=config_mod.LARGE_SWEEP + 1), large_sweep_confirmed=True),
        lambda tmp: []),
    "data_parallel that does not split": (
        lambda tmp, mp: (mp.setattr(distribution, "_backend_problem", lambda: None),
                         mp.setattr(distribution, "local_devices", lambda: ["cpu:0", "cpu:1"]),
                         dict(configs=configs(tmp, data_parallel=True, vae={"batch_size": 33})))[-1],
        lambda tmp: ["data_parallel: vae.batch_size 33 is not a multiple of the 2 devices (cpu:0, cpu:1) that "
                     "each batch is split across"]),
    "a bad torch compile setting": (
        lambda tmp, mp: (mp.setenv(TORCH_COMPILE, "sometimes"), dict(configs=configs(tmp)))[-1],
        lambda tmp: [BAD_TORCH_COMPILE]),
    "bad Ray options": (
        lambda tmp, mp: dict(configs=configs(tmp), ray=RayOptions(cpus=0, max_retries=-1)),
        lambda tmp: ["cannot run on Ray: --ray-cpus must be > 0, got 0; --ray-retries must be ≥ 0, got -1"]),
    "Ray missing": (
        lambda tmp, mp: (mp.setattr(ray_sweep, "ray_available", lambda: False),
                         dict(configs=configs(tmp), ray=RayOptions()))[-1],
        lambda tmp: [f"cannot run on Ray: {RAY_MISSING}"]),
    "runs_dir is a file": (
        lambda tmp, mp: (a_file(tmp / "runs"), dict(configs=configs(tmp)))[-1],
        lambda tmp: [f"cannot write runs: {tmp / 'runs'} is not a directory"]),
    "models_dir is a file": (
        lambda tmp, mp: (a_file(tmp / "models"), dict(configs=configs(tmp)))[-1],
        lambda tmp: [f"cannot write runs: {tmp / 'models'} is not a directory"]),
    # A resumed run writes in its own directory: that is checked, not its runs_dir.
    "a resumed run's directory is a file": (
        lambda tmp, mp: (a_file(tmp / "runs"),
                         dict(configs=[], resume=[(a_file(tmp / "run"), configs(tmp)[0], None)]))[-1],
        lambda tmp: [f"cannot write runs: {tmp / 'run'} is not a directory"]),
    "several problems, each its line": (
        lambda tmp, mp: (mp.setenv(TORCH_COMPILE, "sometimes"),
                         dict(configs=configs(tmp, n=config_mod.LARGE_SWEEP + 1), ray=RayOptions(gpus=-1)))[-1],
        lambda tmp: ["the sweep expands to 1,001 runs; check it with --dry-run, then pass --yes to run them all",
                     BAD_TORCH_COMPILE, "cannot run on Ray: --ray-gpus must be ≥ 0, got -1"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_preflight_says_each_problem_in_one_line(tmp_path, monkeypatch, case):
    monkeypatch.delenv(TORCH_COMPILE, raising=False)
    setup, expected = CASES[case]
    kwargs = setup(tmp_path, monkeypatch)
    problems = preflight(kwargs.pop("configs"), **kwargs)
    assert problems == expected(tmp_path)
    assert all("\n" not in line for line in problems)
    if not problems:  # the directories runs will write are there (created)
        assert (tmp_path / "runs").is_dir() and (tmp_path / "models").is_dir()
    elif not any(line.startswith("cannot write runs") for line in problems):
        assert not (tmp_path / "runs").exists(), "a refused start must leave nothing behind"


# ----------------------------------------------------------------------------- the same refusal everywhere

BAD = {  # a bad setting, set up in tmp_path; the line every front end refuses it with
    "torch compile": (lambda tmp, mp: mp.setenv(TORCH_COMPILE, "sometimes"), lambda tmp: BAD_TORCH_COMPILE),
    "models_dir": (lambda tmp, mp: a_file(tmp / "models"),
                   lambda tmp: f"cannot write runs: {tmp / 'models'} is not a directory"),
}


def refused_by_batch(tmp_path: Path, capsys) -> str:
    path = write_config(tmp_path, tiny_config(tmp_path))
    assert cli.main(["--batch", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and not list((tmp_path / "runs").glob("*-tiny"))
    return err.removeprefix("collapse-tui: ")


def refused_by_resume(tmp_path: Path, capsys) -> str:
    run_dir = make_run(tmp_path, "cut", status="stopped")
    before = (run_dir / "events.jsonl").read_bytes()
    assert cli.main(["--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "resuming" not in err
    assert (run_dir / "events.jsonl").read_bytes() == before  # not started
    return err.removeprefix("collapse-tui: ")


def refused_by_the_tui(tmp_path: Path, capsys) -> str:
    pytest.importorskip("textual")
    from textual.widgets import Static

    from collapse_tui.tui.screens.configure import ConfigureScreen

    shown = []

    async def scenario():
        app = make_app(tmp_path)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            screen = app.screen
            screen.set_values(tiny_config(tmp_path))
            await pilot.pause()
            assert screen.validate_form()  # the form's schema has nothing against it
            await pilot.click("#start")
            status = screen.query_one("#cfg-status", Static)
            await wait_for(pilot, lambda: "cannot start" in str(status.render()), timeout=30)
            assert isinstance(app.screen, ConfigureScreen) and app.training is None  # not started
            assert status.has_class("invalid")
            shown.append(str(status.render()))

    asyncio.run(scenario())
    assert not list((tmp_path / "runs").glob("*-tiny"))
    return shown[0].removeprefix("✗ cannot start: ")


@pytest.mark.parametrize("front_end", [refused_by_batch, refused_by_resume, refused_by_the_tui],
                         ids=["batch", "resume", "tui"])
@pytest.mark.parametrize("bad", list(BAD))
def test_every_front_end_refuses_a_bad_setting_with_the_same_line(tmp_path, monkeypatch, capsys, bad, front_end):
    monkeypatch.delenv(TORCH_COMPILE, raising=False)
    setup, line = BAD[bad]
    setup(tmp_path, monkeypatch)
    assert front_end(tmp_path, capsys) == line(tmp_path)


def test_the_tui_asks_before_starting_a_large_sweep_where_batch_wants_yes(tmp_path):
    pytest.importorskip("textual")
    from textual.widgets import TextArea

    from collapse_tui.tui.screens.configure import ConfigureScreen
    from collapse_tui.tui.screens.runs import ConfirmScreen

    async def scenario():
        app = make_app(tmp_path)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            screen = app.screen
            screen.set_values(tiny_config(tmp_path))
            screen.query_one("#sweep", TextArea).text = f"seed: {list(range(config_mod.LARGE_SWEEP + 1))}\n"
            await pilot.pause()
            assert screen.n_runs == config_mod.LARGE_SWEEP + 1
            await pilot.click("#start")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=30)
            assert "1,001 runs" in app.screen.question
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfigureScreen), timeout=30)
            assert app.training is None

    asyncio.run(scenario())
    assert not list((tmp_path / "runs").glob("*-tiny*"))
