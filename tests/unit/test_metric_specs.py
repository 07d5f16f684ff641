"""The one vocabulary of metrics: formats, percent scaling, missing values, lookup, and that every metric
the engine emits for a table has a spec."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collapse_tui import config as config_mod
from collapse_tui.metrics.specs import (
    DEAD,
    MISSING,
    SPECS,
    MetricSpec,
    csv_number,
    dead_spec,
    spec,
    dead_keys,
    frequency_key,
    threshold_key,
)

# Scalars the engine records but no table shows: a run's size and setting, and the "before" halves of
# what the tables show as a change (revived, newly dead, spec. dense).
NOT_TABLED = {"n_neurons", "n_samples", "sparsity", "specialized_before_extension",
              "dead_before_sparsification", "n_factors"}


@pytest.mark.parametrize("key, value, text", [
    ("dead_fraction", 0.224, "22.4"),
    ("dead@0", 0.3, "30.0"),
    ("dead@1e-06", 1.0, "100.0"),
    ("l0", 7.96, "8.0"),
    ("explained_variance", 0.98765, "0.988"),
    ("mse", 0.0012345, "0.00123"),
    ("mse", 0.0000012345, "1.23e-06"),  # fixed digits would read 0.00000
    ("mse", 0.000012345, "0.00001"),  # not zero in fixed digits: kept
    ("mse", 0.0, "0.00000"),  # zero is exact: no notation to gain
    ("explained_variance", 0.00042, "4.20e-04"),
    ("explained_variance", -0.0004, "-4.00e-04"),
    ("mig", 0.0098, "0.010"),
    ("dead_fraction", 0.00001, "0.0"),  # a percentage keeps its fixed digits: 0.001% is no neuron here
    ("l0", 0.04, "0.0"),  # one decimal is the measure's resolution, not a tiny value
    ("bce", 2800.54, "2800.5"),
    ("mig", 0.0812, "0.081"),
    ("mig_vae", 0.0812, "0.081"),
    ("specialized", 14, "14"),
    ("specialized_before_sparsification", 479, "479"),
    ("revived", 3, "3"),
    ("newly_dead", 0, "0"),
    ("seconds", 12.4, "12s"),  # "time" names no unit: the cell carries it
])
def test_known_values_format_as_the_tables_show_them(key, value, text):
    assert spec(key).format(value) == text


def test_dead_fractions_read_as_percentages():
    d = spec("dead@0.01")
    assert d.scale == 100.0 and d.unit == "%" and d.scaled(0.25) == 25.0
    assert d.label == "dead % @0.01" and d.csv_name == "dead_pct@0.01" and d.key == "dead@0.01"
    assert DEAD.label == "dead %" and DEAD.csv_name == "dead_pct"
    # The label shows the unit, so a cell does not; running text asks for it.
    assert d.format(0.25) == "25.0" and d.format(0.25, unit=True) == "25.0%"
    assert spec("seconds").format(3.0, unit=True) == "3s" and spec("l0").format(3.0, unit=True) == "3.0"


@pytest.mark.parametrize("s", [*SPECS, dead_spec("dead@0")], ids=lambda s: s.key)
def test_none_is_a_dash_for_every_spec(s):
    assert s.format(None) == MISSING == "–" and s.format(None, unit=True) == "–"
    assert s.scaled(None) is None and csv_number(s.scaled(None)) == ""


def test_a_value_that_is_not_a_number_shows_as_it_is():
    assert spec("l0").format("n/a") == "n/a" and spec("l0").scaled(True) is None


def test_csv_numbers_are_scaled_to_six_significant_digits():
    assert csv_number(DEAD.scaled(0.1)) == "10" and csv_number(spec("mse").scaled(0.00123456789)) == "0.00123457"


def test_lookup():
    assert spec("l0") is next(s for s in SPECS if s.key == "l0")
    assert spec("dead@0") == dead_spec("dead@0") and spec("dead@0").digits == DEAD.digits
    with pytest.raises(KeyError, match="no metric spec for 'loss'"):
        spec("loss")
    with pytest.raises(KeyError):
        dead_spec("l0")
    assert len({s.key for s in SPECS}) == len(SPECS) and len({s.label for s in SPECS}) == len(SPECS)


def test_dead_keys_by_threshold_then_by_frequency():
    assert [threshold_key(t) for t in (0.0, 1e-6, 1e-3, 0.01)] == ["dead@0", "dead@1e-06", "dead@0.001", "dead@0.01"]
    assert [frequency_key(f) for f in (1e-4, 1e-3)] == ["dead_freq@0.0001", "dead_freq@0.001"]
    finals = [{"l0": 1.0, "dead_freq@0.001": 0.3, "dead@0": 0.1, "dead@0.01": 0.2},
              {"dead@1e-06": 0.1, "dead@0": 0.3, "dead_freq@0.0001": 0.1}]
    assert dead_keys(finals) == ["dead@0", "dead@0.01", "dead@1e-06", "dead_freq@0.001", "dead_freq@0.0001"]


def test_dead_by_frequency_reads_as_a_percentage_beside_the_thresholds():
    s = spec("dead_freq@0.001")
    assert (s.label, s.csv_name, s.format(0.224)) == ("dead % f<0.001", "dead_pct_freq<0.001", "22.4")
    assert s.format(0.224, unit=True) == "22.4%" and s.value({"final": {"dead_freq@0.001": 0.5}}) == 0.5


def test_values_are_read_from_where_a_summary_keeps_them():
    summary = {"final": {"l0": 8.0, "mig_vae": 0.5, "specialized": True}, "vae": {"mig": 0.08}, "seconds": 20.0}
    assert spec("l0").value(summary) == 8.0 and spec("mse").value(summary) is None
    assert spec("mig_vae").value(summary) == 0.08  # the VAE's own record
    assert spec("seconds").value(summary) == 20.0
    assert spec("specialized").value(summary) is None  # a bool is no count
    assert spec("l0").value({"final": "broken"}) is None and spec("l0").value({}) is None


def test_methods_name_real_methods():
    for s in SPECS:
        assert s.methods <= set(config_mod.SPARSITY_METHODS), s.key
    only_l1 = MetricSpec("x", "x", methods=frozenset({"l1"}))
    assert only_l1.applies_to("l1") and not only_l1.applies_to("topk")
    assert all(DEAD.applies_to(m) for m in config_mod.SPARSITY_METHODS)


class _StubSAE:
    """Codes and a reconstruction, no keras: evaluate_sae reads only these."""

    sparsity = 2.0

    def codes(self, x):
        acts = np.maximum(x @ np.linspace(-1, 1, 24).reshape(3, 8), 0.0)
        acts[:, -2:] = 0.0  # two dead neurons
        return acts

    def reconstruct(self, x):
        return 0.9 * x


class _StubVAE:
    input_scale = 1.0

    def reconstruct_logits(self, images, representation=None, source=""):
        return np.zeros(images.shape, np.float32)


def _engine_scalars() -> set[str]:
    """Every scalar the SAE phase records in an evaluation, found by running the evaluation and the
    extension report, and by reading the keys the SAE phase sets itself."""
    from collapse_tui.engine.evaluation import evaluate_sae
    from collapse_tui.engine.sae_phase import extension_report

    rng = np.random.default_rng(0)
    codes = rng.normal(size=(64, 3)).astype(np.float32)
    factors = rng.integers(0, 3, size=(64, 2))
    images = rng.integers(0, 2, size=(64, 4, 4, 1)).astype(np.uint8)
    metrics = evaluate_sae(_StubSAE(), codes, factors, config_mod.EvalConfig(), vae=_StubVAE(),
                           eval_images=images)
    metrics.update(extension_report(metrics, metrics))
    source = Path(sys.modules["collapse_tui.engine.sae_phase"].__file__).read_text()
    set_there = set(re.findall(r'metrics\["(\w+)"\]\s*=', source))
    return {k for k, v in metrics.items() if isinstance(v, (int, float))} | set_there


def test_every_metric_the_engine_emits_for_a_table_has_a_spec():
    emitted = _engine_scalars()
    assert {"dead@0", "dead@1e-06", "dead_fraction", "l0", "bce", "revived", "mig_vae",
            "specialized_before_sparsification"} <= emitted
    assert NOT_TABLED <= emitted, "a key named as not tabled is no longer emitted: drop it from NOT_TABLED"
    missing = []
    for key in sorted(emitted - NOT_TABLED):
        try:
            spec(key)
        except KeyError:
            missing.append(key)
    assert missing == [], f"metrics without a spec (add one to collapse_tui/metrics/specs.py): {missing}"


def test_the_renderers_take_their_titles_from_the_specs(tmp_path):
    from collapse_tui import report
    from collapse_tui.store import RunRecord
    from collapse_tui.tui import runs_table

    final = {"dead@0": 0.224, "l0": 8.0, "explained_variance": 0.9, "mig": 0.05, "specialized": 3}
    rec = RunRecord(path=tmp_path / "r", config={"seed": 0},
                    summary={"status": "ok", "dataset": "dsprites", "method": "topk", "sparsity": 8.0, "final": final})
    rows, _ = report.build_rows([rec])
    header = report.table_columns(rows)
    assert [spec(k).label for k in ("dead@0", "l0", "explained_variance", "mig", "specialized")] == header[5:10]
    assert "| 22.4 | 8.0 | 0.900 | 0.050 | 3 |" in report.markdown_table(rows)
    assert {DEAD.label, spec("l0").label, spec("explained_variance").label, spec("mig").label} <= set(
        runs_table.COLUMNS)
    assert runs_table.format_cell(DEAD.label, 0.224) == "22.4" and runs_table.format_cell("L0", None) == "–"


def test_specs_import_nothing_above_the_metrics():
    code = ("import sys; import collapse_tui.metrics.specs; "
            "print(sorted(m for m in ('keras', 'pydantic', 'textual', 'rich', 'collapse_tui.store', "
            "'collapse_tui.engine') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_factor_metric_of_a_run_without_factors_reads_n_a_never_a_dash_or_zero(tmp_path):
    from collapse_tui import report
    from collapse_tui.store import RunRecord
    from collapse_tui.tui import runs_table

    def record(name, final):
        return RunRecord(path=tmp_path / name, config={"seed": 0}, summary={
            "status": "ok", "dataset": "activations", "method": "topk", "sparsity": 8.0, "final": final})

    without = {"dead@0": 0.2, "l0": 8.0, "explained_variance": 0.9, "n_factors": 0}
    unmeasured = {"dead@0": 0.2, "l0": 8.0, "explained_variance": 0.9, "n_factors": 3}
    mig, probe = spec("mig"), spec("probe_acc")
    assert mig.shown({"final": without}) == "n/a" and mig.shown({"final": unmeasured}) == "–"
    assert spec("l0").shown({"final": without}) == "8.0" and spec("l0").shown({"final": {"n_factors": 0}}) == "–"
    assert not spec("l0").not_applicable([without]) and probe.not_applicable([without, without])
    assert not probe.not_applicable([without, unmeasured]) and not probe.not_applicable([])
    rows, _ = report.build_rows([record("a", without)])
    header, texts, _ = report.table_cells(rows)
    cells = dict(zip(header, texts[0]))
    assert cells[mig.label] == cells[probe.label] == cells[spec("auroc_best").label] == "n/a"
    assert spec("mig_sup").label not in header  # only the headline factor metrics stay as columns of n/a
    values = runs_table.row_values(record("a", without))
    assert runs_table.format_cell(mig.label, values[mig.label]) == "n/a"
    assert runs_table.format_cell(mig.label, runs_table.row_values(record("b", unmeasured))[mig.label]) == "–"


def test_a_std_follows_its_means_notation():
    mse = spec("mse")
    assert mse.text(3e-6) == "3.00e-06" and mse.text(2e-7, like=3e-6) == "2.00e-07"
    assert mse.text(2e-6, like=0.003) == "0.00000"  # beside a fixed mean, the same fixed digits


def test_a_difference_carries_its_sign_in_either_notation():
    assert spec("l0").signed(3.24) == "+3.2" and spec("l0").signed(-3.24) == "-3.2"
    assert spec("mse").signed(1.2e-6) == "+1.20e-06" and spec("mse").signed(-1.2e-6) == "-1.20e-06"
    assert spec("explained_variance").signed(0.0) == "+0.000"
