"""A runs directory copied elsewhere (backed up, moved to another machine) reads its own runs: its sweep
records the absolute paths its runs were written at, which in the copy still name the original's."""

from __future__ import annotations

import json
import shutil

from collapse_tui import cli
from collapse_tui.store import SUMMARY_FILE, SweepWriter, load_sweep, sweep_of
from collapse_tui.tui.feeds import SweepFeed
from tests.tui.support import make_run


def explained_variance_column(csv_text: str) -> list[str]:
    rows = [line.split(",") for line in csv_text.strip().splitlines()]
    column = rows[0].index(next(h for h in rows[0] if h.startswith("explained_variance")))
    return [row[column] for row in rows[1:]]


def test_a_copied_sweep_reads_the_runs_beside_it_not_the_originals(tmp_path, capsys):
    original = tmp_path / "first"
    runs = [make_run(original, f"quick-topk-k{k}", f"20260101-12000{k}", sparsity=k, n_neurons=12, epochs=2)
            for k in (2, 4)]
    recorder = SweepWriter(original / "runs", "quick", n_runs=2)
    for run in runs:
        recorder.add(run)
    copy = shutil.copytree(original / "runs", tmp_path / "copy" / "runs")
    copied_sweep = copy / recorder.path.relative_to(original / "runs")
    assert cli.main(["--table", str(copied_sweep), "--format", "csv"]) == 0
    before = explained_variance_column(capsys.readouterr().out)

    for run in runs:  # the original's results change after the copy was made
        summary = json.loads((run / SUMMARY_FILE).read_text())
        summary["final"]["explained_variance"] = 0.123456
        (run / SUMMARY_FILE).write_text(json.dumps(summary))
    assert cli.main(["--table", str(copied_sweep), "--format", "csv"]) == 0
    assert explained_variance_column(capsys.readouterr().out) == before != ["0.1235"] * 2
    assert load_sweep(copied_sweep).runs == [copy / run.name for run in runs]
    assert sweep_of(copy / runs[0].name) == copied_sweep  # a copied run finds the sweep it is part of
    feed = SweepFeed(copied_sweep)  # following the copied sweep follows its own runs
    feed.poll()
    assert sorted(feed.offsets) == [copy / run.name for run in runs]

    shutil.rmtree(original)  # the original gone: the copy still loads, the same
    assert load_sweep(copied_sweep).runs == [copy / run.name for run in runs]
    assert cli.main(["--table", str(copied_sweep), "--format", "csv"]) == 0
    assert explained_variance_column(capsys.readouterr().out) == before


def test_a_sweep_whose_run_is_not_beside_it_still_reads_the_recorded_run(tmp_path):
    """A run written into another runs dir than its sweep's is read where it was recorded."""
    elsewhere = make_run(tmp_path / "other", "quick-topk-k2", sparsity=2, n_neurons=12, epochs=2)
    recorder = SweepWriter(tmp_path / "runs", "quick", n_runs=1)
    recorder.add(elsewhere)
    assert load_sweep(recorder.path).runs == [elsewhere.resolve()]
