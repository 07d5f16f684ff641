"""What --batch prints fits the terminal: lines no wider than it, run names never wrapped, each message
once, every end line naming its run; its tables keep the key columns and drop the rest to fit."""

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from collapse_tui import events as ev
from collapse_tui.batch import ConsoleListener, duration, live_progress, plan_lines, results_table
from collapse_tui.cli import KEY_COLUMNS, sweep_table
from collapse_tui.config import expand
from collapse_tui.engine.banks import bank_groups
from tests.helpers import tiny_config

LONG = "a-rather-long-sweep-name-topk-k50-auxk-resample-normalised-seed12"


def console(width: int) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=False, color_system=None), out


def summary(name: str, dead: float = 0.25, sae: float = 12.5) -> dict:
    return {"name": name, "method": "topk", "sparsity": 50, "durations": {"vae": 80.0, "sae": sae},
            "final": {"dead_fraction": dead, "dead@0": dead, "l0": 50.0, "explained_variance": 0.91, "mig": 0.02,
                      "specialized": 7}, "vae": {"mig": 0.05}}


def bank_events(names: list[str]) -> list[ev.Event]:
    """A bank of runs as the engine reports it: each starts, shares the data and VAE lines, trains an
    SAE epoch, is evaluated, finishes."""
    out: list[ev.Event] = []
    for i, name in enumerate(names):
        out.append(ev.RunStarted(name=name, run_dir=f"/runs/{name}", config={}, environment={}, run_id=str(i)))
        out.append(ev.Message(text="data: procedural dSprites (renderer v2)", run_id=str(i)))
        out.append(ev.PhaseStarted(phase="vae", epochs=2, steps_per_epoch=5, run_id=str(i)))
        out.append(ev.Evaluation(phase="vae", epoch=2, metrics={"mig": 0.05, "bce": 100.0, "active_latents": 6},
                                 run_id=str(i)))
        out.append(ev.PhaseStarted(phase="codes", run_id=str(i)))
    for i, _ in enumerate(names):
        out.append(ev.PhaseStarted(phase="sae", epochs=1, steps_per_epoch=10, run_id=str(i)))
    for i, _ in enumerate(names):
        out.append(ev.Progress(phase="sae", done=10, total=10, run_id=str(i)))
        out.append(ev.EpochEnd(phase="sae", epoch=1, epochs=1, logs={"loss": 0.1}, seconds=1.0, run_id=str(i)))
        out.append(ev.Evaluation(phase="sae", epoch=1, metrics={"dead_fraction": 0.25}, run_id=str(i)))
    for i, name in enumerate(names):
        out.append(ev.RunFinished(status="ok", summary=summary(name), run_id=str(i)))
    return out


@pytest.mark.parametrize("width", [60, 80, 120])
@pytest.mark.parametrize("verbose", [False, True])
def test_a_banks_lines_fit_the_width_name_their_runs_and_say_shared_lines_once(width, verbose):
    names = [f"{LONG}-{i}" for i in range(3)]
    con, out = console(width)
    listener = ConsoleListener(con, live_progress(con), verbose=verbose)
    for event in bank_events(names):
        listener(event)
    lines = out.getvalue().splitlines()
    assert lines and max(len(line) for line in lines) <= width
    # A name longer than the line is cut with an ellipsis, never continued on the next line.
    assert not any(line.lstrip().startswith(("normalised", "seed12")) for line in lines)
    ends = [line for line in lines if "✓" in line]
    if width > len(LONG) + 30:
        assert len(ends) == 3
        for name, line in zip(names, ends):
            assert line.startswith(f"{name}  ✓ dead 25.0%")
    elif not verbose:  # the end lines are the only lines that name a run; a name is shortened to leave room
        shown = [n if len(n) <= width - 12 else n[: width - 13] + "…" for n in names]
        named = [line for line in lines if line.startswith(LONG[: width - 14])]
        assert len(named) == 3 and all(line.startswith(f"{n}  ✓") for n, line in zip(shown, named))
    assert sum("data: procedural" in line for line in lines) == 1
    assert sum(line.startswith("VAE") for line in lines) == 1
    epoch_lines = sum("sae epoch 1/1" in line for line in lines)
    assert epoch_lines == 0 if not verbose else (epoch_lines == 3 or width <= len(LONG) + 30)
    assert not listener.groups, "every progress line is gone once its runs ended"


def test_an_end_line_carries_the_runs_own_sae_time_not_the_vaes():
    con, out = console(120)
    listener = ConsoleListener(con, live_progress(con))
    for event in bank_events(["short"]):
        listener(event)
    (line,) = [line for line in out.getvalue().splitlines() if "✓" in line]
    assert line.startswith("short  ✓ dead 25.0%") and line.endswith(f"sae {duration(12.5)}")
    assert duration(12.5) == "12.5s" and duration(187) == "3m07s" and duration(3720) == "1h02m"


def test_a_bank_trains_on_one_progress_line():
    con, _ = console(100)
    progress = live_progress(con)
    listener = ConsoleListener(con, progress)
    events = bank_events(["r0", "r1", "r2"])
    for event in events[: events.index(next(e for e in events if isinstance(e, ev.Progress)))]:
        listener(event)
    (task,) = progress.tasks
    assert task.description.startswith("3 runs: sae") and task.total == 10


def test_a_phase_that_cannot_count_its_steps_shows_no_total():
    con, out = console(100)
    progress = live_progress(con)
    listener = ConsoleListener(con, progress)
    listener(ev.RunStarted(name="r", run_dir="/r", config={}, environment={}, run_id="r"))
    listener(ev.PhaseStarted(phase="codes", run_id="r"))
    (task,) = progress.tasks
    assert task.total is None
    rendered = io.StringIO()
    Console(file=rendered, width=100).print(progress.make_tasks_table(progress.tasks))
    assert "?" not in rendered.getvalue() and "-:--:--" not in rendered.getvalue()


def results(n: int, name: str = LONG, status: str = "ok"):
    return [SimpleNamespace(status=status, summary=summary(f"{name}-{i}", dead=0.1 * i), run_dir=Path(f"/r/{i}"))
            for i in range(n)]


@pytest.mark.parametrize("width", [80, 120, 200])
def test_the_results_table_fits_the_width_keeping_every_run_name_whole(width):
    con, out = console(width)
    con.print(results_table(results(3), [0.0, 1e-6], con))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    for i in range(3):
        assert f"{LONG}-{i}" in text
    if width >= 200:
        assert "sae time" in text and "dead % @1e-06" in text


def test_the_results_table_drops_the_least_needed_columns_first():
    con, out = console(90)
    con.print(results_table(results(2, name="run"), [0.0, 1e-6], con))
    header = out.getvalue()
    assert "dead %" in header and "L0" in header and "EV" in header
    wide, wide_out = console(250)
    wide.print(results_table(results(2, name="run"), [0.0, 1e-6], wide))
    def header_line(text):
        return next(line for line in text.splitlines() if "method" in line)

    assert "sae time" in header_line(wide_out.getvalue()) and "sae time" not in header_line(header)


def test_a_failed_run_adds_the_status_column():
    con, out = console(200)
    con.print(results_table(results(1) + results(1, name="broken", status="failed"), [0.0], con))
    assert "status" in out.getvalue() and "failed" in out.getvalue()


def test_a_dry_runs_plan_names_each_runs_method_sparsity_seed_and_bank(tmp_path):
    config = tiny_config(tmp_path, sweep=[{"sae.method": ["topk"], "sae.k": [4, 2]},
                                          {"sae.method": ["l1"], "sae.l1_coefficient": [0.5]}], bank_size=2)
    configs = [cfg for cfg, _ in expand(config)]
    lines = plan_lines(configs, bank_groups(configs))
    assert len(lines) == 3
    assert "topk" in lines[0] and "k=4" in lines[0] and "seed 3" in lines[0] and lines[0].endswith("bank 1")
    assert lines[1].endswith("bank 1") and "λ=0.5" in lines[2] and lines[2].endswith("bank 2")


def sweep_rows(tmp_path):
    from collapse_tui.report import build_rows
    from tests.unit.test_report import record

    runs = [record(tmp_path, f"s{seed}-k{k}", seed=seed, sparsity=k,
                   **{"dead@0": 0.3 + seed / 100, "l0": k - 1.0 + seed, "explained_variance": 0.9, "mig": 0.04})
            for seed in range(2) for k in (50.0, 25.0)]
    return build_rows(runs)[0]


@pytest.mark.parametrize("width", [80, 120])
def test_a_sweep_table_shows_the_key_columns_first_and_fits(tmp_path, width):
    con, out = console(width)
    table = sweep_table(sweep_rows(tmp_path), con)
    headers = [str(c.header) for c in table.columns]
    present = [h for h in headers if h in KEY_COLUMNS or h.startswith("dead %")]
    assert headers[: len(present)] == present, "key columns come first"
    assert {"k / λ", "seeds", "L0", "EV"} <= set(headers)
    assert table.title == "dataset: dsprites  method: topk  remedy: none"  # one value each: said once
    con.print(table)
    assert max(len(line) for line in out.getvalue().splitlines()) <= width


def test_a_sweep_table_shows_exactly_the_columns_asked_for_and_names_the_unknown(tmp_path):
    con, _ = console(80)
    rows = sweep_rows(tmp_path)
    table = sweep_table(rows, con, columns=["EV", "method"])
    assert [str(c.header) for c in table.columns] == ["EV", "method"]
    with pytest.raises(ValueError, match="no column 'nope'.*the columns: dataset"):
        sweep_table(rows, con, columns=["nope"])
    from collapse_tui.report import table_columns

    every = sweep_table(rows, con, show_all=True)
    assert len(every.columns) + every.title.count(": ") == len(table_columns(rows))  # some said in the title
