"""Methods compared at equal sparsity: a row of another method trained to Top-k's L0 (BatchTopK at its k, L1
and JumpReLU at their controller's target) is paired by seed with the plain Top-k row of the same data,
seeds, dictionary and length; never with a Top-k row of another k or other settings; and the tables say
what each row was compared with."""

import csv
import io
import json

import pytest

from collapse_tui.metrics.specs import DEAD, spec
from collapse_tui.report import (
    against_text,
    build_rows,
    comparisons,
    paired,
    paired_csv,
    paired_markdown,
    sparsity_baseline_of,
    target_l0,
)
from collapse_tui.store import RunRecord

TOPK = {"method": "topk", "k": 50, "schedule": {"kind": "linear", "start": 500, "epochs": 10}}
L1 = {"method": "l1", "l1_coefficient": 0.005, "target_l0": 50, "schedule": {"kind": "constant"}}
JUMPRELU = {"method": "jumprelu", "l1_coefficient": 0.001, "target_l0": 50, "schedule": {"kind": "constant"},
            "normalization": "unit_norm", "adam_beta1": 0.0}
BATCHTOPK = {"method": "batchtopk", "k": 50, "schedule": TOPK["schedule"],
             "remedies": {"auxk": True, "auxk_coefficient": 0.03125}}
PLAIN_DEAD = {0: 0.10, 1: 0.20, 2: 0.30}


def runs(tmp_path, sae, dead_by_seed, sparsity=50.0, remedies=(), l0=50.0, **extra):
    """Finished runs of one SAE config over seeds, as their directories hold them."""
    made = []
    for seed, dead in dead_by_seed.items():
        name = f"{json.dumps(sae, sort_keys=True)}-{json.dumps(extra, sort_keys=True)}-s{seed}"
        summary = {"status": "ok", "dataset": "dsprites", "method": sae["method"], "sparsity": sparsity,
                   "remedies": list(remedies), "source": "encoder_hidden",
                   "final": {"dead_fraction": dead, "dead@0": dead, "l0": l0, "explained_variance": 0.99}}
        made.append(RunRecord(path=tmp_path / name, config={"seed": seed, "sae": {**sae, **extra}},
                              summary=summary))
    return made


def the_rows(records):
    rows, left_out = build_rows(records)
    assert left_out == []
    return {row.method + ("+" + row.setting if row.setting else ""): row for row in rows}, rows


def test_each_method_at_l0_50_is_paired_with_plain_topk_at_k_50(tmp_path):
    by, rows = the_rows(runs(tmp_path, TOPK, PLAIN_DEAD)
                        + runs(tmp_path, L1, {0: 0.20, 1: 0.35, 2: 0.33}, sparsity=0.005, l0=52.0)
                        + runs(tmp_path, JUMPRELU, {0: 0.0, 1: 0.1, 2: 0.2}, sparsity=0.001,
                               remedies=("unit_norm",))
                        + runs(tmp_path, BATCHTOPK, {0: 0.05, 1: 0.1, 2: 0.1}, remedies=("auxk",)))
    topk, l1, jump, batch = by["topk"], by["l1"], by["jumprelu"], by["batchtopk"]
    assert [target_l0(r) for r in (topk, l1, jump, batch)] == [50.0, 50.0, 50.0, 50.0]
    for row in (l1, jump, batch):
        assert sparsity_baseline_of(row, rows) is topk
    assert sparsity_baseline_of(topk, rows) is None  # Top-k is the reference, never compared with itself
    assert dict((r.method, p) for r, p in comparisons(rows)) == {"l1": topk, "jumprelu": topk, "batchtopk": topk}
    # L1 − Top-k per seed: +10, +15, +3 points; L0 52 against 50: +2.
    result = paired(l1, topk, DEAD)
    assert result.differences == pytest.approx((10.0, 15.0, 3.0)) and result.mean == pytest.approx(28 / 3)
    assert paired(l1, topk, spec("l0")).mean == pytest.approx(2.0)
    assert against_text(l1, topk) == "topk k=50"


def test_no_pairing_at_another_l0_or_other_settings_or_without_a_target(tmp_path):
    fixed_l1 = {**L1, "target_l0": None}
    _, rows = the_rows(runs(tmp_path, TOPK, PLAIN_DEAD)
                       + runs(tmp_path, {**L1, "target_l0": 20}, {0: 0.2}, sparsity=0.005)  # another L0
                       + runs(tmp_path, fixed_l1, {0: 0.2}, sparsity=0.005)  # a fixed λ: no L0 to match
                       + runs(tmp_path, L1, {0: 0.2}, sparsity=0.005, epochs=5)  # another length
                       + runs(tmp_path, {**BATCHTOPK, "k": 20}, {0: 0.2}, sparsity=20.0))  # another k
    topk = next(r for r in rows if r.method == "topk")
    others = [r for r in rows if r is not topk]
    assert len(others) == 4
    assert [sparsity_baseline_of(r, rows) for r in others] == [None] * 4
    assert target_l0(next(r for r in others if r.settings.get("sae.target_l0") is None and r.method == "l1")) is None


def test_a_method_with_its_own_plain_row_is_compared_with_that_row(tmp_path):
    """BatchTopK + AuxK beside plain BatchTopK: the remedy is the difference to measure, not the method."""
    _, rows = the_rows(runs(tmp_path, TOPK, PLAIN_DEAD)
                       + runs(tmp_path, {**BATCHTOPK, "remedies": {}}, PLAIN_DEAD)
                       + runs(tmp_path, BATCHTOPK, PLAIN_DEAD, remedies=("auxk",)))
    found = {(r.method, r.remedy): p for r, p in comparisons(rows)}
    assert found[("batchtopk", "auxk")].method == "batchtopk"  # its own plain row
    assert found[("batchtopk", "none")].method == "topk"  # the plain BatchTopK row: against Top-k


def test_the_section_and_csv_say_what_each_row_is_against(tmp_path):
    _, rows = the_rows(runs(tmp_path, TOPK, PLAIN_DEAD)
                       + runs(tmp_path, {**TOPK, "remedies": {"auxk": True}}, {0: 0.05, 1: 0.1, 2: 0.2},
                              remedies=("auxk",))
                       + runs(tmp_path, L1, {0: 0.20, 1: 0.35, 2: 0.33}, sparsity=0.005))
    text = paired_markdown(list(rows))
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| dataset"))
    assert "| against | pairs |" in header
    assert any(line.startswith("| dsprites | l1 | none | λ=0.005 |") and "| topk k=50 | 3 |" in line
               for line in lines)
    assert any("| auxk |" in line and "| plain | 3 |" in line for line in lines)
    assert any(line.startswith("- against: a row of another method") for line in lines)
    table = list(csv.DictReader(io.StringIO(paired_csv(list(rows)))))
    assert {(line["method"], line["against"]) for line in table} == {("topk", "plain"), ("l1", "topk k=50")}


def test_a_sweep_of_one_method_keeps_its_table_as_it_was(tmp_path):
    _, rows = the_rows(runs(tmp_path, TOPK, PLAIN_DEAD)
                       + runs(tmp_path, {**TOPK, "remedies": {"auxk": True}}, PLAIN_DEAD, remedies=("auxk",)))
    text = paired_markdown(list(rows))
    assert "against" not in text
