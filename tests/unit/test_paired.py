"""Each remedy row against the plain SAE, paired by seed: the plain row it is compared with, the
differences, interval and p against hand computation, the seeds an effect needs, and the section in
results.md, paired.csv and ``--table``."""

import csv
import io
import json
import math
import warnings

import pytest
import yaml

from collapse_tui import cli, store
from collapse_tui.metrics.specs import DEAD, spec
from collapse_tui.report import (
    PAIRED_TITLE,
    baseline_of,
    build_rows,
    comparisons,
    detectable_effect,
    paired,
    paired_csv,
    paired_markdown,
    paired_power,
    pooled_sd,
    report_markdown,
    seeds_needed,
    write_report,
)
from collapse_tui.report.paired import MAX_SEEDS
from collapse_tui.store import RunRecord
from collapse_tui.store.layout import PAIRED_CSV

T_975_DF2 = 4.302652729911275  # the 0.975 quantile of Student's t with 2 degrees of freedom (tables)
L0, EV = spec("l0"), spec("explained_variance")


def summary(seed, method="topk", sparsity=50.0, remedies=(), **final):
    final = {"dead_fraction": 0.3, "dead@0": 0.3, "l0": 50.0, "explained_variance": 0.99, "mig": 0.05, **final}
    return {"status": "ok", "dataset": "dsprites", "method": method, "sparsity": sparsity,
            "remedies": list(remedies), "source": "encoder_hidden", "final": final}


def config(seed, remedies=(), sae=None):
    """config.yaml as a run of these remedies writes it (the switches on; AuxK's own settings with it)."""
    switches = {name: True for name in remedies}
    if "auxk" in remedies:
        switches["auxk_k"] = 64
    return {"seed": seed, "sae": {**(sae or {}), "remedies": switches}}


def run(tmp_path, seed, remedies=(), sparsity=50.0, sae=None, **final):
    name = f"{'-'.join(remedies) or 'plain'}-{sparsity:g}-{json.dumps(sae or {}, sort_keys=True)}-s{seed}"
    return RunRecord(path=tmp_path / name, config=config(seed, remedies, sae),
                     summary=summary(seed, sparsity=sparsity, remedies=remedies, **final))


def series(tmp_path, dead_by_seed, remedies=(), **kwargs):
    return [run(tmp_path, seed, remedies, dead_fraction=dead, **kwargs) for seed, dead in dead_by_seed.items()]


PLAIN = {0: 0.10, 1: 0.20, 2: 0.30}
AUXK = {0: 0.05, 1: 0.14, 2: 0.27}  # differences in points: −5, −6, −3


def rows_of(records):
    rows, left_out = build_rows(records)
    assert left_out == []
    return rows


def by_remedy(rows):
    return {(row.remedy, row.sparsity, row.setting): row for row in rows}


def hand():
    """The worked example by hand: differences −5, −6, −3 points (remedy − plain)."""
    diffs = [-5.0, -6.0, -3.0]
    n = len(diffs)
    mean = sum(diffs) / n  # −14/3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))  # √(7/3)
    se = sd / math.sqrt(n)
    t = mean / se  # −2√7
    # Student's t with 2 degrees of freedom has the closed form P(T > t) = (1 − t/√(t² + 2)) / 2.
    p = 1 - abs(t) / math.sqrt(t * t + 2)
    return diffs, mean, sd, (mean - T_975_DF2 * se, mean + T_975_DF2 * se), p


# ------------------------------------------------------------------------------------ the plain row

def test_a_remedy_row_is_compared_with_the_plain_row_at_its_settings(tmp_path):
    records = (series(tmp_path, PLAIN) + series(tmp_path, AUXK, ("auxk",))
               + series(tmp_path, {0: 0.4}, sparsity=100.0)  # plain, another k
               + series(tmp_path, {0: 0.1}, ("tied_init",), sparsity=100.0)  # a remedy at k = 100: has one
               + series(tmp_path, {0: 0.1}, ("auxk",), sparsity=20.0)  # a remedy at a k no plain run has
               + series(tmp_path, {0: 0.3}, sae={"batch_size": 16})  # plain, another batch size
               + series(tmp_path, {0: 0.2}, ("auxk",), sae={"batch_size": 64}))  # no plain run at 64
    rows = rows_of(records)
    row = by_remedy(rows)
    auxk, plain = row[("auxk", 50.0, "sae.batch_size=256")], row[("none", 50.0, "sae.batch_size=256")]
    # AuxK's own settings (auxk_k) are set aside with its switch: the plain run has them inert.
    assert auxk.settings["sae.remedies.auxk_k"] == 64 and "sae.remedies.auxk_k" not in plain.settings
    assert baseline_of(auxk, rows) is plain
    assert baseline_of(row[("tied_init", 100.0, "sae.batch_size=256")], rows) is row[("none", 100.0,
                                                                                      "sae.batch_size=256")]
    assert baseline_of(row[("auxk", 20.0, "sae.batch_size=256")], rows) is None  # not the k = 50 or 100 one
    assert baseline_of(row[("auxk", 50.0, "sae.batch_size=64")], rows) is None  # not another batch size
    assert baseline_of(plain, rows) is None  # a plain row is compared with nothing
    assert [(r.remedy, p is not None) for r, p in comparisons(rows)] == [
        ("auxk", False), ("auxk", False), ("auxk", True), ("tied_init", True)]  # the table's order


def test_a_delayed_schedule_is_a_remedy_paired_with_the_undelayed_plain_row(tmp_path):
    from collapse_tui import config as config_mod
    from collapse_tui.engine.sae_phase import remedy_names

    schedule = {"kind": "linear", "start": 500, "epochs": 10}
    delayed = config_mod.validate({"sae": {"schedule": {**schedule, "delay": 10}}})
    assert remedy_names(delayed) == ["schedule delay 10"]
    assert remedy_names(config_mod.validate({"sae": {"schedule": {"kind": "constant", "delay": 10}}})) == []
    records = (series(tmp_path, PLAIN, sae={"schedule": schedule})
               + [run(tmp_path, seed, ("schedule delay 10",), sae={"schedule": {**schedule, "delay": 10}},
                      dead_fraction=dead) for seed, dead in AUXK.items()])
    for record in records[3:]:  # config() wrote the label as a switch: a delayed run's config holds the delay only
        record.config["sae"]["remedies"] = {}
    rows = rows_of(records)
    plain, delay = sorted(rows, key=lambda r: r.remedy != "none")
    assert delay.remedy == "schedule delay 10" and baseline_of(delay, rows) is plain
    assert paired(delay, plain, DEAD).mean == pytest.approx(hand()[1])


def test_a_plain_row_with_another_schedule_is_paired_with_the_first_plain_row(tmp_path):
    schedule = {"kind": "linear", "start": 500, "epochs": 10}
    records = (series(tmp_path, PLAIN, sae={"schedule": schedule})
               + series(tmp_path, AUXK, sae={"schedule": {**schedule, "epochs": 20}})  # slower: still remedy none
               + series(tmp_path, {0: 0.5}, sae={"schedule": schedule, "batch_size": 64}))  # differs beyond it
    rows = rows_of(records)
    first, slower, other = sorted(rows, key=lambda r: (r.settings.get("sae.batch_size") == 64,
                                                       r.settings.get("sae.schedule.epochs")))
    assert [r.remedy for r in (first, slower, other)] == ["none"] * 3
    assert slower.settings["sae.schedule.epochs"] == 20
    ordered = [first, slower, other]
    assert comparisons(ordered) == [(slower, first)]  # the first is the baseline, never a variant
    assert comparisons([slower, first]) == [(first, slower)]  # "first" is by the rows' order
    result = paired(slower, first, DEAD)
    diffs, mean, _, ci, p = hand()
    assert result.mean == pytest.approx(mean) and result.ci == pytest.approx(ci) and result.p == pytest.approx(p)
    assert "| none |" in paired_markdown(ordered).split("## ")[1]


def test_a_plain_row_of_other_settings_is_never_the_baseline(tmp_path):
    rows = rows_of(series(tmp_path, PLAIN, sae={"epochs": 5}) + series(tmp_path, AUXK, ("auxk",)))
    assert [baseline_of(r, rows) for r in rows] == [None, None]


# ------------------------------------------------------------------------------- differences and tests

def test_differences_mean_interval_and_p_against_hand_computation(tmp_path):
    rows = by_remedy(rows_of(series(tmp_path, PLAIN) + series(tmp_path, AUXK, ("auxk",))))
    remedy, plain = rows[("auxk", 50.0, "")], rows[("none", 50.0, "")]
    diffs, mean, sd, ci, p = hand()
    result = paired(remedy, plain, DEAD)
    assert result.seeds == (0, 1, 2) and result.left_out == () and result.n == 3
    assert result.differences == pytest.approx(diffs)  # in points: the dead %'s shown scale
    assert result.mean == pytest.approx(mean) and result.sd == pytest.approx(sd)
    assert result.ci == pytest.approx(ci) and result.p == pytest.approx(p)
    assert p == pytest.approx(2 * (1 - 0.5 * (1 + 2 * math.sqrt(7) / math.sqrt(30))))  # t = −2√7


def test_a_seed_only_one_row_ran_is_left_out_and_counted(tmp_path):
    records = (series(tmp_path, {**PLAIN, 4: 0.9}) + series(tmp_path, {**AUXK, 3: 0.0}, ("auxk",)))
    rows = by_remedy(rows_of(records))
    result = paired(rows[("auxk", 50.0, "")], rows[("none", 50.0, "")], DEAD)
    _, mean, _, ci, p = hand()
    assert result.seeds == (0, 1, 2) and result.left_out == (3, 4)
    assert (result.mean, result.ci, result.p) == (pytest.approx(mean), pytest.approx(ci), pytest.approx(p))


def test_one_pair_gives_the_difference_alone(tmp_path):
    rows = by_remedy(rows_of(series(tmp_path, {0: 0.10, 1: 0.2}) + series(tmp_path, {0: 0.04}, ("auxk",))))
    result = paired(rows[("auxk", 50.0, "")], rows[("none", 50.0, "")], DEAD)
    assert result.n == 1 and result.mean == pytest.approx(-6.0) and result.left_out == (1,)
    assert result.ci is None and result.p is None and result.sd is None


@pytest.mark.parametrize("shift, p", [(0.05, 0.0), (0.0, 1.0)])
def test_identical_differences_give_the_point_and_a_p_of_0_or_1_without_warnings(tmp_path, shift, p):
    records = series(tmp_path, PLAIN) + series(tmp_path, {s: d + shift for s, d in PLAIN.items()}, ("auxk",))
    rows = by_remedy(rows_of(records))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired(rows[("auxk", 50.0, "")], rows[("none", 50.0, "")], DEAD)
    # 0.15 − 0.10 and 0.35 − 0.30 differ in the last bit: still the same difference.
    assert result.mean == pytest.approx(shift * 100) and result.sd == 0.0
    assert result.ci == (result.mean, result.mean) and result.p == p


def test_a_metric_one_row_never_measured_pairs_nothing(tmp_path):
    rows = by_remedy(rows_of(series(tmp_path, PLAIN) + series(tmp_path, AUXK, ("auxk",), bce=90.0)))
    result = paired(rows[("auxk", 50.0, "")], rows[("none", 50.0, "")], spec("bce"))
    assert result.n == 0 and result.mean is None and result.left_out == (0, 1, 2)


# ---------------------------------------------------------------------------------- seeds and power

def test_a_paired_t_test_of_effect_one_sd_needs_ten_pairs():
    # The textbook value (G*Power, paired t, d_z = 1, two-sided α = 0.05): 10 pairs give power 0.803.
    assert paired_power(1.0, 1.0, 10) == pytest.approx(0.803, abs=5e-4)
    assert paired_power(1.0, 1.0, 9) < 0.8
    assert seeds_needed(5.0, 5.0) == 10 and seeds_needed(5.0, -5.0) == 10  # the sign does not matter


def test_seeds_needed_grows_with_the_spread_and_falls_with_the_effect():
    by_sd = [seeds_needed(sd, 5.0) for sd in (1.0, 2.0, 4.0, 8.0, 16.0)]
    by_effect = [seeds_needed(8.0, effect) for effect in (2.0, 4.0, 8.0, 16.0)]
    assert by_sd == sorted(by_sd) and len(set(by_sd)) == len(by_sd)
    assert by_effect == sorted(by_effect, reverse=True) and len(set(by_effect)) == len(by_effect)
    assert all(paired_power(5.0, sd, n) >= 0.8 > paired_power(5.0, sd, n - 1)
               for sd, n in zip((1.0, 2.0, 4.0, 8.0, 16.0), by_sd) if n > 2)
    assert seeds_needed(0.0, 5.0) == 2  # no spread: the fewest pairs a test has
    assert seeds_needed(5.0, 0.0) is None  # no effect is ever detected
    assert seeds_needed(100.0, 1.0) is None and paired_power(1.0, 100.0, MAX_SEEDS) < 0.8  # beyond the cap
    assert seeds_needed(0.5, 50.0) == 2  # far beyond the spread: where scipy's lower tail gives NaN
    with pytest.raises(ValueError):
        seeds_needed(-1.0, 5.0)
    with pytest.raises(ValueError):
        seeds_needed(1.0, 5.0, alpha=0.9)


def test_detectable_effect_is_the_inverse_of_seeds_needed():
    for sd, n in ((5.0, 10), (2.0, 3), (8.0, 40)):
        effect = detectable_effect(sd, n)
        assert paired_power(effect, sd, n) == pytest.approx(0.8, abs=1e-9)
        assert seeds_needed(sd, effect * 1.001) <= n < seeds_needed(sd, effect * 0.999)
    assert detectable_effect(5.0, 10) == pytest.approx(5.0, rel=0.01)  # ten pairs: about one sd
    assert detectable_effect(5.0, 20) < detectable_effect(5.0, 10)
    assert detectable_effect(0.0, 3) == 0.0
    with pytest.raises(ValueError):
        detectable_effect(5.0, 1)


def test_pooled_sd_weighs_comparisons_by_their_degrees_of_freedom(tmp_path):
    records = (series(tmp_path, PLAIN) + series(tmp_path, AUXK, ("auxk",))
               + series(tmp_path, {0: 0.1, 1: 0.2}, ("tied_init",)))  # differences 0, 0: sd 0, 1 dof
    rows = rows_of(records)
    results = [paired(r, p, DEAD) for r, p in comparisons(rows)]
    _, _, sd, _, _ = hand()
    assert pooled_sd(results) == (pytest.approx(math.sqrt((2 * sd ** 2 + 0) / 3)), 3)
    assert pooled_sd(results[1:]) == (0.0, 1) and pooled_sd([]) is None


# ------------------------------------------------------------------------------ results.md and CSV

def section_lines(text):
    return text[text.index(f"## {PAIRED_TITLE}"):].splitlines()


def test_results_md_gets_the_section_with_hand_computed_cells_and_the_seeds_note(tmp_path):
    records = (series(tmp_path, PLAIN, l0=50.0) + series(tmp_path, AUXK, ("auxk",), l0=50.0)
               + series(tmp_path, {0: 0.1}, ("auxk",), sparsity=20.0))
    rows = rows_of(records)
    text = report_markdown(rows, [], "t")
    assert text.index("| dataset | method | remedy |") < text.index(f"## {PAIRED_TITLE}")  # after the table
    lines = section_lines(text)
    _, mean, sd, (low, high), p = hand()
    assert lines[2] == "| dataset | method | remedy | k / λ | pairs | Δ dead % | Δ L0 | Δ EV | Δ MIG |"
    dead = f"{mean:+.1f} [{low:.1f}, {high:.1f}] p={p:.3f}"
    assert lines[4] == f"| dsprites | topk | auxk | k=50 | 3 | {dead} | +0.0 [0.0, 0.0] p=1.000 " \
                       "| +0.000 [0.000, 0.000] p=1.000 | +0.000 [0.000, 0.000] p=1.000 |"
    assert "- dsprites topk auxk k=20: no plain run at the same settings" in lines
    notes = [line for line in lines if line.startswith("- Δ") or line.startswith("- seeds")]
    assert "two-sided paired t-test" in notes[0] and "95% t-interval" in notes[0]
    assert f"sd of {sd:.1f} pp" in notes[1] and f"needs {seeds_needed(sd, 5.0)} pairs" in notes[1]
    assert f"3 pairs find {detectable_effect(sd, 3):.1f} points" in notes[1]
    assert "the plain rows' dead % alone varies by 10.0 pp" in notes[1]  # 10, 20, 30: sd 10


def test_a_single_pair_cannot_say_how_many_seeds_are_needed(tmp_path):
    rows = rows_of(series(tmp_path, {0: 0.1}) + series(tmp_path, {0: 0.05}, ("auxk",)))
    lines = section_lines(paired_markdown(rows))
    assert "| dsprites | topk | auxk | k=50 | 1 | -5.0 |" in lines[4]
    assert any("needs at least 2 pairs" in line for line in lines)


def test_no_remedy_rows_no_section_and_no_plain_row_says_so(tmp_path):
    assert paired_markdown(rows_of(series(tmp_path, PLAIN))) == ""
    assert PAIRED_TITLE not in report_markdown(rows_of(series(tmp_path, PLAIN)), [], "t")
    alone = paired_markdown(rows_of(series(tmp_path, AUXK, ("auxk",))))
    assert "- dsprites topk auxk k=50: no plain run at the same settings" in alone
    assert "| dataset |" not in alone and "paired t-test" not in alone  # nothing compared, nothing to note


def test_paired_csv_holds_a_line_per_row_and_metric(tmp_path):
    records = (series(tmp_path, {**PLAIN, 4: 0.9}) + series(tmp_path, {**AUXK, 3: 0.0}, ("auxk",))
               + series(tmp_path, {0: 0.1}, ("auxk",), sparsity=20.0))
    table = list(csv.DictReader(io.StringIO(paired_csv(rows_of(records)))))
    assert list(table[0]) == ["dataset", "method", "remedy", "sparsity", "setting", "against", "metric", "n",
                              "left_out", "mean_diff", "ci_low", "ci_high", "p"]
    assert {line["against"] for line in table} == {"plain"}
    assert [line["metric"] for line in table] == ["dead_pct", "l0", "explained_variance", "mig"]  # only k = 50
    dead = table[0]
    _, mean, _, (low, high), p = hand()
    assert (dead["remedy"], dead["sparsity"], dead["n"], dead["left_out"]) == ("auxk", "50", "3", "2")
    assert [float(dead[k]) for k in ("mean_diff", "ci_low", "ci_high", "p")] == pytest.approx(
        [mean, low, high, p], rel=1e-5)
    assert table[1]["p"] == "1" and table[1]["ci_low"] == "0"


def test_write_report_writes_paired_csv_beside_the_tables(tmp_path):
    paths = write_report(tmp_path, series(tmp_path, PLAIN) + series(tmp_path, AUXK, ("auxk",)), "t")
    assert paths[2] == tmp_path / PAIRED_CSV
    assert len((tmp_path / PAIRED_CSV).read_text().splitlines()) == 1 + 4
    write_report(tmp_path, series(tmp_path, PLAIN), "t")  # no remedy now: the header alone
    assert len((tmp_path / PAIRED_CSV).read_text().splitlines()) == 1


# -------------------------------------------------------------------------------------------- --table

def sweep_on_disk(tmp_path):
    """A sweep directory of fake finished runs: plain and AuxK at k = 50 over three seeds, AuxK at k = 20."""
    runs_dir = tmp_path / "runs"
    writer = store.SweepWriter(runs_dir, "study", n_runs=7)
    records = series(tmp_path, PLAIN) + series(tmp_path, AUXK, ("auxk",)) + series(tmp_path, {0: 0.1}, ("auxk",),
                                                                                   sparsity=20.0)
    for i, rec in enumerate(records):
        path = store.create_run_dir(runs_dir, f"study-{i}")
        (path / store.CONFIG_FILE).write_text(yaml.safe_dump(rec.config))
        (path / store.SUMMARY_FILE).write_text(json.dumps(rec.summary))
        writer.add(path)
    return writer.path


def test_table_prints_the_section_in_every_format(tmp_path, capsys, monkeypatch):
    sweep = sweep_on_disk(tmp_path)
    _, mean, _, (low, high), p = hand()
    dead = f"{mean:+.1f} [{low:.1f}, {high:.1f}] p={p:.3f}"
    assert cli.main(["--table", str(sweep), "--format", "md"]) == 0
    out = capsys.readouterr()
    assert f"## {PAIRED_TITLE}" in out.out and f"| dsprites | topk | auxk | k=50 | 3 | {dead} |" in out.out
    assert "no plain run at the same settings" in out.out and str(sweep / PAIRED_CSV) in out.err
    assert (sweep / PAIRED_CSV).is_file()
    assert cli.main(["--table", str(sweep), "--format", "csv"]) == 0
    results, _, comparison = capsys.readouterr().out.partition("\n\n")
    assert list(csv.DictReader(io.StringIO(results)))[0]["remedy"] == "none"
    assert comparison == (sweep / PAIRED_CSV).read_text()
    # In the terminal: after the table, fitted to its width, the dead % always there.
    monkeypatch.setenv("COLUMNS", "80")
    assert cli.main(["--table", str(sweep)]) == 0
    shown = capsys.readouterr().out.splitlines()
    at = shown.index(PAIRED_TITLE)
    header = next(line for line in shown[at:] if "pairs" in line)
    assert header.split()[:3] == ["dataset", "method", "remedy"] and "Δ dead %" in header
    assert any(dead in line for line in shown[at:])
    assert "1 remedy row(s) without a plain run at the same settings; --format md names them" in shown
    assert max(map(len, shown)) <= 80
    monkeypatch.setenv("COLUMNS", "250")
    assert cli.main(["--table", str(sweep)]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if "pairs" in line)
    assert "Δ L0" in header and "Δ EV" in header and "Δ MIG" in header  # room for every metric


def test_table_without_a_comparison_prints_no_section(tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    for i, rec in enumerate(series(tmp_path, PLAIN)):
        path = store.create_run_dir(runs_dir, f"plain-{i}")
        (path / store.CONFIG_FILE).write_text(yaml.safe_dump(rec.config))
        (path / store.SUMMARY_FILE).write_text(json.dumps(rec.summary))
    assert cli.main(["--table", str(runs_dir), "--format", "csv"]) == 0
    assert "\n\n" not in capsys.readouterr().out
    assert cli.main(["--table", str(runs_dir)]) == 0
    assert PAIRED_TITLE not in capsys.readouterr().out
