"""``collapse-tui --import-sae SAE_DIR CONFIG``: an SAE in SAELens' layout measured as a run on an
activations file. Exported from a run of ours and imported on the same data and seed, it measures what
that run measured; a config not on an activations file, a directory that is not an SAE and an SAE of
another input size are refused or fail in one line."""

from __future__ import annotations

import pytest

from collapse_tui import cli, store
from collapse_tui.config import validate
from collapse_tui.data.activations import write_activations
from collapse_tui.engine.runner import Engine
from collapse_tui.store.saelens import export_saelens
from tests.helpers import tiny_config, write_config
from tests.integration.test_activations_run import config, planted

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend

MEASURED = ("dead_fraction", "l0", "explained_variance", "mse", "mig", "probe_acc", "auroc_best")


@pytest.mark.parametrize("method", ["topk", "jumprelu"])
def test_an_exported_sae_imported_on_the_same_rows_measures_what_its_run_measured(tmp_path, capsys, method):
    acts, factors = planted()
    path = write_activations(tmp_path / "acts.npz", acts, factors, ["colour", "size", "place"])
    settings = config(tmp_path / "trained", path, sae={"method": method, "normalization": "unit_norm"})
    trained = Engine().run(validate(settings))
    assert trained.status == "ok", trained.summary.get("reason")
    saelens = export_saelens(_sae(trained.run_dir), tmp_path / "saelens")
    measuring = write_config(tmp_path, config(tmp_path / "imported", path), "measure.yaml")
    assert cli.main(["--import-sae", str(saelens), str(measuring)]) == 0
    said = capsys.readouterr().out.strip()
    assert said.count("\n") == 0 and ": ok, dead " in said
    (record,) = store.list_runs(tmp_path / "imported" / "runs")
    assert record.status == "ok" and record.config["sae"]["method"] == method
    assert record.config["sae"]["normalization"] == "none"  # folded into the exported weights
    ours, theirs = trained.summary["final"], record.summary["final"]
    for key in MEASURED:
        assert theirs[key] == pytest.approx(ours[key], rel=1e-4, abs=1e-6), key
    assert any("imported from" in getattr(e, "text", "") for e in store.iter_events(record.path))


def _sae(run_dir):
    import keras

    return keras.saving.load_model(run_dir / store.SAE_FILE, compile=False)


def test_what_cannot_be_measured_is_refused_or_fails_in_one_line(tmp_path, capsys):
    acts, factors = planted()
    path = write_activations(tmp_path / "acts.npz", acts, factors)
    trained = Engine().run(validate(config(tmp_path / "trained", path)))
    saelens = export_saelens(_sae(trained.run_dir), tmp_path / "saelens")
    images = write_config(tmp_path, tiny_config(tmp_path), "images.yaml")
    assert cli.main(["--import-sae", str(saelens), str(images)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "must read an activations file" in err
    good = write_config(tmp_path, config(tmp_path / "x", path), "good.yaml")
    assert cli.main(["--import-sae", str(tmp_path), str(good)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cfg.json" in err
    narrow = write_activations(tmp_path / "narrow.npz", acts[:, :10], factors)
    other = write_config(tmp_path, config(tmp_path / "narrow", narrow), "narrow.yaml")
    assert cli.main(["--import-sae", str(saelens), str(other)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "reads 24 inputs; the data has 10 per row" in err
