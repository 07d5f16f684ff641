"""Finishing a sweep starts its remaining runs where the sweep now is (a runs directory moved since it
started is not re-created), and a plan of more runs than --batch starts without asking needs --yes."""

from __future__ import annotations

import shutil

from collapse_tui import cli
from collapse_tui.engine.sweep import plan_sweep_resume
from collapse_tui.store import SweepWriter, layout
from tests.unit.damaged_store import NEVER_STARTED_SEED, build_world


def test_a_moved_sweep_starts_its_new_runs_where_it_now_is(tmp_path):
    old = build_world(tmp_path / "before")
    moved = tmp_path / "after" / "runs"
    moved.parent.mkdir()
    shutil.move(str(old), str(moved))
    (sweep,) = layout.sweeps_dir(moved).iterdir()
    plan = plan_sweep_resume(sweep)
    (new, _), = plan.new
    assert new.seed == NEVER_STARTED_SEED
    assert new.runs_dir == str(moved)  # not the plan's recorded runs directory, which no longer exists
    assert not old.exists()


def test_resuming_a_plan_of_more_than_a_thousand_new_runs_asks_for_yes(tmp_path, capsys, monkeypatch):
    from collapse_tui.engine import sweep as sweep_module

    def never(*args, **kwargs):  # were the refusal gone, a thousand runs would start training here
        raise AssertionError("the runs were started")

    monkeypatch.setattr(sweep_module, "resume_sweep", never)
    runs_dir = tmp_path / "runs"
    configs = [{"name": f"big-s{seed}", "seed": seed, "runs_dir": str(runs_dir)} for seed in range(1001)]
    writer = SweepWriter(runs_dir, "big", n_runs=len(configs), plan=configs)
    assert cli.main(["--resume", str(writer.path)]) == 2
    err = capsys.readouterr().err
    assert "1,001 runs" in err and "--yes" in err
    assert [p for p in runs_dir.iterdir() if p.name != layout.SWEEPS_DIR] == []  # nothing started
    assert cli.conflict(cli.build_parser().parse_args(["--resume", str(writer.path), "--yes"])) is None
