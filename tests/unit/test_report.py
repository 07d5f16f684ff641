"""The sweep table: grouping over seeds, hand-computed means and stds, the paper's numbers, the files."""

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from collapse_tui import cli, report, store
from collapse_tui.engine.sweep import SweepRecorder
from collapse_tui.report import Row, build_rows, csv_table, markdown_table
from collapse_tui.store.layout import RUNS_JSONL
from collapse_tui.store import RunRecord, sweep_name
from tests.helpers import tiny_config, write_config


def record(tmp_path, run_id, seed=0, dataset="dsprites", method="topk", sparsity=50.0, remedies=(),
           status="ok", source="encoder_hidden", config=None, **final):
    final = {"dead@0": 0.3, "dead@0.01": 0.4, "l0": 50.0, "explained_variance": 0.99, "mig": 0.05,
             "specialized": 10, **final}
    summary = {"status": status, "dataset": dataset, "method": method, "sparsity": sparsity,
               "remedies": list(remedies), "source": source, "final": final}
    return RunRecord(path=tmp_path / run_id, config={"seed": seed, **(config or {})}, summary=summary)


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
    # Only the plain method at the paper's k (for L1, the λ whose L0 is closest to 50: here the only one)
    # has a published number to stand beside.
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
    assert cli.main(["--table", str(sweeps[0]), "--format", "md"]) == 0
    assert "| dsprites | topk | none | k=4 | 2 |" in capsys.readouterr().out
    assert (sweeps[0] / "results.md").read_text() == written  # --table writes the same file again
    assert cli.main(["--table", str(sweeps[0]), "--format", "csv"]) == 0
    assert list(csv.DictReader(io.StringIO(capsys.readouterr().out))) == csv_rows
    assert cli.main(["--table", str(tmp_path / "runs"), "--format", "md"]) == 0  # every run of a runs dir
    assert "| dsprites | l1 | none |" in capsys.readouterr().out
    # In the terminal: fitted to its width, the key columns first.
    monkeypatch.setenv("COLUMNS", "80")
    assert cli.main(["--table", str(sweeps[0])]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "dataset: dsprites  remedy: none" in [line.strip() for line in shown], "one value: said once, above"
    header = next(line for line in shown if "method" in line)
    assert header.split()[:4] == ["method", "k", "/", "λ"] and "seeds" in header
    assert max(map(len, shown)) <= 80
    assert cli.main(["--table", str(sweeps[0]), "--columns", "method,EV"]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if "method" in line)
    assert header.split() == ["method", "EV"]
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


# ------------------------------------------------------------------ rows are experiments, never pooled

def full_config(name, seed, **sections):
    """A config as config.yaml holds it: the resolved schema, the environment and the data's provenance."""
    from collapse_tui.config import RunConfig

    data = RunConfig(name=name, seed=seed).to_dict()
    for key, values in sections.items():  # a section's values, or a top-level setting
        data[key] = {**data[key], **values} if isinstance(values, dict) else values
    data["environment"] = {"backend": "torch", "host": f"host-{seed}", "pid": 100 + seed}
    data["data_source"] = {"dataset": "dsprites", "source": "procedural", "fingerprint": "dsprites-procedural-v3",
                           "description": f"rendered for seed {seed}"}
    return data


def test_runs_differing_in_batch_size_are_two_rows_labelled_by_it(tmp_path):
    runs = [record(tmp_path, "b128", config={"sae": {"batch_size": 128}}, **{"dead@0": 0.30}),
            record(tmp_path, "b16", config={"sae": {"batch_size": 16}}, **{"dead@0": 0.50})]
    rows, _ = build_rows(runs)
    assert [(r.run_ids, r.setting) for r in rows] == [(["b16"], "sae.batch_size=16"), (["b128"], "sae.batch_size=128")]
    md = markdown_table(rows)
    assert md.startswith("| dataset | method | remedy | k / λ | setting | seeds | dead % @0 |")
    assert "| dsprites | topk | none | k=50 | sae.batch_size=16 | 1 | 50.0 | 40.0 |" in md
    assert "| dsprites | topk | none | k=50 | sae.batch_size=128 | 1 | 30.0 | 40.0 |" in md
    assert "seeds 2" not in md and "| 2 |" not in md
    # Both are the paper's Top-k experiment at k = 50, each at its own batch size.
    assert [r.paper_dead for r in rows] == [(34.4, 0.9), (34.4, 0.9)]
    table = list(csv.DictReader(io.StringIO(csv_table(rows))))
    assert [(r["setting"], r["n_seeds"], r["dead_pct@0_mean"]) for r in table] == [
        ("sae.batch_size=16", "1", "50"), ("sae.batch_size=128", "1", "30")]
    notes = report.report_markdown(rows, [], "t")
    assert "- setting: " in notes


def test_a_sweep_over_seeds_alone_gives_the_table_it_always_gave(tmp_path):
    # Seeds of one study: name, environment, runs_dir, the data's description and eval.every differ,
    # and settings the method ignores (L1's coefficient, a constant schedule's start) too; none of it
    # makes another experiment.
    configs = [full_config("study-s0", 0), full_config("study-s1", 1, runs_dir="elsewhere", models_dir="m2")]
    configs[1]["eval"]["every"] = 7
    configs[1]["sae"].update(l1_coefficient=0.5, schedule={"kind": "constant", "start": 300, "epochs": 4})
    runs = [record(tmp_path, "s0", seed=0, config=configs[0], **{"dead@0": 0.30, "l0": 49.0, "mig": 0.04}),
            record(tmp_path, "s1", seed=1, config=configs[1], **{"dead@0": 0.34, "l0": 51.0, "mig": 0.06})]
    rows, _ = build_rows(runs)
    assert len(rows) == 1 and rows[0].seeds == [0, 1] and rows[0].setting == ""
    assert rows[0].settings["data"] == "dsprites-procedural-v3"
    # dead % 30, 34 → 32 ± 2.8 (sample std √8); L0 49, 51 → 50 ± 1.4; MIG 0.04, 0.06 → 0.050 ± 0.014
    assert markdown_table(rows) == (
        "| dataset | method | remedy | k / λ | seeds | dead % @0 | dead % @0.01 | L0 | EV | MIG | spec. "
        "| paper dead % | paper spec. |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        "| dsprites | topk | none | k=50 | 2 | 32.0 ± 2.8 | 40.0 ± 0.0 | 50.0 ± 1.4 | 0.990 ± 0.000 | 0.050 ± 0.014 "
        "| 10 ± 0 | 34.4 ± 0.9 | 479 |\n")
    assert list(csv.DictReader(io.StringIO(csv_table(rows))))[0]["setting"] == ""


def test_settings_that_define_the_experiment_split_rows_and_label_only_what_differs(tmp_path):
    base = full_config("a", 0)
    other_file = full_config("b", 0)
    other_file["data_source"]["fingerprint"] = "dsprites-file-0123456789abcdef"
    no_provenance = full_config("c", 0)
    del no_provenance["data_source"]
    epochs = full_config("d", 0, vae={"epochs": 3})
    runs = [record(tmp_path, n, config=c) for n, c in
            (("a", base), ("b", other_file), ("c", no_provenance), ("d", epochs))]
    rows, _ = build_rows(runs)
    assert sorted(r.setting for r in rows) == [
        "data=dsprites-file-0123456789abcdef, vae.epochs=10", "data=dsprites-procedural-v3, vae.epochs=10",
        "data=dsprites-procedural-v3, vae.epochs=3", "data=unknown, vae.epochs=10"]
    # Another method's rows are labelled with the same settings; rows of another dataset, which differ in
    # nothing among themselves, keep a label only for the settings that vary elsewhere.
    rows, _ = build_rows([record(tmp_path, "x", config={"sae": {"epochs": 5}}),
                          record(tmp_path, "y", config={"sae": {"epochs": 9}}),
                          record(tmp_path, "z", method="l1", sparsity=0.1, config={"sae": {"epochs": 9}})])
    assert [(r.method, r.setting) for r in rows] == [("topk", "sae.epochs=5"), ("topk", "sae.epochs=9"),
                                                     ("l1", "sae.epochs=9")]


def test_the_paper_number_stands_only_beside_the_rows_it_corresponds_to(tmp_path):
    runs = [
        record(tmp_path, "k50", sparsity=50.0), record(tmp_path, "k100", sparsity=100.0, l0=100.0),
        record(tmp_path, "auxk", sparsity=50.0, remedies=["auxk"]),
        # L1 at three strengths: mean L0 120, 55 (|55 − 50| = 5, the closest), 12.
        record(tmp_path, "l1a", method="l1", sparsity=0.01, l0=120.0),
        record(tmp_path, "l1b", seed=0, method="l1", sparsity=0.03, l0=53.0),
        record(tmp_path, "l1b2", seed=1, method="l1", sparsity=0.03, l0=57.0),
        record(tmp_path, "l1c", method="l1", sparsity=0.1, l0=12.0),
        # A remedy at exactly L0 50 is not the paper's experiment.
        record(tmp_path, "l1std", method="l1", sparsity=0.1, l0=50.0, remedies=["standardise"]),
        # Another settings group of L1 gets its own closest row.
        record(tmp_path, "l1e", method="l1", sparsity=0.03, l0=30.0, config={"sae": {"epochs": 3}}),
        record(tmp_path, "l1f", method="l1", sparsity=0.1, l0=10.0, config={"sae": {"epochs": 3}}),
    ]
    rows, _ = build_rows(runs)
    shown = {(r.method, r.remedy, r.sparsity, r.setting): r.paper_dead for r in rows if r.paper_dead}
    # (sae.epochs differs among L1 rows, so every row shows its value of it.)
    assert shown == {("topk", "none", 50.0, "sae.epochs=20"): (34.4, 0.9),
                     ("l1", "none", 0.03, "sae.epochs=20"): (41.7, 4.4),
                     ("l1", "none", 0.03, "sae.epochs=3"): (41.7, 4.4)}
    md = markdown_table(rows)
    assert "| dsprites | l1 | none | λ=0.03 | sae.epochs=20 | 2 | 30.0 ± 0.0 | 40.0 ± 0.0 | 55.0 ± 2.8 |" in md
    assert md.count("| 41.7 ± 4.4 | 479 |") == 2 and md.count("| 34.4 ± 0.9 | 479 |") == 1
    assert "| dsprites | l1 | none | λ=0.01 | sae.epochs=20 | 1 | 30.0 | 40.0 | 120.0 | 0.990 | 0.050 | 10 |  |  |" in md
    table = {(r["method"], r["sparsity"], r["setting"]): r["paper_dead_pct_mean"]
             for r in csv.DictReader(io.StringIO(csv_table(rows)))}
    assert table[("l1", "0.03", "sae.epochs=20")] == "41.7" and table[("l1", "0.1", "sae.epochs=20")] == ""
    assert table[("topk", "100", "sae.epochs=20")] == ""


def notes_of(rows):
    text = report.report_markdown(rows, [], "t")
    return [line[2:] for line in text.splitlines() if line.startswith("- ")]


def test_footnotes_describe_only_the_columns_the_table_has(tmp_path):
    plain = notes_of(build_rows([record(tmp_path, "a", method="batchtopk")])[0])
    assert [n.split(":")[0] for n in plain] == ["dead % @t", "spec."]
    assert not any("revived" in n or "spec. dense" in n or "paper" in n or "setting" in n for n in plain)
    full = notes_of(build_rows([record(tmp_path, "b", revived=2, newly_dead=3, updates=9000,
                                       specialized_before_sparsification=40, dead_before_extension=0.2,
                                       dead_change_last_20pct=0.004)])[0])
    assert [n.split(":")[0] for n in full] == ["dead % @t", "dead % sched. end", "Δdead last 20%", "spec. dense",
                                              "spec.", "revived", "newly dead", "updates", "paper"]
    assert "1e-3" in full[5] and "Top-k at k = 50" in full[8] and "L1" not in full[8]
    assert "| 20.0 | 0.4 |" in markdown_table(build_rows([record(tmp_path, "b", dead_before_extension=0.2,
                                                                 dead_change_last_20pct=0.004)])[0])
    # No dead@ columns, no dead note; the seeds note stays.
    bare = notes_of(build_rows([RunRecord(path=tmp_path / "c", config={"seed": 0}, summary={
        "status": "ok", "dataset": "dsprites", "method": "jumprelu", "sparsity": 0.1, "final": {"l0": 9.0}})])[0])
    assert bare == ["mean ± std over seeds."]
    assert notes_of([]) == []


def test_a_table_without_the_papers_experiment_has_no_paper_columns(tmp_path):
    runs = [record(tmp_path, f"b{s}", seed=s, method="batchtopk") for s in (0, 1)]
    md = markdown_table(build_rows(runs)[0])
    assert "paper" not in md
    assert md.splitlines()[0] == ("| dataset | method | remedy | k / λ | seeds | dead % @0 | dead % @0.01 | L0 | EV "
                                  "| MIG | spec. |")
    assert md.splitlines()[2] == ("| dsprites | batchtopk | none | k=50 | 2 | 30.0 ± 0.0 | 40.0 ± 0.0 | 50.0 ± 0.0 "
                                  "| 0.990 ± 0.000 | 0.050 ± 0.000 | 10 ± 0 |")
    # with Top-k at k = 50 beside it, the paper's columns come back, empty on the batchtopk row
    both = markdown_table(build_rows(runs + [record(tmp_path, "t0")])[0])
    assert "| paper dead % | paper spec. |" in both and "| 10 ± 0 |  |  |" in both


def test_a_sweep_reads_each_ended_run_once(tmp_path, monkeypatch):
    # Rewriting the tables after every bank of a long sweep must not read every run again.
    from collapse_tui.engine import sweep

    runs_dir = tmp_path / "runs"
    recorder = SweepRecorder(runs_dir, "study", n_runs=3)
    reads = []
    load = sweep.load_run
    monkeypatch.setattr(sweep, "load_run", lambda path: reads.append(Path(path).name) or load(path))
    for i, status in enumerate(("ok", "running", "ok")):
        run = store.create_run_dir(runs_dir, f"study-{i}")
        (run / store.CONFIG_FILE).write_text(f"seed: {i}\n")
        rec = record(tmp_path, run.name)
        (run / store.SUMMARY_FILE).write_text(json.dumps({**rec.summary, "status": status}))
        recorder.add(run)
    reads.clear()
    recorder.write_tables()
    recorder.write_tables()
    assert len(reads) == 2 and len(set(reads)) == 1  # only the run still running is read again


def test_finished_runs_are_appended_to_runs_jsonl_once_and_costly_rewrites_are_spaced(tmp_path):
    runs_dir = tmp_path / "runs"
    recorder = SweepRecorder(runs_dir, "study", n_runs=3)
    runs = []
    for i, status in enumerate(("ok", "running", "failed")):
        run = store.create_run_dir(runs_dir, f"study-{i}")
        (run / store.CONFIG_FILE).write_text(f"seed: {i}\n")
        (run / store.SUMMARY_FILE).write_text(json.dumps({**record(tmp_path, run.name).summary, "status": status}))
        recorder.add(run)
        runs.append(run)
    recorder.update()
    lines = [json.loads(line) for line in (recorder.path / RUNS_JSONL).read_text().splitlines()]
    assert [(line["run"], line["status"], line["seed"]) for line in lines] == [
        (runs[0].name, "ok", 0), (runs[2].name, "failed", 2)]  # the running one is not finished
    assert lines[0]["final"]["l0"] == 50.0 and lines[0]["settings"]["sae.method"] == "topk"
    # The running run finishes: its line comes next, and reopening the sweep repeats none.
    (runs[1] / store.SUMMARY_FILE).write_text(json.dumps(record(tmp_path, runs[1].name).summary))
    table = (recorder.path / "results.md").read_text()
    recorder._write_seconds = 1e6  # as if a rewrite took very long: the next update leaves the tables
    recorder.update()
    assert (recorder.path / "results.md").read_text() == table
    assert len((recorder.path / RUNS_JSONL).read_text().splitlines()) == 3
    recorder.write_tables()  # the sweep's end always rewrites them
    assert (recorder.path / "results.md").read_text() != table
    again = SweepRecorder(runs_dir, "study", n_runs=3, path=recorder.path)
    again.update()
    assert len((recorder.path / RUNS_JSONL).read_text().splitlines()) == 3


def test_runs_jsonl_damage_never_stops_a_sweep_and_an_append_never_glues_onto_a_torn_line(tmp_path):
    runs_dir = tmp_path / "runs"
    recorder = SweepRecorder(runs_dir, "study", n_runs=2)
    runs = []
    for i in range(2):
        run = store.create_run_dir(runs_dir, f"study-{i}")
        (run / store.CONFIG_FILE).write_text(f"seed: {i}\n")
        (run / store.SUMMARY_FILE).write_text(json.dumps({**record(tmp_path, run.name).summary, "status": "running"}))
        recorder.add(run)
        runs.append(run)
    # A line that is not UTF-8 and a torn last line (a process killed mid-write), no newline after it.
    (recorder.path / RUNS_JSONL).write_bytes(b'\xff\xfe{"run": 1}\n{"run": "' + runs[0].name.encode() + b'", "sta')
    again = SweepRecorder(runs_dir, "study", n_runs=2, path=recorder.path)  # reads it: no UnicodeDecodeError
    (runs[0] / store.SUMMARY_FILE).write_text(json.dumps(record(tmp_path, runs[0].name).summary))
    again.update()
    lines = (recorder.path / RUNS_JSONL).read_bytes().split(b"\n")
    assert lines[1].endswith(b'"sta') and json.loads(lines[2])["run"] == runs[0].name  # a line of its own
    assert lines[3] == b""


def test_a_resumed_run_is_read_again_when_it_ends(tmp_path):
    from collapse_tui.events import RunResumed

    runs_dir = tmp_path / "runs"
    recorder = SweepRecorder(runs_dir, "study", n_runs=1)
    run = store.create_run_dir(runs_dir, "study-0")
    (run / store.CONFIG_FILE).write_text("seed: 0\n")
    (run / store.SUMMARY_FILE).write_text(json.dumps({**record(tmp_path, run.name).summary, "status": "stopped"}))
    recorder.add(run)  # read as stopped: an ended run, not read again...
    recorder(RunResumed(run_id=run.name, name="study-0", epoch=1))  # ...unless it is resumed
    (run / store.SUMMARY_FILE).write_text(json.dumps(record(tmp_path, run.name).summary))
    recorder.write_tables()
    assert [json.loads(line)["status"] for line in (recorder.path / RUNS_JSONL).read_text().splitlines()] == ["ok"]
    assert "stopped" not in (recorder.path / "results.md").read_text()


def test_a_sweep_matches_its_runs_to_its_plan_across_a_setting_added_since(tmp_path):
    """A sweep started before a setting existed (vae.seed here): its runs' config.yaml and its plan.json lack
    it, and finishing the sweep must still find which planned runs ended and which never started."""
    import yaml

    from collapse_tui.config import validate
    from collapse_tui.engine.sweep import plan_sweep_resume

    runs_dir = tmp_path / "runs"
    plan = [validate({"seed": seed, "name": f"study-s{seed}"}).to_dict() for seed in range(3)]
    for config in plan:
        del config["vae"]["seed"]  # as the earlier version wrote them
    writer = store.SweepWriter(runs_dir, "study", n_runs=3, plan=plan)
    for seed, status in enumerate(("ok", "stopped")):  # the third planned run never started
        run = store.create_run_dir(runs_dir, f"study-s{seed}")
        (run / store.CONFIG_FILE).write_text(yaml.safe_dump(plan[seed]))
        (run / store.SUMMARY_FILE).write_text(json.dumps({**record(tmp_path, run.name).summary, "status": status}))
        writer.add(run)
    found = plan_sweep_resume(writer.path)
    assert (len(found.finished), len(found.resume), len(found.new)) == (1, 1, 1)
    assert found.new[0][0].seed == 2
