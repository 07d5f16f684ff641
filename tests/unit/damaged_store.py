"""What the damaged-file tests of run and sweep directories share: a runs dir with a sweep (three finished
runs, one stopped, one planned and never started), copied fresh for each example, and the readers that
open its files, each checked for what a reader of a damaged file may do: read what was written, or
refuse in one line naming the file. Never a traceback, never a hang, never a number nobody wrote."""

from __future__ import annotations

import contextlib
import io
import shutil
import threading
from pathlib import Path

from collapse_tui import events as ev
from collapse_tui.store import RunWriter, SweepWriter, layout, list_runs, load_run
from tests.tui.support import run_events

STAMP = "20260101-1200"
SEEDS = (0, 1, 2)
DEAD = {0: 0.1, 1: 0.2, 2: 0.3}  # each finished run's final dead fraction, by seed
STOPPED_SEED, NEVER_STARTED_SEED = 3, 4
FINGERPRINT = "f00d" * 8


def run_name(seed: int) -> str:
    return f"{STAMP}{seed:02d}-tiny-s{seed}"


def _write_run(runs_dir: Path, seed: int, status: str) -> tuple[Path, dict]:
    run_dir = runs_dir / run_name(seed)
    run_dir.mkdir(parents=True)
    events = run_events(runs_dir.parent, run_dir, "tiny", sparsity=8, epochs=2, n_neurons=12,
                        dead_final=DEAD.get(seed, 0.5), status=status)
    started = events[0]
    started.config["seed"] = seed
    started.config["name"] = f"tiny-s{seed}"
    writer = RunWriter(run_dir)
    writer(started)
    writer(ev.DataSource(provenance={"dataset": "dsprites", "source": "procedural", "fingerprint": FINGERPRINT},
                         time=started.time))
    for event in events[1:]:
        writer(event)
    writer.close()
    return run_dir, dict(started.config)


def build_world(root: Path) -> Path:
    """``root/runs``: three ok runs (seeds 0-2), a stopped one (seed 3), and their sweep, whose plan
    holds a fifth run never started; the sweep's runs.jsonl and tables as its recorder writes them."""
    from collapse_tui.engine.sweep import SweepRecorder

    runs_dir = root / "runs"
    configs = []
    for seed in (*SEEDS, STOPPED_SEED):
        _, config = _write_run(runs_dir, seed, "ok" if seed in SEEDS else "stopped")
        configs.append(config)
    configs.append({**configs[0], "seed": NEVER_STARTED_SEED, "name": f"tiny-s{NEVER_STARTED_SEED}"})
    writer = SweepWriter(runs_dir, "tiny", config_path=str(root / "tiny.yaml"), n_runs=len(configs), plan=configs)
    for seed in (*SEEDS, STOPPED_SEED):
        writer.add(runs_dir / run_name(seed))
    SweepRecorder(runs_dir, "tiny", path=writer.path)  # runs.jsonl and the tables, as a sweep leaves them
    return runs_dir


def copy_world(template: Path, into: Path) -> tuple[Path, Path]:
    """A fresh copy of the world at ``template`` (a runs dir) in ``into``: (runs dir, sweep dir)."""
    runs_dir = into / "runs"
    shutil.copytree(template, runs_dir, symlinks=True)
    (sweep,) = layout.sweeps_dir(runs_dir).iterdir()
    return runs_dir, sweep


def one_line(message: str, *names: str) -> None:
    """A refusal: one line, naming one of ``names`` (a file's name) when any are given."""
    assert "\n" not in message, message
    assert "Traceback" not in message, message
    if names:
        assert any(name in message for name in names), f"{message!r} names none of {names}"


def within(seconds: float, work, *args):
    """``work(*args)``'s result, failing the test if it has not returned in ``seconds`` (a reader that
    opened a FIFO for reading, or reads /dev/zero without limit, would never return): it runs in a
    daemon thread, so a regression fails the test instead of hanging the suite."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = work(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{getattr(work, '__name__', work)} did not return within {seconds}s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def cli_table(*argv: str) -> tuple[int, str]:
    """``collapse-tui --table ...`` in this process: its exit status and everything it wrote."""
    from collapse_tui import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            status = cli.main(["--table", *map(str, argv)])
        except SystemExit as exc:
            status = exc.code
    return status, out.getvalue()


def check_table_readers(runs_dir: Path, sweep: Path, *names: str) -> None:
    """``--table`` on the runs dir and on the sweep: a table or one line; never a traceback."""
    for target, fmt in ((runs_dir, "csv"), (sweep, "csv"), (sweep, None)):
        status, text = cli_table(target, *(("--format", fmt) if fmt else ()))
        assert status in (0, 1, 2), text
        assert "Traceback" not in text, text


def check_run_readers(runs_dir: Path, original_settings: dict, *names: str) -> list:
    """Every run through :func:`load_run` and the runs listing, and the listing's table rows: a run is
    read as written or refused in one line naming one of ``names``; every row holds the original
    settings and only the (seed, dead fraction) pairs the finished runs wrote. Returns the records."""
    from collapse_tui.report import build_rows

    for seed in (*SEEDS, STOPPED_SEED):
        try:
            load_run(runs_dir / run_name(seed))
        except ValueError as exc:
            one_line(str(exc), *names)
    records = list_runs(runs_dir, include_unreadable=True)
    for record in records:
        if record.error:
            one_line(record.error, *names)
    rows, _ = build_rows(records)
    written = {(seed, run_name(seed)): DEAD[seed] for seed in SEEDS}
    for row in rows:
        assert row.sparsity == 8.0 and isinstance(row.dataset, str) and isinstance(row.method, str)
        assert row.settings == original_settings
        for seed, run_id, final in zip(row.seeds, row.run_ids, row.finals):
            assert (seed, run_id) in written, (seed, run_id)
            assert final.get("dead_fraction", written[seed, run_id]) == written[seed, run_id]
    return records


def settings_of_world(runs_dir: Path) -> dict:
    from collapse_tui.report import experiment_settings

    return experiment_settings(load_run(runs_dir / run_name(0)))


def check_resume_readers(runs_dir: Path, sweep: Path, *names: str) -> None:
    """``--resume`` planning of the stopped run and of the sweep: a plan or a one-line ValueError."""
    from collapse_tui.engine.runner import resume_plan
    from collapse_tui.engine.sweep import plan_sweep_resume

    stopped = runs_dir / run_name(STOPPED_SEED)
    try:
        _, config, _ = resume_plan(stopped)
        assert config.seed == STOPPED_SEED
    except ValueError as exc:
        one_line(str(exc), *names)
    try:
        plan = plan_sweep_resume(sweep)
    except ValueError as exc:
        one_line(str(exc), *names)
    else:
        seeds = sorted([cfg.seed for _, cfg, _ in plan.resume] + [cfg.seed for cfg, _ in plan.new]
                       + [load_run(p).config["seed"] for p in plan.finished])
        assert seeds == [*SEEDS, STOPPED_SEED, NEVER_STARTED_SEED], seeds

