"""Final metrics of the wrong type in a run's summary.json: never averaged, the run named with the key."""

import json
import math

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapse_tui import report
from collapse_tui.report import Row, build_rows
from collapse_tui.store import list_runs, load_run
from collapse_tui.store.layout import CONFIG_FILE, SUMMARY_FILE

GOOD = {"dead@0": 0.3, "l0": 50.0, "mig": 0.05, "specialized": 10}


def write_run(runs_dir, name, seed, final):
    run = runs_dir / name
    run.mkdir(parents=True)
    (run / CONFIG_FILE).write_text(yaml.safe_dump({"seed": seed}))
    summary = {"status": "ok", "dataset": "dsprites", "method": "topk", "sparsity": 50.0, "remedies": [],
               "final": final}
    (run / SUMMARY_FILE).write_text(json.dumps(summary, allow_nan=True))  # NaN and Infinity as JSON literals
    return run


# Whatever a damaged or hand-edited summary may hold where a number belongs.
WRONG = st.one_of(
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(["NaN", "nan", "inf", "0.5", "1e3"]),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(min_value=10 ** 309, max_value=10 ** 330),  # an int no float holds
    st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(sorted(GOOD)), bad=WRONG, good=st.lists(st.floats(0, 1), min_size=2, max_size=2))
def test_a_wrong_typed_final_value_is_never_averaged_and_the_run_is_named_with_the_key(tmp_path_factory, key,
                                                                                      bad, good):
    runs_dir = tmp_path_factory.mktemp("runs")
    write_run(runs_dir, "r0", 0, {**GOOD, key: good[0]})
    write_run(runs_dir, "r1", 1, {**GOOD, key: good[1]})
    write_run(runs_dir, "r2", 2, {**GOOD, key: bad})
    records = list_runs(runs_dir)
    assert [r.run_id for r in records] == ["r0", "r1", "r2"]  # read, not skipped
    rows, left_out = build_rows(records)
    assert [r.run_id for r in left_out] == ["r2"]
    assert len(rows) == 1 and rows[0].run_ids == ["r0", "r1"] and rows[0].seeds == [0, 1]
    mean, _ = rows[0].stat(key)
    assert mean == pytest.approx(float(np.mean(good)))  # from the two numbers alone
    text = report.report_markdown(rows, left_out, "t")
    line = next(line for line in text.splitlines() if "Not in the table" in line)
    assert "r2 (" in line and f"final.{key}" in line


def test_the_problem_names_the_key_and_the_value(tmp_path):
    run = write_run(tmp_path, "r", 0, {**GOOD, "mig": True, "l0": "NaN"})
    record = load_run(run)
    assert record.status == "suspect"
    (flag,) = record.flags
    assert "final.mig" in flag and "bool True" in flag and "final.l0" in flag and "'NaN'" in flag


def test_numbers_null_and_the_dead_curve_are_what_a_final_section_holds(tmp_path):
    run = write_run(tmp_path, "r", 0, {**GOOD, "bce": None, "dead_curve": [[0, 0.1], [10, 0.3]], "n": 3})
    record = load_run(run)
    assert record.status == "ok" and record.flags == []


def test_row_values_take_finite_real_numbers_only():
    row = Row("dsprites", "topk", "none", 50.0,
              finals=[{"mig": True}, {"mig": math.nan}, {"mig": "0.3"}, {"mig": [1]}, {"mig": 10 ** 400},
                      {"mig": math.inf}, {"mig": 0.5}, {"mig": 2}])
    assert row.values("mig") == [0.5, 2.0]
    assert row.stat("mig") == pytest.approx((1.25, float(np.std([0.5, 2.0], ddof=1))))
    assert Row("dsprites", "topk", "none", 50.0, finals=[{"mig": False}]).stat("mig") is None


@pytest.mark.parametrize("curve", [[[10 ** 400, 0.1]], [[0, "0.1"]], [[0, 0.1, 2]], [[0, math.nan]], [[True, 0.1]],
                                   {"0": 0.1}, "0.1"])
def test_a_damaged_dead_curve_is_named_and_the_table_is_still_written(tmp_path, curve):
    write_run(tmp_path, "r0", 0, {**GOOD, "dead_curve": [[0, 0.1], [10, 0.3]]})
    write_run(tmp_path, "r1", 1, {**GOOD, "dead_curve": curve})
    rows, left_out = build_rows(list_runs(tmp_path))
    assert [r.run_id for r in left_out] == ["r1"] and "final.dead_curve" in left_out[0].flags[0]
    assert "r1 (suspect; summary.json: final.dead_curve" in report.report_markdown(rows, left_out, "t")


def test_the_table_command_names_the_run_and_the_key(tmp_path, capsys):
    from collapse_tui import cli

    write_run(tmp_path, "r0", 0, {**GOOD, "mig": 0.2})
    write_run(tmp_path, "r1", 1, {**GOOD, "mig": 0.4})
    write_run(tmp_path, "r2", 2, {**GOOD, "mig": True})
    assert cli.main(["--table", str(tmp_path), "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "r2 (suspect; summary.json: final.mig is bool True, not a finite number)" in out
    assert "| 2 |" in out and "0.300" in out  # two seeds; MIG (0.2 + 0.4) / 2, not (0.2 + 0.4 + 1) / 3
