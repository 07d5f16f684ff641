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
    own.write_text(shipped.read_text().replace("seed: 0", "seed: 7"))
    assert sweep_table.preset(_sweep_dir(tmp_path / "b", "mine", own)) == "mine"
    # A header reworded since the sweep ran: the same settings, so the same preset.
    reworded = tmp_path / "reworded" / "quick_shapes3d.yaml"
    reworded.parent.mkdir()
    reworded.write_text("# a new header\n" + shipped.read_text())
    assert sweep_table.preset(_sweep_dir(tmp_path / "d", "quick-shapes3d", reworded)) == "quick_shapes3d"
    assert sweep_table.preset(_sweep_dir(tmp_path / "c", "gone", tmp_path / "missing.yaml")) == "gone"
    # A config of one's own under a name no preset has: its file, run from where it is.
    mine = tmp_path / "digits_topk.yaml"
    mine.write_text(shipped.read_text())
    assert sweep_table.preset(_sweep_dir(tmp_path / "e", "digits-topk", mine)) == "digits_topk.yaml"


def test_the_paired_table_holds_each_row_against_its_plain_row(tmp_path, monkeypatch):
    """Three seeds: plain dead 10/20/30%, AuxK 5/14/27%. By hand the differences are −5, −6, −3 points:
    mean −4.67, sd √(7/3), t = −2√7 on 2 degrees of freedom, 95% interval ±4.303 × sd/√3 = ±3.79, and
    p = 1 − |t|/√(t² + 2) = 0.034."""
    from collapse_tui.store import RunRecord

    def record(seed, dead, remedies):
        switches = {"auxk": True, "auxk_k": 64} if remedies else {}
        final = {"dead_fraction": dead, "dead@0": dead, "dead_relu": dead / 2, "l0": 50.0,
                 "explained_variance": 0.99}
        return RunRecord(path=tmp_path / f"{remedies}-{seed}", config={"seed": seed, "sae": {"remedies": switches}},
                         summary={"status": "ok", "dataset": "dsprites", "method": "topk", "sparsity": 50.0,
                                  "remedies": list(remedies), "source": "encoder_hidden", "final": final})

    found = ([record(s, d, ()) for s, d in enumerate((0.10, 0.20, 0.30))]
             + [record(s, d, ("auxk",)) for s, d in enumerate((0.05, 0.14, 0.27))])
    monkeypatch.setattr(sweep_table, "records", lambda sweep_dir: found)
    header, body, notes = sweep_table.paired_rows(tmp_path)
    assert header[:4] == ["remedy", "setting", "dead % (mean ± sd)", "Δ dead % [95% CI], p"]
    plain, auxk = sorted(body, key=lambda r: r[0] != "none")
    assert plain[:4] == ["none", "", "20.0 ± 10.0", "(a plain row)"]
    assert auxk[:4] == ["auxk", "", "15.3 ± 11.1", "-4.7 [-8.5, -0.9], p = 0.034"]
    assert auxk[4:7] == ["0.990 ± 0.000", "+0.000 [0.000, 0.000]", "7.7"]  # EV the same in every pair


def test_the_paired_table_of_a_methods_sweep_says_each_rows_method_against_and_l0(tmp_path, monkeypatch):
    """L1 at target L0 50 against plain Top-k at k = 50: dead 20/35/33% against 10/20/30%, differences +10,
    +15, +3 (mean +9.3); its L0 52 against 50 in every pair (+2, the point interval)."""
    from collapse_tui.store import RunRecord

    def record(seed, dead, sae, l0, sparsity):
        final = {"dead_fraction": dead, "dead@0": dead, "dead_relu": dead, "l0": l0, "explained_variance": 0.99}
        return RunRecord(path=tmp_path / f"{sae['method']}-{seed}", config={"seed": seed, "sae": sae},
                         summary={"status": "ok", "dataset": "dsprites", "method": sae["method"],
                                  "sparsity": sparsity, "remedies": [], "source": "encoder_hidden", "final": final})

    topk = {"method": "topk", "k": 50}
    l1 = {"method": "l1", "l1_coefficient": 0.005, "target_l0": 50, "schedule": {"kind": "constant"}}
    found = ([record(s, d, topk, 50.0, 50.0) for s, d in enumerate((0.10, 0.20, 0.30))]
             + [record(s, d, l1, 52.0, 0.005) for s, d in enumerate((0.20, 0.35, 0.33))])
    monkeypatch.setattr(sweep_table, "records", lambda sweep_dir: found)
    header, body, notes = sweep_table.paired_rows(tmp_path)
    assert header[:8] == ["method", "remedy", "setting", "against", "dead % (mean ± sd)", "Δ dead % [95% CI], p",
                          "L0", "Δ L0 [95% CI]"]
    rows = {row[0]: row for row in body}
    assert rows["topk"][3:6] == ["–", "20.0 ± 10.0", "(a plain row)"]
    assert rows["l1"][3] == "topk k=50" and rows["l1"][5].startswith("+9.3 [")
    assert rows["l1"][6:8] == ["52.0 ± 0.0", "+2.0 [2.0, 2.0]"]
    assert any(note.startswith("against: a row of another method") for note in notes)


def test_the_paired_table_of_several_methods_without_topk_still_says_each_rows_method_and_l0(tmp_path, monkeypatch):
    """L1 and JumpReLU rows with no Top-k row to be compared with: each line names its method and the L0 it
    reached (no 'against' column value, no equal-sparsity note)."""
    from collapse_tui.store import RunRecord

    def record(seed, method, l0):
        final = {"dead_fraction": 0.4, "dead@0": 0.4, "dead_relu": 0.4, "l0": l0, "explained_variance": 0.99}
        sae = {"method": method, "l1_coefficient": 0.001}
        return RunRecord(path=tmp_path / f"{method}-{seed}", config={"seed": seed, "sae": sae},
                         summary={"status": "ok", "dataset": "shapes3d", "method": method, "sparsity": 0.001,
                                  "remedies": [], "source": "encoder_hidden", "final": final})

    found = [record(s, "l1", 46.0 + s) for s in range(2)] + [record(s, "jumprelu", 41.0) for s in range(2)]
    monkeypatch.setattr(sweep_table, "records", lambda sweep_dir: found)
    header, body, notes = sweep_table.paired_rows(tmp_path)
    assert header[0] == "method" and "L0" in header
    l0 = header.index("L0")
    assert {row[0]: row[l0] for row in body} == {"l1": "46.5 ± 0.7", "jumprelu": "41.0 ± 0.0"}
    assert not any(note.startswith("against:") for note in notes)


def test_a_table_cut_to_chosen_columns_keeps_their_order_and_their_notes():
    header = ["k / λ", "dead % @0", "L0", "spec."]
    body = [["k=4", "72.9", "4.0", "7"], ["k=8", "58.9", "8.0", "16"]]
    notes = ["dead % @t: never above t.", "spec.: specialized neurons.", "L0: active per input."]
    cut = sweep_table.only_columns(header, body, notes, ["L0", "k / λ", "dead % @0"])
    assert cut == (["L0", "k / λ", "dead % @0"], [["4.0", "k=4", "72.9"], ["8.0", "k=8", "58.9"]],
                   ["dead % @t: never above t.", "L0: active per input."])
    with pytest.raises(SystemExit, match="no column 'MIG'"):
        sweep_table.only_columns(header, body, notes, ["MIG"])
