"""The results tables of the README and the docs are written from sweep directories and checked against
a fresh run: the check must catch a number that moved and let through what is within its tolerance."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("sweep_table", ROOT / "docs" / "sweep_table.py")
sweep_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep_table)

ROWS = [["topk", "k=50", "23.6", "50.0", "0.991"], ["l1", "λ=1", "81.4", "8.1", "0.916"]]


def page(rows, name="quick") -> str:
    start, end = sweep_table.markers(name)
    body = "\n".join("| " + " | ".join(r) + " |" for r in rows)
    return (f"intro\n{start}\n\n| method | k / λ | dead % | L0 | EV |\n|---|---|---|---|---|\n{body}\n\n"
            f"`collapse-tui --batch quick`, a date\n\n{end}\nafter\n")


def test_a_table_reads_back_from_between_its_markers():
    assert sweep_table.table_in(page(ROWS), "quick") == ROWS
    with pytest.raises(SystemExit, match="no <!-- table:other:start -->"):
        sweep_table.table_in(page(ROWS), "other")


@pytest.mark.parametrize("change, problem", [
    ((0, 2, "24.5"), None),  # within a point of 23.6
    ((0, 2, "24.7"), "topk k=50: dead % 24.7 in the table, 23.6 in the run"),
    ((1, 3, "8.2"), "l1 λ=1: L0 8.2 in the table, 8.1 in the run"),
    ((1, 4, "0.917"), "l1 λ=1: EV 0.917 in the table, 0.916 in the run"),
    ((1, 1, "λ=0.3"), "row ['l1', 'λ=0.3'] is ['l1', 'λ=1'] in the run"),
])
def test_the_check_allows_a_point_of_dead_fraction_and_nothing_else(change, problem):
    row, column, value = change
    shown = [list(r) for r in ROWS]
    shown[row][column] = value
    found = sweep_table.differences(sweep_table.table_in(page(shown), "quick"), ROWS)
    assert found == ([] if problem is None else [problem])


def test_a_missing_or_extra_run_is_a_difference():
    assert sweep_table.differences(ROWS[:1], ROWS) == ["the table has 1 rows, the run 2"]


def test_the_readme_holds_the_quick_presets_table():
    rows = sweep_table.table_in((ROOT / "README.md").read_text(), "quick")
    assert [r[:2] for r in rows][:4] == [["topk", f"k={k}"] for k in (250, 150, 100, 50)]


def _sweep_dir(tmp_path, name, config):
    directory = tmp_path / "sweeps" / "20260101-000000-x"
    directory.mkdir(parents=True)
    (directory / "sweep.json").write_text(json.dumps({"name": name, "config": str(config), "n_runs": 0, "runs": []}))
    return directory


def test_the_command_names_the_preset_file_the_sweep_ran_not_its_name(tmp_path):
    from collapse_tui.config.presets import presets

    shipped = presets()["quick_shapes3d"]
    assert sweep_table.preset(_sweep_dir(tmp_path / "a", "quick-shapes3d", shipped)) == "quick_shapes3d"
    # A config of one's own, even under a preset's file name, is named by its sweep's name.
    own = tmp_path / "quick_shapes3d.yaml"
    own.write_text(shipped.read_text() + "\n# changed\n")
    assert sweep_table.preset(_sweep_dir(tmp_path / "b", "mine", own)) == "mine"
    assert sweep_table.preset(_sweep_dir(tmp_path / "c", "gone", tmp_path / "missing.yaml")) == "gone"
