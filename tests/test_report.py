"""The sweep table: grouping over seeds, hand-computed means and stds, the paper's numbers, the files."""

import csv
import io
import json
import shutil

import pytest

from collapse_tui import cli, report, store
from collapse_tui.engine.sweep import SweepRecorder
from collapse_tui.report import Row, build_rows, csv_table, markdown_table
from collapse_tui.store import RunRecord, sweep_name
from tests.helpers import tiny_config, write_config


def record(tmp_path, run_id, seed=0, dataset="dsprites", method="topk", sparsity=50.0, remedies=(),
           status="ok", source="encoder_hidden", **final):
    final = {"dead@0": 0.3, "dead@0.01": 0.4, "l0": 50.0, "explained_variance": 0.99, "mig": 0.05,
             "specialized": 10, **final}
    summary = {"status": status, "dataset": dataset, "method": method, "sparsity": sparsity,
               "remedies": list(remedies), "source": source, "final": final}
    return RunRecord(path=tmp_path / run_id, config={"seed": seed}, summary=summary)


def test_runs_differing_only_in_seed_make_one_row_with_mean_and_sample_std(tmp_path):
    runs = [record(tmp_path, f"r{s}", seed=s, **{"dead@0": d, "l0": l0})
            for s, d, l0 in ((0, 0.30, 48.0), (1, 0.34, 50.0), (2, 0.38, 52.0))]
    rows, left_out = build_rows(runs)
    assert left_out == [] and len(rows) == 1
    row = rows[0]
    assert row.seeds == [0, 1, 2] and row.run_ids == ["r0", "r1", "r2"]
    # dead %: 30, 34, 38 → mean 34, sample std sqrt(((-4)² + 0 + 4²) / 2) = 4
    mean, std = row.stat("dead@0", 100.0)
    assert mean == pytest.approx(34.0) and std == pytest.approx(4.0)
    assert row.stat("l0") == pytest.approx((50.0, 2.0))
    assert row.stat("bce") is None  # never measured
    md = markdown_table(rows)
    assert "| dsprites | topk | none | k=50 | 3 | 34.0 ± 4.0 | 40.0 ± 0.0 | 50.0 ± 2.0 |" in md
    # The paper's Top-k dSprites number sits beside ours.
    assert md.rstrip().endswith("| 34.4 ± 0.9 | 479 |")


def test_rows_split_by_dataset_method_remedy_and_sparsity_in_a_fixed_order(tmp_path):
    runs = [
        record(tmp_path, "a", dataset="shapes3d", method="l1", sparsity=0.05),
        record(tmp_path, "b", method="topk", remedies=["auxk"]),
        record(tmp_path, "c", method="topk"),
        record(tmp_path, "d", method="topk", sparsity=100.0),
        record(tmp_path, "e", method="batchtopk"),
        record(tmp_path, "f", method="topk", source="latent_mean"),
        record(tmp_path, "g", method="topk", remedies=["auxk", "tied_init"]),
    ]
    rows, _ = build_rows(runs)
    got = [(r.dataset, r.method, r.remedy, r.sparsity) for r in rows]
    assert got == [
        ("dsprites", "topk", "none", 50.0), ("dsprites", "topk", "none", 100.0),
        ("dsprites", "topk", "auxk", 50.0), ("dsprites", "topk", "auxk + tied_init", 50.0),
        ("dsprites", "topk", "latent mean", 50.0),
        ("dsprites", "batchtopk", "none", 50.0), ("shapes3d", "l1", "none", 0.05),
    ]
    paper = {(r.method, r.remedy, r.sparsity): r.paper_dead for r in rows}
    # Only the plain method at the paper's k (any λ for L1) has a published number to stand beside.
    assert paper[("topk", "none", 50.0)] == (34.4, 0.9)
    assert paper[("topk", "none", 100.0)] is None and paper[("topk", "auxk", 50.0)] is None
    assert paper[("batchtopk", "none", 50.0)] is None and paper[("l1", "none", 0.05)] == (90.6, 0.5)
    assert rows[-1].paper_specialized == 86 and rows[2].paper_specialized is None


def test_runs_that_did_not_finish_ok_are_left_out_and_named(tmp_path):
    runs = [record(tmp_path, "good"), record(tmp_path, "bad", status="failed"),
            RunRecord(path=tmp_path / "gone", error="summary.json: unreadable")]
    rows, left_out = build_rows(runs)
    assert [r.run_ids for r in rows] == [["good"]]
    assert [r.run_id for r in left_out] == ["bad", "gone"]
    text = report.report_markdown(rows, left_out, "t")
    assert "bad (failed)" in text and "gone (unreadable)" in text


def test_csv_holds_means_and_stds_that_read_back(tmp_path):
    runs = [record(tmp_path, "x", seed=0, mig=0.1), record(tmp_path, "y", seed=1, mig=0.3),
            record(tmp_path, "z", method="l1", sparsity=0.05, remedies=["standardise"])]
    rows = list(csv.DictReader(io.StringIO(csv_table(build_rows(runs)[0]))))
    assert [(r["method"], r["remedy"], r["n_seeds"]) for r in rows] == [("topk", "none", "2"), ("l1", "standardise", "1")]
    assert float(rows[0]["mig_mean"]) == pytest.approx(0.2) and float(rows[0]["mig_std"]) == pytest.approx(0.141421, 1e-5)
    assert float(rows[0]["dead_pct@0_mean"]) == pytest.approx(30.0)
    assert rows[0]["paper_dead_pct_mean"] == "34.4" and rows[1]["paper_dead_pct_mean"] == ""
    assert rows[0]["runs"] == "x y" and rows[0]["bce_mean"] == ""


def test_a_row_with_no_runs_measured_formats_as_dashes():
    assert Row("dsprites", "topk", "none", 50.0).stat("l0") is None
    assert markdown_table([]).count("\n") == 2  # header and rule only


@pytest.mark.parametrize("names, expected", [
    (["quick-topk-k250", "quick-l1-lam0.03"], "quick"),
    (["paper-quick-dsprites-s0-topk", "paper-quick-shapes3d-s1-l1"], "paper-quick"),
    (["quick-k250", "quick-k150"], "quick"),
    (["solo"], "solo"),
    (["a", "b"], "sweep"),
])
def test_sweep_name_is_the_common_leading_words(names, expected):
    assert sweep_name(names) == expected


def test_sweep_directory_is_kept_current_and_survives_a_move(tmp_path):
    runs_dir = tmp_path / "runs"
    recorder = SweepRecorder(runs_dir, "study", config_path="c.yaml", n_runs=2)
    assert recorder.path.parent == runs_dir / "sweeps" and "No run has finished yet" in (
        recorder.path / "results.md").read_text()
    for i, method in enumerate(("topk", "l1")):
        run = store.create_run_dir(runs_dir, f"study-{method}")
        (run / store.CONFIG_FILE).write_text(f"seed: {i}\n")
        rec = record(tmp_path, run.name, method=method)
        (run / store.SUMMARY_FILE).write_text(json.dumps(rec.summary))
        recorder.add(run)
    info = json.loads((recorder.path / "sweep.json").read_text())
    assert info["n_runs"] == 2 and len(info["runs"]) == 2 and info["config"] == "c.yaml"
    assert "| dsprites | l1 |" in (recorder.path / "results.md").read_text()
    # The sweeps directory is not a run: the runs table does not list it as an unreadable one.
    assert sorted(r.summary["method"] for r in store.list_runs(runs_dir, include_unreadable=True)) == ["l1", "topk"]
    moved = tmp_path / "moved"
    shutil.move(str(runs_dir), moved)
    sweep = moved / "sweeps" / recorder.path.name
    assert [r.error for r in store.sweep_records(sweep)] == [None, None]


def test_unreadable_sweep_file_is_a_clear_error(tmp_path):
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(ValueError, match="sweep.json: unreadable"):
        store.sweep_run_dirs(tmp_path)


def test_batch_sweep_writes_its_table_and_table_and_compare_read_it(tmp_path, capsys, monkeypatch):
    data = tiny_config(tmp_path, sweep={"seed": [1, 2], "sae.method": ["topk", "l1"]}, sae={"epochs": 1})
    assert cli.main(["--batch", str(write_config(tmp_path, data))]) == 0
    out = capsys.readouterr().out
    sweeps = list((tmp_path / "runs" / "sweeps").iterdir())
    assert len(sweeps) == 1 and f"--compare {sweeps[0]}" in out.replace("\n", "")
    csv_rows = list(csv.DictReader(open(sweeps[0] / "results.csv")))
    assert [(r["method"], r["n_seeds"], r["seeds"]) for r in csv_rows] == [("topk", "2", "1 2"), ("l1", "2", "1 2")]
    written = (sweeps[0] / "results.md").read_text()
    assert written.startswith("# tiny: results\n")
    (sweeps[0] / "results.md").unlink()
    assert cli.main(["--table", str(sweeps[0])]) == 0
    assert "| dsprites | topk | none | k=4 | 2 |" in capsys.readouterr().out
    assert (sweeps[0] / "results.md").read_text() == written  # --table writes the same file again
    assert cli.main(["--table", str(tmp_path / "runs")]) == 0  # every run of a runs dir
    assert "| dsprites | l1 | none |" in capsys.readouterr().out
    assert cli.main(["--table", str(tmp_path / "nothing")]) == 2
    # --compare expands the sweep into its four runs.
    assert len(cli.compared_runs([str(sweeps[0])])) == 4
    with pytest.raises(ValueError, match="at least two readable"):
        cli.compared_runs([str(tmp_path / "runs" / "sweeps")])


def test_extended_training_columns_show_revived_and_newly_dead_only_when_measured(tmp_path):
    runs = [record(tmp_path, "a", seed=0, revived=2, newly_dead=5),
            record(tmp_path, "b", seed=1, revived=4, newly_dead=9)]
    rows, _ = build_rows(runs)
    # revived 2, 4 → 3 ± √2; newly dead 5, 9 → 7 ± √8
    assert rows[0].stat("revived") == pytest.approx((3.0, 2 ** 0.5))
    assert rows[0].stat("newly_dead") == pytest.approx((7.0, 8 ** 0.5))
    md = markdown_table(rows)
    assert "revived" in md and "newly dead" in md and "| 3 ± 1 | 7 ± 3 |" in md
    # Runs without extended epochs measure neither, and the table drops both columns.
    plain, _ = build_rows([record(tmp_path, "c")])
    assert "revived" not in markdown_table(plain) and "newly dead" not in markdown_table(plain)
